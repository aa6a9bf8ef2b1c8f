"""Commands: codes, request builders and reply parsers. Layer: dexcom, pure (no I/O).

Request payloads and reply payloads are little-endian (PROTOCOL.md §3). Only read commands
and WRITE_DISPLAY_TIME_OFFSET are built here: a reader never sends the write/erase commands
it does not need (they can brick a receiver, PROTOCOL.md §3).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from xml.etree import ElementTree

from bridge.dexcom.framing import Frame, encode_frame
from bridge.errors import NAKError, RecordError

__all__ = [
    "Command",
    "Partition",
    "Status",
    "build_request",
    "check_reply",
    "decode_page_header_request",
    "decode_page_range",
    "decode_partition_info",
    "decode_read_pages",
    "decode_s32",
    "decode_transmitter_id",
    "decode_u8",
    "decode_u16",
    "decode_u32",
    "decode_xml_attributes",
    "encode_page_header_request",
    "encode_page_range",
    "encode_read_pages",
    "read_page_header",
    "read_page_range",
    "read_pages",
    "write_display_time_offset",
]


class Command(IntEnum):
    """Command codes (PROTOCOL.md §3)."""

    PING = 0x0A
    READ_FIRMWARE_HEADER = 0x0B
    READ_DATABASE_PARTITION_INFO = 0x0F
    READ_DATABASE_PAGE_RANGE = 0x10
    READ_DATABASE_PAGES = 0x11
    READ_DATABASE_PAGE_HEADER = 0x12
    READ_TRANSMITTER_ID = 0x19
    READ_LANGUAGE = 0x1B
    READ_DISPLAY_TIME_OFFSET = 0x1D
    WRITE_DISPLAY_TIME_OFFSET = 0x1E
    READ_RTC = 0x1F
    READ_BATTERY_LEVEL = 0x21
    READ_SYSTEM_TIME = 0x22
    READ_SYSTEM_TIME_OFFSET = 0x23
    READ_GLUCOSE_UNIT = 0x25
    READ_BLINDED_MODE = 0x27
    READ_CLOCK_MODE = 0x29
    READ_DEVICE_MODE = 0x2B
    READ_BATTERY_STATE = 0x30
    READ_HARDWARE_BOARD_ID = 0x31
    READ_FIRMWARE_SETTINGS = 0x36
    READ_CHARGER_CURRENT_SETTING = 0x3B


class Status(IntEnum):
    """Reply status codes (PROTOCOL.md §2.3)."""

    NULL = 0x00
    ACK = 0x01
    NAK = 0x02
    INVALID_COMMAND = 0x03
    INVALID_PARAM = 0x04
    INCOMPLETE_PACKET_RECEIVED = 0x05
    RECEIVER_ERROR = 0x06
    INVALID_MODE = 0x07


#: Commands whose reply is XML and slow (100-220 ms on a real receiver).
XML_COMMANDS = frozenset(
    {Command.READ_FIRMWARE_HEADER, Command.READ_DATABASE_PARTITION_INFO, Command.READ_FIRMWARE_SETTINGS}
)

_U8 = struct.Struct("<B")
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_S32 = struct.Struct("<i")
_RANGE = struct.Struct("<II")
_PAGES_REQ = struct.Struct("<BIB")  # record type, first page, count
_HEADER_REQ = struct.Struct("<BI")  # record type, page
EMPTY_PAGE = 0xFFFFFFFF


def build_request(command: int, payload: bytes = b"") -> bytes:
    """Frame a request."""
    return encode_frame(command, payload)


def read_page_range(record_type: int) -> bytes:
    """READ_DATABASE_PAGE_RANGE for one partition."""
    return build_request(Command.READ_DATABASE_PAGE_RANGE, _U8.pack(record_type))


def encode_read_pages(record_type: int, first_page: int, count: int) -> bytes:
    """The READ_DATABASE_PAGES request payload."""
    return _PAGES_REQ.pack(record_type, first_page, count)


def decode_read_pages(payload: bytes) -> tuple[int, int, int]:
    """(record type, first page, count) of a READ_DATABASE_PAGES request (the emulator's side)."""
    return _fixed(payload, _PAGES_REQ, "page read request")  # type: ignore[return-value]


def read_pages(record_type: int, first_page: int, count: int) -> bytes:
    """READ_DATABASE_PAGES: ``count`` consecutive pages from ``first_page``."""
    return build_request(Command.READ_DATABASE_PAGES, encode_read_pages(record_type, first_page, count))


def encode_page_header_request(record_type: int, page: int) -> bytes:
    """The READ_DATABASE_PAGE_HEADER request payload."""
    return _HEADER_REQ.pack(record_type, page)


def decode_page_header_request(payload: bytes) -> tuple[int, int]:
    """(record type, page) of a READ_DATABASE_PAGE_HEADER request (the emulator's side)."""
    return _fixed(payload, _HEADER_REQ, "page header request")  # type: ignore[return-value]


def read_page_header(record_type: int, page: int) -> bytes:
    """READ_DATABASE_PAGE_HEADER for one page."""
    return build_request(Command.READ_DATABASE_PAGE_HEADER, encode_page_header_request(record_type, page))


def write_display_time_offset(offset_s: int) -> bytes:
    """WRITE_DISPLAY_TIME_OFFSET (the only write a bridge may need)."""
    return build_request(Command.WRITE_DISPLAY_TIME_OFFSET, _S32.pack(offset_s))


def check_reply(frame: Frame, command: int) -> bytes:
    """Return the payload of an ACK reply to ``command``.

    Raises:
        NAKError: the receiver answered with any status but ACK.
    """
    if frame.command == Status.ACK:
        return frame.payload
    try:
        name = Status(frame.command).name
    except ValueError:
        name = f"status {frame.command:#04x}"
    try:
        cmd = Command(command).name
    except ValueError:
        cmd = f"command {command:#04x}"
    raise NAKError(f"receiver answered {name} to {cmd}", status=frame.command)


def _fixed(payload: bytes, shape: struct.Struct, what: str) -> tuple[int, ...]:
    if len(payload) != shape.size:
        raise RecordError(f"{what}: expected {shape.size} bytes, got {len(payload)}")
    return shape.unpack(payload)


def decode_u8(payload: bytes) -> int:
    """A one-byte reply (glucose unit, clock mode, battery state, ...)."""
    return _fixed(payload, _U8, "u8 reply")[0]


def decode_u16(payload: bytes) -> int:
    """A two-byte reply (language LCID)."""
    return _fixed(payload, _U16, "u16 reply")[0]


def decode_u32(payload: bytes) -> int:
    """A four-byte unsigned reply (system time, RTC, battery level)."""
    return _fixed(payload, _U32, "u32 reply")[0]


def decode_s32(payload: bytes) -> int:
    """A four-byte signed reply (display or system time offset)."""
    return _fixed(payload, _S32, "s32 reply")[0]


def decode_page_range(payload: bytes) -> tuple[int, int] | None:
    """The inclusive (first, last) page range, or None for an empty partition."""
    first, last = _fixed(payload, _RANGE, "page range")
    if first == EMPTY_PAGE or last == EMPTY_PAGE:
        return None
    if last < first:
        raise RecordError(f"page range {first}..{last} runs backwards")
    return first, last


def encode_page_range(page_range: tuple[int, int] | None) -> bytes:
    """Reply payload for READ_DATABASE_PAGE_RANGE."""
    if page_range is None:
        return _RANGE.pack(EMPTY_PAGE, EMPTY_PAGE)
    return _RANGE.pack(*page_range)


def decode_transmitter_id(payload: bytes) -> str:
    """The ASCII transmitter id (5 characters on a G4)."""
    return payload.rstrip(b"\x00").decode("ascii", errors="replace")


def decode_xml_attributes(payload: bytes) -> dict[str, str]:
    """The root element's attributes of an XML reply (firmware header, settings).

    Raises:
        RecordError: the payload is not XML.
    """
    return dict(_parse_xml(payload).attrib)


@dataclass(frozen=True, slots=True)
class Partition:
    """One database partition as the receiver describes it."""

    record_type: int
    name: str
    revision: int
    record_length: int


def decode_partition_info(payload: bytes) -> dict[int, Partition]:
    """READ_DATABASE_PARTITION_INFO: partitions by record type.

    Raises:
        RecordError: the payload is not the expected XML.
    """
    root = _parse_xml(payload)
    partitions: dict[int, Partition] = {}
    try:
        for node in root.iter("Partition"):
            p = Partition(
                int(node.attrib["Id"]),
                node.attrib.get("Name", ""),
                int(node.attrib["RecordRevision"]),
                int(node.attrib["RecordLength"]),
            )
            partitions[p.record_type] = p
    except (KeyError, ValueError) as exc:
        raise RecordError(f"partition info: bad Partition element ({exc})") from exc
    return partitions


def _parse_xml(payload: bytes) -> ElementTree.Element:
    text = payload.rstrip(b"\x00").decode("utf-8", errors="replace")
    try:
        return ElementTree.fromstring(text)
    except ElementTree.ParseError as exc:
        raise RecordError(f"reply is not XML: {exc}") from exc
