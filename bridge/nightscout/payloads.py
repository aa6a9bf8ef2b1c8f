"""Receiver records to Nightscout JSON documents. Layer: nightscout, pure.

The only module that builds Nightscout dicts (STYLE.md 3.2). Imports the standard library,
:mod:`bridge.records` and :func:`bridge.dexcom.clock.format_utc` only: no httpx, no clock, no
I/O.

Every time comes from :attr:`StampedRecord.utc`, the record's UTC fixed once by the store, so
every upload of a record carries byte-identical ``date``/``dateString`` (and ``created_at``)
and a re-upload hits Nightscout's ``{sysTime, type}`` (entries) or ``{created_at, eventType}``
(treatments) key exactly. Times in another receiver time domain are shifted from it:

* ``meter_seconds`` and ``insertion_seconds`` are system time: ``utc + (t - system_seconds)``;
* ``event_seconds`` is display time: ``utc + (t - display_seconds)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Literal

from bridge.dexcom.clock import format_utc
from bridge.records import (
    DIRECTIONS,
    CalibrationRecord,
    EGVRecord,
    InsertionRecord,
    MeterRecord,
    SensorRecord,
    StampedRecord,
    UserEventRecord,
)

__all__ = [
    "DEVICE_SCHEME",
    "EXERCISE_INTENSITIES",
    "HEALTH_EVENTS",
    "PAIR_WINDOW_S",
    "SpecialMode",
    "cal_to_entry",
    "device_name",
    "devicestatus",
    "egv_to_entry",
    "epoch_ms",
    "event_to_treatment",
    "insertion_to_treatment",
    "meter_to_entry",
    "pair_sensor",
]

#: Default ``device``: ``dexcom-bridge://<receiver serial>`` (what uploaded it, from which receiver).
DEVICE_SCHEME = "dexcom-bridge://"
#: A Sensor record belongs to the EGV written within this many seconds of it.
PAIR_WINDOW_S = 10

_UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

SpecialMode = Literal["codes", "skip"]

# User event types (PROTOCOL.md §5.7).
_CARBS, _INSULIN, _HEALTH, _EXERCISE = 1, 2, 3, 4
#: Health event subtypes as the G4 receiver names them.
HEALTH_EVENTS: dict[int, str] = {
    1: "Illness",
    2: "Stress",
    3: "High symptoms",
    4: "Low symptoms",
    5: "Cycle",
    6: "Alcohol",
}
#: Exercise subtypes (intensity).
EXERCISE_INTENSITIES: dict[int, str] = {1: "Light", 2: "Medium", 3: "Heavy"}

# Insertion states (records.INSERTION_STATES).
_REMOVED, _EXPIRED, _STARTED = 1, 2, 7


def device_name(serial: str, configured: str | None = None) -> str:
    """The ``device`` of every document: the configured name, else ``dexcom-bridge://<serial>``.

    It says what uploaded the data and from which receiver; the gap audit queries by it, so
    it should stay the same for a receiver.
    """
    if configured is not None and configured.strip():
        return configured.strip()
    return f"{DEVICE_SCHEME}{serial.strip() or 'unknown'}"


def epoch_ms(when: datetime) -> int:
    """Epoch milliseconds of an aware datetime (exact: no float rounding)."""
    delta = when - _UNIX_EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def _entry_time(when: datetime) -> dict[str, object]:
    return {"date": epoch_ms(when), "dateString": format_utc(when)}


def pair_sensor(
    egv: EGVRecord, sensors: Iterable[SensorRecord], window_s: int = PAIR_WINDOW_S
) -> SensorRecord | None:
    """The Sensor record nearest the EGV in system time, within ``window_s`` seconds.

    The receiver writes the raw values about a second before their EGV; ties go to the earlier
    record.
    """
    best: SensorRecord | None = None
    best_key: tuple[int, int] | None = None
    for sensor in sensors:
        gap = abs(sensor.system_seconds - egv.system_seconds)
        if gap > window_s:
            continue
        key = (gap, sensor.system_seconds)
        if best_key is None or key < best_key:
            best, best_key = sensor, key
    return best


def egv_to_entry(
    item: StampedRecord,
    sensor: SensorRecord | None,
    *,
    device: str,
    special: SpecialMode = "codes",
) -> dict[str, object] | None:
    """An ``sgv`` entry for an EGV record, or None when it is not uploaded as a reading.

    * Display-only records (recomputed duplicates after a calibration) → None.
    * Special values (glucose ≤ 12): with ``special="codes"`` the code itself goes up as
      ``sgv`` (Nightscout's ``errorcodes`` plugin shows values below 39 as ``?NC``, ``???``,
      ...), with ``noise`` and without ``direction``/``trend``; code 0 (no value at all) →
      None. With ``special="skip"`` → None.
    * A trend outside 0-9 gives no ``direction``/``trend``.
    * ``filtered``, ``unfiltered`` and ``rssi`` come from ``sensor`` (paired by the caller,
      :func:`pair_sensor`).

    Args:
        item: the stamped EGV record.
        sensor: its Sensor record, or None.
        device: the ``device`` field (:func:`device_name`).
        special: ``codes`` or ``skip``.

    Raises:
        TypeError: ``item`` does not hold an EGV record.
    """
    egv = item.record
    if not isinstance(egv, EGVRecord):
        raise TypeError(f"expected an EGV record, got {type(egv).__name__}")
    if egv.display_only:
        return None
    doc: dict[str, object] = {"type": "sgv", "sgv": egv.glucose}
    if egv.special is not None:
        if special == "skip" or egv.glucose == 0:
            return None
    elif (direction := DIRECTIONS.get(egv.trend)) is not None:
        doc["direction"] = direction
        doc["trend"] = egv.trend
    doc["noise"] = egv.noise
    doc.update(_entry_time(item.utc))
    doc["device"] = device
    if sensor is not None:
        doc["filtered"] = sensor.filtered
        doc["unfiltered"] = sensor.unfiltered
        doc["rssi"] = sensor.rssi
    return doc


def meter_to_entry(item: StampedRecord, *, device: str) -> dict[str, object]:
    """An ``mbg`` entry at the time the blood glucose was taken (``meter_seconds``).

    Raises:
        TypeError: ``item`` does not hold a Meter record.
    """
    meter = item.record
    if not isinstance(meter, MeterRecord):
        raise TypeError(f"expected a Meter record, got {type(meter).__name__}")
    taken = item.utc + timedelta(seconds=meter.meter_seconds - meter.system_seconds)
    return {"type": "mbg", "mbg": meter.meter_glucose, **_entry_time(taken), "device": device}


def cal_to_entry(item: StampedRecord, *, device: str) -> dict[str, object]:
    """A ``cal`` entry (``slope``, ``intercept``, ``scale``) at the calibration record's time.

    Raises:
        TypeError: ``item`` does not hold a Calibration record.
    """
    cal = item.record
    if not isinstance(cal, CalibrationRecord):
        raise TypeError(f"expected a Calibration record, got {type(cal).__name__}")
    return {
        "type": "cal",
        "slope": cal.slope,
        "intercept": cal.intercept,
        "scale": cal.scale,
        **_entry_time(item.utc),
        "device": device,
    }


def _treatment(event_type: str, when: datetime, device: str, **fields: object) -> dict[str, object]:
    return {"eventType": event_type, "created_at": format_utc(when), **fields, "enteredBy": device}


def event_to_treatment(item: StampedRecord, *, device: str) -> dict[str, object] | None:
    """A treatment for a user event, at the event's time; None for events with nothing to say.

    * carbs → ``Carb Correction`` with ``carbs`` in grams;
    * insulin → ``Correction Bolus`` with ``insulin`` in units (the receiver stores 1/100 U);
    * exercise → ``Exercise`` with ``duration`` in minutes and the intensity in ``notes``;
    * health → ``Note`` with ``notes`` naming the subtype.

    Carbs or insulin of zero, and unknown event types, give None (Nightscout drops zero
    amounts, leaving an empty treatment).

    Raises:
        TypeError: ``item`` does not hold a user event record.
    """
    event = item.record
    if not isinstance(event, UserEventRecord):
        raise TypeError(f"expected a user event record, got {type(event).__name__}")
    when = item.utc + timedelta(seconds=event.event_seconds - event.display_seconds)
    if event.event_type == _CARBS:
        return _treatment("Carb Correction", when, device, carbs=event.value) if event.value > 0 else None
    if event.event_type == _INSULIN:
        return _treatment("Correction Bolus", when, device, insulin=event.value / 100) if event.value > 0 else None
    if event.event_type == _EXERCISE:
        intensity = EXERCISE_INTENSITIES.get(event.event_subtype, f"subtype {event.event_subtype}")
        return _treatment("Exercise", when, device, duration=event.value, notes=f"Exercise: {intensity}")
    if event.event_type == _HEALTH:
        health = HEALTH_EVENTS.get(event.event_subtype, f"subtype {event.event_subtype}")
        return _treatment("Note", when, device, notes=f"Health: {health}")
    return None


def insertion_to_treatment(item: StampedRecord, *, device: str) -> dict[str, object] | None:
    """A sensor session treatment for an insertion record; None for other session states.

    STARTED gives ``Sensor Start`` at the insertion time (system domain); REMOVED and EXPIRED
    give ``Sensor Stop`` at the record's time.

    Raises:
        TypeError: ``item`` does not hold an insertion record.
    """
    ins = item.record
    if not isinstance(ins, InsertionRecord):
        raise TypeError(f"expected an insertion record, got {type(ins).__name__}")
    if ins.state == _STARTED:
        when = item.utc
        if ins.has_insertion_time:
            when += timedelta(seconds=ins.insertion_seconds - ins.system_seconds)
        return _treatment("Sensor Start", when, device)
    if ins.state in (_REMOVED, _EXPIRED):
        reason = "removed" if ins.state == _REMOVED else "expired"
        return _treatment("Sensor Stop", item.utc, device, notes=f"Sensor {reason}")
    return None


def devicestatus(
    *,
    device: str,
    receiver_name: str,
    battery: int | None,
    bridge_health: Mapping[str, object],
    created_at: datetime,
) -> dict[str, object]:
    """A devicestatus document: the receiver's battery and the bridge's health.

    Nightscout's uploader-battery pill reads ``uploader.battery`` (NIGHTSCOUT_API.md §4.2);
    the Pi has no battery, so the receiver's goes there, with ``uploader.name`` naming the
    receiver. An unknown battery is left out (the pill hides) rather than faked.

    Args:
        device: the ``device`` field (:func:`device_name`).
        receiver_name: names the receiver, e.g. ``Dexcom G4 SM12345678``.
        battery: receiver battery percent, or None when unknown.
        bridge_health: the bridge's own state (last read, last upload, backlog, last error).
        created_at: when the status was taken (aware).
    """
    uploader: dict[str, object] = {"name": receiver_name, "type": "RECEIVER"}
    if battery is not None:
        uploader["battery"] = battery
    return {
        "device": device,
        "created_at": format_utc(created_at),
        "uploader": uploader,
        "bridge": dict(bridge_health),
    }
