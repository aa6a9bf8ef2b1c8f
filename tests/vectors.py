"""Loader for the shared golden vectors (``../shared/vectors`` seen from the repository root).

The vectors are other projects' data: they are read in place, never copied into this
repository, and never regenerated with our own encoder. ``BRIDGE_VECTORS_DIR`` overrides the
directory. When it is missing every test that needs a vector FAILS with a message saying
where it looked; nothing is skipped.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

__all__ = [
    "ENV_VAR",
    "REPO_ROOT",
    "MissingVector",
    "cases",
    "check_header",
    "check_record",
    "load",
    "naive",
    "unhex",
    "vectors_dir",
]

ENV_VAR = "BRIDGE_VECTORS_DIR"
REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DIR = REPO_ROOT.parent / "shared" / "vectors"


def _configured_dir() -> Path:
    return Path(os.environ.get(ENV_VAR) or DEFAULT_DIR)


def _missing_message(path: Path) -> str:
    return (
        f"golden vectors not found at {path} (expected ../shared/vectors beside the repository, "
        f"or set {ENV_VAR} to the directory holding crc16.json, capture_dexcom_studio_g4_2013.json, ...)"
    )


def vectors_dir() -> Path:
    """The vectors directory; fails the calling test when it does not exist."""
    path = _configured_dir()
    if not path.is_dir():
        pytest.fail(_missing_message(path), pytrace=False)
    return path


@functools.cache
def _read(path: Path) -> Any:
    with path.open(encoding="utf-8") as fh:
        return json.load(fh)


def load(name: str) -> Any:
    """The parsed JSON of one vector file (cached); fails the test when it is missing."""
    path = vectors_dir() / name
    if not path.is_file():
        pytest.fail(f"vector file {name} missing from {path.parent}", pytrace=False)
    return _read(path)


def unhex(text: str) -> bytes:
    """Bytes of a vector hex string."""
    return bytes.fromhex(text)


class MissingVector(Mapping[str, Any]):
    """Stands in for a vector at collection time when the files are missing.

    Any use of it fails the test with a clear message, so a missing directory shows up
    as failures, not as skipped or silently absent tests.
    """

    def __init__(self, message: str) -> None:
        self.message = message

    def _fail(self) -> Any:
        pytest.fail(self.message, pytrace=False)

    def __getitem__(self, key: str) -> Any:
        return self._fail()

    def __iter__(self) -> Iterator[str]:
        return self._fail()

    def __len__(self) -> int:
        return self._fail()


def cases(name: str, key: str | None = "vectors", *, ids: Any = None, where: Any = None) -> list[Any]:
    """``pytest.param`` objects for every item of ``load(name)[key]`` (for parametrize).

    Args:
        name: vector file name.
        key: the list inside the file; None when the file itself is the list.
        ids: a function item -> test id (default: the index).
        where: a predicate selecting items.
    """
    path = _configured_dir() / name
    if not path.is_file():
        return [pytest.param(MissingVector(_missing_message(path.parent)), id=f"{name}-missing")]
    data = _read(path)
    items = data if key is None else data[key]
    out = []
    for i, item in enumerate(items):
        if where is not None and not where(item):
            continue
        out.append(pytest.param(item, id=str(ids(item) if ids else i)))
    return out


# --- what the vectors' decoded fields mean for our records ------------------------------------


def naive(seconds: int) -> str:
    """A Dexcom time as the vectors write it: naive ``2009-01-01 + seconds``, ISO 8601."""
    return (datetime(2009, 1, 1) + timedelta(seconds=seconds)).isoformat()


def _int8(value: int) -> int:
    low = value & 0xFF
    return low - 0x100 if low & 0x80 else low


def check_record(record: Any, expected: Mapping[str, Any]) -> None:
    """Assert that a decoded record equals a vector's ``decoded`` record, field by field.

    The vectors name some fields differently (``meter_bg``, ``raw``, ``event_value``, ...);
    this is the one place that maps them. Fields we do not model (``crc``, ``hex``) are not
    compared here.
    """
    from bridge import records as r

    assert expected.get("crc_ok", True) is True
    assert record.system_seconds == expected["system_seconds"]
    assert record.display_seconds == expected["display_seconds"]
    if "system_time" in expected:
        assert naive(record.system_seconds) == expected["system_time"]
        assert naive(record.display_seconds) == expected["display_time"]
    if isinstance(record, r.EGVRecord):
        assert record.glucose == expected["glucose"]
        assert record.display_only is expected["display_only"]
        assert record.trend == expected["trend"]
        assert record.noise == expected["noise"]
        assert record.direction == expected["trend_name"]
        special = expected["special"]
        assert record.special == (None if special is None else special.split("(")[0])
        if "trend_byte" in expected:
            assert record.trend | record.noise << 4 | (record.trend_flags & 0x80) == expected["trend_byte"]
        if "raw_glucose_word" in expected:
            word = record.glucose | (0x8000 if record.display_only else 0) | (record.trend_flags & 0x7C00)
            assert word == expected["raw_glucose_word"]
        if expected.get("noise_name"):
            assert r.NOISE_NAMES[record.noise].replace("_", "") == expected["noise_name"].upper()
    elif isinstance(record, r.SensorRecord):
        assert record.unfiltered == expected["unfiltered"]
        assert record.filtered == expected["filtered"]
        assert record.rssi == expected["rssi"]  # int16 at offset 16 (PROTOCOL.md §5.2)
        if "rssi_int8" in expected:  # ecc1's reading: int8 at 16 plus a byte at 17
            assert _int8(record.rssi) == expected["rssi_int8"]
            assert (record.rssi >> 8) & 0xFF == expected["byte17"]
    elif isinstance(record, r.MeterRecord):
        assert record.meter_glucose == expected["meter_glucose"]
        assert record.meter_seconds == expected["meter_seconds"]
        if "meter_time" in expected:
            assert naive(record.meter_seconds) == expected["meter_time"]
    elif isinstance(record, r.InsertionRecord):
        assert record.insertion_seconds == expected["insertion_seconds"]
        assert record.state == expected["state"]
        assert record.state_name == expected["state_name"]
        assert record.has_insertion_time is (expected["insertion_time"] is not None)
        if expected["insertion_time"] is not None:
            assert naive(record.insertion_seconds) == expected["insertion_time"]
    elif isinstance(record, r.CalibrationRecord):
        assert record.slope == expected["slope"]
        assert record.intercept == expected["intercept"]
        assert record.scale == expected["scale"]
        assert record.decay == expected["decay"]
        assert record.unknown == bytes(expected["unk_bytes_32_34"])
        assert len(record.subrecords) == expected["num_subrecords"] == len(expected["subrecords"])
        to_display = record.display_seconds - record.system_seconds
        for sub, want in zip(record.subrecords, expected["subrecords"], strict=True):
            assert sub.entered_seconds == want["entered_seconds"]
            assert sub.meter_glucose == want["meter_bg"]
            assert sub.sensor_raw == want["raw"]
            assert sub.applied_seconds == want["applied_seconds"]
            assert sub.unknown == want["unk_byte"]
            assert naive(sub.entered_seconds + to_display) == want["entered_time_plus_display_offset"]
            assert naive(sub.applied_seconds + to_display) == want["applied_time_plus_display_offset"]
        assert record.tail == tuple(expected.get("tail_doubles_at_231_and_239", ()))
    elif isinstance(record, r.UserEventRecord):
        assert record.event_type == expected["event_type"]
        assert record.event_subtype == expected["event_subtype"]
        assert record.event_seconds == expected["event_seconds"]
        assert record.value == expected["event_value"]
        assert naive(record.event_seconds) == expected["event_time"]
        if "insulin_units" in expected:
            assert record.value / 100 == expected["insulin_units"]
    elif isinstance(record, r.XMLRecord):
        assert record.xml == expected["xml"]
    elif isinstance(record, r.OpaqueRecord):
        pass  # only the two timestamps are understood (PROTOCOL.md §5.9)
    else:  # pragma: no cover - a record kind the vectors do not hold
        raise AssertionError(f"no vector mapping for {type(record).__name__}")


def check_header(header: Any, expected: Mapping[str, Any]) -> None:
    """Assert that a decoded page header equals a vector's ``header``."""
    assert header.first_index == expected["first_record_index"]
    assert header.record_count == expected["record_count"]
    assert header.record_type == expected["record_type"]
    assert header.revision == expected["revision"]
    assert header.page_number == expected["page_number"]
    assert list(header.reserved) == expected.get("reserved", [0, 0, 0])
    assert expected.get("crc_ok", True) is True
