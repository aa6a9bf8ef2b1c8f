"""The emulated receiver's database: partitions as ring buffers of 528-byte pages.

Layer: emulator. Builds every page with the project's codec (:func:`bridge.dexcom.pages.encode_page`)
and imports nothing that does I/O.

Page numbers only increase (PROTOCOL.md §4.3): a partition starts at a page number > 0, as if
older pages had been written and erased, and its first record index is the running index
those full pages would have left. The last page grows as records are added; when it is full
the next record starts a new page. With ``max_pages`` set, the oldest page is erased when the
partition would hold more (its records leave the emulator's truth too). Single-record XML
partitions live on page 0, as on the real receiver.

Encoded pages are cached: only a page that changed is encoded again.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterable
from dataclasses import dataclass

from bridge.dexcom.layouts import record_size
from bridge.dexcom.pages import PAGE_DATA_LEN, PageHeader, encode_page, encode_page_header
from bridge.records import Record, RecordType, XMLRecord

__all__ = ["PARTITIONS", "Database", "Partition", "PartitionSpec", "partition_info_xml"]


@dataclass(frozen=True, slots=True)
class PartitionSpec:
    """A partition as the receiver describes it in READ_DATABASE_PARTITION_INFO."""

    record_type: int
    name: str
    revision: int
    ring: bool  # a ring buffer starting at a page > 0 (False: XML records on page 0)


#: The G4 (SW10050) partitions (PROTOCOL.md §4.1); CalSet's revision is set per emulator.
PARTITIONS: tuple[PartitionSpec, ...] = (
    PartitionSpec(RecordType.MANUFACTURING_DATA, "ManufacturingData", 1, False),
    PartitionSpec(RecordType.FIRMWARE_PARAMETER_DATA, "FirmwareParameterData", 1, False),
    PartitionSpec(RecordType.PC_SOFTWARE_PARAMETER, "PCSoftwareParameter", 1, False),
    PartitionSpec(RecordType.SENSOR_DATA, "SensorData", 1, True),
    PartitionSpec(RecordType.EGV_DATA, "EGVData", 2, True),
    PartitionSpec(RecordType.CAL_SET, "CalSet", 2, True),
    PartitionSpec(RecordType.ABERRATION, "Aberration", 1, True),
    PartitionSpec(RecordType.INSERTION_TIME, "InsertionTime", 1, True),
    PartitionSpec(RecordType.RECEIVER_LOG_DATA, "ReceiverLogData", 1, True),
    PartitionSpec(RecordType.RECEIVER_ERROR_DATA, "ReceiverErrorData", 1, True),
    PartitionSpec(RecordType.METER_DATA, "MeterData", 1, True),
    PartitionSpec(RecordType.USER_EVENT_DATA, "UserEventData", 1, True),
    PartitionSpec(RecordType.USER_SETTING_DATA, "UserSettingData", 3, True),
)


class Partition:
    """One partition: a list of pages of records, with a cache of their encoded bytes.

    Args:
        spec: name, type and revision.
        first_page: the number of the oldest page held.
        max_pages: erase the oldest page beyond this many (None: never).
    """

    def __init__(self, spec: PartitionSpec, *, first_page: int = 0, max_pages: int | None = None) -> None:
        self.spec = spec
        self.record_length = record_size(spec.record_type, spec.revision)
        self.per_page = PAGE_DATA_LEN // self.record_length
        self.first_page = first_page
        self.first_index = first_page * self.per_page  # as if the erased pages had been full
        self.max_pages = max_pages
        self.evicted = 0  # records erased with old pages
        self._pages: list[list[Record]] = []
        self._starts: list[int] = []  # first record index of each held page
        self._cache: dict[int, bytes] = {}

    @property
    def record_type(self) -> int:
        """The partition's record type id."""
        return self.spec.record_type

    @property
    def revision(self) -> int:
        """The record revision written in every page header."""
        return self.spec.revision

    def append(self, record: Record) -> None:
        """Add a record to the last page, starting a new page when it is full."""
        if not self._pages or len(self._pages[-1]) >= self.per_page:
            self._starts.append(self._starts[-1] + len(self._pages[-1]) if self._pages else self.first_index)
            self._pages.append([])
            if self.max_pages is not None and len(self._pages) > self.max_pages:
                erased = self._pages.pop(0)
                self._starts.pop(0)
                self._cache.pop(self.first_page, None)
                self.first_page += 1
                self.first_index += len(erased)
                self.evicted += len(erased)
        self._pages[-1].append(record)
        self._cache.pop(self.last_page, None)

    @property
    def last_page(self) -> int:
        """The number of the newest page (meaningless while empty)."""
        return self.first_page + len(self._pages) - 1

    def page_range(self) -> tuple[int, int] | None:
        """The inclusive (first, last) page numbers, or None when empty."""
        if not self._pages:
            return None
        return self.first_page, self.last_page

    def has_page(self, number: int) -> bool:
        """True when page ``number`` is held."""
        return bool(self._pages) and self.first_page <= number <= self.last_page

    def page_records(self, number: int) -> list[Record]:
        """The records on one page (raises KeyError when the page is not held)."""
        if not self.has_page(number):
            raise KeyError(number)
        return list(self._pages[number - self.first_page])

    def header(self, number: int) -> PageHeader:
        """The header of a held page."""
        if not self.has_page(number):
            raise KeyError(number)
        pos = number - self.first_page
        return PageHeader(self._starts[pos], len(self._pages[pos]), self.record_type, self.revision, number)

    def page(self, number: int) -> bytes:
        """The 528 bytes of a held page, encoded once and cached until it changes."""
        cached = self._cache.get(number)
        if cached is None:
            cached = encode_page(self.header(number), self._pages[number - self.first_page])
            self._cache[number] = cached
        return cached

    def header_bytes(self, number: int) -> bytes:
        """The 28-byte header of a held page (READ_DATABASE_PAGE_HEADER)."""
        return encode_page_header(self.header(number))

    def records(self) -> list[Record]:
        """Every record held, oldest first."""
        return [r for page in self._pages for r in page]

    def __len__(self) -> int:
        return sum(len(p) for p in self._pages)


class Database:
    """All partitions of one receiver.

    Args:
        rng: draws the ring buffers' first page numbers.
        calset_rev: the CalSet revision (2: 148-byte records, 3: 249-byte records).
        max_pages: per-partition page limit (None: keep everything).
    """

    def __init__(self, rng: random.Random, *, calset_rev: int = 2, max_pages: int | None = None) -> None:
        self.lock = threading.RLock()  # the server thread writes, API callers read
        self.partitions: dict[int, Partition] = {}
        for spec in PARTITIONS:
            if spec.record_type == RecordType.CAL_SET:
                spec = PartitionSpec(spec.record_type, spec.name, calset_rev, spec.ring)
            first = rng.randint(1, 2000) if spec.ring else 0
            self.partitions[spec.record_type] = Partition(
                spec, first_page=first, max_pages=max_pages if spec.ring else None
            )

    def add(self, record: Record) -> None:
        """Append a record to its partition."""
        rtype = record.record_type if isinstance(record, XMLRecord) else record.RECORD_TYPE  # type: ignore[union-attr]
        with self.lock:
            self.partitions[rtype].append(record)

    def extend(self, records: Iterable[Record]) -> None:
        """Append records in write order."""
        with self.lock:
            for record in records:
                self.add(record)

    def partition(self, record_type: int) -> Partition | None:
        """A partition by type id, or None for an unknown id."""
        return self.partitions.get(record_type)

    def records(self, record_type: int) -> list[Record]:
        """Every record of one partition, oldest first."""
        with self.lock:
            return self.partitions[record_type].records()

    @property
    def evicted(self) -> int:
        """Records erased with old pages, all partitions."""
        return sum(p.evicted for p in self.partitions.values())

    def partition_info_xml(self) -> str:
        """READ_DATABASE_PARTITION_INFO for this database's revisions and record lengths."""
        return partition_info_xml(p.spec for p in self.partitions.values())


def partition_info_xml(specs: Iterable[PartitionSpec]) -> str:
    """The partition XML in the real receiver's format (single quotes, PROTOCOL.md §4.1)."""
    parts = "".join(
        f"<Partition Name='{s.name}' Id='{int(s.record_type)}' RecordRevision='{s.revision}' "
        f"RecordLength='{record_size(s.record_type, s.revision)}'/>"
        for s in specs
    )
    head = f"<PartitionInfo SchemaVersion='1' PageHeaderVersion='1' PageDataLength='{PAGE_DATA_LEN}'>"
    return f"{head}{parts}</PartitionInfo>"
