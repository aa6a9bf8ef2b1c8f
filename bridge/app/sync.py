"""`bridge sync`: one pass of receiver -> store -> every Nightscout. Layer: app.

Also the pieces the daemon reuses: opening the store with its destinations, building a
client per destination, posting devicestatus only when it changed or every 5 minutes, and
the exit code a one-shot run reports.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from bridge.app.audit import AuditReport, audit_destination
from bridge.app.reading import Progress, ReadReport, ReceiverSession, read_into_store
from bridge.app.session import open_receiver
from bridge.app.upload import DestinationReport, upload_destination
from bridge.config import Destination, Settings
from bridge.dexcom import Receiver, format_utc
from bridge.errors import (
    EX_IOERR,
    EX_NOPERM,
    EX_OK,
    EX_TEMPFAIL,
    EX_UNAVAILABLE,
    ConfigError,
    ProtocolError,
    ReceiverError,
    ReceiverNotFoundError,
    ReceiverTimeoutError,
    UploadError,
)
from bridge.nightscout import Credentials, device_name, devicestatus
from bridge.nightscout.client import NightscoutClient
from bridge.store import Outbox

__all__ = ["SyncReport", "make_client", "open_store", "post_status", "sync_once"]

log = logging.getLogger(__name__)

DEVICESTATUS_EVERY = timedelta(minutes=5)


def utc_now() -> datetime:
    """The host's UTC time (the daemon injects its own clock in tests)."""
    return datetime.now(UTC)


@dataclass(slots=True)
class SyncReport:
    """What `bridge sync` did and the exit code that says it."""

    read: ReadReport | None = None
    receiver_error: ReceiverError | None = None
    destinations: list[DestinationReport] = field(default_factory=list)
    audits: list[AuditReport] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """sysexits: 77 refused, 69 no receiver, 75 pending, 74 receiver I/O or skipped pages, 0 done."""
        if any(d.refused for d in self.destinations):
            return EX_NOPERM
        if isinstance(self.receiver_error, ReceiverNotFoundError):
            return EX_UNAVAILABLE
        if self.receiver_error is not None:
            return self.receiver_error.exit_code
        if any(d.pending for d in self.destinations):
            return EX_TEMPFAIL
        if self.read is not None and self.read.skipped_pages:
            return EX_IOERR
        return EX_OK


def make_client(destination: Destination, settings: Settings, **options: Any) -> NightscoutClient:
    """A client for one destination with its own credentials.

    ``options`` go to :class:`NightscoutClient` (``sleep``, ``retry``, timeouts).

    Raises:
        ConfigError: no secret or token for it, or an insecure URL.
    """
    if destination.token:
        credentials = Credentials.from_token(destination.token, bearer=destination.token_auth == "jwt")
    elif destination.secret:
        credentials = Credentials.from_secret(destination.secret)
    else:
        raise ConfigError(
            f"no API secret or token for {destination.url}",
            hint="set API_SECRET in the environment, or use --secret-file, or a secret/token in the config file",
        )
    return NightscoutClient(
        destination.url, credentials, batch_size=settings.batch_size, ca_bundle=settings.ca_bundle,
        allow_insecure_http=settings.allow_insecure_http, **options,
    )


@contextmanager
def open_store(settings: Settings) -> Iterator[Outbox]:
    """The outbox with every configured destination registered (history queued for new ones)."""
    with Outbox.open(settings.store_path) as outbox:
        for destination in settings.destinations:
            outbox.add_destination(destination.name)
        yield outbox


def _battery(receiver: Receiver) -> int | None:
    """Battery reads "flake out" on real receivers (PROTOCOL.md §10 #7): never fatal."""
    try:
        return receiver.battery_level()
    except (ReceiverTimeoutError, ProtocolError) as exc:
        log.info("battery level unavailable: %s", exc)
        return None


def post_status(
    outbox: Outbox, client: NightscoutClient, destination: str, *, serial: str, battery: int | None,
    health: dict[str, object], device: str | None, now: datetime,
) -> bool:
    """Post devicestatus when it changed or DEVICESTATUS_EVERY passed (Nightscout keeps every one).

    Returns:
        True when a devicestatus was posted.
    """
    content = {"battery": battery, **{k: v for k, v in health.items() if k not in ("last_read", "last_upload")}}
    digest = hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()
    key = f"devicestatus:{destination}"
    last = json.loads(outbox.get_meta(key) or "{}")
    due = last.get("digest") != digest or now - datetime.fromisoformat(last["at"]) >= DEVICESTATUS_EVERY
    if not due:
        return False
    doc = devicestatus(device=device_name(serial, device), receiver_name=f"Dexcom G4 {serial}", battery=battery,
                       bridge_health=health, created_at=now)
    client.post_devicestatus(doc)
    outbox.set_meta(key, json.dumps({"digest": digest, "at": now.isoformat()}))
    return True


def sync_once(
    settings: Settings,
    *,
    progress: Progress | None = None,
    now: Callable[[], datetime] = utc_now,
    audit_hours: float | None = None,
) -> SyncReport:
    """Read what is new, store it, upload everything pending to every destination.

    With ``audit_hours``, first ask each site which entries of the last hours it holds and
    re-queue what it lost (see :mod:`bridge.app.audit`).

    Raises:
        ConfigError: no destination, or one without credentials.
        StoreError: the store cannot be opened or written.
    """
    if not settings.destinations:
        raise ConfigError("no Nightscout site configured",
                          hint="pass --nightscout-url https://your-site (or set NIGHTSCOUT_URL), and API_SECRET")
    report = SyncReport()
    battery = None
    with ExitStack() as stack:
        clients = {d.name: stack.enter_context(make_client(d, settings)) for d in settings.destinations}
        outbox = stack.enter_context(open_store(settings))
        try:
            with open_receiver(settings.device) as receiver:
                session = ReceiverSession.open(receiver)
                report.read = read_into_store(session, outbox, list(clients), progress=progress)
                battery = _battery(receiver)
        except ReceiverError as exc:
            report.receiver_error = exc
            log.error("receiver: %s", exc)
        for name, client in clients.items():
            if audit_hours:
                try:
                    report.audits.append(audit_destination(outbox, client, name, hours=audit_hours, now=now(),
                                                           device=settings.device_name))
                except UploadError as exc:
                    log.warning("gap audit of %s failed: %s", name, exc)
            result = upload_destination(outbox, client, name, now=now, device=settings.device_name,
                                        special=settings.special_values, retry_now=True)
            report.destinations.append(result)
            if report.read is not None and not result.error:
                health = {
                    "last_read": format_utc(now()),
                    "backlog": result.pending,
                    "last_error": result.error or (str(report.receiver_error) if report.receiver_error else None),
                }
                try:
                    post_status(outbox, client, name, serial=report.read.serial, battery=battery, health=health,
                                device=settings.device_name, now=now())
                except UploadError as exc:
                    log.warning("devicestatus to %s not posted: %s", name, exc)
        outbox.prune(now(), settings.retain_days)
    return report
