"""Codec round trips for every record type, and the stability of record keys."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.errors import StoreError
from bridge.records import (
    CalibrationRecord,
    CalibrationSubrecord,
    EGVRecord,
    InsertionRecord,
    MeterRecord,
    OpaqueRecord,
    Record,
    SensorRecord,
    UserEventRecord,
    UserSettingsRecord,
    XMLRecord,
)
from bridge.store.codec import KINDS, RECORD_CLASSES, decode_record, encode_record, record_key

from .samples import ALL_FACTORIES, BASE_S

u32 = st.integers(0, 2**32 - 1)
i32 = st.integers(-(2**31), 2**31 - 1)
anyfloat = st.floats(allow_nan=True, allow_infinity=True)

RECORDS: st.SearchStrategy[Record] = st.one_of(
    st.builds(EGVRecord, u32, u32, st.integers(0, 1023), st.booleans(), st.integers(0, 15), st.integers(0, 7), i32),
    st.builds(SensorRecord, u32, u32, u32, u32, st.integers(-32768, 32767)),
    st.builds(MeterRecord, u32, u32, st.integers(0, 65535), u32),
    st.builds(InsertionRecord, u32, u32, u32, st.integers(0, 255)),
    st.builds(
        CalibrationRecord,
        u32,
        u32,
        anyfloat,
        anyfloat,
        anyfloat,
        anyfloat,
        st.lists(st.builds(CalibrationSubrecord, u32, u32, u32, u32, i32), max_size=8).map(tuple),
        st.binary(max_size=8),
        st.lists(anyfloat, max_size=3).map(tuple),
        st.binary(max_size=64),
    ),
    st.builds(UserEventRecord, u32, u32, st.integers(0, 255), st.integers(0, 255), u32, i32),
    st.builds(UserSettingsRecord, *([u32, u32] + [i32] * 15)),
    st.builds(XMLRecord, st.integers(0, 2), u32, u32, st.text()),
    st.builds(OpaqueRecord, st.integers(0, 12), u32, u32, st.binary(max_size=600)),
)


def same(a: object, b: object) -> bool:
    """Equality that counts NaN equal to NaN (and keeps -0.0 apart from 0.0)."""
    if dataclasses.is_dataclass(a) and not isinstance(a, type):
        return type(a) is type(b) and all(same(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a))
    if isinstance(a, tuple):
        return isinstance(b, tuple) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float):
        return isinstance(b, float) and (
            (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
        )
    return type(a) is type(b) and a == b


@given(RECORDS)
def test_codec_round_trip_is_exact(record: Record) -> None:
    text = encode_record(record)
    back = decode_record(record.KIND, text)
    assert same(record, back)
    assert encode_record(back) == text
    assert record_key(back) == record_key(record)
    text.encode("ascii")  # pure ASCII: safe for SQLite whatever the strings hold


def test_every_record_class_has_a_kind_and_a_sample() -> None:
    assert set(RECORD_CLASSES) == set(ALL_FACTORIES) == KINDS
    for kind, make in ALL_FACTORIES.items():
        record = make(BASE_S)
        assert record.KIND == kind
        assert decode_record(kind, encode_record(record)) == record


def test_codec_keeps_bytes_and_subrecord_tuples() -> None:
    record = ALL_FACTORIES["cal"](BASE_S)
    assert isinstance(record, CalibrationRecord)
    back = decode_record("cal", encode_record(record))
    assert isinstance(back, CalibrationRecord)
    assert isinstance(back.unknown, bytes) and back.unknown == record.unknown
    assert isinstance(back.subrecords, tuple) and all(isinstance(s, CalibrationSubrecord) for s in back.subrecords)
    assert back.tail == (1.5, -2.25)


def test_decode_takes_defaults_for_missing_fields_and_refuses_unknown_ones() -> None:
    data = json.loads(encode_record(ALL_FACTORIES["egv"](BASE_S)))
    del data["trend_flags"]
    assert decode_record("egv", json.dumps(data)) == ALL_FACTORIES["egv"](BASE_S)
    data["mystery"] = 1
    with pytest.raises(StoreError, match="unknown fields"):
        decode_record("egv", json.dumps(data))


@pytest.mark.parametrize("kind, text", [("nope", "{}"), ("egv", "not json"), ("egv", '{"glucose": "high"}')])
def test_decode_refuses_bad_rows(kind: str, text: str) -> None:
    with pytest.raises(StoreError) as info:
        decode_record(kind, text)
    assert info.value.hint


def test_encode_refuses_non_records() -> None:
    with pytest.raises(StoreError):
        encode_record(object())  # type: ignore[arg-type]


def test_record_keys_are_stable() -> None:
    # Part of the unique key on disk: a change here would store (and upload) records twice.
    t = BASE_S
    got = {kind: record_key(make(t)) for kind, make in ALL_FACTORIES.items()}
    assert got["egv"] == "0:120"
    assert got["sensor"] == "150000:149000"
    assert got["meter"] == f"{t - 30}:105"
    assert got["insertion"] == f"{t - 10}:7"
    assert got["cal"] == "850.5:30000.25:0.9"
    assert got["event"] == f"1:0:{t - 3600}:45"
    assert got["xml"].startswith("0:") and got["opaque"].startswith("6:")


def test_display_only_duplicate_has_its_own_key() -> None:
    from .samples import egv

    assert record_key(egv(BASE_S, 120)) != record_key(egv(BASE_S, 120, display_only=True))
