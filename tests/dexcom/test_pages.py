"""Pages and records against android-uploader, ecc1 and G4ShareSpy vectors; page-level errors."""

from __future__ import annotations

import struct

import pytest

from bridge.dexcom.commands import Command, check_reply, decode_page_range
from bridge.dexcom.crc import crc16_xmodem
from bridge.dexcom.framing import FrameDecoder
from bridge.dexcom.layouts import decode_record, record_size
from bridge.dexcom.pages import PAGE_SIZE, decode_page, decode_page_header, split_pages
from bridge.errors import CRCError, ProtocolError, RecordError
from bridge.records import (
    CalibrationRecord,
    EGVRecord,
    MeterRecord,
    RecordType,
    SensorRecord,
    XMLRecord,
)
from vectors import cases, check_header, check_record, load, naive, unhex

ANDROID_PAGES = "pages_android_uploader.json"
ANDROID_RECORDS = "records_android_uploader.json"
READDATA = "readdata_responses_android_uploader.json"
ECC1 = "pages_ecc1.json"
BLE = "ble_share_egv_page_g4sharespy.json"

#: page revision of each record type in the android fixtures (EGV rev 2, the rest rev 1)
ANDROID_REVISION = {RecordType.EGV_DATA: 2, RecordType.SENSOR_DATA: 1, RecordType.METER_DATA: 1}


def frame_payload(wire: bytes) -> bytes:
    decoder = FrameDecoder()
    decoder.feed(wire)
    frame = decoder.next_frame()
    assert frame is not None and decoder.pending == 0
    return check_reply(frame, Command.READ_DATABASE_PAGES)


# --- android-uploader PageHeaderTest ---------------------------------------------------------


@pytest.mark.parametrize(
    "vec", cases(ANDROID_PAGES, ids=lambda v: v.get("fixture_name") or v["hex"][16:28], where=lambda v: "decoded" in v)
)
def test_android_page_decodes(vec: dict) -> None:
    page = decode_page(unhex(vec["hex"]))
    want = vec["decoded"]
    check_header(page.header, want["header"])
    if "expected_header_from_comment" in vec:  # android-uploader's logged dump of this header
        comment = vec["expected_header_from_comment"]
        assert page.header.first_index == int(comment["First record"])
        assert page.header.record_count == int(comment["Number of records"])
        assert page.header.record_type == int(comment["RecordType"])
        assert page.header.revision == int(comment["Revision"])
        assert page.header.page_number == int(comment["Page number"])
    if isinstance(vec.get("expected"), dict):  # PageHeaderTest assertions
        for key, value in vec["expected"].items():
            attr = "first_index" if key == "first_record_index" else key
            assert getattr(page.header, attr) == value
    assert page.bad_records == 0
    assert record_size(page.header.record_type, page.header.revision) == want["record_size"]
    for record, expected in zip(page.records, want["records"], strict=True):
        check_record(record, expected)


def test_android_cal_page_is_revision_3_with_249_byte_records() -> None:
    (vec,) = [
        v for v in load(ANDROID_PAGES)["vectors"] if v.get("decoded", {}).get("header", {}).get("record_type") == 5
    ]
    page = decode_page(unhex(vec["hex"]))
    assert page.header.revision == 3
    (cal,) = page.records
    assert isinstance(cal, CalibrationRecord)
    assert cal.tail == (0.3, 0.6666666666666666)
    assert [s.meter_glucose for s in cal.subrecords] == [70, 72, 262]


def test_android_short_page_header_is_refused() -> None:
    (vec,) = [v for v in load(ANDROID_PAGES)["vectors"] if v.get("fixture_name") == "pageHeaderSmall"]
    raw = unhex(vec["hex"])
    assert len(raw) == 27
    with pytest.raises(RecordError):
        decode_page_header(raw)
    with pytest.raises(RecordError):
        decode_page(raw)


def test_android_page_header_with_bad_crc_is_refused() -> None:
    (vec,) = [v for v in load(ANDROID_PAGES)["vectors"] if v.get("fixture_name") == "pageHeaderBadCrc"]
    raw = unhex(vec["hex"])
    assert len(raw) == 28
    with pytest.raises(CRCError):
        decode_page_header(raw)
    with pytest.raises(RecordError):  # 28 bytes is not a page
        decode_page(raw)


# --- android-uploader record tests -----------------------------------------------------------


def record_revision(vec: dict) -> int:
    if vec["record_type"] == RecordType.CAL_SET:
        return 2 if vec["full_record_length"] == 148 else 3  # rev <= 2: 148 bytes, rev 3: 249
    return ANDROID_REVISION[vec["record_type"]]


@pytest.mark.parametrize(
    "vec", cases(ANDROID_RECORDS, ids=lambda v: v["fixture_hex_java"][:16], where=lambda v: "full_record_hex" in v)
)
def test_android_record_decodes(vec: dict) -> None:
    record = decode_record(vec["record_type"], record_revision(vec), unhex(vec["full_record_hex"]))
    check_record(record, vec["decoded"])
    for key, value in vec.get("expected_from_test", {}).items():  # the Java test's assertions
        if key == "trend_name":
            assert record.direction == value
        elif key == "num_subrecords":
            assert len(record.subrecords) == value
        else:
            assert getattr(record, key) == value


@pytest.mark.parametrize("vec", cases(ANDROID_RECORDS, ids=lambda v: v["fixture_hex_java"][:16]))
def test_android_short_and_padded_records_are_refused(vec: dict) -> None:
    """The Java fixtures and their truncated/padded variants never decode.

    android-uploader's RECORD_SIZE is one byte short, so its fixtures lack the CRC's high
    byte, and its "wrong length" variants are that fixture minus or plus bytes. Against the
    real sizes most are the wrong length (RecordError); the Meter and Sensor fixtures padded
    with 00 happen to have the real size and then fail their CRC instead (CRCError).
    """
    revision = record_revision(vec) if "full_record_length" in vec else ANDROID_REVISION[vec["record_type"]]
    raw = unhex(vec["fixture_hex_java"])
    expected = RecordError if len(raw) != record_size(vec["record_type"], revision) else CRCError
    with pytest.raises(expected):
        decode_record(vec["record_type"], revision, raw)


def test_android_special_value_record() -> None:
    (vec, *_) = [v for v in load(ANDROID_RECORDS)["vectors"] if "expected_from_test" in v and v["record_type"] == 4]
    record = decode_record(4, 2, unhex(vec["full_record_hex"]))
    assert isinstance(record, EGVRecord)
    assert (record.glucose, record.special, record.trend, record.noise) == (5, "SENSOR_NOT_CALIBRATED", 8, 5)


def test_cal_record_of_one_revision_is_refused_at_the_other() -> None:
    rev2, rev3 = (
        unhex(v["full_record_hex"])
        for v in sorted(
            (v for v in load(ANDROID_RECORDS)["vectors"] if v["record_type"] == 5),
            key=lambda v: v["full_record_length"],
        )
    )
    with pytest.raises(RecordError):
        decode_record(5, 3, rev2)
    with pytest.raises(RecordError):
        decode_record(5, 2, rev3)


# --- android-uploader ReadDataTest responses -----------------------------------------------------

TRENDS = {
    "NONE": 0, "DOUBLE_UP": 1, "SINGLE_UP": 2, "UP_45": 3, "FLAT": 4,
    "DOWN_45": 5, "SINGLE_DOWN": 6, "DOUBLE_DOWN": 7, "NOT_COMPUTABLE": 8, "OUT_OF_RANGE": 9,
}  # fmt: skip
NOISES = {"NONE": 0, "CLEAN": 1, "LIGHT": 2, "MEDIUM": 3, "HEAVY": 4, "NOT_COMPUTED": 5, "MAX": 6}


def readdata_pages(test: str) -> list:
    vecs = [v for v in load(READDATA)["vectors"] if v["test"] == test and "decoded_page" in v]
    assert vecs
    return [decode_page(p) for v in vecs for p in split_pages(frame_payload(unhex(v["hex"])))]


@pytest.mark.parametrize(
    "vec", cases(READDATA, ids=lambda v: f"{v['test']}-{v['fixture_name']}", where=lambda v: "decoded_page" in v)
)
def test_android_page_response_decodes(vec: dict) -> None:
    payload = frame_payload(unhex(vec["hex"]))
    assert len(payload) == vec["decoded_packet"]["payload_len"] == PAGE_SIZE
    (raw,) = split_pages(payload)
    want = vec["decoded_page"]
    page = decode_page(raw, record_type=want["header"]["record_type"], page_number=want["header"]["page_number"])
    check_header(page.header, want["header"])
    assert page.bad_records == 0
    for record, expected in zip(page.records, want["records"], strict=True):
        check_record(record, expected)


def test_android_egv_pages_match_mockfactory() -> None:
    records = [r for page in readdata_pages("testGetRecentEgvPages") for r in page.records]
    (vec,) = [
        v for v in load(READDATA)["vectors"] if "expected_all_records" in v and v["test"] == "testGetRecentEgvPages"
    ]
    expected = vec["expected_all_records"]["records"]
    assert len(records) == len(expected) == 61
    for record, want in zip(records, expected, strict=True):
        assert isinstance(record, EGVRecord)
        assert record.glucose == want["glucose"]
        assert record.trend == TRENDS[want["trend_enum"]]
        assert record.noise == NOISES[want["noise_enum"]]
        assert record.display_seconds == want["display_seconds"]
        assert record.system_seconds == want["system_seconds"]
    # page 183 ends with display-only duplicates (README "notable cases")
    assert sum(r.display_only for r in records) == 2


def test_android_meter_page_matches_mockfactory() -> None:
    records = [r for page in readdata_pages("testGetMeterPage") for r in page.records]
    (vec,) = [v for v in load(READDATA)["vectors"] if "expected_all_records" in v and v["test"] == "testGetMeterPage"]
    expected = vec["expected_all_records"]["records"]
    assert len(records) == len(expected) == 10
    for record, want in zip(records, expected, strict=True):
        assert isinstance(record, MeterRecord)
        assert (record.meter_glucose, record.meter_seconds) == (want["meter_glucose"], want["meter_seconds"])
        assert (record.display_seconds, record.system_seconds) == (want["display_seconds"], want["system_seconds"])


def test_android_sensor_pages_match_mockfactory() -> None:
    records = [r for page in readdata_pages("testGetSensorPage") for r in page.records]
    (vec,) = [v for v in load(READDATA)["vectors"] if "expected_all_records" in v and v["test"] == "testGetSensorPage"]
    expected = vec["expected_all_records"]["records"]
    assert len(records) == len(expected) == 43
    for record, want in zip(records, expected, strict=True):
        assert isinstance(record, SensorRecord)
        assert (record.unfiltered, record.filtered, record.rssi) == (want["unfiltered"], want["filtered"], want["rssi"])
        assert (record.display_seconds, record.system_seconds) == (want["display_seconds"], want["system_seconds"])


@pytest.mark.parametrize(
    ("test", "revision", "count"), [("testShouldParse505CalRecords", 3, 2), ("testShouldParsePre505CalRecords", 2, 1)]
)
def test_android_cal_pages_by_revision(test: str, revision: int, count: int) -> None:
    (page,) = readdata_pages(test)
    assert page.header.revision == revision
    assert len(page.records) == count
    assert all(isinstance(r, CalibrationRecord) for r in page.records)
    assert all(len(r.tail) == (2 if revision == 3 else 0) for r in page.records)


def test_android_cal_range_response() -> None:
    (vec, *_) = [v for v in load(READDATA)["vectors"] if v["test"] == "testShouldParse505CalRecords"]
    assert decode_page_range(frame_payload(unhex(vec["hex"]))) == (5, 47)


def test_android_page_with_bad_header_crc_is_refused() -> None:
    """testPageEGVBadCrc: the page payload with one header CRC byte altered (D723 -> D722)."""
    (vec,) = [v for v in load(READDATA)["vectors"] if v["test"] == "testPageEGVBadCrc"]
    raw = unhex(vec["hex"])
    assert len(raw) == PAGE_SIZE + 2
    with pytest.raises(CRCError):
        decode_page_header(raw[:PAGE_SIZE])
    with pytest.raises(CRCError):
        decode_page(raw[:PAGE_SIZE])


# --- ecc1/dexcom testdata ----------------------------------------------------------------------


def ecc1_time(text: str) -> str:
    """ecc1 renders naive Dexcom times in America/New_York: drop the zone."""
    return text[:19]


def check_against_ecc1(record: object, want: dict) -> None:
    assert naive(record.system_seconds) == ecc1_time(want["Timestamp"]["SystemTime"])  # type: ignore[attr-defined]
    assert naive(record.display_seconds) == ecc1_time(want["Timestamp"]["DisplayTime"])  # type: ignore[attr-defined]
    if "EGV" in want:
        egv = want["EGV"]
        assert isinstance(record, EGVRecord)
        assert (record.glucose, record.display_only, record.noise, record.trend) == (
            egv["Glucose"], egv["DisplayOnly"], egv["Noise"], egv["Trend"],
        )  # fmt: skip
    elif "Sensor" in want:
        sensor = want["Sensor"]
        assert isinstance(record, SensorRecord)
        assert (record.unfiltered, record.filtered) == (sensor["Unfiltered"], sensor["Filtered"])
        # ecc1 reads RSSI as int8 at offset 16 plus an "Unknown" byte at 17; we keep the int16
        # that android-uploader, dexcom_reader and Nightscout use (PROTOCOL.md §5.2): same bytes
        low, high = struct.pack("<h", record.rssi)
        assert struct.unpack("<b", bytes([low]))[0] == sensor["RSSI"]
        assert high == sensor["Unknown"]
    elif "Calibration" in want:
        cal = want["Calibration"]
        assert isinstance(record, CalibrationRecord)
        assert (record.slope, record.intercept, record.scale, record.decay) == (
            cal["Slope"], cal["Intercept"], cal["Scale"], cal["Decay"],
        )  # fmt: skip
        to_display = record.display_seconds - record.system_seconds
        assert len(record.subrecords) == len(cal["Data"])
        for sub, data in zip(record.subrecords, cal["Data"], strict=True):
            assert (sub.meter_glucose, sub.sensor_raw) == (data["Glucose"], data["Raw"])
            # ecc1 shows subrecord times in the display domain (PROTOCOL.md §5.5)
            assert naive(sub.entered_seconds + to_display) == ecc1_time(data["TimeEntered"])
            assert naive(sub.applied_seconds + to_display) == ecc1_time(data["TimeApplied"])
    elif "XML" in want:
        assert isinstance(record, XMLRecord)
        assert record.attributes == want["XML"]
    else:  # pragma: no cover
        raise AssertionError(f"unexpected ecc1 record {sorted(want)}")


@pytest.mark.parametrize("vec", cases(ECC1, ids=lambda v: v["name"]))
def test_ecc1_page(vec: dict) -> None:
    page = decode_page(unhex(vec["hex"]))
    want = vec["decoded"]
    check_header(page.header, want["header"])
    assert page.bad_records == 0
    for record, expected in zip(page.records, want["records"], strict=True):
        check_record(record, expected)
    # ecc1's own expected JSON lists the records newest first
    ecc1 = vec["expected_ecc1_json_newest_first"]
    assert len(ecc1) == len(page.records)
    for record, expected in zip(reversed(page.records), ecc1, strict=True):
        check_against_ecc1(record, expected)


def test_ecc1_crc_ending_in_ff_before_ff_padding() -> None:
    """5.1432-1: the only record's CRC is 0xFF63 (bytes 63 FF), then 0xFF fill."""
    (vec,) = [v for v in load(ECC1)["vectors"] if v["name"] == "5.1432-1"]
    raw = unhex(vec["hex"])
    end = 28 + 249
    assert raw[end - 2 : end] == b"\x63\xff" and set(raw[end:]) == {0xFF}
    page = decode_page(raw)
    assert page.header.revision == 3 and page.bad_records == 0
    (cal,) = page.records
    assert isinstance(cal, CalibrationRecord) and len(cal.subrecords) == 8
    assert crc16_xmodem(raw[28 : end - 2]) == 0xFF63


@pytest.mark.parametrize(("name", "revision", "size"), [("5.1432", 3, 249), ("5.252", 2, 148), ("5.845", 2, 148)])
def test_ecc1_cal_sizes_follow_the_page_revision(name: str, revision: int, size: int) -> None:
    (vec,) = [v for v in load(ECC1)["vectors"] if v["name"] == name]
    page = decode_page(unhex(vec["hex"]))
    assert page.header.revision == revision
    assert record_size(RecordType.CAL_SET, revision) == size == vec["decoded"]["record_size"]


# --- G4ShareSpy: an EGV page over BLE ------------------------------------------------------------


def test_ble_share_page() -> None:
    vec = load(BLE)
    payload = frame_payload(unhex(vec["hex"]))
    (raw,) = split_pages(payload)
    page = decode_page(raw, record_type=RecordType.EGV_DATA)
    want = vec["decoded_page"]
    check_header(page.header, want["header"])
    for record, expected in zip(page.records, want["records"], strict=True):
        check_record(record, expected)
    test = vec["expected_from_test"]
    assert len(page.records) == test["record_count"] == 26
    first, last = page.records[0], page.records[-1]
    assert page.header.first_index == test["records[0]"]["sequence(first_index+0)"]
    assert (first.glucose, first.trend, first.display_only, first.system_seconds) == (89, 5, False, 238472962)
    assert page.header.first_index + 25 == test["records[25]"]["sequence"]
    assert (last.glucose, last.trend, last.display_only, last.system_seconds) == (88, 4, True, 238480162)
    # the normal reading before it has trend byte 0x94: bit 7 set, masked off, kept in trend_flags
    before = page.records[-2]
    assert (before.trend, before.noise, before.trend_flags & 0x80) == (4, 1, 0x80)
    assert before.system_seconds == last.system_seconds and not before.display_only


# --- page-level errors ----------------------------------------------------------------------------


def a_real_page() -> bytes:
    return unhex(load(ECC1)["vectors"][2]["hex"])  # ecc1 4.312: 23 EGV records


def test_page_of_wrong_type_or_number_is_refused() -> None:
    raw = a_real_page()
    decode_page(raw, record_type=4, page_number=312)
    with pytest.raises(RecordError):
        decode_page(raw, record_type=3)
    with pytest.raises(RecordError):
        decode_page(raw, page_number=311)


@pytest.mark.parametrize("size", [0, 527, 529, 1056])
def test_page_of_wrong_size_is_refused(size: int) -> None:
    raw = (a_real_page() * 2)[:size]
    with pytest.raises(RecordError):
        decode_page(raw)


def test_bad_record_is_counted_and_the_others_kept() -> None:
    raw = bytearray(a_real_page())
    raw[28 + 13 * 5 + 8] ^= 0x01  # the glucose of the sixth record
    page = decode_page(bytes(raw))
    assert page.bad_records == 1
    assert len(page.records) == 22
    good = decode_page(a_real_page()).records
    assert page.records == good[:5] + good[6:]


def test_bad_header_crc_refuses_the_page() -> None:
    raw = bytearray(a_real_page())
    raw[4] ^= 0x01  # record count
    with pytest.raises(CRCError):
        decode_page(bytes(raw))


def _with_header(raw: bytes, **fields: int) -> bytes:
    values = list(struct.unpack_from("<IIBBI3I", raw))
    for name, value in fields.items():
        values[["first", "count", "type", "revision", "page"].index(name)] = value
    head = struct.pack("<IIBBI3I", *values)
    return head + struct.pack("<H", crc16_xmodem(head)) + raw[28:]


def test_record_count_that_does_not_fit_is_refused() -> None:
    with pytest.raises(RecordError):
        decode_page(_with_header(a_real_page(), count=39))  # 39 x 13 > 500


@pytest.mark.parametrize(("rtype", "revision"), [(4, 4), (4, 5), (5, 4), (3, 2), (10, 3), (12, 5)])
def test_unknown_revision_is_refused_not_guessed(rtype: int, revision: int) -> None:
    # G5/G6 layouts (EGV rev 4/5, Meter rev 3, UserSetting rev 5/6...) are not decoded by guess
    with pytest.raises(RecordError):
        decode_page(_with_header(a_real_page(), type=rtype, revision=revision))


def test_unknown_record_type_is_refused() -> None:
    with pytest.raises(RecordError):
        decode_page(_with_header(a_real_page(), type=18))


def test_split_pages() -> None:
    raw = a_real_page()
    assert split_pages(raw * 4) == [raw] * 4
    for bad in (b"", raw[:-1], raw + b"\x00"):
        with pytest.raises(RecordError):
            split_pages(bad)


def test_every_decode_error_is_a_protocol_error() -> None:
    for exc in (RecordError, CRCError):
        assert issubclass(exc, ProtocolError)
