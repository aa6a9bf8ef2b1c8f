"""Settings precedence (flag > environment > file > default) and where secrets may come from."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from bridge.cli import cli
from bridge.config import load_settings
from bridge.errors import ConfigError

SECRET = "correct horse battery staple"


def _file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_config_precedence_flag_over_env_over_file(tmp_path: Path) -> None:
    path = _file(tmp_path, 'device = "/dev/from-file"\nbatch_size = 50\nnightscout_url = "https://file.example"\n')
    env = {"HOME": str(tmp_path), "BRIDGE_DEVICE": "/dev/from-env"}
    settings = load_settings({}, env, config_path=path)
    assert settings.device == "/dev/from-env" and settings.batch_size == 50
    assert [d.url for d in settings.destinations] == ["https://file.example"]
    flagged = load_settings({"device": "/dev/from-flag", "nightscout_urls": ["https://a", "https://b"]}, env,
                            config_path=path)
    assert flagged.device == "/dev/from-flag"
    assert [d.url for d in flagged.destinations] == ["https://a", "https://b"]


def test_config_state_dir_defaults(tmp_path: Path) -> None:
    assert load_settings({}, {"HOME": str(tmp_path)}).state_dir == tmp_path / ".local/state/dexcom-bridge"
    assert load_settings({}, {"XDG_STATE_HOME": "/x"}).state_dir == Path("/x/dexcom-bridge")
    assert load_settings({}, {"STATE_DIRECTORY": "/var/lib/dexcom-bridge"}).state_dir == Path("/var/lib/dexcom-bridge")


@pytest.mark.parametrize("source", ["API_SECRET", "BRIDGE_API_SECRET", "file", "credential"])
def test_config_secret_sources_and_never_in_repr(tmp_path: Path, source: str) -> None:
    env = {"HOME": str(tmp_path), "NIGHTSCOUT_URL": "https://ns.example"}
    flags: dict[str, object] = {}
    if source == "file":
        (tmp_path / "secret").write_text(SECRET + "\n")
        flags["secret_file"] = str(tmp_path / "secret")
    elif source == "credential":
        (tmp_path / "nightscout-secret").write_text(SECRET)
        env["CREDENTIALS_DIRECTORY"] = str(tmp_path)
    else:
        env[source] = SECRET
    settings = load_settings(flags, env)
    assert settings.destinations[0].secret == SECRET
    assert SECRET not in repr(settings) and SECRET not in json.dumps(settings.redacted())


def test_config_file_destinations_with_their_own_credentials(tmp_path: Path) -> None:
    (tmp_path / "b-secret").write_text("b-secret-value-123")
    path = _file(tmp_path, f"""
[[destination]]
url = "https://a.example"
token = "uploader-0123456789abcdef"
token_auth = "jwt"

[[destination]]
url = "https://b.example"
secret_file = "{tmp_path / 'b-secret'}"
""")
    a, b = load_settings({}, {"HOME": str(tmp_path)}, config_path=path).destinations
    assert a.token == "uploader-0123456789abcdef" and a.secret is None and a.token_auth == "jwt"
    assert b.secret == "b-secret-value-123"


@pytest.mark.parametrize("text,what", [("batch_size = 0\n", "batch_size"), ("device = \n", "config.toml"),
                                       ('special_values = "maybe"\n', "special_values")])
def test_config_invalid_values_name_the_setting(tmp_path: Path, text: str, what: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({}, {"HOME": str(tmp_path)}, config_path=_file(tmp_path, text))
    assert what in str(info.value)
    assert info.value.exit_code == 78


def test_config_show_redacts_the_secret(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["config", "--show"], env={
        "HOME": str(tmp_path), "NIGHTSCOUT_URL": "https://ns.example", "API_SECRET": SECRET, "XDG_CONFIG_HOME": "",
    })
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert shown["destinations"] == [{"url": "https://ns.example", "secret": "<set>", "token": None,
                                      "token_auth": "header"}]
    assert SECRET not in result.output


def test_sync_without_a_site_is_a_config_error(tmp_path: Path) -> None:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "bridge", "sync", "--device", str(tmp_path / "x")],
                          capture_output=True, text=True, timeout=60,
                          env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 78
    assert "NIGHTSCOUT_URL" in done.stderr


@pytest.mark.parametrize("url", ["http://127.0.0.1:186130", "ftp://ns.example", "ns.example", "https://"])
def test_config_refuses_a_url_that_cannot_work(tmp_path: Path, url: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({"nightscout_urls": [url]}, {"HOME": str(tmp_path)})
    assert url in str(info.value) and info.value.exit_code == 78
