"""ISO-8601 parsing with the semantics of moment.parseZone, as Nightscout uses it.

Layer: server (pure). Stdlib only, no I/O; never imports starlette or the core packages.

Nightscout derives an entry's ``sysTime`` from ``moment.parseZone(dateString)``: the offset
written in the string is kept (``+01:00``, ``+0100``, ``+01`` and ``Z`` all parse, a string
without an offset is read as UTC), fractions beyond milliseconds are truncated, and the result
is printed as ``YYYY-MM-DDTHH:mm:ss.SSSZ`` in UTC.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

__all__ = ["MAX_DATE_MS", "MIN_DATE_MS", "ParsedTime", "format_utc_ms", "parse_iso"]

MIN_DATE_MS = 100_000_000_000  # 1973-03-03: anything smaller is epoch seconds, not ms
MAX_DATE_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z, the last ISO-printable instant

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ISO_RE = re.compile(
    r"""^(?P<y>\d{4})-(?P<mo>\d{2})-(?P<d>\d{2})
        (?:[T ](?P<h>\d{2})(?::(?P<mi>\d{2})(?::(?P<s>\d{2})(?:[.,](?P<f>\d{1,9}))?)?)?)?
        (?P<tz>Z|z|[+-]\d{2}(?::?\d{2})?)?$""",
    re.VERBOSE | re.ASCII,
)


@dataclass(frozen=True)
class ParsedTime:
    """An instant with the offset it was written in.

    Attributes:
        epoch_ms: milliseconds since the Unix epoch (UTC).
        utc_offset_min: the offset written in the string, in minutes (0 for ``Z`` or none).
    """

    epoch_ms: int
    utc_offset_min: int

    @property
    def iso_utc(self) -> str:
        """The instant as Nightscout's ``sysTime``: UTC ISO-8601 with milliseconds."""
        return format_utc_ms(self.epoch_ms)


def parse_iso(text: str) -> ParsedTime | None:
    """Parse an ISO-8601 date or date-time as moment.parseZone does.

    Args:
        text: e.g. ``2026-11-25T19:26:00.634Z``, ``2026-11-25T20:26:00.634+0100`` or ``2026-11-25``.

    Returns:
        The instant, or None when the text is not a valid ISO-8601 date.
    """
    m = _ISO_RE.match(text.strip())
    if m is None:
        return None
    offset_min = _offset_minutes(m.group("tz"))
    if offset_min is None:
        return None
    fraction = (m.group("f") or "0").ljust(3, "0")[:3]
    try:
        local = datetime(
            int(m.group("y")), int(m.group("mo")), int(m.group("d")),
            int(m.group("h") or 0), int(m.group("mi") or 0), int(m.group("s") or 0),
            int(fraction) * 1000,
            tzinfo=timezone(timedelta(minutes=offset_min)),
        )
        delta = local - _EPOCH
    except (ValueError, OverflowError):
        return None
    epoch_ms = (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000
    if not 0 <= epoch_ms <= MAX_DATE_MS:
        return None
    return ParsedTime(epoch_ms=epoch_ms, utc_offset_min=offset_min)


def format_utc_ms(epoch_ms: int) -> str:
    """Format epoch milliseconds as ``YYYY-MM-DDTHH:mm:ss.SSSZ`` (moment's toISOString).

    Raises:
        ValueError: the instant is outside years 1970..9999.
    """
    if not 0 <= epoch_ms <= MAX_DATE_MS:
        raise ValueError(f"epoch ms out of range: {epoch_ms}")
    instant = _EPOCH + timedelta(milliseconds=epoch_ms)
    return instant.strftime("%Y-%m-%dT%H:%M:%S.") + f"{instant.microsecond // 1000:03d}Z"


def _offset_minutes(tz: str | None) -> int | None:
    """Return the offset in minutes of ``Z``, ``+01``, ``+0100`` or ``+01:00``; None if invalid."""
    if tz is None or tz in ("Z", "z"):
        return 0
    sign = -1 if tz[0] == "-" else 1
    digits = tz[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:] or 0)
    if hours > 23 or minutes > 59:
        return None
    return sign * (hours * 60 + minutes)
