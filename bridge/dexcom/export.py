"""Records as plain dicts with the field names of ``bridge dump``. Layer: dexcom, pure.

One place defines the names other tools rely on (``bridge dump --format json|csv``, the
emulator's ``--truth`` file). Values are as stored: raw receiver seconds, the raw glucose
value (a special code stays its code), raw event values. ``utc`` is added by the caller,
from the clock rule, because it depends on the receiver's anchor.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from bridge.records import (
    CalibrationRecord,
    EGVRecord,
    InsertionRecord,
    MeterRecord,
    Record,
    RecordType,
    SensorRecord,
    UserEventRecord,
    UserSettingsRecord,
)

__all__ = ["DUMP_KINDS", "DUMP_RECORD_TYPES", "FIELDS", "record_to_dict"]

#: ``bridge dump --type`` names and the record class each selects.
DUMP_KINDS: dict[str, type[Record]] = {
    "egv": EGVRecord,
    "sensor": SensorRecord,
    "meter": MeterRecord,
    "cal": CalibrationRecord,
    "insertion": InsertionRecord,
    "event": UserEventRecord,
    "settings": UserSettingsRecord,
}

#: The partition each dump kind is read from.
DUMP_RECORD_TYPES: dict[str, RecordType] = {
    "egv": RecordType.EGV_DATA,
    "sensor": RecordType.SENSOR_DATA,
    "meter": RecordType.METER_DATA,
    "cal": RecordType.CAL_SET,
    "insertion": RecordType.INSERTION_TIME,
    "event": RecordType.USER_EVENT_DATA,
    "settings": RecordType.USER_SETTING_DATA,
}

_COMMON = ["type", "system_seconds", "display_seconds"]

#: Columns per kind, in output order (``utc`` is inserted after display_seconds by the caller).
FIELDS: dict[str, list[str]] = {
    "egv": [*_COMMON, "glucose", "display_only", "special", "trend", "direction", "noise"],
    "sensor": [*_COMMON, "unfiltered", "filtered", "rssi"],
    "meter": [*_COMMON, "meter_glucose", "meter_seconds"],
    "insertion": [*_COMMON, "insertion_seconds", "state"],
    "event": [*_COMMON, "event_type", "event_subtype", "event_seconds", "value"],
    "cal": [*_COMMON, "slope", "intercept", "scale", "decay", "subrecords"],
    "settings": [
        *_COMMON, "system_offset", "display_offset", "transmitter_id", "enable_flags", "high_alarm",
        "high_snooze", "low_alarm", "low_snooze", "rise_rate", "fall_rate", "out_of_range_snooze",
        "language", "alarm_profile", "setup_state",
    ],
}


def record_to_dict(record: Record) -> dict[str, Any]:
    """The record's dump fields, in column order, JSON-ready.

    Raises:
        ValueError: the record has no dump kind (XML and opaque records).
    """
    kind = record.KIND
    if kind not in FIELDS:
        raise ValueError(f"{type(record).__name__} records are not dumped")
    values: dict[str, Any] = {"type": kind}
    for name in FIELDS[kind][1:]:
        if name == "subrecords":
            values[name] = [asdict(s) for s in record.subrecords]  # type: ignore[union-attr]
        else:
            values[name] = getattr(record, name)
    return values
