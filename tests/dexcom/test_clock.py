"""The receiver clock model and the one rule that turns system time into UTC (issue 2)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.dexcom.clock import (
    ANCHOR_TOLERANCE_S,
    DEXCOM_EPOCH,
    DEXCOM_EPOCH_UNIX,
    ClockAnchor,
    ReceiverClock,
    choose_anchor,
    display_time,
    format_utc,
    measure_anchor,
)

SYSTEM_2013 = 148358601  # READ_SYSTEM_TIME in the real 2013 capture (2013-09-14 02:43:21)
HOST_2013 = datetime(2013, 9, 14, 2, 44, 57, tzinfo=UTC)  # the PC's clock at that moment


def anchor_at(system_seconds: int, host_utc: datetime) -> ClockAnchor:
    return measure_anchor(ReceiverClock(system_seconds, 0, host_utc))


def test_epoch() -> None:
    assert DEXCOM_EPOCH == datetime(2009, 1, 1, tzinfo=UTC)
    assert DEXCOM_EPOCH.timestamp() == DEXCOM_EPOCH_UNIX == 1230768000


def test_anchor_is_host_utc_minus_system_time() -> None:
    anchor = anchor_at(SYSTEM_2013, HOST_2013)
    assert anchor.offset_s == 96
    assert anchor.measured_at == HOST_2013
    assert anchor.to_utc(SYSTEM_2013) == HOST_2013
    assert anchor.to_utc(SYSTEM_2013 - 300) == HOST_2013 - timedelta(seconds=300)


@pytest.mark.parametrize(("fraction_us", "offset"), [(0, 96), (400_000, 96), (600_000, 96), (999_999, 96)])
def test_anchor_is_rounded_to_whole_seconds(fraction_us: int, offset: int) -> None:
    # the receiver's whole second S had begun when it answered: its clock was in [S, S + 1), so the
    # host's fraction of a second is not a later receiver second (floor, not round, is unbiased)
    anchor = anchor_at(SYSTEM_2013, HOST_2013 + timedelta(microseconds=fraction_us))
    assert anchor.offset_s == offset
    assert isinstance(anchor.offset_s, int)
    assert anchor.to_utc(SYSTEM_2013).microsecond == 0


def test_choose_anchor_takes_the_first_measurement() -> None:
    measured = anchor_at(SYSTEM_2013, HOST_2013)
    assert choose_anchor(None, measured) is measured


@pytest.mark.parametrize("drift", [0, 1, -1, 59, -59, ANCHOR_TOLERANCE_S, -ANCHOR_TOLERANCE_S])
def test_choose_anchor_keeps_the_old_anchor_within_60_s(drift: int) -> None:
    kept = anchor_at(SYSTEM_2013, HOST_2013)
    later = SYSTEM_2013 + 3600
    measured = anchor_at(later, HOST_2013 + timedelta(seconds=3600 + drift))
    assert measured.offset_s == kept.offset_s + drift
    assert choose_anchor(kept, measured) is kept


@pytest.mark.parametrize("drift", [61, -61, 3600, -86_400 * 365])
def test_choose_anchor_replaces_beyond_60_s(drift: int) -> None:
    kept = anchor_at(SYSTEM_2013, HOST_2013)
    measured = anchor_at(SYSTEM_2013 + 3600, HOST_2013 + timedelta(seconds=3600 + drift))
    assert choose_anchor(kept, measured) is measured


def test_receiver_clock_years_off_still_gives_the_right_utc() -> None:
    # the receiver's system clock believes it is 2011; the host knows it is 2024
    host = datetime(2024, 3, 31, 1, 30, 0, tzinfo=UTC)  # across a European DST change: irrelevant
    system_now = int((datetime(2011, 6, 1, tzinfo=UTC) - DEXCOM_EPOCH).total_seconds())
    clock = ReceiverClock(system_now, display_offset=-7 * 3600, host_utc=host)
    assert clock.skew_s > 12 * 365 * 86400  # reported, never refused
    anchor = measure_anchor(clock)
    assert anchor.to_utc(system_now) == host
    assert anchor.to_utc(system_now - 5 * 60) == host - timedelta(minutes=5)
    assert anchor.to_system(host - timedelta(minutes=5)) == system_now - 300


def test_receiver_clock_ahead_of_the_host() -> None:
    host = datetime(2020, 1, 1, tzinfo=UTC)
    system_now = int((datetime(2030, 1, 1, tzinfo=UTC) - DEXCOM_EPOCH).total_seconds())
    anchor = anchor_at(system_now, host)
    assert anchor.offset_s < 0
    assert anchor.to_utc(system_now - 60) == host - timedelta(seconds=60)


def test_display_offset_does_not_change_utc() -> None:
    a = measure_anchor(ReceiverClock(SYSTEM_2013, -25161, HOST_2013))
    b = measure_anchor(ReceiverClock(SYSTEM_2013, +3600, HOST_2013))
    assert a == b


def test_to_utc_is_stable() -> None:
    anchor = anchor_at(SYSTEM_2013, HOST_2013)
    first = anchor.to_utc(SYSTEM_2013 - 12345)
    again = anchor.to_utc(SYSTEM_2013 - 12345)
    assert first == again and format_utc(first) == format_utc(again)
    # a re-open a day later measures a slightly different anchor: kept, so identical stamps
    remeasured = anchor_at(SYSTEM_2013 + 86400, HOST_2013 + timedelta(seconds=86400 + 7, microseconds=300_000))
    chosen = choose_anchor(anchor, remeasured)
    assert format_utc(chosen.to_utc(SYSTEM_2013 - 12345)) == format_utc(first)


@given(
    st.integers(min_value=0, max_value=2**32 - 1),
    st.integers(min_value=-(2**31), max_value=2**31 - 1),
)
def test_to_utc_and_to_system_are_inverse(system_seconds: int, offset_s: int) -> None:
    anchor = ClockAnchor(offset_s, HOST_2013)
    utc = anchor.to_utc(system_seconds)
    assert utc.tzinfo is not None and utc.utcoffset() == timedelta(0)
    assert anchor.to_system(utc) == system_seconds
    assert anchor.to_utc(system_seconds) == utc


def test_receiver_clock_from_the_capture() -> None:
    clock = ReceiverClock(SYSTEM_2013, -25161, HOST_2013, rtc=21890973, system_offset=126467628)
    assert clock.rtc is not None and clock.system_offset is not None
    assert clock.rtc + clock.system_offset == clock.system_seconds
    assert clock.display_seconds == 148333440
    assert display_time(clock.display_seconds) == datetime(2013, 9, 13, 19, 44, 0)
    assert display_time(clock.display_seconds).tzinfo is None  # display time is for display only
    assert clock.system_as_utc == datetime(2013, 9, 14, 2, 43, 21, tzinfo=UTC)


def test_format_utc() -> None:
    assert format_utc(datetime(2013, 9, 14, 2, 43, 21, tzinfo=UTC)) == "2013-09-14T02:43:21.000Z"
    assert format_utc(datetime(2013, 9, 14, 2, 43, 21, 123456, tzinfo=UTC)) == "2013-09-14T02:43:21.123Z"
    pdt = datetime(2013, 9, 13, 19, 43, 21, tzinfo=timezone(timedelta(hours=-7)))
    assert format_utc(pdt) == "2013-09-14T02:43:21.000Z"
