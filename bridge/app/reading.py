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
from bridge.store import BACKFILL_CHUNK, Outbox, hold, release

__all__ = ["KIND_ORDER", "ReadReport", "ReceiverSession", "read_into_store"]

log = logging.getLogger(__name__)

#: A live read looks at most this many newest pages; further behind, it reads on in chunks.
LIVE_PAGES = 4

#: Sensor before EGV so an EGV's raw values are stored when it is uploaded.
KIND_ORDER = ("sensor", "egv", "meter", "cal", "insertion", "event", "settings")

Progress = Callable[[str, int, int], None]  # (kind, pages done, pages in the partition)
Sink = Callable[[list[Record], dict[str, int] | None], int]  # store records + cursors, one transaction


@dataclass(slots=True)
class ReadReport:
    """What one read of the receiver did."""

    serial: str = ""
    clock: ReceiverClock | None = None
    anchor: ClockAnchor | None = None
    read: dict[str, int] = field(default_factory=dict)  # records read per kind
    stored: int = 0  # records new to the store
    skipped_pages: dict[str, list[int]] = field(default_factory=dict)
    backfill: bool = False
    held: bool = False  # the host clock was not trusted: records kept without UTC times


@dataclass(slots=True)
class ReceiverSession:
    """An open receiver with what is measured once per open: its serial, clocks and anchor."""

    receiver: Receiver
    serial: str
    clock: ReceiverClock
    anchor: ClockAnchor | None = None  # measured once the host clock is trusted
    drift_s: int | None = None  # how far the new measurement was from the kept anchor

    @classmethod
    def open(cls, receiver: Receiver) -> ReceiverSession:
        """Identify an opened receiver and read its clocks.

        First lets any reply still on its way to a previous owner (a process killed in the
        middle of a command) arrive and be discarded, so it is never taken for ours.
        """
        receiver.settle()
        return cls(receiver, receiver.serial_number(), receiver.read_clock())

    def ensure_anchor(self, outbox: Outbox, *, fresh_clock: bool = False) -> ClockAnchor:
        """The anchor for this open: the kept one unless the new measurement moved > 60 s.

        Args:
            outbox: where the anchor is kept per receiver.
            fresh_clock: read the clocks again first (the host clock was not trusted when the
                receiver was opened).
        """
        if self.anchor is not None:
            return self.anchor
        if fresh_clock:
            self.clock = self.receiver.read_clock()
        kept_row = outbox.get_anchor(self.serial)
        kept = None if kept_row is None else ClockAnchor(*kept_row)
        measured = measure_anchor(self.clock)
        anchor = choose_anchor(kept, measured)
        self.drift_s = None if kept is None else measured.offset_s - kept.offset_s
        if anchor is not kept:
            if kept is not None:
                log.warning("receiver %s: clock anchor moved from %+d s to %+d s; new records use the new one",
                            self.serial, kept.offset_s, anchor.offset_s)
            outbox.set_anchor(self.serial, anchor.offset_s, anchor.measured_at)
        elif self.drift_s:
            log.info("receiver %s: clock %+d s from its anchor (kept: within tolerance)", self.serial, self.drift_s)
        self.anchor = anchor
        return anchor


def _backfill(
    receiver: Receiver,
    kind: str,
    sink: Sink,
    report: ReadReport,
    progress: Progress | None,
    *,
    since: int | None = None,
    page_range: tuple[int, int] | None = None,
) -> None:
    """Read pages oldest first, committing every BACKFILL_CHUNK records.

    With ``since`` (a resumed backfill) only records after that system time are kept, and the
    read starts at the first page holding one (a few single-page reads find it).
    """
    record_type = DUMP_RECORD_TYPES[kind]
    page_range = page_range or receiver.page_range(record_type)
    if page_range is None:
        return
    first, last = page_range
    if since is not None:  # records at ``since`` itself are read again: several can share a second
        first = receiver.first_page_after(record_type, first, last, since - 1)
        log.info("resuming the read of %s at page %d of %d..%d", kind, first, *page_range)
    chunk: list[Record] = []
    through: int | None = since
    hole = False
    done = 0

    def commit() -> None:
        report.stored += sink(chunk, None if through is None else {kind: through})
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
        new = [r for r in page.records if since is None or r.system_seconds >= since]
        chunk.extend(new)
        report.read[kind] = report.read.get(kind, 0) + sum(1 for r in new if since is None or r.system_seconds > since)
        if not hole and new:
            through = max(r.system_seconds for r in new)
        if len(chunk) >= BACKFILL_CHUNK:
            commit()
    commit()


def read_into_store(
    session: ReceiverSession,
    outbox: Outbox,
    destinations: list[str],
    *,
    progress: Progress | None = None,
    clock_ok: bool = True,
) -> ReadReport:
    """Read every record the store does not hold yet and store it.

    Args:
        session: the open receiver.
        outbox: the store.
        destinations: names of the destinations new records are queued for.
        progress: called during a first-run backfill with (kind, pages done, pages in partition).
        clock_ok: False while the host clock is not synchronised: no anchor is measured and the
            records are held without UTC times (``bridge.store.held``) until it is.
    """
    receiver, serial = session.receiver, session.serial
    report = ReadReport(serial=serial, clock=session.clock)
    sink: Sink
    if clock_ok:
        anchor = report.anchor = session.ensure_anchor(outbox)
        if released := release(outbox, serial, anchor.to_utc, destinations=destinations):
            log.info("host clock trusted now: %d held records stamped and queued", released)
            report.stored += released

        def sink(records: list[Record], cursors: dict[str, int] | None) -> int:
            return outbox.add(serial, records, anchor.to_utc, destinations=destinations, cursors=cursors)
    else:
        report.held = True

        def sink(records: list[Record], cursors: dict[str, int] | None) -> int:
            return hold(outbox, serial, records, cursors=cursors)

    live: list[Record] = []
    cursors: dict[str, int] = {}
    for kind in KIND_ORDER:
        cursor = outbox.cursor(serial, kind)
        if cursor is None:
            report.backfill = True
            _backfill(receiver, kind, sink, report, progress)
            continue
        # inclusive: records sharing the cursor's second (display-only duplicates) are read again
        result = receiver.read_records(DUMP_RECORD_TYPES[kind], since_system=cursor, newest_pages=LIVE_PAGES,
                                       inclusive=True)
        if not result.reached_since:  # far behind (a resumed backfill): read on in committed chunks
            _backfill(receiver, kind, sink, report, progress, since=cursor)
            continue
        live.extend(result.records)
        report.read[kind] = sum(1 for r in result.records if r.system_seconds > cursor)
        if result.skipped_pages:
            report.skipped_pages[kind] = result.skipped_pages
        if result.read_through is not None and result.read_through > cursor:
            cursors[kind] = result.read_through
    if live or cursors:
        report.stored += sink(live, cursors)
    return report

