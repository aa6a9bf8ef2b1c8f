"""The daemon's state: what it knows about itself, and the outages it saw. Layer: app.

Persisted as JSON in the store (meta key ``health``) after every cycle, so `bridge status`,
`bridge tail` and devicestatus can say why data is or is not flowing, also while the daemon
owns the receiver, and after it was killed. The outage log survives restarts.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from bridge.dexcom import format_utc
from bridge.store import Outbox

__all__ = ["DEFAULT_INTERVAL_S", "HEALTH_KEY", "OUTAGE_LOG_SIZE", "DaemonState", "read_health"]

log = logging.getLogger(__name__)

HEALTH_KEY = "health"  # meta key of the daemon's state, read by `bridge status`
DEFAULT_INTERVAL_S = 300.0  # a G4 records every 5 minutes
OUTAGE_LOG_SIZE = 50  # outages kept in the state


@dataclass(slots=True)
class DaemonState:
    """What the daemon knows about itself; persisted for `bridge status` and devicestatus."""

    started_at: str = field(default_factory=lambda: format_utc(datetime.now(UTC)))
    pid: int = field(default_factory=os.getpid)
    running: bool = True
    receiver: str = "not yet seen"  # connected | disconnected | failing | busy | no permission
    serial: str | None = None
    clock_ok: bool = True
    clock_evidence: str = ""
    anchor_offset_s: int | None = None
    drift_s: int | None = None
    interval_s: float = DEFAULT_INTERVAL_S
    newest_reading_utc: str | None = None
    last_read_at: str | None = None
    last_new_reading_at: str | None = None
    last_upload_at: str | None = None
    backlog: dict[str, int] = field(default_factory=dict)
    held: int = 0
    stale_reason: str | None = None
    last_error: str | None = None
    last_error_at: str | None = None
    cycles: int = 0
    receiver_commands: int = 0
    failures: int = 0
    refused: dict[str, str] = field(default_factory=dict)  # destination -> why it refused the credentials
    #: Each outage seen: {"kind", "reason", "since", "until"} (until None while it lasts); kept
    #: across restarts, so `bridge status` explains every gap in the data.
    outages: list[dict[str, str | None]] = field(default_factory=list)

    def to_json(self) -> str:
        """The state as JSON text."""
        return json.dumps(asdict(self), sort_keys=True)

    def resume_from(self, previous: dict[str, Any]) -> None:
        """Carry the outage log over from the previous run, noting an unclean exit."""
        self.outages = list(previous.get("outages") or [])[-OUTAGE_LOG_SIZE:]
        if previous.get("running"):
            self.outages.append({
                "kind": "daemon", "reason": f"the previous run (pid {previous.get('pid')}) ended without a clean stop",
                "since": previous.get("last_read_at") or previous.get("started_at"), "until": self.started_at,
            })
            del self.outages[:-OUTAGE_LOG_SIZE]

    def track(self, kind: str, reason: str | None, now: datetime) -> None:
        """Open an outage of ``kind`` (reason given) or close the open one (reason None)."""
        current = next((o for o in reversed(self.outages) if o["kind"] == kind and o["until"] is None), None)
        when = format_utc(now)
        if reason is None and current is not None:
            current["until"] = when
            log.info("%s: recovered (since %s: %s)", kind, current["since"], current["reason"])
        elif reason is not None and current is None:
            self.outages.append({"kind": kind, "reason": reason, "since": when, "until": None})
            del self.outages[:-OUTAGE_LOG_SIZE]


def read_health(outbox: Outbox) -> dict[str, Any] | None:
    """The daemon's last saved state, or None if it never ran with this store."""
    text = outbox.get_meta(HEALTH_KEY)
    return None if text is None else dict(json.loads(text))
