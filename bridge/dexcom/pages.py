"""Database pages: the 28-byte header and the records packed after it. Layer: dexcom, pure.

::

    offset  size  field
    0       4     u32 first record index (running; next page = this + count)
    4       4     u32 record count
    8       1     u8 record type
    9       1     u8 record revision (drives the record layout)
    10      4     u32 page number
    14      12    3 x u32 reserved
    26      2     CRC-16/XMODEM of bytes 0-25
    28      500   records back to back, each with its own CRC; 0xFF fill

A page whose header fails is refused whole (CRCError). A record that fails its own CRC is
reported in :attr:`Page.bad_records` while the page's other records are kept: the reader
re-reads such a page and, if it stays bad, keeps the good records and counts the rest.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

from bridge.dexcom.crc import crc16_xmodem
from bridge.dexcom.layouts import decode_record, encode_record, record_size
from bridge.errors import CRCError, RecordError
from bridge.records import Record

__all__ = [
    "PAGE_DATA_LEN",
    "PAGE_HEADER",
    "PAGE_SIZE",
    "Page",
    "PageHeader",
    "decode_page",
    "decode_page_header",
    "encode_page",
    "encode_page_header",
    "split_pages",
]

PAGE_HEADER = struct.Struct("<IIBBI3IH")
PAGE_HEADER_LEN = PAGE_HEADER.size  # 28
PAGE_DATA_LEN = 500
PAGE_SIZE = PAGE_HEADER_LEN + PAGE_DATA_LEN
FILL = 0xFF


@dataclass(frozen=True, slots=True)
class PageHeader:
    """A database page header."""

    first_index: int
    record_count: int
    record_type: int
    revision: int
    page_number: int
    reserved: tuple[int, int, int] = (0, 0, 0)


@dataclass(frozen=True, slots=True)
class Page:
    """A decoded page: its header, the records that passed their CRC, and how many failed."""

    header: PageHeader
    records: tuple[Record, ...]
    bad_records: int = 0


def encode_page_header(header: PageHeader) -> bytes:
    """The 28-byte header with its CRC."""
    body = PAGE_HEADER.pack(
        header.first_index, header.record_count, header.record_type, header.revision,
        header.page_number, *header.reserved, 0,
    )[: PAGE_HEADER_LEN - 2]
    return body + struct.pack("<H", crc16_xmodem(body))


def decode_page_header(raw: bytes) -> PageHeader:
    """Decode and check a page header (the first 28 bytes of ``raw``).

    Raises:
        CRCError: the header CRC does not match.
        RecordError: fewer than 28 bytes.
    """
    if len(raw) < PAGE_HEADER_LEN:
        raise RecordError(f"page header needs {PAGE_HEADER_LEN} bytes, got {len(raw)}")
    first, count, rtype, rev, number, r1, r2, r3, crc = PAGE_HEADER.unpack_from(raw)
    if (calc := crc16_xmodem(raw[: PAGE_HEADER_LEN - 2])) != crc:
        raise CRCError(f"page header CRC {crc:#06x}, computed {calc:#06x}")
    return PageHeader(first, count, rtype, rev, number, (r1, r2, r3))


def decode_page(
    raw: bytes, *, record_type: int | None = None, page_number: int | None = None
) -> Page:
    """Decode a 528-byte page, checking the header CRC and every record CRC.

    Args:
        raw: the page bytes.
        record_type: the type that was asked for; a different one is refused.
        page_number: the page that was asked for; a different one is refused.

    Raises:
        CRCError: the header CRC does not match.
        RecordError: wrong size, a header that does not match the request, a record count
            that does not fit the page, or a type/revision whose layout is unknown.
    """
    if len(raw) != PAGE_SIZE:
        raise RecordError(f"page is {len(raw)} bytes, expected {PAGE_SIZE}")
    header = decode_page_header(raw)
    if record_type is not None and header.record_type != record_type:
        raise RecordError(f"asked for record type {record_type}, page holds type {header.record_type}")
    if page_number is not None and header.page_number != page_number:
        raise RecordError(f"asked for page {page_number}, got page {header.page_number}")
    size = record_size(header.record_type, header.revision)
    if header.record_count * size > PAGE_DATA_LEN:
        raise RecordError(
            f"page {header.page_number}: {header.record_count} records of {size} bytes do not fit {PAGE_DATA_LEN}"
        )
    records: list[Record] = []
    bad = 0
    for i in range(header.record_count):
        start = PAGE_HEADER_LEN + i * size
        try:
            records.append(decode_record(header.record_type, header.revision, raw[start : start + size]))
        except CRCError:
            bad += 1
    return Page(header, tuple(records), bad)


def encode_page(header: PageHeader, records: Sequence[Record]) -> bytes:
    """Build a 528-byte page from records (the emulator's path).

    ``header.record_count`` is taken from ``records``.

    Raises:
        RecordError: the records do not fit one page.
    """
    data = b"".join(encode_record(r, header.revision) for r in records)
    if len(data) > PAGE_DATA_LEN:
        raise RecordError(f"{len(records)} records ({len(data)} bytes) do not fit one page")
    head = PageHeader(
        header.first_index, len(records), header.record_type, header.revision, header.page_number, header.reserved
    )
    return encode_page_header(head) + data.ljust(PAGE_DATA_LEN, bytes([FILL]))


def split_pages(payload: bytes) -> list[bytes]:
    """Split a READ_DATABASE_PAGES reply into 528-byte pages.

    Raises:
        RecordError: the payload is not a whole number of pages.
    """
    if not payload or len(payload) % PAGE_SIZE:
        raise RecordError(f"page reply of {len(payload)} bytes is not a whole number of {PAGE_SIZE}-byte pages")
    return [payload[i : i + PAGE_SIZE] for i in range(0, len(payload), PAGE_SIZE)]
