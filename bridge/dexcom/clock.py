"""Receiver clocks and the one rule that turns a record's system time into UTC.

Layer: dexcom, pure (the caller passes the host's time in; nothing here reads a clock).

The receiver keeps three clocks (PROTOCOL.md §7.1): RTC, system time = RTC + system offset,
and display time = system time + display offset. Display time is what the user set on the
receiver (local wall time, changed by DST and travel): it is for display only.

The rule (issue 2): ``anchor = host UTC - receiver system time``, measured when the receiver
is opened, rounded to whole seconds (down: the receiver's second had already begun when it
answered) and kept per receiver. It is re-measured on every open
but replaced only when it moves by more than ANCHOR_TOLERANCE_S. A record's UTC is
``DEXCOM_EPOCH + system_seconds + anchor``, computed once when the record is first seen and
never recomputed, so a re-read gives byte-identical timestamps. A receiver clock far from
the host's is reported, never refused: the anchor absorbs any offset.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

__all__ = [
    "ANCHOR_TOLERANCE_S",
    "DEXCOM_EPOCH",
    "DEXCOM_EPOCH_UNIX",
    "ClockAnchor",
    "ReceiverClock",
    "choose_anchor",
    "display_time",
    "format_utc",
    "measure_anchor",
]

DEXCOM_EPOCH = datetime(2009, 1, 1, tzinfo=UTC)
DEXCOM_EPOCH_UNIX = 1230768000
#: An anchor that moved by no more than this is kept, so jitter never restamps records.
ANCHOR_TOLERANCE_S = 60


@dataclass(frozen=True, slots=True)
class ClockAnchor:
    """``host UTC - receiver system time`` in whole seconds, for one receiver."""

    offset_s: int  # unix seconds of system time 0 minus DEXCOM_EPOCH_UNIX
    measured_at: datetime  # host UTC when measured

    def to_utc(self, system_seconds: int) -> datetime:
        """The UTC instant of a receiver system time."""
        return DEXCOM_EPOCH + timedelta(seconds=system_seconds + self.offset_s)

    def to_system(self, utc: datetime) -> int:
        """The receiver system time of a UTC instant (for --since filters)."""
        return int((utc - DEXCOM_EPOCH).total_seconds()) - self.offset_s


@dataclass(frozen=True, slots=True)
class ReceiverClock:
    """The receiver's clocks as read at one moment, with the host's UTC at that moment."""

    system_seconds: int
    display_offset: int
    host_utc: datetime
    rtc: int | None = None
    system_offset: int | None = None

    @property
    def display_seconds(self) -> int:
        """The receiver's display time now, in Dexcom seconds."""
        return self.system_seconds + self.display_offset

    @property
    def system_as_utc(self) -> datetime:
        """What the receiver's system clock says, read as if it were UTC."""
        return DEXCOM_EPOCH + timedelta(seconds=self.system_seconds)

    @property
    def skew_s(self) -> int:
        """Host UTC minus receiver system time read as UTC, whole seconds."""
        # The receiver reports whole seconds: its clock was somewhere in [S, S + 1) when the host
        # read H, so H - S - 0.5 is the unbiased offset; to whole seconds that is floor(H - S).
        return math.floor((self.host_utc - self.system_as_utc).total_seconds())


def measure_anchor(clock: ReceiverClock) -> ClockAnchor:
    """The anchor this reading of the clocks gives."""
    return ClockAnchor(clock.skew_s, clock.host_utc)


def choose_anchor(kept: ClockAnchor | None, measured: ClockAnchor) -> ClockAnchor:
    """Keep the stored anchor unless the new measurement moved by more than the tolerance."""
    if kept is None or abs(measured.offset_s - kept.offset_s) > ANCHOR_TOLERANCE_S:
        return measured
    return kept


def display_time(display_seconds: int) -> datetime:
    """A record's display time as the naive wall-clock time the receiver showed."""
    return (DEXCOM_EPOCH + timedelta(seconds=display_seconds)).replace(tzinfo=None)


def format_utc(when: datetime) -> str:
    """ISO 8601 in UTC with a Z and milliseconds, as Nightscout's dateString."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"
