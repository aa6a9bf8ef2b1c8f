"""Settings of the bundled Nightscout-compatible server.

Layer: server (configuration). Stdlib only; never imports starlette, uvicorn or the core
packages (``bridge.dexcom``, ``bridge.nightscout``, ``bridge.store``, ``bridge.app``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "DEFAULT_AUTH_FAIL_DELAY_S",
    "DEFAULT_DB_NAME",
    "DEFAULT_HOST",
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_PORT",
    "MIN_SECRET_LENGTH",
    "ROLES",
    "ServerSettings",
    "default_db_path",
    "default_state_dir",
]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 1337  # Nightscout's PORT default
DEFAULT_DB_NAME = "nightscout.sqlite"
DEFAULT_AUTH_FAIL_DELAY_S = 5.0  # Nightscout's AUTH_FAIL_DELAY, 5000 ms
DEFAULT_MAX_BODY_BYTES = 10_000_000  # Nightscout allows 50 MB; a Pi parses 10 MB of JSON fine
MIN_SECRET_LENGTH = 12  # Nightscout's MIN_PASSPHRASE_LENGTH
ROLES = ("readable", "admin", "denied")


def default_state_dir() -> Path:
    """Return the state directory: $BRIDGE_STATE_DIR, $XDG_STATE_HOME/dexcom-bridge or ~/.local/state."""
    explicit = os.environ.get("BRIDGE_STATE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_STATE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".local" / "state"
    return base / "dexcom-bridge"


def default_db_path() -> Path:
    """Return the default database path, ``nightscout.sqlite`` in the state directory."""
    return default_state_dir() / DEFAULT_DB_NAME


@dataclass(frozen=True)
class ServerSettings:
    """Everything the app factory needs.

    Attributes:
        db_path: SQLite file (``":memory:"`` is not supported: WAL needs a file).
        api_secret: the admin secret, or None when only access tokens may write.
        default_role: role of requests without credentials (``readable`` or ``denied``).
        auth_fail_delay_s: penalty added per failed authentication per client address.
        max_body_bytes: largest accepted request body, after decompression.
        bg_target_bottom: lower edge of the target range on the live page, mg/dl.
        bg_target_top: upper edge of the target range on the live page, mg/dl.
    """

    db_path: Path
    api_secret: str | None = field(default=None, repr=False)
    default_role: str = "readable"
    auth_fail_delay_s: float = DEFAULT_AUTH_FAIL_DELAY_S
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    bg_target_bottom: int = 80
    bg_target_top: int = 180

    def __post_init__(self) -> None:
        """Reject settings the server cannot run with."""
        if self.default_role not in ("readable", "denied"):
            raise ValueError(f"default_role must be readable or denied, not {self.default_role!r}")
        if self.auth_fail_delay_s < 0:
            raise ValueError("auth_fail_delay_s must not be negative")
        if self.max_body_bytes < 1:
            raise ValueError("max_body_bytes must be positive")
