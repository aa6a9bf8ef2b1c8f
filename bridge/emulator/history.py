"""A plausible receiver history: glucose days, sensor sessions, calibrations and events.

Layer: emulator. Imports :mod:`bridge.records` and the standard library only; never a port,
never the clock (the caller passes every time in, so a seeded run is repeatable).

:class:`HistoryGenerator` is a small simulation stepped once per reading: :meth:`step` returns
every record the receiver writes up to and including that reading, in write order. The same
generator builds the history (every 300 s) and then produces the live readings.

What it models (PROTOCOL.md §5, §6):

* glucose: a day/night baseline with a dawn rise, meals (carbs + insulin events) with a
  rise-and-fall curve, exercise dips, an occasional low, and autocorrelated noise;
* sensor sessions of 7 days: STARTED, a 2 h warm-up without readings, a few
  SENSOR_NOT_CALIBRATED (5, trend 8) readings, a start-up calibration with two meter
  values, then EXPIRED (or an early REMOVED) and a short gap before the next sensor;
* raw values consistent with the calibration: ``filtered = slope * glucose + intercept``,
  ``unfiltered`` within a few percent of it; the Sensor record 1 s before its EGV;
* two fingerstick calibrations a day: a Meter record (BG taken 30 s earlier), a CalSet
  whose subrecords are the session's latest meter values (rev 2: <= 6, rev 3: <= 11), and a
  display-only EGV duplicate (bit 15) of the last reading, recomputed with the new
  calibration;
* occasional other special values and missed readings.
"""

from __future__ import annotations

import heapq
import math
import random
import uuid
from collections import deque
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from bridge.records import (
    CalibrationRecord,
    CalibrationSubrecord,
    EGVRecord,
    InsertionRecord,
    MeterRecord,
    Record,
    RecordType,
    SensorRecord,
    UserEventRecord,
    UserSettingsRecord,
    XMLRecord,
)

__all__ = [
    "HISTORY_INTERVAL_S",
    "HistoryGenerator",
    "Identity",
    "encode_transmitter_id",
    "make_identity",
]

HISTORY_INTERVAL_S = 300  # a G4 reading every 5 minutes
SESSION_S = 7 * 86400
WARMUP_S = 2 * 3600
MAX_RATE_MGDL_PER_MIN = 3.5  # beyond the G4's fastest arrow (> 3 mg/dL/min)
UNCALIBRATED_READINGS = 2  # SENSOR_NOT_CALIBRATED readings before the start-up calibration
SENSOR_BEFORE_EGV_S = 1
METER_BEFORE_RECORD_S = 30
NO_TIME = 0xFFFFFFFF
SPECIAL_NOT_CALIBRATED = 5
OTHER_SPECIALS = (9, 6, 12, 10, 3)  # ABSOLUTE/COUNTS/POWER deviation, BAD_RF, NO_ANTENNA
TREND_NONE, TREND_NOT_COMPUTABLE = 0, 8
MIN_EGV, MAX_EGV = 40, 400
SUBRECORD_LEN = 17
TRANSMITTER_ALPHABET = "0123456789ABCDEFGHJKLMNPQRSTUWXY"
DEXCOM_EPOCH = datetime(2009, 1, 1, tzinfo=UTC)

# insertion states (PROTOCOL.md §5.4)
REMOVED, EXPIRED, STARTED = 1, 2, 7
# user event types
CARBS, INSULIN, HEALTH, EXERCISE = 1, 2, 3, 4


@dataclass(frozen=True, slots=True)
class Identity:
    """Who the emulated receiver is."""

    serial: str
    transmitter_id: str
    hardware_id: str
    receiver_id: str
    manufactured_s: int  # system seconds of the manufacturing record


def make_identity(rng: random.Random, *, serial: str | None, manufactured_s: int) -> Identity:
    """Draw a serial number, transmitter id and GUIDs (``serial`` overrides the drawn one)."""
    drawn = "SM" + "".join(rng.choice("0123456789") for _ in range(8))
    tx = "".join(rng.choice(TRANSMITTER_ALPHABET) for _ in range(5))
    hw = str(uuid.UUID(int=rng.getrandbits(128))).upper()
    rid = str(uuid.UUID(int=rng.getrandbits(128))).upper()
    return Identity(serial or drawn, tx, hw, rid, manufactured_s)


def encode_transmitter_id(tx: str) -> int:
    """The u32 form of a transmitter id in user settings records (5 bits per character)."""
    value = 0
    for char in tx.upper():
        value = (value << 5) | max(TRANSMITTER_ALPHABET.find(char), 0)
    return value


def _xml_time(system_s: int) -> str:
    local = DEXCOM_EPOCH + timedelta(seconds=system_s) - timedelta(hours=8)
    return local.strftime("%Y-%m-%d %H:%M:%S.") + f"{system_s % 1000:03d} -08:00"


@dataclass(slots=True)
class _Calibration:
    slope: float
    intercept: float
    scale: float = 1.0
    decay: float = 0.0


@dataclass(frozen=True, slots=True)
class _Meal:
    at_s: int
    carbs: int


class HistoryGenerator:
    """Stateful generator of receiver records, stepped once per reading.

    Args:
        rng: the source of every random draw (seed it for a repeatable history).
        identity: serial number and transmitter id.
        start_s: system seconds where the history starts (first reading at or after it).
        display_offset: display time minus system time, seconds.
        system_offset: system time minus RTC, seconds (stored in settings records).
        calset_rev: CalSet revision: 2 holds up to 6 subrecords, 3 up to 11.
    """

    def __init__(
        self, rng: random.Random, identity: Identity, *, start_s: int, display_offset: int,
        system_offset: int, calset_rev: int = 2,
    ) -> None:
        self._rng = rng
        self.identity = identity
        self.display_offset = display_offset
        self.system_offset = system_offset
        self._slots = 6 if calset_rev <= 2 else 11
        self._agenda: list[tuple[int, int, str, int]] = []  # (time, seq, kind, value)
        self._seq = 0
        self._planned_days: set[int] = set()
        self._meals: list[_Meal] = []
        self._last_true: tuple[int, float] | None = None
        self._dips: list[tuple[int, float]] = []
        self._drift = 0.0
        self._drift_t = start_s
        self._last_t = start_s
        self._recent: deque[tuple[int, int]] = deque()  # (system s, egv) of real readings
        self._last_egv: EGVRecord | None = None
        self._last_filtered = 0
        self._subs: list[CalibrationSubrecord] = []
        self._phase = "active"
        self._uncalibrated_left = 0
        # the current sensor started 1-3 days before the history; its STARTED record is kept
        self._session_start = start_s - rng.randint(86400, 3 * 86400)
        self._sensor = self._new_sensor()
        self._cal = self._estimate(self._sensor)
        self._schedule(self._session_start + self._session_length(), "end", 0)

    # ------------------------------------------------------------------ public

    def initial_records(self) -> list[Record]:
        """Records older than the history: XML records, first settings, current sensor start."""
        ident = self.identity
        made = ident.manufactured_s
        manufacturing = (
            f'<ManufacturingParameters SerialNumber="{ident.serial}" HardwarePartNumber="MD1060-MT20649" '
            f'HardwareRevision="14" DateTimeCreated="{_xml_time(made)}" HardwareId="{{{ident.hardware_id}}}" />'
        )
        pc = (
            f'<PCParameterRecord ReceiverId="{{{ident.receiver_id}}}" FirmwareImageId="" '
            f'DateTimeCreated="{_xml_time(made + 1)}" Nickname="{ident.serial}" />'
        )
        start = self._session_start
        return [
            XMLRecord(RecordType.MANUFACTURING_DATA, made, made + self.display_offset, manufacturing),
            XMLRecord(RecordType.PC_SOFTWARE_PARAMETER, made + 1, made + 1 + self.display_offset, pc),
            self.settings_record(start - 60),
            InsertionRecord(start, start + self.display_offset, start, STARTED),
        ]

    def settings_record(self, system_s: int) -> UserSettingsRecord:
        """A snapshot of the (fixed) user settings with the current clock offsets."""
        return UserSettingsRecord(
            system_s, system_s + self.display_offset, self.system_offset, self.display_offset,
            encode_transmitter_id(self.identity.transmitter_id),
            0x10 | 0x20 | 0x40 | 0x80 | 0x100,  # low, high, rise, fall and out-of-range alarms
            200, 0, 70, 30, 3, 3, 30, 1033, 3, 1,
        )

    def step(self, t: int) -> list[Record]:
        """Every record written after the previous step up to the reading at system time ``t``."""
        out: list[Record] = []
        self._plan_days(self._last_t, t)
        while self._agenda and self._agenda[0][0] <= t:
            at, _, kind, value = heapq.heappop(self._agenda)
            out.extend(self._event(at, kind, value))
        out.extend(self._reading(t))
        self._last_t = t
        return out

    # ------------------------------------------------------------------ planning

    def _schedule(self, at: int, kind: str, value: int) -> None:
        self._seq += 1
        heapq.heappush(self._agenda, (at, self._seq, kind, value))

    def _session_length(self) -> int:
        if self._rng.random() < 0.25:  # removed early
            return SESSION_S - self._rng.randint(3600, 36 * 3600)
        return SESSION_S

    def _plan_days(self, since: int, until: int) -> None:
        first = (since + self.display_offset) // 86400
        last = (until + self.display_offset) // 86400
        for day in range(first, last + 1):
            if day not in self._planned_days:
                self._planned_days.add(day)
                self._plan_day(day * 86400 - self.display_offset)

    def _plan_day(self, midnight: int) -> None:
        """Meals, calibrations, exercise and the odd health event of one local day."""
        rng = self._rng
        for lo, hi, cmin, cmax in ((6.5, 8.5, 25, 60), (11.5, 13.5, 35, 80), (18.0, 20.0, 45, 95)):
            if rng.random() < 0.93:
                self._schedule(midnight + int(rng.uniform(lo, hi) * 3600), "meal", rng.randint(cmin, cmax))
        if rng.random() < 0.4:
            self._schedule(midnight + int(rng.uniform(15, 16.5) * 3600), "meal", rng.randint(10, 30))
        for lo, hi in ((6.8, 8.0), (18.5, 20.5)):
            if rng.random() < 0.92:
                self._schedule(midnight + int(rng.uniform(lo, hi) * 3600), "cal", 0)
        if rng.random() < 0.35:
            self._schedule(midnight + int(rng.uniform(16.5, 18) * 3600), "exercise", rng.randint(20, 75))
        if rng.random() < 0.1:
            self._schedule(midnight + int(rng.uniform(9, 21) * 3600), "health", rng.randint(1, 6))
        if rng.random() < 0.3:
            self._schedule(midnight + int(rng.uniform(0, 24) * 3600), "dip", rng.randint(40, 80))

    # ------------------------------------------------------------------ events

    def _event(self, at: int, kind: str, value: int) -> list[Record]:
        rng = self._rng
        disp = at + self.display_offset
        entered = (disp // 60) * 60
        if kind == "meal":
            self._meals.append(_Meal(at, value))
            out: list[Record] = [UserEventRecord(at + 90, disp + 90, CARBS, 0, entered, value)]
            if value >= 20:
                units = round(value / rng.uniform(8, 12) * 2) * 50  # 1/100 U in half units
                out.append(UserEventRecord(at + 120, disp + 120, INSULIN, 0, entered, units))
            return out
        if kind == "exercise":
            self._dips.append((at + value * 30, 25.0 * value / 60))
            return [UserEventRecord(at, disp, EXERCISE, rng.randint(1, 3), entered, value)]
        if kind == "health":
            return [UserEventRecord(at, disp, HEALTH, value, entered, 0)]
        if kind == "dip":
            self._dips.append((at, float(value)))
            return []
        if kind == "cal":
            return self._calibrate(at, 1) if self._phase == "active" else []
        if kind == "startup":
            return self._calibrate(at, 2)
        if kind == "end":
            return self._end_session(at)
        if kind == "start":
            return self._start_session(at)
        return []

    def _end_session(self, at: int) -> list[Record]:
        state = EXPIRED if at - self._session_start >= SESSION_S else REMOVED
        self._phase = "gap"
        self._schedule(at + self._rng.randint(600, 2400), "start", 0)
        return [InsertionRecord(at, at + self.display_offset, NO_TIME, state)]

    def _start_session(self, at: int) -> list[Record]:
        self._session_start = at
        self._phase = "warmup"
        self._sensor = self._new_sensor()
        self._subs = []
        self._recent.clear()
        self._uncalibrated_left = UNCALIBRATED_READINGS
        self._schedule(at + self._session_length(), "end", 0)
        return [
            InsertionRecord(at, at + self.display_offset, at, STARTED),
            self.settings_record(at + 5),
        ]

    def _calibrate(self, at: int, meters: int) -> list[Record]:
        """Meter record(s), a CalSet and a display-only duplicate of the last reading."""
        rng = self._rng
        out: list[Record] = []
        for i in range(meters):
            t = at + i * 75
            bg = max(MIN_EGV, round(self._true_glucose(t) * (1 + rng.gauss(0, 0.05))))
            taken = t - METER_BEFORE_RECORD_S
            out.append(MeterRecord(t, t + self.display_offset, bg, taken))
            raw = round(self._sensor.slope * self._true_glucose(taken) + self._sensor.intercept)
            self._subs.append(CalibrationSubrecord(taken, bg, raw, 0, 0))
        applied = at + (meters - 1) * 75 + 3
        self._subs = [replace(s, applied_seconds=s.applied_seconds or applied) for s in self._subs[-self._slots :]]
        self._cal = self._estimate(self._sensor)
        head = bytes([3, 6, rng.choice((0, 1, 3, 8))])
        out.append(CalibrationRecord(
            applied, applied + self.display_offset, self._cal.slope, self._cal.intercept, self._cal.scale,
            self._cal.decay, tuple(self._subs), head, (0.3, 0.6667) if self._slots > 6 else (),
            bytes((self._slots - len(self._subs)) * SUBRECORD_LEN),  # erased slots, as decoded
        ))
        if self._phase == "uncalibrated":
            self._phase = "active"
        elif (last := self._last_egv) is not None and last.glucose > SPECIAL_NOT_CALIBRATED:
            shift = rng.choice((0, 1))
            value = self._egv_value(self._last_filtered)
            flags = 0x80 if rng.random() < 0.5 else 0
            out.append(EGVRecord(
                last.system_seconds + shift, last.display_seconds + shift, value, True, last.trend, last.noise, flags,
            ))
        return out

    # ------------------------------------------------------------------ readings

    def _reading(self, t: int) -> list[Record]:
        rng = self._rng
        if self._phase == "gap":
            return []
        if self._phase == "warmup":
            if t - self._session_start < WARMUP_S:
                return []
            self._phase = "uncalibrated"
        if rng.random() < 0.004:  # a missed reading: no records at all
            return []
        glucose = self._true_glucose(t)
        filtered = round(self._sensor.slope * glucose + self._sensor.intercept)
        unfiltered = round(filtered * (1 + rng.gauss(0, 0.012)))
        ts = t - SENSOR_BEFORE_EGV_S
        sensor = SensorRecord(ts, ts + self.display_offset, unfiltered, filtered, rng.randint(150, 215))
        disp = t + self.display_offset
        if self._phase == "uncalibrated":
            egv = EGVRecord(t, disp, SPECIAL_NOT_CALIBRATED, False, TREND_NOT_COMPUTABLE, 0)
            self._uncalibrated_left -= 1
            if self._uncalibrated_left == 0:
                self._schedule(t + rng.randint(60, 240), "startup", 0)
        elif rng.random() < 0.004:
            egv = EGVRecord(t, disp, rng.choice(OTHER_SPECIALS), False, TREND_NONE, rng.choice((0, 5)))
        else:
            value = self._egv_value(filtered)
            egv = EGVRecord(t, disp, value, False, self._trend(t, value), self._noise())
            self._last_filtered = filtered
        self._last_egv = egv
        return [sensor, egv]

    def _egv_value(self, filtered: int) -> int:
        value = (filtered - self._cal.intercept) / self._cal.slope * self._cal.scale
        return min(MAX_EGV, max(MIN_EGV, round(value)))

    def _trend(self, t: int, value: int) -> int:
        recent = self._recent
        recent.append((t, value))
        while recent and t - recent[0][0] > 20 * 60:
            recent.popleft()
        then, old = recent[0]
        if t - then < 10 * 60:
            return TREND_NOT_COMPUTABLE
        rate = (value - old) / ((t - then) / 60)
        for limit, trend in ((3, 1), (2, 2), (1, 3), (-1, 4), (-2, 5), (-3, 6)):
            if rate > limit:
                return trend
        return 7

    def _noise(self) -> int:
        roll = self._rng.random()
        return 1 if roll < 0.88 else 2 if roll < 0.97 else 3

    def _true_glucose(self, t: int) -> float:
        """The simulated blood glucose at system time ``t`` (stateful noise: call in time order)."""
        hour = ((t + self.display_offset) % 86400) / 3600
        base = 112.0 + 12 * math.sin((hour - 10) / 24 * 2 * math.pi)
        if 3.5 <= hour <= 8.5:
            base += 22 * math.sin((hour - 3.5) / 5 * math.pi)  # dawn rise
        total = base
        self._meals = [m for m in self._meals if t - m.at_s < 6 * 3600]
        for meal in self._meals:
            x = (t - meal.at_s) / 3000  # peaks 50 min after the meal
            if x > 0:
                total += meal.carbs * 1.7 * x * math.exp(1 - x) - meal.carbs * 0.25 * max(0.0, x - 2)
        self._dips = [d for d in self._dips if t - d[0] < 4 * 3600]
        for at, depth in self._dips:
            x = (t - at) / 2400
            if x > 0:
                total -= depth * x * math.exp(1 - x)
        if t > self._drift_t:
            steps = (t - self._drift_t) / HISTORY_INTERVAL_S
            self._drift = self._drift * 0.96**steps + self._rng.gauss(0, 3.5) * math.sqrt(min(steps, 10.0))
            self._drift_t = t
        value = min(390.0, max(42.0, total + self._drift))
        if self._last_true is not None and t > self._last_true[0]:
            # blood glucose moves at most a few mg/dL a minute: keep the curve physiological
            then, before = self._last_true
            limit = MAX_RATE_MGDL_PER_MIN * (t - then) / 60
            value = min(before + limit, max(before - limit, value))
        if self._last_true is None or t >= self._last_true[0]:
            self._last_true = (t, value)
        return value

    def _new_sensor(self) -> _Calibration:
        return _Calibration(self._rng.uniform(650, 1000), self._rng.uniform(15000, 35000))

    def _estimate(self, sensor: _Calibration) -> _Calibration:
        rng = self._rng
        return _Calibration(
            round(sensor.slope * (1 + rng.gauss(0, 0.03)), 3),
            round(sensor.intercept * (1 + rng.gauss(0, 0.03)), 3),
            1.0,
            round(rng.uniform(0.0, 0.4), 4),
        )
