"""Tests of the moment.parseZone-compatible ISO parser."""

from __future__ import annotations

import pytest

from bridge.server.timeparse import format_utc_ms, parse_iso


@pytest.mark.parametrize(("text", "iso", "offset"), [
    ("2026-11-25T19:26:00.634Z", "2026-11-25T19:26:00.634Z", 0),
    ("2026-11-25T21:26:00.634+02:00", "2026-11-25T19:26:00.634Z", 120),
    ("2026-11-25T20:26:00.634+0100", "2026-11-25T19:26:00.634Z", 60),  # xDrip+'s format
    ("2026-11-25T14:26:00.634-05", "2026-11-25T19:26:00.634Z", -300),
    ("2026-11-25T19:26:00.634", "2026-11-25T19:26:00.634Z", 0),  # no offset: UTC
    ("2026-11-25T19:26:00.63499Z", "2026-11-25T19:26:00.634Z", 0),  # truncated, not rounded
    ("2026-11-25 19:26", "2026-11-25T19:26:00.000Z", 0),
    ("2026-11-25", "2026-11-25T00:00:00.000Z", 0),
])
def test_parse_iso_matches_moment_parsezone(text: str, iso: str, offset: int) -> None:
    parsed = parse_iso(text)
    assert parsed is not None
    assert parsed.iso_utc == iso
    assert parsed.utc_offset_min == offset


@pytest.mark.parametrize("text", ["", "garbage", "2026-13-01", "2026-02-30T00:00:00Z",
                                  "2026-11-25T25:00:00Z", "2026-11-25T19:26:00+24:00",
                                  "1795634760634", "2026-11-25T19:26:00Z\n1", "\uff11\uff19\uff17\uff10-01-01"])
def test_parse_iso_rejects_invalid(text: str) -> None:
    assert parse_iso(text) is None


def test_format_utc_ms_prints_milliseconds() -> None:
    assert format_utc_ms(1_795_634_760_634) == "2026-11-25T19:26:00.634Z"
    assert format_utc_ms(0) == "1970-01-01T00:00:00.000Z"
    with pytest.raises(ValueError):
        format_utc_ms(-1)
