"""Receiver -> store: read what is new, fix its UTC time once, keep it. Layer: app.

The read cursor per (receiver, kind) lives in the store and moves in the same transaction as
the records, never past a page that could not be read. The first read of a kind is a
backfill: pages oldest first, committed every BACKFILL_CHUNK records, so an interrupted
backfill keeps what it read and the next run continues after it. Later reads go newest
first and stop at the first page holding a record already read; a live cycle is one
transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from bridge.dexcom import DUMP_RECORD_TYPES, ClockAnchor, Receiver, ReceiverClock, choose_anchor, measure_anchor
from bridge.records import Record
from bridge.store import BACKFILL_CHUNK, Outbox

__all__ = ["KIND_ORDER", "ReadReport", "read_into_store"]

log = logging.getLogger(__name__)

#: Sensor before EGV so an EGV's raw values are stored when it is uploaded.
KIND_ORDER = ("sensor", "egv", "meter", "cal", "insertion", "event", "settings")

Progress = Callable[[str, int, int], None]  # (kind, pages done, pages in the partition)


@dataclass(slots=True)
class ReadReport:
    """What one read of the receiver did."""

    serial: str = ""
    clock: ReceiverClock | None = None
    anchor: ClockAnchor | None = None
    anchor_replaced: bool = False
    read: dict[str, int] = field(default_factory=dict)  # records read per kind
    stored: int = 0  # records new to the store
    skipped_pages: dict[str, list[int]] = field(default_factory=dict)
    backfill: bool = False


def _anchor(receiver: Receiver, outbox: Outbox, serial: str, report: ReadReport) -> ClockAnchor:
    clock = receiver.read_clock()
    kept_row = outbox.get_anchor(serial)
    kept = None if kept_row is None else ClockAnchor(*kept_row)
    anchor = choose_anchor(kept, measure_anchor(clock))
    if anchor is not kept:
        if kept is not None:
            log.warning("receiver %s: clock anchor moved from %+d s to %+d s; new records use the new one",
                        serial, kept.offset_s, anchor.offset_s)
        outbox.set_anchor(serial, anchor.offset_s, anchor.measured_at)
        report.anchor_replaced = True
    report.clock, report.anchor = clock, anchor
    return anchor


def _backfill(
    receiver: Receiver, outbox: Outbox, serial: str, kind: str, anchor: ClockAnchor,
    destinations: list[str], report: ReadReport, progress: Progress | None,
) -> None:
    record_type = DUMP_RECORD_TYPES[kind]
    page_range = receiver.page_range(record_type)
    if page_range is None:
        return
    first, last = page_range
    chunk: list[Record] = []
    through: int | None = None
    hole = False
    done = 0

    def commit() -> None:
        report.stored += outbox.add(serial, chunk, anchor.to_utc, destinations=destinations,
                                    cursors=None if through is None else {kind: through})
        chunk.clear()

    for number, page in receiver.iter_pages(record_type, first, last, newest_first=False):
        done += 1
        if progress is not None:
            progress(kind, done, last - first + 1)
        if page is None or page.bad_records:
            report.skipped_pages.setdefault(kind, []).append(number)
            hole = True
        if page is None:
            continue
        chunk.extend(page.records)
        report.read[kind] = report.read.get(kind, 0) + len(page.records)
        if not hole and page.records:
            through = max(r.system_seconds for r in page.records)
        if len(chunk) >= BACKFILL_CHUNK:
            commit()
    commit()


def read_into_store(
    receiver: Receiver, outbox: Outbox, destinations: list[str], *, progress: Progress | None = None,
) -> ReadReport:
    """Read every record the store does not hold yet and store it.

    Args:
        receiver: an open receiver.
        outbox: the store.
        destinations: names of the destinations new records are queued for.
        progress: called during a first-run backfill with (kind, pages done, pages in partition).
    """
    report = ReadReport()
    report.serial = serial = receiver.serial_number()
    anchor = _anchor(receiver, outbox, serial, report)
    live: list[Record] = []
    cursors: dict[str, int] = {}
    for kind in KIND_ORDER:
        cursor = outbox.cursor(serial, kind)
        if cursor is None:
            report.backfill = True
            _backfill(receiver, outbox, serial, kind, anchor, destinations, report, progress)
            continue
        result = receiver.read_records(DUMP_RECORD_TYPES[kind], since_system=cursor)
        live.extend(result.records)
        report.read[kind] = len(result.records)
        if result.skipped_pages:
            report.skipped_pages[kind] = result.skipped_pages
        if result.read_through is not None and result.read_through > cursor:
            cursors[kind] = result.read_through
    if live or cursors:
        report.stored += outbox.add(serial, live, anchor.to_utc, destinations=destinations, cursors=cursors)
    return report

