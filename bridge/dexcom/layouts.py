"""Record layouts: decode_record()/encode_record() by (record type, page revision).

Layer: dexcom, pure (no I/O). Every record starts with u32 system seconds and u32 display
seconds and ends with a CRC-16/XMODEM of its other bytes (PROTOCOL.md §5). The size is
chosen by the page header's revision, never by a model guess.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from bridge.dexcom.crc import crc16_xmodem
from bridge.errors import CRCError, RecordError
from bridge.records import (
    CalibrationRecord,
    CalibrationSubrecord,
    EGVRecord,
    InsertionRecord,
    MeterRecord,
    OpaqueRecord,
    Record,
    RecordType,
    SensorRecord,
    UserEventRecord,
    UserSettingsRecord,
    XMLRecord,
)

__all__ = ["decode_record", "encode_record", "record_size"]

GLUCOSE_MASK = 0x03FF
DISPLAY_ONLY_FLAG = 0x8000
GLUCOSE_FLAGS_MASK = 0x7C00  # bits 10-14: unused on G4, kept
TREND_MASK = 0x0F
NOISE_MASK = 0x70
NOISE_SHIFT = 4
TREND_BIT7 = 0x80

_TIMES = struct.Struct("<II")
_CRC = struct.Struct("<H")
_EGV = struct.Struct("<IIHB")
_SENSOR = struct.Struct("<IIIIh")
_METER = struct.Struct("<IIHI")
_INSERTION = struct.Struct("<IIIB")
_CAL_HEAD = struct.Struct("<IIddd3sdB")  # 44 bytes
_CAL_SUB = struct.Struct("<IiiIB")  # 17 bytes
_CAL_TAIL = struct.Struct("<dd")
_EVENT = struct.Struct("<IIBBII")
_SETTINGS = struct.Struct("<IIIiII8HBBI")
XML_TEXT_LEN = 490

CAL_REV2_SIZE = 148
CAL_REV3_SIZE = 249
CAL_REV2_SLOTS = 6
CAL_REV3_SLOTS = 11

_FIXED_SIZES: dict[int, int] = {
    RecordType.MANUFACTURING_DATA: 500,
    RecordType.FIRMWARE_PARAMETER_DATA: 500,
    RecordType.PC_SOFTWARE_PARAMETER: 500,
    RecordType.SENSOR_DATA: 20,
    RecordType.EGV_DATA: 13,
    RecordType.ABERRATION: 15,
    RecordType.INSERTION_TIME: 15,
    RecordType.RECEIVER_LOG_DATA: 20,
    RecordType.RECEIVER_ERROR_DATA: 500,
    RecordType.METER_DATA: 16,
    RecordType.USER_EVENT_DATA: 20,
    RecordType.USER_SETTING_DATA: 48,
}

#: Revisions whose layout we know; a newer one (G5/G6 receivers) is refused, not guessed.
_KNOWN_REVISIONS: dict[int, range] = {
    RecordType.EGV_DATA: range(1, 4),
    RecordType.SENSOR_DATA: range(1, 2),
    RecordType.METER_DATA: range(1, 3),
    RecordType.INSERTION_TIME: range(1, 2),
    RecordType.USER_EVENT_DATA: range(1, 2),
    RecordType.USER_SETTING_DATA: range(1, 4),
    RecordType.CAL_SET: range(0, 4),
}


def record_size(record_type: int, revision: int) -> int:
    """The record length for a partition at a page revision.

    Raises:
        RecordError: unknown record type, or a revision whose layout is not known.
    """
    known = _KNOWN_REVISIONS.get(record_type)
    if known is not None and revision not in known:
        raise RecordError(f"record type {record_type} revision {revision} has an unknown layout")
    if record_type == RecordType.CAL_SET:
        return CAL_REV2_SIZE if revision <= 2 else CAL_REV3_SIZE
    try:
        return _FIXED_SIZES[record_type]
    except KeyError:
        raise RecordError(f"unknown record type {record_type}") from None


def decode_record(record_type: int, revision: int, raw: bytes) -> Record:
    """Decode one record, checking its CRC.

    Raises:
        CRCError: the record's CRC does not match.
        RecordError: wrong length, or a type/revision whose layout is not known.
    """
    size = record_size(record_type, revision)
    if len(raw) != size:
        raise RecordError(f"record type {record_type} rev {revision}: {len(raw)} bytes, expected {size}")
    (sent,) = _CRC.unpack_from(raw, size - _CRC.size)
    if (calc := crc16_xmodem(raw[: size - _CRC.size])) != sent:
        system_s, _ = _TIMES.unpack_from(raw)
        raise CRCError(f"record type {record_type} at system time {system_s}: CRC {sent:#06x}, computed {calc:#06x}")
    body = raw[: size - _CRC.size]
    decoder = _DECODERS.get(record_type, _decode_opaque)
    return decoder(record_type, body)


def encode_record(record: Record, revision: int | None = None) -> bytes:
    """Encode a record with its CRC (the emulator's path; the inverse of decode_record)."""
    if isinstance(record, EGVRecord):
        flags = record.trend_flags
        word = record.glucose | (DISPLAY_ONLY_FLAG if record.display_only else 0) | (flags & GLUCOSE_FLAGS_MASK)
        trend = (record.trend & TREND_MASK) | ((record.noise << NOISE_SHIFT) & NOISE_MASK) | (flags & TREND_BIT7)
        body = _EGV.pack(record.system_seconds, record.display_seconds, word, trend)
    elif isinstance(record, SensorRecord):
        body = _SENSOR.pack(
            record.system_seconds, record.display_seconds, record.unfiltered, record.filtered, record.rssi
        )
    elif isinstance(record, MeterRecord):
        body = _METER.pack(record.system_seconds, record.display_seconds, record.meter_glucose, record.meter_seconds)
    elif isinstance(record, InsertionRecord):
        body = _INSERTION.pack(record.system_seconds, record.display_seconds, record.insertion_seconds, record.state)
    elif isinstance(record, CalibrationRecord):
        body = _encode_cal(record, 2 if revision is None else revision)
    elif isinstance(record, UserEventRecord):
        body = _EVENT.pack(
            record.system_seconds, record.display_seconds, record.event_type,
            record.event_subtype, record.event_seconds, record.value,
        )
    elif isinstance(record, UserSettingsRecord):
        body = _SETTINGS.pack(
            record.system_seconds, record.display_seconds, record.system_offset, record.display_offset,
            record.transmitter_id, record.enable_flags, record.high_alarm, record.high_snooze,
            record.low_alarm, record.low_snooze, record.rise_rate, record.fall_rate,
            record.out_of_range_snooze, record.language, record.alarm_profile, record.setup_state,
            record.reserved,
        )
    elif isinstance(record, XMLRecord):
        text = record.xml.encode("utf-8")
        if len(text) > XML_TEXT_LEN:
            raise RecordError(f"XML record of {len(text)} bytes exceeds {XML_TEXT_LEN}")
        body = _TIMES.pack(record.system_seconds, record.display_seconds) + text.ljust(XML_TEXT_LEN, b"\x00")
    else:
        body = _TIMES.pack(record.system_seconds, record.display_seconds) + record.body
    return body + _CRC.pack(crc16_xmodem(body))


def _decode_egv(_: int, body: bytes) -> EGVRecord:
    system_s, display_s, word, trend = _EGV.unpack(body)
    return EGVRecord(
        system_s, display_s, word & GLUCOSE_MASK, bool(word & DISPLAY_ONLY_FLAG),
        trend & TREND_MASK, (trend & NOISE_MASK) >> NOISE_SHIFT,
        (word & GLUCOSE_FLAGS_MASK) | (trend & TREND_BIT7),
    )


def _decode_sensor(_: int, body: bytes) -> SensorRecord:
    return SensorRecord(*_SENSOR.unpack(body))


def _decode_meter(_: int, body: bytes) -> MeterRecord:
    return MeterRecord(*_METER.unpack(body))


def _decode_insertion(_: int, body: bytes) -> InsertionRecord:
    return InsertionRecord(*_INSERTION.unpack(body))


def _decode_event(_: int, body: bytes) -> UserEventRecord:
    return UserEventRecord(*_EVENT.unpack(body))


def _decode_settings(_: int, body: bytes) -> UserSettingsRecord:
    return UserSettingsRecord(*_SETTINGS.unpack(body))


def _decode_xml(record_type: int, body: bytes) -> XMLRecord:
    system_s, display_s = _TIMES.unpack_from(body)
    text = body[_TIMES.size :].split(b"\x00", 1)[0].decode("utf-8", errors="replace")
    return XMLRecord(record_type, system_s, display_s, text)


def _decode_opaque(record_type: int, body: bytes) -> OpaqueRecord:
    system_s, display_s = _TIMES.unpack_from(body)
    return OpaqueRecord(record_type, system_s, display_s, body[_TIMES.size :])


def _decode_cal(_: int, body: bytes) -> CalibrationRecord:
    rev3 = len(body) == CAL_REV3_SIZE - _CRC.size
    slots = CAL_REV3_SLOTS if rev3 else CAL_REV2_SLOTS
    system_s, display_s, slope, intercept, scale, unknown, decay, count = _CAL_HEAD.unpack_from(body)
    if count > slots:
        raise RecordError(f"calibration set at system time {system_s}: {count} subrecords in {slots} slots")
    subs = tuple(
        CalibrationSubrecord(*_CAL_SUB.unpack_from(body, _CAL_HEAD.size + i * _CAL_SUB.size)) for i in range(count)
    )
    used_end = _CAL_HEAD.size + count * _CAL_SUB.size
    slots_end = _CAL_HEAD.size + slots * _CAL_SUB.size
    tail = _CAL_TAIL.unpack_from(body, slots_end) if rev3 else ()
    return CalibrationRecord(
        system_s, display_s, slope, intercept, scale, decay, subs, unknown, tail, body[used_end:slots_end]
    )


def _encode_cal(record: CalibrationRecord, revision: int) -> bytes:
    slots = CAL_REV2_SLOTS if revision <= 2 else CAL_REV3_SLOTS
    if len(record.subrecords) > slots:
        raise RecordError(f"{len(record.subrecords)} subrecords do not fit revision {revision}")
    out = _CAL_HEAD.pack(
        record.system_seconds, record.display_seconds, record.slope, record.intercept, record.scale,
        record.unknown, record.decay, len(record.subrecords),
    )
    out += b"".join(
        _CAL_SUB.pack(s.entered_seconds, s.meter_glucose, s.sensor_raw, s.applied_seconds, s.unknown)
        for s in record.subrecords
    )
    free = (slots - len(record.subrecords)) * _CAL_SUB.size
    out += record.unused_slots[:free].ljust(free, b"\x00")
    if revision > 2:
        out += _CAL_TAIL.pack(*(record.tail or (0.0, 0.0)))
    return out


_DECODERS: dict[int, Callable[[int, bytes], Record]] = {
    RecordType.MANUFACTURING_DATA: _decode_xml,
    RecordType.FIRMWARE_PARAMETER_DATA: _decode_xml,
    RecordType.PC_SOFTWARE_PARAMETER: _decode_xml,
    RecordType.SENSOR_DATA: _decode_sensor,
    RecordType.EGV_DATA: _decode_egv,
    RecordType.CAL_SET: _decode_cal,
    RecordType.INSERTION_TIME: _decode_insertion,
    RecordType.METER_DATA: _decode_meter,
    RecordType.USER_EVENT_DATA: _decode_event,
    RecordType.USER_SETTING_DATA: _decode_settings,
}
