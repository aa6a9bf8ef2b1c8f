"""The real 2013 download: Dexcom Studio talking to a G4 (SW10050), captured on the wire.

Every packet of the session, every record of every page it read, and every reading of Dexcom
Studio's own export of that download must come out of our decoders as the vectors say
(bewest/decoding-dexcom via ../shared/vectors).
"""

from __future__ import annotations

import re
from collections import defaultdict
from decimal import Decimal

import pytest

from bridge.dexcom.clock import ReceiverClock, display_time
from bridge.dexcom.commands import (
    Command,
    Status,
    check_reply,
    decode_page_range,
    decode_partition_info,
    decode_s32,
    decode_transmitter_id,
    decode_u8,
    decode_u16,
    decode_u32,
    decode_xml_attributes,
)
from bridge.dexcom.framing import FrameDecoder
from bridge.dexcom.pages import PAGE_SIZE, Page, decode_page, decode_page_header, split_pages
from bridge.records import EGVRecord, MeterRecord, RecordType, UserEventRecord, XMLRecord
from vectors import cases, check_header, check_record, load, naive, unhex

CAPTURE = "capture_dexcom_studio_g4_2013.json"
PAGES = "pages_dexcom_studio_g4_2013.json"
EXPORT = "export_dexcom_studio_g4_2013.json"

#: PROTOCOL.md §4.1: the partition table of the 2013 G4 (name, revision, record length).
PARTITIONS_2013 = {
    0: ("ManufacturingData", 1, 500),
    1: ("FirmwareParameterData", 1, 500),
    2: ("PCSoftwareParameter", 1, 500),
    3: ("SensorData", 1, 20),
    4: ("EGVData", 2, 13),
    5: ("CalSet", 2, 148),
    6: ("Aberration", 1, 15),
    7: ("InsertionTime", 1, 15),
    8: ("ReceiverLogData", 1, 20),
    9: ("ReceiverErrorData", 1, 500),
    10: ("MeterData", 1, 16),
    11: ("UserEventData", 1, 20),
    12: ("UserSettingData", 3, 48),
}


def xml_attributes(text: str) -> dict[str, str]:
    """Attributes of a one-element XML string, read with a regex (independent of ElementTree)."""
    return dict(re.findall(r"""(\w+)=['"]([^'"]*)['"]""", text.split(">", 1)[0]))


def exchanges() -> list[tuple[dict, dict]]:
    """(request, reply) pairs of the session, in order."""
    packets = load(CAPTURE)["packets"]
    pairs = []
    for request, reply in zip(packets, packets[1:], strict=False):
        if request["dir"] == "out" and reply["dir"] == "in":
            pairs.append((request, reply))
    return pairs


def decode_session_frames() -> list:
    decoder = FrameDecoder()
    decoder.feed(b"".join(unhex(p["hex"]) for p in load(CAPTURE)["packets"]))
    frames = []
    while (frame := decoder.next_frame()) is not None:
        frames.append(frame)
    return frames


def test_every_packet_of_the_session_decodes_in_order() -> None:
    packets = load(CAPTURE)["packets"]
    frames = decode_session_frames()
    assert len(frames) == len(packets) == 171
    for frame, packet in zip(frames, packets, strict=True):
        assert frame.command == packet["decoded"]["command_or_status"]
        assert len(frame.payload) == packet["decoded"]["payload_len"]
    replies = [f for f, p in zip(frames, packets, strict=True) if p["dir"] == "in"]
    assert len(replies) == 85
    assert all(f.command == Status.ACK for f in replies)


def test_first_ping_has_no_reply() -> None:
    # PROTOCOL.md §2.4: the very first PING after opening got no logged reply
    packets = load(CAPTURE)["packets"]
    assert packets[0]["decoded"]["name"] == "PING" and packets[1]["dir"] == "out"
    assert len(exchanges()) == 85


def _decode_reply(request: dict, reply: dict) -> None:
    """Decode one reply with the parser its request calls for and compare with the vector."""
    wire = unhex(reply["hex"])
    command = request["decoded"]["command_or_status"]
    decoder = FrameDecoder()
    decoder.feed(wire)
    frame = decoder.next_frame()
    assert frame is not None
    payload = check_reply(frame, command)
    want = reply["decoded"]
    meaning = request["decoded"].get("payload_meaning") or {}
    if command == Command.PING:
        assert payload == b""
    elif command == Command.READ_DATABASE_PAGE_RANGE:
        rng = want["page_range"]
        got = decode_page_range(payload)
        if rng["first"] == 0xFFFFFFFF:
            assert got is None  # empty partition (ReceiverErrorData in this session)
        else:
            assert got == (rng["first"], rng["last"])
    elif command == Command.READ_DATABASE_PAGES:
        pages = split_pages(payload)
        assert len(pages) == meaning["page_count"] == len(want["page_headers"])
        for i, (raw, header) in enumerate(zip(pages, want["page_headers"], strict=True)):
            page = decode_page(raw, record_type=meaning["record_type"], page_number=meaning["first_page"] + i)
            check_header(page.header, header)
            assert len(page.records) == header["record_count"] and page.bad_records == 0
    elif command == Command.READ_DATABASE_PAGE_HEADER:
        assert len(payload) == 28
        check_header(decode_page_header(payload), want["page_headers"][0])
    elif command in (Command.READ_FIRMWARE_HEADER, Command.READ_FIRMWARE_SETTINGS):
        assert payload.decode("ascii") == want["xml"]
        assert decode_xml_attributes(payload) == xml_attributes(want["xml"])
    elif command == Command.READ_DATABASE_PARTITION_INFO:
        assert payload.decode("ascii") == want["xml"]
        partitions = decode_partition_info(payload)
        assert {rt: (p.name, p.revision, p.record_length) for rt, p in partitions.items()} == PARTITIONS_2013
        assert all(rt == p.record_type for rt, p in partitions.items())
    elif command in (Command.READ_SYSTEM_TIME, Command.READ_RTC):
        assert decode_u32(payload) == want["uint32"]
        assert naive(decode_u32(payload)) == want["as_dexcom_time"]
    elif command in (Command.READ_DISPLAY_TIME_OFFSET, Command.READ_SYSTEM_TIME_OFFSET):
        assert decode_s32(payload) == want["int32"]
    elif command == Command.READ_TRANSMITTER_ID:
        assert decode_transmitter_id(payload) == want["ascii"] == "60HMW"
    elif command == Command.READ_LANGUAGE:
        assert decode_u16(payload) == want["uint16"] == 1033
    elif command in (
        Command.READ_GLUCOSE_UNIT,
        Command.READ_BLINDED_MODE,
        Command.READ_CLOCK_MODE,
        Command.READ_DEVICE_MODE,
    ):
        assert decode_u8(payload) == want["byte"]
    elif command == 0x33:  # unnamed by every anchor; the receiver answered 528 x 0xFF
        assert payload == b"\xff" * 528
    else:  # pragma: no cover
        raise AssertionError(f"no parser for command {command:#04x} in the capture")


@pytest.mark.parametrize(
    "pair",
    [pytest.param(i, id=f"reply{i}") for i in range(85)],
)
def test_every_reply_decodes_with_its_parser(pair: int) -> None:
    request, reply = exchanges()[pair]
    _decode_reply(request, reply)


def test_firmware_header_attributes() -> None:
    request, reply = exchanges()[0]
    assert request["decoded"]["name"] == "READ_FIRMWARE_HEADER"
    attrs = decode_xml_attributes(unhex(reply["hex"])[4:-2])
    assert attrs == {
        "SchemaVersion": "1",
        "ApiVersion": "2.2.0.0",
        "TestApiVersion": "2.4.0.0",
        "ProductId": "G4Receiver",
        "ProductName": "Dexcom G4 Receiver",
        "SoftwareNumber": "SW10050",
        "FirmwareVersion": "2.0.1.104",
        "PortVersion": "4.6.4.45",
        "RFVersion": "1.0.0.27",
        "DexBootVersion": "3",
    }


def test_partition_info_is_the_protocol_table() -> None:
    pairs = [(q, r) for q, r in exchanges() if q["decoded"]["name"] == "READ_DATABASE_PARTITION_INFO"]
    assert len(pairs) == 2  # Dexcom Studio reads it twice
    for _, reply in pairs:
        partitions = decode_partition_info(unhex(reply["hex"])[4:-2])
        assert partitions[RecordType.CAL_SET].revision == 2
        assert partitions[RecordType.CAL_SET].record_length == 148
        assert partitions[RecordType.EGV_DATA].record_length == 13
        assert len(partitions) == 13


def test_time_example_through_our_decoders() -> None:
    """SystemTime = RTC + SystemTimeOffset, read from the captured replies themselves."""
    example = load("time_example_2013.json")
    packets = {p["seq"]: p for p in load(CAPTURE)["packets"]}
    # capture_lines = [RTC, SYSTEM_TIME_OFFSET, SYSTEM_TIME, DISPLAY_TIME_OFFSET]; line = seq
    rtc_seq, sysoff_seq, sys_seq, dispoff_seq = example["capture_lines"]

    def payload(seq: int) -> bytes:
        return unhex(packets[seq]["hex"])[4:-2]

    rtc = decode_u32(payload(rtc_seq))
    system_offset = decode_s32(payload(sysoff_seq))
    system = decode_u32(payload(sys_seq))
    display_offset = decode_s32(payload(dispoff_seq))
    assert rtc == example["READ_RTC"] == 21890973
    assert system_offset == example["READ_SYSTEM_TIME_OFFSET"] == 126467628
    assert system == example["READ_SYSTEM_TIME"] == 148358601
    assert display_offset == example["READ_DISPLAY_TIME_OFFSET"] == -25161
    assert system == rtc + system_offset
    assert naive(system) == example["system_time_naive"]

    from datetime import UTC, datetime

    clock = ReceiverClock(system, display_offset, datetime(2013, 9, 14, 2, 44, 57, tzinfo=UTC), rtc, system_offset)
    assert display_time(clock.display_seconds).isoformat() == example["display_time_naive"] == "2013-09-13T19:44:00"
    assert int(clock.system_as_utc.timestamp()) * 1000 == example["system_time_as_utc_epoch_ms_if_system_clock_is_utc"]
    assert example["unix_epoch_of_dexcom_epoch_utc"] == 1230768000
    assert clock.skew_s == 96  # the PC read 02:44:57 UTC; the receiver's system clock 02:43:21


# --- every page and every record ------------------------------------------------------------


def page_id(page: dict) -> str:
    return f"type{page['record_type']}-page{page['page_number']}"


@pytest.mark.parametrize("vec", cases(PAGES, "pages", ids=page_id))
def test_every_record_of_every_page(vec: dict) -> None:
    raw = unhex(vec["hex"])
    assert len(raw) == PAGE_SIZE
    page = decode_page(raw, record_type=vec["record_type"], page_number=vec["page_number"])
    want = vec["decoded"]
    check_header(page.header, want["header"])
    assert page.bad_records == 0
    assert len(page.records) == want["header"]["record_count"] == len(want["records"])
    for record, expected in zip(page.records, want["records"], strict=True):
        check_record(record, expected)
        if page.header.record_type == RecordType.RECEIVER_LOG_DATA:
            assert record.record_type == RecordType.RECEIVER_LOG_DATA and len(record.body) == 10


def test_pages_file_is_what_the_session_read() -> None:
    """The 52 pages equal the page bytes inside the captured replies (no second source)."""
    seen: dict[tuple[int, int], bytes] = {}
    for request, reply in exchanges():
        if request["decoded"]["name"] != "READ_DATABASE_PAGES":
            continue
        meaning = request["decoded"]["payload_meaning"]
        for i, raw in enumerate(split_pages(unhex(reply["hex"])[4:-2])):
            seen[(meaning["record_type"], meaning["first_page"] + i)] = raw
    pages = load(PAGES)["pages"]
    assert len(pages) == 52
    assert {(p["record_type"], p["page_number"]): unhex(p["hex"]) for p in pages} == seen


def decoded_session_records() -> dict[int, list]:
    """Every record of every page of the session, by record type."""
    out: dict[int, list] = defaultdict(list)
    for vec in load(PAGES)["pages"]:
        page: Page = decode_page(unhex(vec["hex"]), record_type=vec["record_type"], page_number=vec["page_number"])
        out[page.header.record_type].extend(page.records)
    return out


def test_manufacturing_record_serial_number() -> None:
    (record,) = decoded_session_records()[RecordType.MANUFACTURING_DATA]
    assert isinstance(record, XMLRecord)
    assert record.attributes["SerialNumber"] == "sm30140752"
    assert record.attributes["HardwarePartNumber"] == "MD1060-MT20649"
    (pc,) = decoded_session_records()[RecordType.PC_SOFTWARE_PARAMETER]
    assert pc.attributes["Nickname"] == "sm30140752"


def test_display_only_duplicates_follow_their_reading() -> None:
    egvs = decoded_session_records()[RecordType.EGV_DATA]
    dupes = [i for i, r in enumerate(egvs) if r.display_only]
    assert len(dupes) == 9  # after calibrations (pages 1465-1472)
    for i in dupes:
        before = egvs[i - 1]
        assert not before.display_only
        assert egvs[i].system_seconds - before.system_seconds in (0, 1)
    # 7 hold a recomputed value; the export covers 6 of those (the first is older than it)
    assert sum(egvs[i].glucose != egvs[i - 1].glucose for i in dupes) == 7


# --- Dexcom Studio's own export of this download --------------------------------------------


def export_time(text: str) -> str:
    return text.replace(" ", "T")


def test_export_counts() -> None:
    export = load(EXPORT)
    assert (len(export["glucose"]), len(export["meter"]), len(export["events"])) == (228, 11, 15)


def test_every_exported_glucose_reading_is_decoded() -> None:
    """InternalTime = system time, DisplayTime = display time, Value = glucose (non-display-only)."""
    egvs: list[EGVRecord] = [r for r in decoded_session_records()[RecordType.EGV_DATA] if not r.display_only]
    by_time = {naive(r.system_seconds): r for r in egvs}
    assert len(by_time) == len(egvs)
    rows = load(EXPORT)["glucose"]
    for row in rows:
        record = by_time.get(export_time(row["InternalTime"]))
        assert record is not None, f"no EGV at system time {row['InternalTime']}"
        assert naive(record.display_seconds) == export_time(row["DisplayTime"])
        assert record.glucose == int(row["Value"])
    assert len({row["InternalTime"] for row in rows}) == 228


def test_export_takes_the_normal_record_not_the_display_only_one() -> None:
    # PROTOCOL.md §5.1: where a display-only duplicate holds a recomputed value, the export
    # shows the normal record's value at that time
    egvs = decoded_session_records()[RecordType.EGV_DATA]
    exported = {export_time(r["InternalTime"]): int(r["Value"]) for r in load(EXPORT)["glucose"]}
    differing = 0
    for i, record in enumerate(egvs):
        if record.display_only and naive(record.system_seconds) in exported:
            assert exported[naive(record.system_seconds)] == egvs[i - 1].glucose
            differing += record.glucose != egvs[i - 1].glucose
    assert differing == 6


def test_every_exported_meter_reading_is_decoded() -> None:
    """InternalTime = meter_seconds; DisplayTime = meter_seconds + (display - system)."""
    meters: list[MeterRecord] = decoded_session_records()[RecordType.METER_DATA]
    by_time = {naive(r.meter_seconds): r for r in meters}
    for row in load(EXPORT)["meter"]:
        record = by_time.get(export_time(row["InternalTime"]))
        assert record is not None, f"no meter record taken at {row['InternalTime']}"
        assert naive(record.meter_seconds + record.display_seconds - record.system_seconds) == export_time(
            row["DisplayTime"]
        )
        assert record.meter_glucose == int(row["Value"])


EVENT_TYPES = {"Carbs": 1, "Insulin": 2, "Health": 3, "Exercise": 4}


def test_every_exported_event_is_decoded() -> None:
    """InternalTime = system, DisplayTime = display, EventTime = event_seconds; value as described."""
    events: list[UserEventRecord] = decoded_session_records()[RecordType.USER_EVENT_DATA]
    by_time = {naive(r.system_seconds): r for r in events}
    for row in load(EXPORT)["events"]:
        record = by_time.get(export_time(row["InternalTime"]))
        assert record is not None, f"no event at system time {row['InternalTime']}"
        assert naive(record.display_seconds) == export_time(row["DisplayTime"])
        assert naive(record.event_seconds) == export_time(row["EventTime"])
        assert record.event_type == EVENT_TYPES[row["EventType"]]
        kind, amount, unit = row["Decription"].split(" ")  # sic: the export's own spelling
        assert kind == row["EventType"]
        if kind == "Insulin":
            assert unit == "units" and Decimal(record.value) / 100 == Decimal(amount)
        else:
            assert unit == "grams" and record.value == int(amount)
