"""Receiver records as frozen dataclasses, shared by every layer. Layer: bottom; stdlib only.

The codec (:mod:`bridge.dexcom`) makes them from bytes, the emulator makes bytes from them,
the store keeps them. Values are as the receiver stored them: raw receiver seconds, the raw
glucose value (a special code stays its code), raw event values. Meaning is layered on top
by properties and the small tables below (PROTOCOL.md §5, §6).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum
from typing import ClassVar
from xml.etree import ElementTree

__all__ = [
    "DIRECTIONS",
    "INSERTION_STATES",
    "NOISE_NAMES",
    "SPECIAL_GLUCOSE",
    "SPECIAL_GLUCOSE_MAX",
    "CalibrationRecord",
    "CalibrationSubrecord",
    "EGVRecord",
    "InsertionRecord",
    "MeterRecord",
    "OpaqueRecord",
    "Record",
    "RecordType",
    "SensorRecord",
    "StampedRecord",
    "Trend",
    "UserEventRecord",
    "UserSettingsRecord",
    "XMLRecord",
]


class RecordType(IntEnum):
    """Database partition ids (PROTOCOL.md §4.1)."""

    MANUFACTURING_DATA = 0
    FIRMWARE_PARAMETER_DATA = 1
    PC_SOFTWARE_PARAMETER = 2
    SENSOR_DATA = 3
    EGV_DATA = 4
    CAL_SET = 5
    ABERRATION = 6
    INSERTION_TIME = 7
    RECEIVER_LOG_DATA = 8
    RECEIVER_ERROR_DATA = 9
    METER_DATA = 10
    USER_EVENT_DATA = 11
    USER_SETTING_DATA = 12


class Trend(IntEnum):
    """EGV trend arrow, bits 0-3 of the trend byte (PROTOCOL.md §6.2)."""

    NONE = 0
    DOUBLE_UP = 1
    SINGLE_UP = 2
    FORTY_FIVE_UP = 3
    FLAT = 4
    FORTY_FIVE_DOWN = 5
    SINGLE_DOWN = 6
    DOUBLE_DOWN = 7
    NOT_COMPUTABLE = 8
    RATE_OUT_OF_RANGE = 9


#: Nightscout's canonical ``direction`` strings by trend index; 10-15 have none.
DIRECTIONS: dict[int, str] = {
    0: "NONE",
    1: "DoubleUp",
    2: "SingleUp",
    3: "FortyFiveUp",
    4: "Flat",
    5: "FortyFiveDown",
    6: "SingleDown",
    7: "DoubleDown",
    8: "NOT COMPUTABLE",
    9: "RATE OUT OF RANGE",
}

#: Glucose values at or below this are codes, not readings (ecc1's rule, PROTOCOL.md §6.1).
SPECIAL_GLUCOSE_MAX = 12
SPECIAL_GLUCOSE: dict[int, str] = {
    0: "NONE",
    1: "SENSOR_NOT_ACTIVE",
    2: "MINIMAL_DEVIATION",
    3: "NO_ANTENNA",
    5: "SENSOR_NOT_CALIBRATED",
    6: "COUNTS_DEVIATION",
    9: "ABSOLUTE_DEVIATION",
    10: "POWER_DEVIATION",
    12: "BAD_RF",
}

NOISE_NAMES: dict[int, str] = {
    0: "NONE",
    1: "CLEAN",
    2: "LIGHT",
    3: "MEDIUM",
    4: "HEAVY",
    5: "NOT_COMPUTED",
    6: "MAX",
}

INSERTION_STATES: dict[int, str] = {
    0: "NONE",
    1: "REMOVED",
    2: "EXPIRED",
    3: "RESIDUAL_DEVIATION",
    4: "COUNTS_DEVIATION",
    5: "SECOND_SESSION",
    6: "OFF_TIME_LOSS",
    7: "STARTED",
    8: "BAD_TRANSMITTER",
    9: "MANUFACTURING_MODE",
}

#: Insertion time field value meaning "no insertion time" (e.g. on REMOVED).
NO_TIME = 0xFFFFFFFF


@dataclass(frozen=True, slots=True)
class EGVRecord:
    """One estimated glucose value (type 4)."""

    KIND: ClassVar[str] = "egv"
    RECORD_TYPE: ClassVar[RecordType] = RecordType.EGV_DATA

    system_seconds: int
    display_seconds: int
    glucose: int  # bits 0-9 of the glucose word: mg/dL, or a special code <= 12
    display_only: bool  # bit 15: a recomputed duplicate written after a calibration
    trend: int  # bits 0-3: 0-9 known, 10-15 kept as they are
    noise: int  # bits 4-6
    trend_flags: int = 0  # bit 7 of the trend byte and bits 10-14 of the word, kept for re-encoding

    @property
    def special(self) -> str | None:
        """The special value's name, or None for a real reading."""
        if self.glucose > SPECIAL_GLUCOSE_MAX:
            return None
        return SPECIAL_GLUCOSE.get(self.glucose, f"SPECIAL_{self.glucose}")

    @property
    def direction(self) -> str | None:
        """Nightscout's direction string; None for unknown trend values."""
        return DIRECTIONS.get(self.trend)


@dataclass(frozen=True, slots=True)
class SensorRecord:
    """Raw sensor values (type 3), written about a second before their EGV."""

    KIND: ClassVar[str] = "sensor"
    RECORD_TYPE: ClassVar[RecordType] = RecordType.SENSOR_DATA

    system_seconds: int
    display_seconds: int
    unfiltered: int
    filtered: int
    rssi: int  # int16 at offset 16, as Nightscout uploads it (PROTOCOL.md §5.2)


@dataclass(frozen=True, slots=True)
class MeterRecord:
    """A fingerstick blood glucose entered on the receiver (type 10)."""

    KIND: ClassVar[str] = "meter"
    RECORD_TYPE: ClassVar[RecordType] = RecordType.METER_DATA

    system_seconds: int
    display_seconds: int
    meter_glucose: int
    meter_seconds: int  # system-time domain: when the BG was taken


@dataclass(frozen=True, slots=True)
class InsertionRecord:
    """A sensor session change (type 7)."""

    KIND: ClassVar[str] = "insertion"
    RECORD_TYPE: ClassVar[RecordType] = RecordType.INSERTION_TIME

    system_seconds: int
    display_seconds: int
    insertion_seconds: int  # system-time domain; 0xFFFFFFFF when none
    state: int

    @property
    def state_name(self) -> str:
        """The session state's name (``UNKNOWN_n`` for codes outside the table)."""
        return INSERTION_STATES.get(self.state, f"UNKNOWN_{self.state}")

    @property
    def has_insertion_time(self) -> bool:
        """False when the receiver stored no insertion time."""
        return self.insertion_seconds != NO_TIME


@dataclass(frozen=True, slots=True)
class CalibrationSubrecord:
    """One meter value used by a calibration set; times in the system-time domain."""

    entered_seconds: int
    meter_glucose: int
    sensor_raw: int
    applied_seconds: int
    unknown: int


@dataclass(frozen=True, slots=True)
class CalibrationRecord:
    """A calibration set (type 5), revision <= 2 (148 bytes) or 3 (249 bytes)."""

    KIND: ClassVar[str] = "cal"
    RECORD_TYPE: ClassVar[RecordType] = RecordType.CAL_SET

    system_seconds: int
    display_seconds: int
    slope: float
    intercept: float
    scale: float
    decay: float
    subrecords: tuple[CalibrationSubrecord, ...]  # the used entries only
    unknown: bytes = b"\x03\x06\x00"  # bytes 32-34, meaning unknown
    tail: tuple[float, ...] = ()  # rev 3: the two doubles at 231 and 239
    unused_slots: bytes = b""  # bytes of the unused subrecord slots, kept for re-encoding


@dataclass(frozen=True, slots=True)
class UserEventRecord:
    """A user-entered event (type 11): carbs, insulin, health, exercise."""

    KIND: ClassVar[str] = "event"
    RECORD_TYPE: ClassVar[RecordType] = RecordType.USER_EVENT_DATA

    system_seconds: int
    display_seconds: int
    event_type: int  # 1 carbs, 2 insulin, 3 health, 4 exercise
    event_subtype: int
    event_seconds: int  # display-time domain, whole minutes
    value: int  # carbs g; insulin 1/100 U; exercise minutes


@dataclass(frozen=True, slots=True)
class UserSettingsRecord:
    """A snapshot of the receiver's settings (type 12, rev 3)."""

    KIND: ClassVar[str] = "settings"
    RECORD_TYPE: ClassVar[RecordType] = RecordType.USER_SETTING_DATA

    system_seconds: int
    display_seconds: int
    system_offset: int
    display_offset: int
    transmitter_id: int  # encoded
    enable_flags: int
    high_alarm: int
    high_snooze: int
    low_alarm: int
    low_snooze: int
    rise_rate: int
    fall_rate: int
    out_of_range_snooze: int
    language: int
    alarm_profile: int
    setup_state: int
    reserved: int = 0


@dataclass(frozen=True, slots=True)
class XMLRecord:
    """An XML record (types 0-2), e.g. the manufacturing parameters with the serial number."""

    KIND: ClassVar[str] = "xml"

    record_type: int
    system_seconds: int
    display_seconds: int
    xml: str

    @property
    def attributes(self) -> dict[str, str]:
        """The root element's attributes; empty when the XML does not parse."""
        try:
            return dict(ElementTree.fromstring(self.xml).attrib)
        except ElementTree.ParseError:
            return {}


@dataclass(frozen=True, slots=True)
class OpaqueRecord:
    """A record whose layout beyond the two timestamps is unknown (aberration, logs)."""

    KIND: ClassVar[str] = "opaque"

    record_type: int
    system_seconds: int
    display_seconds: int
    body: bytes = field(repr=False)  # everything between the timestamps and the CRC


Record = (
    EGVRecord
    | SensorRecord
    | MeterRecord
    | InsertionRecord
    | CalibrationRecord
    | UserEventRecord
    | UserSettingsRecord
    | XMLRecord
    | OpaqueRecord
)


@dataclass(frozen=True, slots=True)
class StampedRecord:
    """A record with the receiver it came from and its UTC time, fixed once by the store.

    The UTC time comes from the clock-anchor rule (``bridge.dexcom.clock``) when the store
    first saw the record and never changes, so every upload of it carries the same instant.
    """

    serial: str
    utc: datetime  # timezone-aware UTC, whole seconds
    record: Record
