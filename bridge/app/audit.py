"""The gap audit: ask a site which of our entries it holds, re-queue what it lost. Layer: app.

Local sent state says what a site acknowledged; a site can still lose data afterwards (a
restore from backup, a database cleanup, a hosting move). The audit compares the entries
this bridge's receivers uploaded in the window with what the site answers for their
``device`` and re-queues the missing ones, so the next upload round restores them.
Treatments and devicestatus are not audited.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from bridge.nightscout import cal_to_entry, device_name, egv_to_entry, meter_to_entry
from bridge.nightscout.client import NightscoutClient
from bridge.records import CalibrationRecord, EGVRecord, MeterRecord
from bridge.store import Outbox, Pending

__all__ = ["AuditReport", "audit_destination"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AuditReport:
    """What the audit of one destination found."""

    name: str
    checked: int  # entries we had marked sent in the window
    missing: int  # of those, not on the site: re-queued


def _entry_key(row: Pending, device: str | None) -> tuple[str, str, object] | None:
    """(device, type, date) of the entry a sent row became, or None if it became no entry."""
    item, record = row.item, row.item.record
    dev = device_name(item.serial, device)
    if isinstance(record, EGVRecord):
        doc = egv_to_entry(item, None, device=dev, special="codes")
    elif isinstance(record, MeterRecord):
        doc = meter_to_entry(item, device=dev)
    elif isinstance(record, CalibrationRecord):
        doc = cal_to_entry(item, device=dev)
    else:
        return None
    return None if doc is None else (dev, str(doc["type"]), doc["date"])


def audit_destination(
    outbox: Outbox, client: NightscoutClient, name: str, *, hours: float, now: datetime, device: str | None = None,
) -> AuditReport:
    """Re-queue the entries sent to ``name`` in the last ``hours`` that the site no longer holds.

    Raises:
        UploadRejectedError, UploadUnavailableError: the site could not be asked.
    """
    since = now - timedelta(hours=hours)
    expected: dict[str, dict[tuple[str, object], list[int]]] = defaultdict(lambda: defaultdict(list))
    for row in outbox.sent_since(name, since):
        if (key := _entry_key(row, device)) is not None:
            dev, kind, date = key
            expected[dev][(kind, date)].append(row.id)
    checked = sum(len(ids) for by_key in expected.values() for ids in by_key.values())
    missing: list[int] = []
    for dev, by_key in expected.items():
        held = {(doc.get("type"), doc.get("date")) for doc in client.entries_between(dev, since, now)}
        for key, ids in by_key.items():
            if key not in held:
                missing.extend(ids)
    if missing:
        outbox.requeue(name, missing)
        log.warning("%s: %d of %d entries sent in the last %g h are missing there; re-queued",
                    name, len(missing), checked, hours)
    return AuditReport(name, checked, len(missing))
