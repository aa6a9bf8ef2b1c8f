"""Record factories and clock rules shared by the store tests."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

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

SERIAL = "SM12345678"
DEXCOM_EPOCH = datetime(2009, 1, 1, tzinfo=UTC)
NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
#: system seconds that map to about NOW with offset 0
BASE_S = int((NOW - DEXCOM_EPOCH).total_seconds()) - 86_400


def rule(offset_s: int) -> Callable[[int], datetime]:
    """The clock-anchor rule with a given anchor, as the app passes it."""
    return lambda s: DEXCOM_EPOCH + timedelta(seconds=s + offset_s)


def egv(t: int, glucose: int = 120, *, display_only: bool = False) -> EGVRecord:
    return EGVRecord(t, t - 3600, glucose, display_only, 4, 1)


def sensor(t: int, raw: int = 150_000) -> SensorRecord:
    return SensorRecord(t, t - 3600, raw, raw - 1000, -60)


def meter(t: int) -> MeterRecord:
    return MeterRecord(t, t - 3600, 105, t - 30)


def insertion(t: int) -> InsertionRecord:
    return InsertionRecord(t, t - 3600, t - 10, 7)


def cal(t: int) -> CalibrationRecord:
    subs = (
        CalibrationSubrecord(t - 100, 110, 140_000, t - 90, 0),
        CalibrationSubrecord(t - 50, 98, 130_000, t - 40, 1),
    )
    return CalibrationRecord(t, t - 3600, 850.5, 30_000.25, 0.9, 1.0, subs, b"\x03\x06\x00", (1.5, -2.25), b"\x00" * 12)


def event(t: int) -> UserEventRecord:
    return UserEventRecord(t, t - 3600, 1, 0, t - 3600, 45)


def settings(t: int) -> UserSettingsRecord:
    return UserSettingsRecord(t, t - 3600, 1000, -3600, 123456, 3, 200, 30, 70, 30, 2, 2, 30, 1033, 1, 7)


def xml(t: int) -> XMLRecord:
    return XMLRecord(0, t, t - 3600, '<ManufacturingParameters SerialNumber="SM12345678" />')


def opaque(t: int) -> OpaqueRecord:
    return OpaqueRecord(6, t, t - 3600, bytes(range(20)))


ALL_FACTORIES: dict[str, Callable[[int], Record]] = {
    "egv": egv,
    "sensor": sensor,
    "meter": meter,
    "insertion": insertion,
    "cal": cal,
    "event": event,
    "settings": settings,
    "xml": xml,
    "opaque": opaque,
}
