"""Request builders and reply parsers against requests.json and android-uploader's responses."""

from __future__ import annotations

import struct

import pytest

from bridge.dexcom.commands import (
    Command,
    Status,
    build_request,
    check_reply,
    decode_page_range,
    decode_partition_info,
    decode_s32,
    decode_transmitter_id,
    decode_u8,
    decode_u16,
    decode_u32,
    decode_xml_attributes,
    encode_page_range,
    read_page_header,
    read_page_range,
    read_pages,
    write_display_time_offset,
)
from bridge.dexcom.framing import Frame, FrameDecoder
from bridge.errors import NAKError, ProtocolError, RecordError
from vectors import cases, unhex

UNKNOWN_0X33 = 0x33  # seen only in the capture, unnamed by every anchor (PROTOCOL.md §3)


def decode_one(wire: bytes) -> Frame:
    decoder = FrameDecoder()
    decoder.feed(wire)
    frame = decoder.next_frame()
    assert frame is not None
    assert decoder.next_frame() is None and decoder.pending == 0
    return frame


def our_request(decoded: dict) -> bytes:
    """Build with our own builders the request a vector describes."""
    name = decoded["name"]
    meaning = decoded.get("payload_meaning") or {}
    if name == "READ_DATABASE_PAGE_RANGE":
        return read_page_range(meaning["record_type"])
    if name == "READ_DATABASE_PAGES":
        return read_pages(meaning["record_type"], meaning["first_page"], meaning["page_count"])
    if name == "READ_DATABASE_PAGE_HEADER":
        return read_page_header(meaning["record_type"], meaning["page"])
    if name.startswith("UNKNOWN_0x33"):
        return build_request(UNKNOWN_0X33, struct.pack("<I", meaning["uint32"]))
    assert decoded["payload_len"] == 0, name
    return build_request(Command[name])


@pytest.mark.parametrize("vec", cases("requests.json", ids=lambda v: f"{v['decoded']['name'][:24]}-{v['hex'][6:22]}"))
def test_request_vector_frames_and_matches_our_builder(vec: dict) -> None:
    wire = unhex(vec["hex"])
    decoded = vec["decoded"]
    frame = decode_one(wire)
    assert frame.command == decoded["command_or_status"]
    assert len(frame.payload) == decoded["payload_len"]
    assert len(wire) == decoded["length_field"]
    assert wire[-2:].hex() == decoded["crc_le_hex"]
    if not decoded["name"].startswith("UNKNOWN"):
        assert Command[decoded["name"]] == decoded["command_or_status"]
    assert our_request(decoded) == wire


def test_protocol_example_requests() -> None:
    # PROTOCOL.md §3 "Example requests" (captured or logged from real sessions)
    assert build_request(Command.PING) == bytes.fromhex("0106000a5e65")
    assert build_request(Command.READ_TRANSMITTER_ID) == bytes.fromhex("010600190c47")
    assert build_request(Command.READ_SYSTEM_TIME) == bytes.fromhex("0106002234c0")
    assert build_request(Command.READ_DISPLAY_TIME_OFFSET) == bytes.fromhex("0106001d8807")
    assert build_request(Command.READ_BATTERY_LEVEL) == bytes.fromhex("0106002157f0")
    assert read_page_range(4) == bytes.fromhex("01070010048bb8")
    assert read_pages(4, 0x5B9, 4)[:10] == bytes.fromhex("010c001104b905000004")


def test_write_display_time_offset_layout() -> None:
    frame = decode_one(write_display_time_offset(-25161))
    assert frame == Frame(Command.WRITE_DISPLAY_TIME_OFFSET, bytes.fromhex("b79dffff"))


# --- replies ---------------------------------------------------------------------------------


def test_check_reply_returns_payload_of_ack() -> None:
    assert check_reply(Frame(Status.ACK, b"\x61\x00\x00\x00"), Command.READ_BATTERY_LEVEL) == b"a\x00\x00\x00"


@pytest.mark.parametrize("status", [s for s in Status if s != Status.ACK] + [0x08, 0xFF])
def test_check_reply_maps_every_other_status_to_nak(status: int) -> None:
    with pytest.raises(NAKError) as info:
        check_reply(Frame(status, b""), Command.READ_DATABASE_PAGES)
    assert info.value.status == status
    assert isinstance(info.value, ProtocolError)


def test_check_reply_names_unknown_commands() -> None:
    with pytest.raises(NAKError, match="0x33"):
        check_reply(Frame(Status.INVALID_COMMAND, b""), 0x33)


READDATA = "readdata_responses_android_uploader.json"


@pytest.mark.parametrize(
    "vec", cases(READDATA, ids=lambda v: f"{v['test']}-{v['fixture_name']}", where=lambda v: "page_range" in v)
)
def test_android_page_range_responses(vec: dict) -> None:
    frame = decode_one(unhex(vec["hex"]))
    payload = check_reply(frame, Command.READ_DATABASE_PAGE_RANGE)
    assert len(payload) == vec["decoded_packet"]["payload_len"]
    assert decode_page_range(payload) == (vec["page_range"]["first"], vec["page_range"]["last"])


@pytest.mark.parametrize(
    "vec", cases(READDATA, ids=lambda v: f"{v['test']}", where=lambda v: isinstance(v.get("expected"), dict))
)
def test_android_clock_and_battery_responses(vec: dict) -> None:
    payload = check_reply(decode_one(unhex(vec["hex"])), Command.READ_SYSTEM_TIME)
    expected = vec["expected"]
    if "system_time_seconds" in expected:  # MockFactory / ReadDataTest expectations
        assert decode_u32(payload) == expected["system_time_seconds"] == 186981121
    elif "display_time_offset_seconds" in expected:
        assert decode_s32(payload) == expected["display_time_offset_seconds"] == -21602
    else:
        assert decode_u32(payload) == expected["battery_percent"] == 97
    assert decode_u32(payload) == vec["uint32"]
    assert decode_s32(payload) == vec["int32"]


def test_empty_partition_range_is_none() -> None:
    assert decode_page_range(bytes.fromhex("ffffffffffffffff")) is None
    assert encode_page_range(None) == bytes.fromhex("ffffffffffffffff")
    assert decode_page_range(encode_page_range((1854, 2200))) == (1854, 2200)


@pytest.mark.parametrize("payload", [b"", b"\x00" * 7, b"\x00" * 9])
def test_page_range_of_wrong_size_is_refused(payload: bytes) -> None:
    with pytest.raises(RecordError):
        decode_page_range(payload)


def test_backwards_page_range_is_refused() -> None:
    with pytest.raises(RecordError):
        decode_page_range(struct.pack("<II", 10, 9))


@pytest.mark.parametrize(("decoder", "size"), [(decode_u8, 1), (decode_u16, 2), (decode_u32, 4), (decode_s32, 4)])
def test_fixed_replies_of_wrong_size_are_refused(decoder, size: int) -> None:  # type: ignore[no-untyped-def]
    for wrong in (0, size - 1, size + 1):
        with pytest.raises(RecordError):
            decoder(bytes(wrong))


def test_transmitter_id_strips_padding() -> None:
    assert decode_transmitter_id(b"60HMW") == "60HMW"
    assert decode_transmitter_id(b"60HMW\x00") == "60HMW"


@pytest.mark.parametrize("payload", [b"", b"not xml", b"<a", b"\xff\xfe\x00", b"<a x='1'/><b/>"])
def test_xml_replies_that_are_not_xml_are_refused(payload: bytes) -> None:
    with pytest.raises(RecordError):
        decode_xml_attributes(payload)
    with pytest.raises(RecordError):
        decode_partition_info(payload)


@pytest.mark.parametrize(
    "xml",
    [
        "<PartitionInfo><Partition Name='X' RecordRevision='1' RecordLength='13'/></PartitionInfo>",  # no Id
        "<PartitionInfo><Partition Id='x' RecordRevision='1' RecordLength='13'/></PartitionInfo>",
        "<PartitionInfo><Partition Id='4' RecordRevision='' RecordLength='13'/></PartitionInfo>",
    ],
)
def test_partition_info_with_bad_elements_is_refused(xml: str) -> None:
    with pytest.raises(RecordError):
        decode_partition_info(xml.encode())
