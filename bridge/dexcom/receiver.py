"""Receiver: one command = flush, write, read one frame, check, retry. Layer: dexcom.

Glues the pure codec to a :class:`ByteLink` (``SerialLink`` in production). It owns the
retry policy for the receiver (a fixed number of resends after a timeout, a bad CRC, a NAK
or a reply of the wrong shape), the multi-page read with its fallback to single pages, and
page-level isolation: a page that stays bad after its re-reads is skipped and counted, and
never aborts the read of the others.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol, TypeVar

from bridge.dexcom import commands as cmd
from bridge.dexcom.clock import ReceiverClock
from bridge.dexcom.commands import Command, Partition, Status
from bridge.dexcom.framing import Frame, FrameDecoder
from bridge.dexcom.pages import Page, PageHeader, decode_page, decode_page_header, split_pages
from bridge.errors import (
    CRCError,
    NAKError,
    ProtocolError,
    ReceiverDisconnectedError,
    ReceiverError,
    ReceiverTimeoutError,
    RecordError,
)
from bridge.records import Record, RecordType, XMLRecord

__all__ = ["ByteLink", "Counters", "ReadResult", "Receiver", "Timeouts"]

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_ATTEMPTS = 3  # sends per command (1 + 2 resends) on timeout, bad CRC, NAK
PAGE_ATTEMPTS = 3  # reads of one page before it is skipped
MAX_PAGES_PER_READ = 4  # what Dexcom Studio asks for (PROTOCOL.md §4.3)
MULTI_PAGE_FAILURE_LIMIT = 2  # multi-page reads failing whole this often in a row: read pages singly
RECONNECT_WAIT_S = 10.0  # how long to wait for an unplugged receiver to come back
MAX_RECONNECTS = 3  # per command
_RETRYABLE_STATUS = frozenset({Status.NAK, Status.INCOMPLETE_PACKET_RECEIVED, Status.NULL})


class ByteLink(Protocol):
    """What the receiver needs from a link (``SerialLink`` or a test fake)."""

    url: str

    def open(self) -> None: ...
    def reopen(self, wait_s: float) -> None: ...
    def close(self) -> None: ...
    def write(self, data: bytes) -> None: ...
    def read(self, max_bytes: int, deadline: float) -> bytes: ...
    def flush_input(self) -> None: ...
    def drain(self, quiet_s: float, max_s: float) -> int: ...


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Per-command reply deadlines, in seconds."""

    command_s: float = 1.5  # a short reply (7-25 ms on a real receiver)
    per_page_s: float = 0.2  # added per page requested (about 9 ms each when healthy)
    xml_s: float = 3.0  # firmware header, partition info (100-220 ms when healthy)
    settle_s: float = 0.3  # after a resend succeeded: quiet time that absorbs late replies

    def for_command(self, command: int, pages: int = 0) -> float:
        """The reply deadline for one command."""
        if command in cmd.XML_COMMANDS:
            return self.xml_s
        return self.command_s + self.per_page_s * pages


DEFAULT_TIMEOUTS = Timeouts()


@dataclass(slots=True)
class ReadResult:
    """Records read from one partition, oldest first, with what could not be read."""

    records: list[Record] = field(default_factory=list)
    pages_read: int = 0
    skipped_pages: list[int] = field(default_factory=list)  # pages with records lost
    bad_records: int = 0
    #: Newest system time before the first hole: everything up to it was read. None when the
    #: first page read was already a hole (or nothing was read).
    read_through: int | None = None
    #: True when the read went back far enough: a record at or before ``since_system`` was
    #: seen, or every page of the partition was read. False means older new records remain.
    reached_since: bool = False

    @property
    def complete(self) -> bool:
        """True when every page was read whole."""
        return not self.skipped_pages


@dataclass(slots=True)
class Counters:
    """What a session cost and survived."""

    commands: int = 0
    resends: int = 0
    reconnects: int = 0
    late_bytes_dropped: int = 0


class Receiver:
    """A Dexcom G4 receiver behind a byte link.

    Args:
        link: the opened or openable link.
        attempts: sends per command before giving up.
        timeouts: reply deadlines.
        max_pages_per_read: pages per READ_DATABASE_PAGES (1-4); drops to 1 if refused.
        reconnect_wait_s: how long to wait for an unplugged receiver (0: fail at once).
        now: the host's UTC clock (injectable).
        monotonic: the deadline clock (injectable).
    """

    def __init__(
        self,
        link: ByteLink,
        *,
        attempts: int = DEFAULT_ATTEMPTS,
        timeouts: Timeouts = DEFAULT_TIMEOUTS,
        max_pages_per_read: int = MAX_PAGES_PER_READ,
        reconnect_wait_s: float = RECONNECT_WAIT_S,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.link = link
        self.attempts = max(1, attempts)
        self.timeouts = timeouts
        self.max_pages_per_read = min(max(1, max_pages_per_read), MAX_PAGES_PER_READ)
        self.reconnect_wait_s = reconnect_wait_s
        self.counters = Counters()
        self._now = now
        self._monotonic = monotonic
        self._decoder = FrameDecoder()
        self._partitions: dict[int, Partition] | None = None
        self._multi_page_failures = 0

    def __repr__(self) -> str:
        return f"Receiver({self.link.url!r})"

    def __enter__(self) -> Receiver:
        self.link.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.link.close()

    # -- one command --------------------------------------------------------------------

    def command(self, command: int, payload: bytes = b"", *, pages: int = 0) -> bytes:
        """Send one command and return its ACK payload (see :meth:`transact`)."""
        return self.transact(command, payload, lambda p: p, pages=pages)

    def transact(self, command: int, payload: bytes, parse: Callable[[bytes], T], *, pages: int = 0) -> T:
        """Send a command until a reply parses, within the attempt budget.

        A timeout, a bad CRC, a NAK and a reply that ``parse`` refuses (RecordError: the
        wrong shape, e.g. a late reply to an earlier command) each cost one attempt; the
        input is flushed before every send. An unplug waits for the receiver to return.

        Raises:
            ReceiverTimeoutError, CRCError, NAKError, RecordError: the last failure, once the
                attempts are spent (NAKs other than NAK/INCOMPLETE are raised at once).
            bridge.errors.ReceiverNotFoundError: the receiver was unplugged and did not come back.
        """
        request = cmd.build_request(command, payload)
        timeout = self.timeouts.for_command(command, pages)
        failures = 0
        reconnects = 0
        resent_after_timeout = False
        while True:
            self.counters.commands += 1
            try:
                self.link.flush_input()
                self._decoder.clear()
                self.link.write(request)
                frame = self._read_frame(self._monotonic() + timeout)
                result = parse(cmd.check_reply(frame, command))
            except ReceiverDisconnectedError as exc:
                if reconnects >= MAX_RECONNECTS or self.reconnect_wait_s <= 0:
                    raise
                reconnects += 1
                self.counters.reconnects += 1
                log.warning("%s; waiting up to %g s for the receiver", exc, self.reconnect_wait_s)
                self.link.reopen(self.reconnect_wait_s)
                continue
            except NAKError as exc:
                if exc.status not in _RETRYABLE_STATUS:
                    raise
                last: ReceiverError = exc
            except (ReceiverTimeoutError, CRCError, RecordError) as exc:
                last = exc
                resent_after_timeout = resent_after_timeout or isinstance(exc, ReceiverTimeoutError)
            else:
                if resent_after_timeout:  # the late reply may still be on its way: let it land
                    self.counters.late_bytes_dropped += self.link.drain(self.timeouts.settle_s, timeout)
                return result
            failures += 1
            if failures >= self.attempts:
                raise last
            self.counters.resends += 1
            log.debug("resending %s after: %s", _name(command), last)

    def _read_frame(self, deadline: float) -> Frame:
        while (frame := self._decoder.next_frame()) is None:
            data = self.link.read(max(self._decoder.needed(), 64), deadline)
            if not data:
                raise ReceiverTimeoutError(f"{self.link.url}: no complete reply in time")
            self._decoder.feed(data)
        return frame

    def settle(self, quiet_s: float = 0.25, max_s: float = 2.0) -> int:
        """Discard what arrives until the line has been quiet for ``quiet_s`` (after an open)."""
        dropped = self.link.drain(quiet_s, max_s)
        self.counters.late_bytes_dropped += dropped
        return dropped

    # -- simple reads -------------------------------------------------------------------

    def ping(self) -> None:
        """PING; raises if the receiver does not answer."""
        self.command(Command.PING)

    def read_u32(self, command: Command) -> int:
        """A command whose reply is one u32."""
        return self.transact(command, b"", cmd.decode_u32)

    def read_s32(self, command: Command) -> int:
        """A command whose reply is one s32."""
        return self.transact(command, b"", cmd.decode_s32)

    def read_u8(self, command: Command) -> int:
        """A command whose reply is one byte."""
        return self.transact(command, b"", cmd.decode_u8)

    def read_clock(self) -> ReceiverClock:
        """The receiver's clocks, with the host's UTC taken at the system-time reply."""
        before = self._now()
        system = self.read_u32(Command.READ_SYSTEM_TIME)
        after = self._now()
        host = before + (after - before) / 2
        return ReceiverClock(
            system_seconds=system,
            display_offset=self.read_s32(Command.READ_DISPLAY_TIME_OFFSET),
            host_utc=host,
            rtc=self.read_u32(Command.READ_RTC),
            system_offset=self.read_s32(Command.READ_SYSTEM_TIME_OFFSET),
        )

    def firmware_header(self) -> dict[str, str]:
        """READ_FIRMWARE_HEADER attributes (FirmwareVersion, ProductId, ...)."""
        return self.transact(Command.READ_FIRMWARE_HEADER, b"", cmd.decode_xml_attributes)

    def partitions(self) -> dict[int, Partition]:
        """READ_DATABASE_PARTITION_INFO, read once per session."""
        if self._partitions is None:
            self._partitions = self.transact(Command.READ_DATABASE_PARTITION_INFO, b"", cmd.decode_partition_info)
        return self._partitions

    def transmitter_id(self) -> str:
        """The transmitter id (e.g. ``60HMW``)."""
        return self.transact(Command.READ_TRANSMITTER_ID, b"", cmd.decode_transmitter_id)

    def battery_level(self) -> int:
        """Battery charge in percent."""
        return self.read_u32(Command.READ_BATTERY_LEVEL)

    def page_range(self, record_type: int) -> tuple[int, int] | None:
        """Inclusive page range of a partition, None when it is empty."""
        return self.transact(
            Command.READ_DATABASE_PAGE_RANGE, bytes([record_type]), cmd.decode_page_range
        )

    def page_header(self, record_type: int, page: int) -> PageHeader:
        """READ_DATABASE_PAGE_HEADER: one page's header without its records."""
        return self.transact(
            Command.READ_DATABASE_PAGE_HEADER, cmd.encode_page_header_request(record_type, page), decode_page_header
        )

    def serial_number(self) -> str:
        """The receiver's serial number, from its newest manufacturing record.

        Raises:
            RecordError: the receiver holds no readable manufacturing record.
        """
        result = self.read_records(RecordType.MANUFACTURING_DATA, newest_pages=1)
        for record in reversed(result.records):
            if isinstance(record, XMLRecord) and (serial := record.attributes.get("SerialNumber")):
                return serial
        raise RecordError("the receiver's manufacturing record holds no serial number")

    # -- pages --------------------------------------------------------------------------

    def _fetch(self, record_type: int, first: int, count: int) -> list[bytes]:
        def parse(payload: bytes) -> list[bytes]:
            raw = split_pages(payload)
            if len(raw) != count:
                raise RecordError(f"asked for {count} pages, got {len(raw)}")
            return raw

        request = cmd.encode_read_pages(record_type, first, count)
        return self.transact(Command.READ_DATABASE_PAGES, request, parse, pages=count)

    def _read_one(self, record_type: int, number: int) -> Page | None:
        """Read one page alone until it decodes whole; the best read, or None if none decoded."""
        best: Page | None = None
        for _ in range(PAGE_ATTEMPTS):
            try:
                (raw,) = self._fetch(record_type, number, 1)
                page = decode_page(raw, record_type=record_type, page_number=number)
            except (ReceiverTimeoutError, ProtocolError) as exc:
                if isinstance(exc, NAKError) and exc.status not in _RETRYABLE_STATUS:
                    log.warning("page %d of type %d refused: %s", number, record_type, exc)
                    return None
                log.debug("page %d of type %d: %s", number, record_type, exc)
                continue
            if page.bad_records == 0:
                return page
            if best is None or page.bad_records < best.bad_records:
                best = page
        return best

    def read_page(self, record_type: int, number: int) -> Page | None:
        """One page read alone (with its re-reads); None when it stayed unreadable."""
        return self._read_one(record_type, number)

    def first_page_after(self, record_type: int, first: int, last: int, system_seconds: int) -> int:
        """The first page in first..last holding a record newer than ``system_seconds``.

        A binary search of single-page reads (records only grow along the pages); an
        unreadable page ends the search early at the low end, so nothing is ever skipped.
        """
        lo, hi = first, last
        while lo < hi:
            mid = (lo + hi) // 2
            page = self._read_one(record_type, mid)
            if page is None:
                return lo
            if page.records and max(r.system_seconds for r in page.records) > system_seconds:
                hi = mid
            else:
                lo = mid + 1
        return lo

    def iter_pages(
        self, record_type: int, first: int, last: int, *, newest_first: bool = True
    ) -> Iterator[tuple[int, Page | None]]:
        """Yield (page number, page or None when skipped) for pages first..last.

        Reads up to ``max_pages_per_read`` pages per command; a page that fails in a batch is
        re-read alone; a receiver that refuses multi-page reads is read one page at a time.
        """
        numbers = list(range(first, last + 1))
        if newest_first:
            numbers.reverse()
        i = 0
        while i < len(numbers):
            batch = numbers[i : i + self.max_pages_per_read]
            i += len(batch)
            lo = min(batch)
            raws: list[bytes] | None = None
            if len(batch) > 1:
                try:
                    raws = self._fetch(record_type, lo, len(batch))
                    self._multi_page_failures = 0
                except (ReceiverTimeoutError, ProtocolError) as exc:
                    self._multi_page_failures += 1
                    refused = isinstance(exc, NAKError) and exc.status == Status.INVALID_PARAM
                    if refused or self._multi_page_failures >= MULTI_PAGE_FAILURE_LIMIT:
                        log.info("%d-page reads failed (%s); reading one page at a time", len(batch), exc)
                        self.max_pages_per_read = 1
                    else:
                        log.debug("%d-page read of type %d failed: %s", len(batch), record_type, exc)
            decoded: dict[int, Page] = {}
            for raw in raws or []:
                try:
                    page = decode_page(raw, record_type=record_type)
                except ProtocolError:
                    continue
                if page.bad_records == 0 and page.header.page_number in batch:
                    decoded[page.header.page_number] = page
            for number in batch:
                yield number, decoded.get(number) or self._read_one(record_type, number)

    def read_records(
        self,
        record_type: int,
        *,
        since_system: int | None = None,
        newest_pages: int | None = None,
        inclusive: bool = False,
    ) -> ReadResult:
        """Read a partition's records, oldest first.

        Args:
            record_type: the partition.
            since_system: only records with a system time after this; pages are read newest
                first and the read stops at the first page holding an older record.
            newest_pages: read at most this many pages from the end.
            inclusive: also keep records *at* ``since_system`` and stop only at a strictly older
                one. Several records can share a second (a display-only duplicate is written
                with its reading's time, sometimes later, sometimes on the next page): a store
                reading after a cursor must see them all, and its inserts are idempotent.
        """
        result = ReadResult()
        page_range = self.page_range(record_type)
        if page_range is None:
            return result
        first, last = page_range
        whole = newest_pages is None or last - newest_pages + 1 <= first
        if newest_pages is not None:
            first = max(first, last - newest_pages + 1)
        pages: list[Page] = []
        for number, page in self.iter_pages(record_type, first, last):
            if page is None:
                log.warning("skipped page %d of record type %d: it stayed unreadable", number, record_type)
                result.skipped_pages.append(number)
                continue
            result.pages_read += 1
            if page.bad_records:
                log.warning(
                    "page %d of record type %d: %d records failed their CRC", number, record_type, page.bad_records
                )
                result.skipped_pages.append(number)
                result.bad_records += page.bad_records
            pages.append(page)
            if since_system is not None and any(
                r.system_seconds < since_system or (r.system_seconds == since_system and not inclusive)
                for r in page.records
            ):
                result.reached_since = True
                break
        else:
            result.reached_since = whole
        result.skipped_pages.sort()
        first_hole = result.skipped_pages[0] if result.skipped_pages else None
        for page in sorted(pages, key=lambda p: p.header.page_number):
            new = [r for r in page.records if since_system is None or r.system_seconds > since_system
                   or (inclusive and r.system_seconds == since_system)]
            result.records.extend(new)
            if new and (first_hole is None or page.header.page_number < first_hole):
                result.read_through = max(result.read_through or 0, *(r.system_seconds for r in new))
        if result.read_through is None and first_hole is None:
            result.read_through = since_system  # nothing new, nothing missed
        return result


def _name(command: int) -> str:
    try:
        return Command(command).name
    except ValueError:
        return f"command {command:#04x}"

