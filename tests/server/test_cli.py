"""The ``bridge server`` click command, run through CliRunner (nothing is served)."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import bridge
from bridge.server import ServerSettings, create_app
from bridge.server.cli import server
from bridge.server.runner import RedactCredentials
from bridge.server.settings import default_db_path

from .conftest import SECRET, TestClient, entry


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """A runner without secrets or a state directory from the developer's environment."""
    for name in ("API_SECRET", "BRIDGE_API_SECRET", "BRIDGE_STATE_DIR", "XDG_STATE_HOME"):
        monkeypatch.delenv(name, raising=False)
    return CliRunner()


def test_cli_help_lists_every_option(runner: CliRunner) -> None:
    result = runner.invoke(server, ["--help"])
    assert result.exit_code == 0
    for option in ("--host", "--port", "--db", "--certfile", "--keyfile", "--redirect-http", "--default-role",
                   "--auth-fail-delay", "--max-body-bytes", "--secret-file", "--create-token", "--role"):
        assert option in result.output
    assert "127.0.0.1" in result.output and "1337" in result.output


def test_cli_create_token_prints_a_working_token(runner: CliRunner, tmp_path: Path) -> None:
    db = tmp_path / "ns.sqlite"
    result = runner.invoke(server, ["--db", str(db), "--create-token", "My Uploader!", "--role", "admin"])
    assert result.exit_code == 0, result.output
    token = result.output.strip()
    assert re.fullmatch(r"myuploader-[0-9a-f]{16}", token)
    with TestClient(create_app(ServerSettings(db_path=db, default_role="denied"))) as client:
        assert client.post(f"/api/v1/entries?token={token}", json=[entry()]).status_code == 200
        assert client.get("/api/v1/entries.json").status_code == 401


def test_cli_create_token_uses_state_dir(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(server, ["--create-token", "reader", "--role", "readable"],
                           env={"BRIDGE_STATE_DIR": str(tmp_path / "state")})
    assert result.exit_code == 0, result.output
    assert (tmp_path / "state" / "nightscout.sqlite").exists()


def test_default_db_path_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("BRIDGE_STATE_DIR", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert default_db_path() == tmp_path / "dexcom-bridge" / "nightscout.sqlite"
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_db_path() == tmp_path / ".local" / "state" / "dexcom-bridge" / "nightscout.sqlite"


def test_cli_refuses_short_secret(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(server, ["--db", str(tmp_path / "x.sqlite"), "--create-token", "a"],
                           env={"API_SECRET": "short"})
    assert result.exit_code == 2 and "12 characters" in result.output
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET + "\n")
    result = runner.invoke(server, ["--db", str(tmp_path / "x.sqlite"), "--secret-file", str(secret_file),
                                    "--create-token", "a"])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(("args", "message"), [
    (["--redirect-http", "8080"], "--redirect-http needs --certfile"),
    (["--default-role", "admin"], "Invalid value for '--default-role'"),
    (["--auth-fail-delay", "-1"], "Invalid value for '--auth-fail-delay'"),
    (["--role", "root", "--create-token", "x"], "Invalid value for '--role'"),
])
def test_cli_usage_errors(runner: CliRunner, args: list[str], message: str) -> None:
    result = runner.invoke(server, args)
    assert result.exit_code == 2 and message in result.output


def test_cli_keyfile_needs_certfile(runner: CliRunner, tmp_path: Path) -> None:
    key = tmp_path / "key.pem"
    key.write_text("x")
    result = runner.invoke(server, ["--keyfile", str(key)])
    assert result.exit_code == 2 and "--keyfile needs --certfile" in result.output


def test_cli_serves_with_the_given_options(runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    monkeypatch.setattr("bridge.server.runner.run", lambda app, listen: calls.append((app, listen)))
    result = runner.invoke(server, ["--db", str(tmp_path / "ns.sqlite"), "--host", "0.0.0.0", "--port", "8443",
                                    "--default-role", "denied", "--auth-fail-delay", "0.5",
                                    "--max-body-bytes", "1234"], env={"API_SECRET": SECRET})
    assert result.exit_code == 0, result.output
    [(app, listen)] = calls
    settings = app.state.ctx.settings
    assert (listen.host, listen.port, listen.certfile) == ("0.0.0.0", 8443, None)
    assert settings.default_role == "denied" and settings.auth_fail_delay_s == 0.5
    assert settings.max_body_bytes == 1234 and settings.api_secret == SECRET
    assert SECRET not in repr(settings)


def test_log_lines_never_show_tokens_or_secrets() -> None:
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s"', (
        "127.0.0.1:1", "GET", "/api/v1/entries.json?count=2&token=reader-0123456789abcdef&SECRET=abc"), None)
    assert RedactCredentials().filter(record)
    assert record.getMessage() == '127.0.0.1:1 - "GET /api/v1/entries.json?count=2&token=***&SECRET=***"'


def test_importing_the_command_does_not_need_the_server_extra() -> None:
    code = ("import sys, bridge.server.cli; "
            "assert not [m for m in sys.modules if m.startswith(('starlette', 'uvicorn'))]")
    root = Path(bridge.__file__).resolve().parents[1]
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30, cwd=root)
