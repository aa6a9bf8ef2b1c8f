"""The sans-I/O command handler, checked with the project's codec (no pty)."""

from __future__ import annotations

import struct

import pytest

from bridge.dexcom import commands
from bridge.dexcom.commands import Command, Status
from bridge.dexcom.framing import encode_frame
from bridge.dexcom.pages import PAGE_SIZE, decode_page, decode_page_header, split_pages
from bridge.emulator import LatencyModel, ReceiverEmulator
from bridge.records import RecordType

PING = bytes.fromhex("0106000a5e65")
PING_ACK = bytes.fromhex("0106000135d4")


def read_all(emulator: ReceiverEmulator, ask, record_type: int, per_read: int = 4) -> list:
    """Every record of a partition, read like Dexcom Studio (up to 4 pages per request)."""
    device = emulator.device
    page_range = commands.decode_page_range(ask(device, commands.read_page_range(record_type)).payload)
    if page_range is None:
        return []
    first, last = page_range
    records = []
    n = first
    while n <= last:
        count = min(per_read, last - n + 1)
        reply = ask(device, commands.read_pages(record_type, n, count))
        for i, raw in enumerate(split_pages(commands.check_reply(reply, Command.READ_DATABASE_PAGES))):
            page = decode_page(raw, record_type=record_type, page_number=n + i)
            assert page.bad_records == 0
            records.extend(page.records)
        n += count
    return records


def test_ping_answers_the_captured_ack(emulator, ask) -> None:
    replies = emulator.device.receive(PING)
    assert [r.data for r in replies] == [PING_ACK]


@pytest.mark.parametrize(
    ("command", "decode", "check"),
    [
        (Command.READ_SYSTEM_TIME, commands.decode_u32, lambda v, e: v == e.clock.system_seconds()),
        (Command.READ_RTC, commands.decode_u32, lambda v, e: v == e.clock.rtc()),
        (Command.READ_SYSTEM_TIME_OFFSET, commands.decode_s32, lambda v, e: v == e.clock.system_offset_s),
        (Command.READ_DISPLAY_TIME_OFFSET, commands.decode_s32, lambda v, e: -8 * 3600 < v < -6 * 3600),
        (Command.READ_TRANSMITTER_ID, commands.decode_transmitter_id, lambda v, e: len(v) == 5),
        (Command.READ_BATTERY_LEVEL, commands.decode_u32, lambda v, e: 0 < v <= 100),
        (Command.READ_BATTERY_STATE, commands.decode_u8, lambda v, e: v in (1, 2)),
        (Command.READ_LANGUAGE, commands.decode_u16, lambda v, e: v == 1033),
        (Command.READ_GLUCOSE_UNIT, commands.decode_u8, lambda v, e: v == 1),
        (Command.READ_CLOCK_MODE, commands.decode_u8, lambda v, e: v in (0, 1)),
        (Command.READ_BLINDED_MODE, commands.decode_u8, lambda v, e: v == 0),
        (Command.READ_DEVICE_MODE, commands.decode_u8, lambda v, e: v == 0),
        (Command.READ_FIRMWARE_HEADER, commands.decode_xml_attributes, lambda v, e: v["ProductId"] == "G4Receiver"),
        (Command.READ_FIRMWARE_SETTINGS, commands.decode_xml_attributes, lambda v, e: "FirmwareImageId" in v),
    ],
)
def test_each_read_command_answers(emulator, ask, command, decode, check) -> None:
    reply = ask(emulator.device, commands.build_request(command))
    assert reply.command == Status.ACK
    assert check(decode(commands.check_reply(reply, command)), emulator)


def test_clocks_are_consistent_with_each_other_and_the_records(emulator, ask, clock) -> None:
    device = emulator.device
    system = commands.decode_u32(ask(device, commands.build_request(Command.READ_SYSTEM_TIME)).payload)
    rtc = commands.decode_u32(ask(device, commands.build_request(Command.READ_RTC)).payload)
    offset = commands.decode_s32(ask(device, commands.build_request(Command.READ_SYSTEM_TIME_OFFSET)).payload)
    display = commands.decode_s32(ask(device, commands.build_request(Command.READ_DISPLAY_TIME_OFFSET)).payload)
    assert system == rtc + offset
    assert system == int(clock()) - 1230768000  # no clock offset: system time is UTC
    egvs = emulator.records["egv"]
    assert all(r.display_seconds - r.system_seconds == display for r in egvs)
    assert 0 <= system - egvs[-1].system_seconds <= 300


def test_clock_offset_moves_system_time_and_records(make_emulator, ask, clock) -> None:
    emulator = make_emulator(clock_offset_s=-3 * 86400)
    system = commands.decode_u32(ask(emulator.device, commands.build_request(Command.READ_SYSTEM_TIME)).payload)
    assert system == int(clock()) - 1230768000 - 3 * 86400
    assert 0 <= system - emulator.records["egv"][-1].system_seconds <= 300


def test_write_display_time_offset_is_acked_and_recorded(emulator, ask) -> None:
    settings_before = len(emulator.records["settings"])
    reply = ask(emulator.device, commands.write_display_time_offset(-18000))
    assert (reply.command, reply.payload) == (Status.ACK, b"")
    read = ask(emulator.device, commands.build_request(Command.READ_DISPLAY_TIME_OFFSET))
    assert commands.decode_s32(read.payload) == -18000
    settings = emulator.records["settings"]
    assert len(settings) == settings_before + 1 and settings[-1].display_offset == -18000


def test_partition_info_matches_page_revisions_and_record_lengths(emulator, ask) -> None:
    payload = ask(emulator.device, commands.build_request(Command.READ_DATABASE_PARTITION_INFO)).payload
    text = payload.decode()
    assert text.startswith("<PartitionInfo SchemaVersion='1' PageHeaderVersion='1' PageDataLength='500'>")
    partitions = commands.decode_partition_info(payload)
    assert sorted(partitions) == list(range(13))
    assert partitions[RecordType.EGV_DATA].record_length == 13
    assert partitions[RecordType.CAL_SET].record_length == 148
    for rtype, part in partitions.items():
        page_range = emulator.database.partition(rtype).page_range()
        if page_range is not None:
            reply = ask(emulator.device, commands.read_page_header(rtype, page_range[1]))
            assert decode_page_header(reply.payload).revision == part.revision


@pytest.mark.parametrize("calset_rev", [2, 3])
def test_calset_revision_drives_record_size(make_emulator, ask, calset_rev) -> None:
    emulator = make_emulator(calset_rev=calset_rev)
    partitions = commands.decode_partition_info(
        ask(emulator.device, commands.build_request(Command.READ_DATABASE_PARTITION_INFO)).payload
    )
    size = {2: 148, 3: 249}[calset_rev]
    assert partitions[RecordType.CAL_SET].record_length == size
    cals = read_all(emulator, ask, RecordType.CAL_SET)
    assert cals == emulator.records["cal"]
    assert max(len(c.subrecords) for c in cals) <= {2: 6, 3: 11}[calset_rev]
    first, _ = emulator.database.partition(RecordType.CAL_SET).page_range()
    page = ask(emulator.device, commands.read_pages(RecordType.CAL_SET, first, 1)).payload
    assert decode_page_header(page).revision == calset_rev
    assert decode_page_header(page).record_count == 500 // size


def test_page_ranges_are_ring_buffers_with_first_page_above_zero(emulator, ask) -> None:
    for rtype in RecordType:
        page_range = commands.decode_page_range(ask(emulator.device, commands.read_page_range(rtype)).payload)
        if rtype in (RecordType.MANUFACTURING_DATA, RecordType.PC_SOFTWARE_PARAMETER):
            assert page_range == (0, 0)
        elif rtype in (RecordType.FIRMWARE_PARAMETER_DATA, RecordType.ABERRATION, RecordType.RECEIVER_LOG_DATA,
                       RecordType.RECEIVER_ERROR_DATA):
            assert page_range is None
        else:
            assert page_range is not None and page_range[0] > 0, rtype


def test_every_record_reads_back_through_the_codec(emulator, ask) -> None:
    for kind, rtype in (("egv", 4), ("sensor", 3), ("meter", 10), ("cal", 5), ("insertion", 7),
                        ("event", 11), ("settings", 12)):
        assert read_all(emulator, ask, rtype, per_read=3) == emulator.records[kind], kind
    (manufacturing,) = read_all(emulator, ask, RecordType.MANUFACTURING_DATA)
    assert manufacturing.attributes["SerialNumber"] == emulator.serial


def test_page_headers_run_their_first_record_index(emulator, ask) -> None:
    first, last = emulator.database.partition(RecordType.EGV_DATA).page_range()
    headers = [decode_page_header(ask(emulator.device, commands.read_page_header(4, n)).payload)
               for n in range(first, last + 1)]
    for before, after in zip(headers, headers[1:], strict=False):
        assert after.first_index == before.first_index + before.record_count
        assert before.record_count == 38
    page = ask(emulator.device, commands.read_pages(4, last, 1)).payload
    assert page[:28] == ask(emulator.device, commands.read_page_header(4, last)).payload


@pytest.mark.parametrize(
    "payload",
    [
        struct.pack("<BIB", 4, 0, 1),  # below the first page
        struct.pack("<BIB", 4, 10**6, 1),  # beyond the last page
        struct.pack("<BIB", 4, 0xFFFFFFFF, 1),
        struct.pack("<BIB", 6, 0, 1),  # empty partition
        struct.pack("<BIB", 13, 0, 1),  # no such partition
        struct.pack("<BI", 4, 0),  # short request
    ],
)
def test_bad_page_requests_get_invalid_param(emulator, ask, payload) -> None:
    reply = ask(emulator.device, encode_frame(Command.READ_DATABASE_PAGES, payload))
    assert (reply.command, reply.payload) == (Status.INVALID_PARAM, b"")


@pytest.mark.parametrize("count", [0, 5, 255])
def test_page_count_outside_1_to_4_gets_invalid_param(emulator, ask, count) -> None:
    first, _ = emulator.database.partition(RecordType.EGV_DATA).page_range()
    reply = ask(emulator.device, commands.read_pages(RecordType.EGV_DATA, first, count))
    assert (reply.command, reply.payload) == (Status.INVALID_PARAM, b"")


def test_reading_past_the_last_page_gets_invalid_param(emulator, ask) -> None:
    _, last = emulator.database.partition(RecordType.EGV_DATA).page_range()
    reply = ask(emulator.device, commands.read_pages(RecordType.EGV_DATA, last - 1, 3))
    assert reply.command == Status.INVALID_PARAM
    reply = ask(emulator.device, commands.read_pages(RecordType.EGV_DATA, last - 3, 4))
    assert reply.command == Status.ACK and len(reply.payload) == 4 * PAGE_SIZE


def test_unknown_command_and_bad_crc(emulator, ask) -> None:
    assert ask(emulator.device, encode_frame(0x33, b"\xf8\x04\x00\x00")).command == Status.INVALID_COMMAND
    bad = bytearray(PING)
    bad[-1] ^= 1
    reply = ask(emulator.device, bytes(bad))
    assert (reply.command, reply.payload) == (Status.NAK, b"")
    assert emulator.device.receive(PING)[0].data == PING_ACK  # and it recovers


def test_split_and_back_to_back_requests(emulator) -> None:
    device = emulator.device
    wire = b"\x00\xff" + PING + commands.read_page_range(4) + PING
    replies = []
    for i in range(len(wire)):
        replies.extend(device.receive(wire[i : i + 1]))
    assert [r.command for r in replies] == [Command.PING, Command.READ_DATABASE_PAGE_RANGE, Command.PING]
    assert device.pending == 0


def test_latency_model_numbers() -> None:
    model = LatencyModel()
    assert model.service_time(Command.PING) == pytest.approx(0.006)
    assert model.service_time(Command.READ_DATABASE_PAGES, 1) == pytest.approx(0.015)
    assert model.service_time(Command.READ_DATABASE_PAGES, 4) == pytest.approx(0.042)
    for xml in (Command.READ_FIRMWARE_HEADER, Command.READ_DATABASE_PARTITION_INFO, Command.READ_FIRMWARE_SETTINGS):
        assert model.service_time(xml) == pytest.approx(0.150)


def test_modelled_service_time_is_counted_and_delays_follow_latency(make_emulator) -> None:
    quiet, paced = make_emulator(latency=False), make_emulator(latency=True)
    for emulator in (quiet, paced):
        first, _ = emulator.database.partition(4).page_range()
        replies = emulator.device.receive(PING + commands.read_pages(4, first, 4) + commands.build_request(0x0B))
        assert emulator.modelled_service_s == pytest.approx(0.006 + 0.042 + 0.150)
        delays = [r.delay_s for r in replies]
        assert delays == ([0.0, 0.0, 0.0] if emulator is quiet else pytest.approx([0.006, 0.042, 0.150]))


def test_live_readings_grow_the_last_page_then_start_a_new_one(make_emulator, ask, clock) -> None:
    emulator = make_emulator(interval_s=60)
    part = emulator.database.partition(RecordType.EGV_DATA)
    first, last = part.page_range()
    before = decode_page(ask(emulator.device, commands.read_pages(4, last, 1)).payload)
    egvs_before = len(emulator.records["egv"])
    clock.t += 60
    assert emulator.tick() >= 2
    after = decode_page(ask(emulator.device, commands.read_pages(4, last, 1)).payload)
    if before.header.record_count < 38:
        assert after.header.record_count == before.header.record_count + 1
    newest = emulator.records["egv"][-1]
    assert newest.system_seconds == int(clock()) - 1230768000
    assert emulator.records["sensor"][-1].system_seconds == newest.system_seconds - 1
    clock.t += 60 * 40
    emulator.tick()
    assert len(emulator.records["egv"]) >= egvs_before + 40
    new_first, new_last = part.page_range()
    assert new_first == first and new_last > last
    assert read_all(emulator, ask, 4) == emulator.records["egv"]
