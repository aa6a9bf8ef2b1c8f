"""Property tests (hypothesis): decoders fed anything raise only our protocol errors; round trips.

The fuzz tests feed arbitrary and near-valid bytes (valid framing or header CRC around random
content, so the deeper decoders are reached). The round trips use our own encoders: they
check encode -> decode consistency, they are not golden tests (those read ../shared/vectors).

``HYPOTHESIS_PROFILE=fuzz`` (``make fuzz``) runs 20,000 examples per test.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.dexcom.commands import decode_page_range, decode_partition_info, decode_xml_attributes
from bridge.dexcom.crc import crc16_xmodem
from bridge.dexcom.framing import MAX_FRAME_LEN, Frame, FrameDecoder, encode_frame
from bridge.dexcom.layouts import decode_record, encode_record, record_size
from bridge.dexcom.pages import (
    PAGE_DATA_LEN,
    PAGE_SIZE,
    PageHeader,
    decode_page,
    decode_page_header,
    encode_page,
    encode_page_header,
    split_pages,
)
from bridge.errors import BridgeError, ProtocolError
from bridge.records import (
    CalibrationRecord,
    CalibrationSubrecord,
    EGVRecord,
    InsertionRecord,
    MeterRecord,
    OpaqueRecord,
    RecordType,
    SensorRecord,
    UserEventRecord,
    UserSettingsRecord,
    XMLRecord,
)

RECORD_TYPES = range(0, 20)  # the 13 partitions, the sentinel 13, touchscreen 18 and beyond
REVISIONS = range(0, 8)


def only_protocol_errors(call: Callable[[], Any]) -> Any:
    """Run ``call``; a BridgeError must be a ProtocolError; anything else fails the test."""
    try:
        return call()
    except ProtocolError:
        return None
    except BridgeError as exc:  # pragma: no cover - a project error of the wrong kind
        raise AssertionError(f"{type(exc).__name__} is not a ProtocolError: {exc}") from exc


def with_crc(body: bytes) -> bytes:
    return body + struct.pack("<H", crc16_xmodem(body))


u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
s32 = st.integers(-(2**31), 2**31 - 1)
doubles = st.floats(allow_nan=False, width=64)

# --- fuzz: frames -------------------------------------------------------------------------------


@st.composite
def frame_like(draw: st.DrawFn) -> bytes:
    """SOF + a length field that is often plausible + random bytes, sometimes a real frame."""
    kind = draw(st.sampled_from(["random", "header", "frame", "damaged"]))
    if kind == "random":
        return draw(st.binary(max_size=300))
    if kind == "header":
        length = draw(st.one_of(st.integers(0, 20), st.integers(0, MAX_FRAME_LEN + 10), u16))
        return b"\x01" + struct.pack("<H", length) + draw(st.binary(max_size=64))
    frame = encode_frame(draw(u8), draw(st.binary(max_size=600)))
    if kind == "damaged":
        i = draw(st.integers(0, len(frame) - 1))
        frame = frame[:i] + bytes([frame[i] ^ draw(st.integers(1, 255))]) + frame[i + 1 :]
    return frame


def run_decoder(parts: list[bytes]) -> list[Frame]:
    decoder = FrameDecoder()
    frames: list[Frame] = []
    for part in parts:
        decoder.feed(part)
        for _ in range(decoder.pending + 2):  # each call consumes bytes or returns: bounded
            try:
                frame = decoder.next_frame()
            except ProtocolError:
                continue
            if frame is None:
                break
            frames.append(frame)
        else:  # pragma: no cover
            raise AssertionError("next_frame neither returned None nor consumed input")
        assert decoder.needed() >= 1
    return frames


@given(st.lists(st.binary(max_size=200), max_size=12))
def test_fuzz_frame_decoder_arbitrary_bytes(parts: list[bytes]) -> None:
    only_protocol_errors(lambda: run_decoder(parts))


@given(st.lists(frame_like(), max_size=8), st.integers(1, 70))
def test_fuzz_frame_decoder_near_frames(pieces: list[bytes], chunk: int) -> None:
    stream = b"".join(pieces)
    parts = [stream[i : i + chunk] for i in range(0, len(stream), chunk)]
    only_protocol_errors(lambda: run_decoder(parts))


@given(st.lists(frame_like(), max_size=6), st.lists(st.tuples(u8, st.binary(max_size=300)), min_size=1, max_size=3))
def test_fuzz_good_frames_survive_surrounding_junk(junk: list[bytes], good: list[tuple[int, bytes]]) -> None:
    """Good frames after junk are all found once enough bytes follow (the link would time out first)."""
    wires = [encode_frame(c, p) for c, p in good]
    tail = b"\x00" * (MAX_FRAME_LEN + 8)  # more than any false length can claim
    frames = only_protocol_errors(lambda: run_decoder([b"".join(junk), *wires, tail]))
    assert frames is not None
    assert frames[-len(wires) :] == [Frame(c, p) for c, p in good]


# --- fuzz: pages, headers, records ------------------------------------------------------------


@st.composite
def page_like(draw: st.DrawFn) -> bytes:
    """A page whose header CRC is valid over random fields and random data (reaches the records)."""
    header = PageHeader(
        draw(u32),
        draw(st.one_of(st.integers(0, 40), u32)),
        draw(st.one_of(st.integers(0, 13), u8)),
        draw(st.one_of(st.integers(0, 4), u8)),
        draw(u32),
        (draw(u32), draw(u32), draw(u32)),
    )
    data = draw(st.one_of(st.binary(min_size=PAGE_DATA_LEN, max_size=PAGE_DATA_LEN), st.just(b"\xff" * PAGE_DATA_LEN)))
    return encode_page_header(header) + data


@given(st.one_of(st.binary(max_size=600), st.binary(min_size=PAGE_SIZE, max_size=PAGE_SIZE), page_like()))
def test_fuzz_decode_page(raw: bytes) -> None:
    only_protocol_errors(lambda: decode_page(raw))
    only_protocol_errors(lambda: decode_page(raw, record_type=4, page_number=1))


@given(st.one_of(st.binary(max_size=60), page_like()))
def test_fuzz_decode_page_header(raw: bytes) -> None:
    only_protocol_errors(lambda: decode_page_header(raw))


@given(st.binary(max_size=3 * PAGE_SIZE + 3))
def test_fuzz_split_pages(payload: bytes) -> None:
    pages = only_protocol_errors(lambda: split_pages(payload))
    if pages is not None:
        assert b"".join(pages) == payload and all(len(p) == PAGE_SIZE for p in pages)


@st.composite
def record_input(draw: st.DrawFn) -> tuple[int, int, bytes]:
    """(type, revision, raw): random bytes of a random or exactly right size, often with a good CRC."""
    rtype = draw(st.sampled_from(RECORD_TYPES))
    revision = draw(st.sampled_from(REVISIONS))
    try:
        size = record_size(rtype, revision)
    except ProtocolError:
        size = draw(st.integers(0, 300))
    size = draw(st.one_of(st.just(size), st.integers(0, 520)))
    body = draw(st.binary(min_size=max(size - 2, 0), max_size=max(size - 2, 0)))
    raw = with_crc(body) if size >= 2 and draw(st.booleans()) else draw(st.binary(min_size=size, max_size=size))
    return rtype, revision, raw


@given(record_input())
def test_fuzz_decode_record_every_type_and_revision(case: tuple[int, int, bytes]) -> None:
    rtype, revision, raw = case
    only_protocol_errors(lambda: decode_record(rtype, revision, raw))


@pytest.mark.parametrize("rtype", RECORD_TYPES)
@pytest.mark.parametrize("revision", REVISIONS)
def test_every_type_and_revision_decodes_a_right_sized_record_or_refuses(rtype: int, revision: int) -> None:
    try:
        size = record_size(rtype, revision)
    except ProtocolError:
        return  # refused: unknown type, or a revision whose layout we do not know
    for fill in (b"\x00", b"\xff", b"\x5a", b"\x01"):
        raw = with_crc((fill * size)[: size - 2])
        only_protocol_errors(lambda raw=raw: decode_record(rtype, revision, raw))


# --- fuzz: command replies ----------------------------------------------------------------------

xml_text = st.one_of(
    st.text(max_size=200),
    st.builds(
        lambda attrs: (
            "<PartitionInfo>"
            + "".join(f"<Partition {' '.join(f'{k}={v!r}' for k, v in a.items())}/>" for a in attrs)
            + "</PartitionInfo>"
        ),
        st.lists(
            st.dictionaries(
                st.sampled_from(["Id", "Name", "RecordRevision", "RecordLength"]),
                st.one_of(st.integers(-5, 300).map(str), st.text(alphabet="0123456789xX-+ _", max_size=6)),
            ),
            max_size=4,
        ),
    ),
)


@given(st.one_of(st.binary(max_size=300), xml_text.map(lambda t: t.encode("utf-8", "surrogatepass"))))
def test_fuzz_decode_xml_replies(payload: bytes) -> None:
    only_protocol_errors(lambda: decode_xml_attributes(payload))
    only_protocol_errors(lambda: decode_partition_info(payload))


@given(st.binary(max_size=12))
def test_fuzz_decode_page_range(payload: bytes) -> None:
    result = only_protocol_errors(lambda: decode_page_range(payload))
    if result is not None:
        assert result[0] <= result[1]


# --- round trips (our encoders) -------------------------------------------------------------


@given(u8, st.binary(max_size=4 * PAGE_SIZE), st.sampled_from([None, 1, 3, 64]))
def test_frame_round_trip(command: int, payload: bytes, chunk: int | None) -> None:
    wire = encode_frame(command, payload)
    assert len(wire) == 6 + len(payload)
    parts = [wire] if chunk is None else [wire[i : i + chunk] for i in range(0, len(wire), chunk)]
    assert run_decoder(parts) == [Frame(command, payload)]


def timestamps() -> dict[str, st.SearchStrategy[int]]:
    return {"system_seconds": u32, "display_seconds": u32}


egv_records = st.builds(
    EGVRecord,
    **timestamps(),
    glucose=st.integers(0, 0x3FF),
    display_only=st.booleans(),
    trend=st.integers(0, 15),
    noise=st.integers(0, 7),
    trend_flags=st.tuples(st.integers(0, 0x1F), st.booleans()).map(lambda t: t[0] << 10 | (0x80 if t[1] else 0)),
)
sensor_records = st.builds(
    SensorRecord, **timestamps(), unfiltered=u32, filtered=u32, rssi=st.integers(-(2**15), 2**15 - 1)
)
meter_records = st.builds(MeterRecord, **timestamps(), meter_glucose=u16, meter_seconds=u32)
insertion_records = st.builds(InsertionRecord, **timestamps(), insertion_seconds=u32, state=u8)
event_records = st.builds(
    UserEventRecord, **timestamps(), event_type=u8, event_subtype=u8, event_seconds=u32, value=u32
)
settings_records = st.builds(
    UserSettingsRecord,
    **timestamps(),
    system_offset=u32,
    display_offset=s32,
    transmitter_id=u32,
    enable_flags=u32,
    high_alarm=u16,
    high_snooze=u16,
    low_alarm=u16,
    low_snooze=u16,
    rise_rate=u16,
    fall_rate=u16,
    out_of_range_snooze=u16,
    language=u16,
    alarm_profile=u8,
    setup_state=u8,
    reserved=u32,
)
subrecords = st.builds(CalibrationSubrecord, u32, s32, s32, u32, u8)


@st.composite
def cal_records(draw: st.DrawFn, revision: int) -> CalibrationRecord:
    slots = 6 if revision <= 2 else 11
    subs = tuple(draw(st.lists(subrecords, max_size=slots)))
    free = (slots - len(subs)) * 17
    return CalibrationRecord(
        draw(u32),
        draw(u32),
        draw(doubles),
        draw(doubles),
        draw(doubles),
        draw(doubles),
        subs,
        draw(st.binary(min_size=3, max_size=3)),
        (draw(doubles), draw(doubles)) if revision > 2 else (),
        draw(st.one_of(st.just(bytes(free)), st.binary(min_size=free, max_size=free))),
    )


xml_records = st.builds(
    XMLRecord,
    record_type=st.sampled_from([0, 1, 2]),
    **timestamps(),
    xml=st.text(st.characters(exclude_characters="\x00", exclude_categories=("Cs",)), max_size=120).filter(
        lambda t: len(t.encode()) <= 490
    ),
)


@st.composite
def opaque_records(draw: st.DrawFn) -> OpaqueRecord:
    rtype = draw(st.sampled_from([RecordType.ABERRATION, RecordType.RECEIVER_LOG_DATA, RecordType.RECEIVER_ERROR_DATA]))
    size = record_size(rtype, 1) - 10
    return OpaqueRecord(int(rtype), draw(u32), draw(u32), draw(st.binary(min_size=size, max_size=size)))


ROUND_TRIPS: list[tuple[int, int, st.SearchStrategy[Any]]] = [
    (RecordType.EGV_DATA, 2, egv_records),
    (RecordType.SENSOR_DATA, 1, sensor_records),
    (RecordType.METER_DATA, 1, meter_records),
    (RecordType.INSERTION_TIME, 1, insertion_records),
    (RecordType.USER_EVENT_DATA, 1, event_records),
    (RecordType.USER_SETTING_DATA, 3, settings_records),
    (RecordType.CAL_SET, 2, cal_records(2)),
    (RecordType.CAL_SET, 3, cal_records(3)),
]


@given(st.sampled_from(ROUND_TRIPS).flatmap(lambda t: st.tuples(st.just(t[0]), st.just(t[1]), t[2])))
def test_record_round_trip(case: tuple[int, int, Any]) -> None:
    rtype, revision, record = case
    raw = encode_record(record, revision)
    assert len(raw) == record_size(rtype, revision)
    assert decode_record(rtype, revision, raw) == record


@given(xml_records)
def test_xml_record_round_trip(record: XMLRecord) -> None:
    raw = encode_record(record)
    assert decode_record(record.record_type, 1, raw) == record


@given(opaque_records())
def test_opaque_record_round_trip(record: OpaqueRecord) -> None:
    raw = encode_record(record)
    assert decode_record(record.record_type, 1, raw) == record


@given(
    st.sampled_from(ROUND_TRIPS).flatmap(
        lambda t: st.tuples(st.just(t[0]), st.just(t[1]), st.lists(t[2], max_size=40))
    ),
    u32,
    u32,
)
def test_page_round_trip(case: tuple[int, int, list[Any]], first_index: int, page_number: int) -> None:
    rtype, revision, records = case
    records = records[: PAGE_DATA_LEN // record_size(rtype, revision)]
    header = PageHeader(first_index, len(records), rtype, revision, page_number)
    raw = encode_page(header, records)
    assert len(raw) == PAGE_SIZE
    page = decode_page(raw, record_type=rtype, page_number=page_number)
    assert page.header == header
    assert list(page.records) == records and page.bad_records == 0
