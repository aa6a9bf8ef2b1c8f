"""Store -> Nightscout: send what each destination has not acknowledged. Layer: app.

At least once: a row is marked sent only after Nightscout acknowledged its batch; a crash in
between re-sends it, and Nightscout's upsert on {sysTime, type} absorbs the duplicate because
the stored UTC never changes. Records the mapping does not upload (display-only duplicates,
special values when skipped, empty events) are marked done for that destination, so they
never hold up the queue.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from bridge.errors import UploadError, UploadRejectedError, UploadUnavailableError
from bridge.nightscout import (
    cal_to_entry,
    device_name,
    egv_to_entry,
    event_to_treatment,
    insertion_to_treatment,
    meter_to_entry,
)
from bridge.nightscout.client import NightscoutClient
from bridge.records import (
    CalibrationRecord,
    EGVRecord,
    InsertionRecord,
    MeterRecord,
    UserEventRecord,
)
from bridge.store import Outbox, Pending

__all__ = ["DUE_CHUNK", "DestinationReport", "upload_destination"]

log = logging.getLogger(__name__)

DUE_CHUNK = 1000  # rows taken from the outbox per round (the client batches them by 100)
BACKOFF_BASE_S = 30  # outbox retry after a failed round: 30 s, 60 s, ... (FIELD_NOTES (c))
BACKOFF_CAP_S = 600
Doc = dict[str, object]


@dataclass(slots=True)
class DestinationReport:
    """What one upload round did for one destination."""

    name: str
    uploaded: int = 0  # records acknowledged
    pending: int = 0  # still queued afterwards
    refused: bool = False  # credentials refused: uploads stopped, data kept
    error: str | None = None
    hint: str | None = None


def _documents(
    pending: Sequence[Pending], outbox: Outbox, *, device: str | None, special: Literal["codes", "skip"]
) -> tuple[list[tuple[int, Doc]], list[tuple[int, Doc]], list[int]]:
    """Map pending rows to (entries, treatments, rows with nothing to send)."""
    entries: list[tuple[int, Doc]] = []
    treatments: list[tuple[int, Doc]] = []
    nothing: list[int] = []
    for row in pending:
        item, record = row.item, row.item.record
        dev = device_name(item.serial, device)
        doc: Doc | None
        if isinstance(record, EGVRecord):
            sensor = outbox.sensor_near(item.serial, record.system_seconds)
            doc = egv_to_entry(item, sensor, device=dev, special=special)
            target = entries
        elif isinstance(record, MeterRecord):
            doc, target = meter_to_entry(item, device=dev), entries
        elif isinstance(record, CalibrationRecord):
            doc, target = cal_to_entry(item, device=dev), entries
        elif isinstance(record, UserEventRecord):
            doc, target = event_to_treatment(item, device=dev), treatments
        elif isinstance(record, InsertionRecord):
            doc, target = insertion_to_treatment(item, device=dev), treatments
        else:
            doc, target = None, entries
        if doc is None:
            nothing.append(row.id)
        else:
            target.append((row.id, doc))
    return entries, treatments, nothing


def _backoff(attempts: int, retry_after_s: float | None) -> float:
    if retry_after_s is not None:
        return retry_after_s
    return min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** min(attempts, 8)) * random.uniform(0.5, 1.0)


def upload_destination(
    outbox: Outbox,
    client: NightscoutClient,
    name: str,
    *,
    now: Callable[[], datetime],
    device: str | None = None,
    special: Literal["codes", "skip"] = "codes",
    retry_now: bool = False,
) -> DestinationReport:
    """Send everything due for one destination until it is done or the site fails.

    The backoff of earlier failures only spares a down site: whenever anything is due (a new
    reading) the site is contacted anyway, so every waiting row is offered with it and the
    backlog drains oldest first. ``retry_now`` (a one-shot `bridge sync`) offers them even
    when nothing new is due. Raises nothing for upload failures: they are reported and kept.
    """
    report = DestinationReport(name)
    if retry_now or outbox.due(name, limit=1, now=now()):
        outbox.retry_now(name)
    while due := outbox.due(name, limit=DUE_CHUNK, now=now()):
        entries, treatments, nothing = _documents(due, outbox, device=device, special=special)
        if nothing:
            outbox.mark_sent(name, nothing, now())
        try:
            for batch, post in ((entries, client.post_entries), (treatments, client.post_treatments)):
                if batch:
                    report.uploaded += _post(outbox, name, batch, post, now)
        except UploadError as exc:
            _failed(outbox, name, due, exc, report, now())
            break
    report.pending = outbox.backlog(name)
    return report


def _post(
    outbox: Outbox,
    name: str,
    batch: list[tuple[int, Doc]],
    post: Callable[..., list[dict[str, Any]]],
    now: Callable[[], datetime],
) -> int:
    ids = {id(doc): row_id for row_id, doc in batch}
    acknowledged = 0

    def on_batch(sent: Sequence[Mapping[str, object]], _stored: list[dict[str, Any]]) -> None:
        nonlocal acknowledged
        outbox.mark_sent(name, [ids[id(doc)] for doc in sent], now())
        acknowledged += len(sent)

    post([doc for _, doc in batch], on_batch=on_batch)
    return acknowledged


def _failed(
    outbox: Outbox, name: str, due: Sequence[Pending], exc: UploadError, report: DestinationReport, when: datetime
) -> None:
    report.error, report.hint = str(exc), exc.hint
    status = getattr(exc, "status", None)
    if isinstance(exc, UploadRejectedError) and status in (401, 403):
        report.refused = True
        outbox.mark_failed(name, [], str(exc), when, now=when)  # data stays queued, as it was
        log.error("%s refused the credentials: %s", name, exc)
        return
    attempts = max((row.attempts for row in due), default=0)
    delay = _backoff(attempts, getattr(exc, "retry_after_s", None))
    if isinstance(exc, UploadUnavailableError):
        log.warning("%s unavailable, retrying in %.0f s: %s", name, delay, exc)
    else:  # rejected content: keep it, retry rarely, say why
        delay = max(delay, 3600.0)
        log.error("%s rejected an upload: %s", name, exc)
    outbox.mark_failed(name, [row.id for row in due], str(exc), when + timedelta(seconds=delay), now=when)
