"""Settings: one frozen dataclass, built once from defaults, a TOML file, the environment and flags.

Layer: config; imports ``bridge.errors`` and the standard library only, and reads nothing at
import time. Precedence: flag > environment > config file > built-in default (FIELD_NOTES.md
(c)). Secrets never travel in argv: they come from the environment (``BRIDGE_API_SECRET``,
``API_SECRET``, ``NIGHTSCOUT_API_SECRET``), a file (``--secret-file``, ``secret_file`` in the
config), systemd credentials (``$CREDENTIALS_DIRECTORY/nightscout-secret``) or the config
file, and are kept out of every repr.
"""

from __future__ import annotations

import os
import tomllib
from urllib.parse import urlsplit
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from bridge.errors import ConfigError

__all__ = ["APP_NAME", "Destination", "Settings", "default_config_paths", "default_state_dir", "load_settings"]

APP_NAME = "dexcom-bridge"
CREDENTIAL_NAME = "nightscout-secret"  # LoadCredential= name in systemd/dexcom-bridge.service
SECRET_ENV = ("BRIDGE_API_SECRET", "API_SECRET", "NIGHTSCOUT_API_SECRET")
TOKEN_ENV = ("BRIDGE_NIGHTSCOUT_TOKEN", "NIGHTSCOUT_TOKEN")
URL_ENV = ("BRIDGE_NIGHTSCOUT_URL", "NIGHTSCOUT_URL", "NS_URL")
SpecialValues = Literal["codes", "skip"]


@dataclass(frozen=True, slots=True)
class Destination:
    """One Nightscout site to upload to, with its own credentials and sent state."""

    url: str
    secret: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    token_auth: Literal["header", "jwt"] = "header"  # a token in the api-secret header, or as a Bearer JWT

    @property
    def name(self) -> str:
        """The key of this destination's sent state: its URL without a trailing slash."""
        return self.url.rstrip("/")

    def redacted(self) -> dict[str, str | None]:
        """What `bridge config --show` prints."""
        return {
            "url": self.url,
            "secret": None if self.secret is None else "<set>",
            "token": None if self.token is None else "<set>",
            "token_auth": self.token_auth,
        }


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the bridge needs to run, resolved once."""

    device: str = "auto"
    state_dir: Path = field(default_factory=lambda: default_state_dir({}))
    destinations: tuple[Destination, ...] = ()
    device_name: str | None = None  # Nightscout `device`; default names the receiver
    special_values: SpecialValues = "codes"
    batch_size: int = 100
    retain_days: int = 90
    allow_insecure_http: bool = False
    ca_bundle: str | None = None
    config_path: Path | None = None

    @property
    def store_path(self) -> Path:
        """The outbox database."""
        return self.state_dir / "outbox.sqlite3"

    def redacted(self) -> dict[str, Any]:
        """The effective settings with secrets replaced (``bridge config --show``)."""
        return {
            "config_path": str(self.config_path) if self.config_path else None,
            "device": self.device,
            "state_dir": str(self.state_dir),
            "destinations": [d.redacted() for d in self.destinations],
            "device_name": self.device_name,
            "special_values": self.special_values,
            "batch_size": self.batch_size,
            "retain_days": self.retain_days,
            "allow_insecure_http": self.allow_insecure_http,
            "ca_bundle": self.ca_bundle,
        }


def default_state_dir(env: Mapping[str, str]) -> Path:
    """``$STATE_DIRECTORY`` under systemd, else ``$XDG_STATE_HOME/dexcom-bridge``."""
    if env.get("STATE_DIRECTORY"):
        return Path(env["STATE_DIRECTORY"].split(":")[0])
    base = env.get("XDG_STATE_HOME") or str(Path(env.get("HOME", "~")).expanduser() / ".local" / "state")
    return Path(base) / APP_NAME


def default_config_paths(env: Mapping[str, str]) -> list[Path]:
    """Where a config file is looked for when ``--config`` is not given, first found wins."""
    base = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME", "~")).expanduser() / ".config")
    paths = [Path(base) / APP_NAME / "config.toml"]
    if env.get("CONFIGURATION_DIRECTORY"):
        paths.append(Path(env["CONFIGURATION_DIRECTORY"].split(":")[0]) / "config.toml")
    paths.append(Path("/etc") / APP_NAME / "config.toml")
    return paths


def _read_secret_file(path: str | Path, what: str) -> str:
    try:
        text = Path(path).expanduser().read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror}",
                          hint="check the path and that this user may read it (chmod 600, owned by you)") from exc
    if not text:
        raise ConfigError(f"{what} {path} is empty", hint="put the Nightscout API_SECRET (or a token) in it")
    return text


def _first(env: Mapping[str, str], names: tuple[str, ...]) -> str | None:
    return next((env[n] for n in names if env.get(n)), None)


def _load_file(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}", hint="fix the TOML syntax; `bridge config --show` checks it") from exc
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}", hint="check the --config path") from exc


def _file_destinations(data: dict[str, Any], path: Path) -> tuple[Destination, ...]:
    out = []
    for i, item in enumerate(data.get("destination", [])):
        if not isinstance(item, dict) or not isinstance(item.get("url"), str):
            raise ConfigError(f"{path}: [[destination]] #{i + 1} needs a url", hint='url = "https://my-site.example"')
        secret = item.get("secret")
        if item.get("secret_file"):
            secret = _read_secret_file(item["secret_file"], "secret_file")
        token_auth = item.get("token_auth", "header")
        if token_auth not in ("header", "jwt"):
            raise ConfigError(f"{path}: token_auth must be 'header' or 'jwt', not {token_auth!r}")
        out.append(Destination(item["url"], secret, item.get("token"), token_auth))
    if isinstance(data.get("nightscout_url"), str):
        out.append(Destination(data["nightscout_url"]))
    return tuple(out)


def _check_url(url: str) -> str:
    """A Nightscout base URL: http(s), a host, a valid port; else a ConfigError naming it."""
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError when out of range
    except ValueError as exc:
        raise ConfigError(f"Nightscout URL {url!r} is not valid: {exc}",
                          hint="use the site's address, e.g. https://my-site.example") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"Nightscout URL {url!r} must start with https:// (or http://) and name a host",
                          hint="use the site's address, e.g. https://my-site.example")
    return url


def _int_setting(value: Any, name: str, minimum: int) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a whole number, not {value!r}") from None
    if number < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, not {number}")
    return number


def load_settings(
    flags: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    *,
    config_path: Path | None = None,
) -> Settings:
    """Resolve the settings: flags over environment over config file over defaults.

    Args:
        flags: CLI values; None or missing keys mean "not given". Known keys: device,
            state_dir, nightscout_urls (list), secret_file, device_name, special_values,
            batch_size, retain_days, allow_insecure_http, ca_bundle.
        env: the environment (``os.environ`` when None).
        config_path: ``--config``; when None the default locations are tried.

    Raises:
        ConfigError: a file or value is invalid, or a secret cannot be read.
    """
    flags = {k: v for k, v in (flags or {}).items() if v not in (None, (), [])}
    env = dict(os.environ if env is None else env)
    path = config_path or next((p for p in default_config_paths(env) if p.is_file()), None)
    if config_path is not None and not config_path.is_file():
        raise ConfigError(f"config file {config_path} does not exist", hint="create it or drop --config")
    data = _load_file(path) if path else {}

    def pick(key: str, env_names: tuple[str, ...], default: Any) -> Any:
        if key in flags:
            return flags[key]
        if (value := _first(env, env_names)) is not None:
            return value
        return data.get(key, default)

    settings = Settings(
        device=str(pick("device", ("BRIDGE_DEVICE",), "auto")),
        state_dir=Path(str(pick("state_dir", ("BRIDGE_STATE_DIR",), default_state_dir(env)))).expanduser(),
        device_name=pick("device_name", ("BRIDGE_DEVICE_NAME", "NIGHTSCOUT_DEVICE"), None),
        special_values=pick("special_values", ("BRIDGE_SPECIAL_VALUES",), "codes"),
        batch_size=_int_setting(pick("batch_size", ("BRIDGE_BATCH_SIZE",), 100), "batch_size", 1),
        retain_days=_int_setting(pick("retain_days", ("BRIDGE_RETAIN_DAYS",), 90), "retain_days", 1),
        allow_insecure_http=str(pick("allow_insecure_http", ("BRIDGE_ALLOW_INSECURE_HTTP",), False)).lower()
        in ("1", "true", "yes"),
        ca_bundle=pick("ca_bundle", ("BRIDGE_CA_BUNDLE",), None),
        config_path=path,
    )
    if settings.special_values not in ("codes", "skip"):
        raise ConfigError(f"special_values must be 'codes' or 'skip', not {settings.special_values!r}")
    return replace(settings, destinations=_destinations(flags, env, data, path))


def _destinations(
    flags: Mapping[str, Any], env: Mapping[str, str], data: dict[str, Any], path: Path | None
) -> tuple[Destination, ...]:
    """Destinations from flags, else the environment, else the file; with the shared secret."""
    urls: list[str] = list(flags.get("nightscout_urls", ()))
    if not urls and (value := _first(env, URL_ENV)):
        urls = [u for u in value.replace(",", " ").split() if u]
    shared_secret = None
    if flags.get("secret_file"):
        shared_secret = _read_secret_file(flags["secret_file"], "--secret-file")
    elif (value := _first(env, SECRET_ENV)) is not None:
        shared_secret = value.strip()
    elif env.get("CREDENTIALS_DIRECTORY") and (Path(env["CREDENTIALS_DIRECTORY"]) / CREDENTIAL_NAME).is_file():
        shared_secret = _read_secret_file(Path(env["CREDENTIALS_DIRECTORY"]) / CREDENTIAL_NAME, "systemd credential")
    elif isinstance(data.get("secret_file"), str):
        shared_secret = _read_secret_file(data["secret_file"], "secret_file")
    elif isinstance(data.get("secret"), str):
        shared_secret = data["secret"]
    shared_token = _first(env, TOKEN_ENV) or (data.get("token") if isinstance(data.get("token"), str) else None)
    for url in [*urls, *(d.get("url", "") for d in data.get("destination", []) if isinstance(d, dict))]:
        _check_url(str(url))
    if urls:
        return tuple(Destination(u, shared_secret, shared_token) for u in urls)
    file_destinations = _file_destinations(data, path) if path else ()
    out = []
    for d in file_destinations:
        own = d.secret is not None or d.token is not None
        out.append(d if own else Destination(d.url, shared_secret, shared_token))
    return tuple(out)
