"""`bridge tail`: follow glucose readings from the receiver, the store or a Nightscout site. Layer: app.

Two halves. The formatting half is pure: :class:`Reading` (one glucose value, whatever its
source), :func:`format_line` and :class:`TailView` turn readings into text lines (local time,
value, arrow, delta, age, a sparkline of the last 3 hours), styled with :func:`click.style`
by range; the CLI echoes them with click's own TTY detection, so a pipe gets plain text.
Special values (PROTOCOL.md §6.1) are shown as their display code and meaning, never as a
number that could pass for glucose.

The sources are generators of batches (:func:`receiver_batches`, :func:`store_batches`,
:func:`nightscout_batches`): the first batch is the recent history, each later one the
readings that arrived since. They wait through an injected ``sleep``, so tests never sleep.
Imports the app, store and nightscout packages and ``bridge.records``; never the emulator
or the server, and never prints.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, Literal

import click

from bridge.app.diagnostics import dump_records
from bridge.app.session import open_receiver
from bridge.app.sync import make_client
from bridge.config import Settings
from bridge.dexcom import Receiver
from bridge.errors import ConfigError, ReceiverError, UploadUnavailableError
from bridge.nightscout.client import NightscoutClient
from bridge.records import DIRECTIONS, EGVRecord, StampedRecord
from bridge.store import Outbox

__all__ = [
    "ARROWS",
    "SPECIAL_DISPLAY",
    "Reading",
    "Source",
    "TailView",
    "Units",
    "choose_source",
    "format_line",
    "nightscout_batches",
    "reading_from_entry",
    "reading_from_row",
    "reading_from_stamped",
    "receiver_batches",
    "sparkline",
    "store_batches",
    "tail",
    "tail_lines",
]

log = logging.getLogger(__name__)

Units = Literal["mgdl", "mmol"]
Source = Literal["receiver", "store", "nightscout"]

LOW_MGDL = 70  # below: red
HIGH_MGDL = 180  # above: yellow
NS_ERROR_BELOW = 39  # Nightscout: sgv below this is an error code, 39 is "LOW"
LOW_READING_MGDL = 39  # shown as LOW
HIGH_READING_MGDL = 401  # and above: shown as HIGH (the G4 reads 40-400)
MMOL_PER_MGDL = 1 / 18.0
SPARK_BLOCKS = "▁▂▃▄▅▆▇█"
SPARK_MIN_MGDL, SPARK_MAX_MGDL = 40, 400
SPARK_WINDOW = timedelta(hours=3)
SPARK_WIDTH = 36  # characters at most: 3 hours of 5-minute readings
DELTA_MAX_GAP = timedelta(minutes=15)  # no delta across a longer gap (three missed readings)
STORE_WINDOW_S = 4 * 3600  # system seconds of history tried first before reading the whole store
FOLLOW_FETCH = 12  # entries per poll of a Nightscout site
DEFAULT_POLL_S: dict[str, float] = {"receiver": 15.0, "store": 5.0, "nightscout": 30.0}

#: Display code and meaning of each special glucose value (android-uploader, PROTOCOL.md §6.1).
SPECIAL_DISPLAY: dict[int, tuple[str, str]] = {
    0: ("??0", "no reading"),
    1: ("?SN", "sensor not active"),
    2: ("??2", "minimal deviation"),
    3: ("?NA", "no antenna"),
    5: ("?NC", "sensor not calibrated"),
    6: ("?CD", "counts deviation"),
    9: ("?AD", "absolute deviation"),
    10: ("???", "power deviation"),
    12: ("?RF", "bad RF"),
}

#: Nightscout's arrows by trend index (its direction.js); unknown trends 10-15 get none.
ARROWS: dict[int, str] = {
    0: "⇼", 1: "⇈", 2: "↑", 3: "↗", 4: "→", 5: "↘", 6: "↓", 7: "⇊", 8: "-", 9: "⇕",
}
_TREND_OF_DIRECTION = {name.upper(): trend for trend, name in DIRECTIONS.items()} | {"OUT OF RANGE": 9}


@dataclass(frozen=True, slots=True)
class Reading:
    """One glucose value from any source.

    Attributes:
        utc: when it was recorded (aware UTC).
        glucose: mg/dL, or a special code below 39 (receiver ≤ 12, Nightscout error codes).
        trend: trend index 0-9 (PROTOCOL.md §6.2); 10-15 kept as they are.
        display_only: a recomputed duplicate the receiver wrote after a calibration.
    """

    utc: datetime
    glucose: int
    trend: int = 0
    display_only: bool = False

    @property
    def special(self) -> str | None:
        """``"?NC sensor not calibrated"`` for a special value; None for a reading."""
        if self.glucose >= NS_ERROR_BELOW:
            return None
        code, meaning = SPECIAL_DISPLAY.get(self.glucose, (f"?{self.glucose}", "unknown error code"))
        return f"{code} {meaning}"

    @property
    def number(self) -> int | None:
        """The mg/dL value when it is a number in the sensor's range (40-400), else None."""
        return self.glucose if LOW_READING_MGDL < self.glucose < HIGH_READING_MGDL else None


def reading_from_row(row: Mapping[str, Any]) -> Reading:
    """A Reading from an EGV row of :func:`bridge.app.dump_records`."""
    utc = datetime.fromisoformat(str(row["utc"]).replace("Z", "+00:00"))
    return Reading(utc, int(row["glucose"]), int(row["trend"]), bool(row["display_only"]))


def reading_from_stamped(item: StampedRecord) -> Reading | None:
    """A Reading from a stored record; None for anything but an EGV."""
    rec = item.record
    if not isinstance(rec, EGVRecord):
        return None
    return Reading(item.utc, rec.glucose, rec.trend, rec.display_only)


def reading_from_entry(doc: Mapping[str, Any]) -> Reading | None:
    """A Reading from a Nightscout sgv entry; None when it has no numeric sgv or date.

    ``direction`` gives the trend (``trend`` when it is missing); an sgv below 39 is one of
    Nightscout's error codes and stays a special value.
    """
    sgv, date = doc.get("sgv"), doc.get("date")
    if isinstance(sgv, bool) or not isinstance(sgv, int | float):
        return None
    if isinstance(date, bool) or not isinstance(date, int | float):
        return None
    direction = doc.get("direction")
    trend = _TREND_OF_DIRECTION.get(direction.upper()) if isinstance(direction, str) else None
    if trend is None:
        raw = doc.get("trend")
        trend = raw if isinstance(raw, int) and not isinstance(raw, bool) and 0 <= raw <= 15 else 0
    return Reading(datetime.fromtimestamp(date / 1000, UTC).replace(microsecond=0), round(sgv), trend)


# --- formatting (pure) ---------------------------------------------------------------------


def sparkline(values: Sequence[int | None]) -> str:
    """One block per value, scaled 40-400 mg/dL in eight equal steps; None is a gap."""
    span = SPARK_MAX_MGDL - SPARK_MIN_MGDL
    out = []
    for value in values:
        if value is None:
            out.append(" ")
            continue
        clamped = min(max(value, SPARK_MIN_MGDL), SPARK_MAX_MGDL)
        out.append(SPARK_BLOCKS[min(len(SPARK_BLOCKS) - 1, (clamped - SPARK_MIN_MGDL) * len(SPARK_BLOCKS) // span)])
    return "".join(out)


def _spark_value(reading: Reading) -> int | None:
    return None if reading.special is not None else reading.glucose


def _value_text(reading: Reading, units: Units) -> str:
    if reading.special is not None:
        return reading.special
    if reading.glucose <= LOW_READING_MGDL:
        return "LOW"
    if reading.glucose >= HIGH_READING_MGDL:
        return "HIGH"
    if units == "mmol":
        return f"{reading.glucose * MMOL_PER_MGDL:4.1f} mmol/L"
    return f"{reading.glucose:3d} mg/dL"


def _colour(reading: Reading) -> str | None:
    if reading.special is not None:
        return None
    if reading.glucose < LOW_MGDL:
        return "red"
    if reading.glucose > HIGH_MGDL:
        return "yellow"
    return "green"


def _delta_text(reading: Reading, previous: Reading | None, units: Units) -> str:
    if previous is None or reading.number is None or previous.number is None:
        return ""
    if reading.utc - previous.utc > DELTA_MAX_GAP:
        return ""
    delta = reading.number - previous.number
    if units == "mmol":
        return "±0.0" if delta == 0 else f"{delta * MMOL_PER_MGDL:+.1f}"
    return "±0" if delta == 0 else f"{delta:+d}"


def _age_text(utc: datetime, now: datetime) -> str:
    minutes = max(0, int((now - utc).total_seconds() // 60))
    if minutes < 120:
        return f"{minutes} min ago"
    if minutes < 48 * 60:
        return f"{minutes // 60} h ago"
    return f"{minutes // (24 * 60)} d ago"


def _time_text(utc: datetime, now: datetime, tz: tzinfo | None) -> str:
    local, today = utc.astimezone(tz), now.astimezone(tz)
    return local.strftime("%H:%M" if local.date() == today.date() else "%Y-%m-%d %H:%M")


def format_line(
    reading: Reading,
    *,
    previous: Reading | None = None,
    history: Sequence[Reading] = (),
    now: datetime,
    units: Units = "mgdl",
    tz: tzinfo | None = None,
) -> str:
    """One reading as a line, styled by range (ANSI codes; click strips them off a TTY).

    ``14:05    123 mg/dL ↗     +4   2 min ago  ▄▄▅▅`` (no trailing blanks)

    Args:
        reading: the reading to show.
        previous: the reading shown before it (for the delta).
        history: the readings before it for the sparkline (those within 3 hours count).
        now: the current time, for the age.
        units: ``mgdl`` or ``mmol`` (mg/dL / 18, one decimal).
        tz: the zone of the time shown; None: the host's local zone.
    """
    value = _value_text(reading, units)
    if reading.special is None:
        arrow = ARROWS.get(reading.trend, " ")
        value = click.style(f"{value:>11}", fg=_colour(reading), bold=True) + f" {arrow}"
    else:
        value = click.style(f"{value:<13}", bold=True)
    window = [r for r in history if reading.utc - SPARK_WINDOW < r.utc < reading.utc][-(SPARK_WIDTH - 1) :]
    spark = sparkline([_spark_value(r) for r in [*window, reading]])
    delta = _delta_text(reading, previous, units)
    return (f"{_time_text(reading.utc, now, tz):>5}  {value}  {delta:>5}  "
            f"{_age_text(reading.utc, now):>10}  {spark}").rstrip()


class TailView:
    """Turns readings, oldest first, into lines: skips display-only and already shown ones.

    Args:
        units: ``mgdl`` or ``mmol``.
        tz: the zone of the times shown; None: the host's local zone.
    """

    def __init__(self, units: Units = "mgdl", *, tz: tzinfo | None = None) -> None:
        self.units: Units = units
        self.tz = tz
        self._history: deque[Reading] = deque(maxlen=SPARK_WIDTH)

    def add(self, reading: Reading, now: datetime) -> str | None:
        """The line for a new reading, or None when it is not shown (display only, seen)."""
        if reading.display_only:
            return None
        previous = self._history[-1] if self._history else None
        if previous is not None and reading.utc <= previous.utc:
            return None
        line = format_line(reading, previous=previous, history=list(self._history), now=now,
                           units=self.units, tz=self.tz)
        self._history.append(reading)
        return line


def tail_lines(
    batches: Iterable[list[Reading]],
    *,
    count: int,
    now: Callable[[], datetime],
    units: Units = "mgdl",
    tz: tzinfo | None = None,
) -> Iterator[str]:
    """Lines for batches from a source: the last ``count`` of the first, then all new ones."""
    view = TailView(units, tz=tz)
    first = True
    for batch in batches:
        lines = [line for r in batch if (line := view.add(r, now())) is not None]
        if first:
            lines, first = (lines[-count:] if count > 0 else []), False
        yield from lines


# --- sources -------------------------------------------------------------------------------


def _backlog(count: int) -> int:
    """Records fetched at start: enough for ``count`` lines, a full sparkline and one delta."""
    return max(count, SPARK_WIDTH) + 4


class _Warner:
    """Logs a follower's recoverable error once until it changes or clears."""

    def __init__(self) -> None:
        self.last: str | None = None

    def __call__(self, what: str, exc: Exception | None) -> None:
        text = None if exc is None else f"{what}: {exc} (still trying)"
        if text is not None and text != self.last:
            log.warning("%s", text)
        self.last = text


def receiver_batches(
    receiver: Receiver, *, count: int, follow: bool, poll_s: float, sleep: Callable[[float], None],
) -> Iterator[list[Reading]]:
    """Recent EGV readings of the receiver, then (when following) each poll's new ones.

    A receiver error while following (an unplug) is logged and the poll repeated.
    """
    rows = dump_records(receiver, "egv", last=_backlog(count)).rows
    yield [reading_from_row(r) for r in rows]
    cursor: int | None = rows[-1]["system_seconds"] if rows else None
    warn = _Warner()
    while follow:
        sleep(poll_s)
        try:
            if cursor is None:
                rows = dump_records(receiver, "egv", last=_backlog(count)).rows
            else:
                rows = dump_records(receiver, "egv", since_system=cursor).rows
        except ReceiverError as exc:
            warn("receiver", exc)
            continue
        warn("receiver", None)
        if rows:
            cursor = rows[-1]["system_seconds"]
            yield [reading_from_row(r) for r in rows]


def _stored(outbox: Outbox, serial: str, newer_than: int | None) -> list[Reading]:
    found = (reading_from_stamped(s) for s in outbox.records(serial, "egv", newer_than=newer_than))
    return [r for r in found if r is not None]


def store_batches(
    outbox: Outbox,
    *,
    count: int,
    follow: bool,
    poll_s: float,
    sleep: Callable[[float], None],
    serial: str | None = None,
) -> Iterator[list[Reading]]:
    """Recent EGV readings in the store, then (when following) each poll's new ones.

    Args:
        outbox: the open store (the daemon writes it; this only reads).
        count: lines wanted from the history.
        follow: keep polling after the history.
        poll_s: seconds between polls.
        sleep: how to wait.
        serial: the receiver; default: the one with the newest record.
    """
    serial = serial or next(iter(outbox.serials()), None)
    need, backlog = _backlog(count), []
    cursor = None if serial is None else outbox.newest_system_seconds(serial, "egv")
    if serial is not None and cursor is not None:
        backlog = _stored(outbox, serial, cursor - STORE_WINDOW_S)
        if len(backlog) < need:
            backlog = _stored(outbox, serial, None)
    yield backlog[-need:]
    while follow:
        sleep(poll_s)
        if serial is None and (serial := next(iter(outbox.serials()), None)) is None:
            continue
        newest = outbox.newest_system_seconds(serial, "egv")
        if newest is None or (cursor is not None and newest <= cursor):
            continue
        fresh = _stored(outbox, serial, cursor)
        cursor = newest
        if fresh:
            yield fresh


def _entries(docs: Iterable[Mapping[str, Any]]) -> list[Reading]:
    return sorted((r for r in map(reading_from_entry, docs) if r is not None), key=lambda r: r.utc)


def nightscout_batches(
    client: NightscoutClient, *, count: int, follow: bool, poll_s: float, sleep: Callable[[float], None],
) -> Iterator[list[Reading]]:
    """The site's recent sgv entries (every device), then (when following) each poll's new ones.

    An unreachable site while following is logged and the poll repeated; refused
    credentials end the tail.
    """
    readings = _entries(client.latest_entries(_backlog(count)))
    yield readings
    last = readings[-1].utc if readings else None
    warn = _Warner()
    while follow:
        sleep(poll_s)
        try:
            docs = client.latest_entries(FOLLOW_FETCH)
        except UploadUnavailableError as exc:
            warn("nightscout", exc)
            continue
        warn("nightscout", None)
        fresh = [r for r in _entries(docs) if last is None or r.utc > last]
        if fresh:
            last = fresh[-1].utc
            yield fresh


# --- wiring --------------------------------------------------------------------------------


def choose_source(settings: Settings, *, device: str | None, nightscout_url: str | None) -> Source:
    """Which source `bridge tail` follows.

    ``--nightscout-url`` → the site; ``--device`` → the receiver; neither → the store when
    one exists in the state directory (the daemon owns the receiver), else the receiver.

    Raises:
        ConfigError: both were given.
    """
    if device and nightscout_url:
        raise ConfigError("give --device or --nightscout-url, not both",
                          hint="tail follows one source: the receiver, a Nightscout site, or the store")
    if nightscout_url:
        return "nightscout"
    if device:
        return "receiver"
    return "store" if settings.store_path.is_file() else "receiver"


def tail(
    settings: Settings,
    source: Source,
    *,
    count: int,
    follow: bool,
    sleep: Callable[[float], None],
    now: Callable[[], datetime],
    units: Units = "mgdl",
    poll_s: float | None = None,
    tz: tzinfo | None = None,
) -> Generator[str, None, None]:
    """Open the source and yield its lines until it ends (``follow=False``) or is closed.

    Args:
        settings: the resolved settings (device, state directory, the one destination).
        source: what to follow (:func:`choose_source`).
        count: lines of history shown first.
        follow: keep following new readings.
        sleep: how to wait between polls.
        now: the current UTC time.
        units: ``mgdl`` or ``mmol``.
        poll_s: seconds between polls; default per source (receiver 15, store 5, site 30).
        tz: the zone of the times shown; None: the host's local zone.

    Raises:
        ConfigError: no Nightscout site, or no credentials for it.
        ReceiverError: the receiver could not be opened or read.
        StoreError: the store could not be read.
        UploadError: the site refused the credentials or could not be reached at start.
    """
    poll = DEFAULT_POLL_S[source] if poll_s is None else poll_s
    with ExitStack() as stack:
        batches: Iterator[list[Reading]]
        if source == "receiver":
            receiver = stack.enter_context(open_receiver(settings.device))
            batches = receiver_batches(receiver, count=count, follow=follow, poll_s=poll, sleep=sleep)
        elif source == "store":
            outbox = stack.enter_context(Outbox.open(settings.store_path))
            batches = store_batches(outbox, count=count, follow=follow, poll_s=poll, sleep=sleep)
        else:
            if not settings.destinations:
                raise ConfigError("no Nightscout site to follow", hint="pass --nightscout-url https://your-site")
            client = stack.enter_context(make_client(settings.destinations[0], settings))
            batches = nightscout_batches(client, count=count, follow=follow, poll_s=poll, sleep=sleep)
        yield from tail_lines(batches, count=count, now=now, units=units, tz=tz)
