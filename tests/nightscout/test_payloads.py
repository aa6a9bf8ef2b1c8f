"""Mapping of real receiver records (Dexcom Studio's 2013 G4 download) to Nightscout JSON.

The records are decoded from ../shared/vectors with the codec; expected values come from the
vectors' own decoded fields and times from the vector's naive receiver times plus a fixed
anchor, computed here independently of the mapping.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from datetime import UTC, datetime, timedelta

import pytest

from bridge.dexcom.clock import ClockAnchor
from bridge.dexcom.pages import decode_page
from bridge.nightscout.payloads import (
    cal_to_entry,
    device_name,
    devicestatus,
    egv_to_entry,
    epoch_ms,
    event_to_treatment,
    insertion_to_treatment,
    meter_to_entry,
    pair_sensor,
)
from bridge.records import (
    CalibrationRecord,
    EGVRecord,
    InsertionRecord,
    RecordType,
    SensorRecord,
    StampedRecord,
    UserEventRecord,
)
from vectors import load, unhex

PAGES = "pages_dexcom_studio_g4_2013.json"
SERIAL = "SM12345678"
DEVICE = "dexcom-bridge://SM12345678"
#: A fixed anchor: receiver system time 0 is 2009-01-01 + 4321 s (the receiver ran 72 min slow).
ANCHOR = ClockAnchor(offset_s=4321, measured_at=datetime(2013, 9, 14, 2, 0, tzinfo=UTC))
NS_DIRECTIONS = {  # NIGHTSCOUT_API.md §3.2, in trend order
    0: "NONE", 1: "DoubleUp", 2: "SingleUp", 3: "FortyFiveUp", 4: "Flat", 5: "FortyFiveDown",
    6: "SingleDown", 7: "DoubleDown", 8: "NOT COMPUTABLE", 9: "RATE OUT OF RANGE",
}


def expected_utc(naive_iso: str) -> datetime:
    """A vector's naive receiver time (system domain) as UTC under ANCHOR."""
    return datetime.fromisoformat(naive_iso).replace(tzinfo=UTC) + timedelta(seconds=ANCHOR.offset_s)


def iso_z(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S") + ".000Z"


@functools.cache
def vector_records(record_type: int) -> tuple[tuple[object, dict], ...]:
    """(decoded record, the vector's decoded fields) for every record of a type, in page order."""
    out = []
    for vec in load(PAGES)["pages"]:
        if vec["record_type"] != record_type:
            continue
        page = decode_page(unhex(vec["hex"]), record_type=record_type, page_number=vec["page_number"])
        wanted = vec["decoded"]["records"]
        assert len(page.records) == len(wanted)
        out.extend(zip(page.records, wanted, strict=True))
    return tuple(out)


def stamp(record: object) -> StampedRecord:
    return StampedRecord(SERIAL, ANCHOR.to_utc(record.system_seconds), record)  # type: ignore[attr-defined]


def sensors() -> list[SensorRecord]:
    return [r for r, _ in vector_records(RecordType.SENSOR_DATA)]  # type: ignore[misc]


def assert_times_agree(doc: dict, when: datetime) -> None:
    assert doc["date"] == int(when.timestamp()) * 1000
    assert doc["dateString"] == iso_z(when)
    parsed = datetime.fromisoformat(doc["dateString"].replace("Z", "+00:00"))
    assert parsed.timestamp() * 1000 == doc["date"]


# --- EGV -------------------------------------------------------------------------------------

def test_egv_entries_match_the_receiver_values_directions_and_times() -> None:
    checked = 0
    for egv, want in vector_records(RecordType.EGV_DATA):
        if want["display_only"] or want["special"] is not None:
            continue
        doc = egv_to_entry(stamp(egv), None, device=DEVICE)
        assert doc is not None
        assert doc["type"] == "sgv"
        assert doc["sgv"] == want["glucose"]
        assert doc["direction"] == NS_DIRECTIONS[want["trend"]] == want["trend_name"]
        assert doc["trend"] == want["trend"]
        assert doc["noise"] == want["noise"]
        assert doc["device"] == DEVICE
        assert_times_agree(doc, expected_utc(want["system_time"]))
        assert not {"filtered", "unfiltered", "rssi"} & doc.keys()
        json.dumps(doc, allow_nan=False)
        checked += 1
    assert checked > 200


def test_egv_entry_first_reading_of_page_1472_exactly() -> None:
    egv, want = next((r, w) for r, w in vector_records(RecordType.EGV_DATA) if r.system_seconds == 148348652)
    assert want["system_time"] == "2013-09-13T23:57:32"
    doc = egv_to_entry(stamp(egv), None, device=DEVICE)
    # 2013-09-13T23:57:32 + 4321 s = 2013-09-14T01:09:33Z
    assert doc == {
        "type": "sgv", "sgv": 88, "direction": "Flat", "trend": 4, "noise": 1,
        "date": 1379120973000, "dateString": "2013-09-14T01:09:33.000Z", "device": DEVICE,
    }


def test_egv_times_come_from_the_stamped_utc_only() -> None:
    egv, _ = vector_records(RecordType.EGV_DATA)[0]
    fixed = datetime(2020, 2, 29, 12, 0, 5, tzinfo=UTC)
    doc = egv_to_entry(StampedRecord(SERIAL, fixed, egv), None, device=DEVICE)
    assert doc["date"] == 1582977605000
    assert doc["dateString"] == "2020-02-29T12:00:05.000Z"


def test_egv_display_only_records_are_not_uploaded() -> None:
    display_only = [r for r, w in vector_records(RecordType.EGV_DATA) if w["display_only"]]
    assert len(display_only) == 9
    for egv in display_only:
        assert egv_to_entry(stamp(egv), pair_sensor(egv, sensors()), device=DEVICE) is None
        assert egv_to_entry(stamp(egv), None, device=DEVICE, special="skip") is None


def test_egv_special_value_goes_up_as_its_code_without_direction() -> None:
    # Real page 1472: glucose 5 = SENSOR_NOT_CALIBRATED, trend 8 (NOT COMPUTABLE).
    specials = [(r, w) for r, w in vector_records(RecordType.EGV_DATA) if w["special"] is not None]
    assert specials
    egv, want = next((r, w) for r, w in specials if r.glucose == 5)
    assert want["special"].startswith("SENSOR_NOT_CALIBRATED") and want["trend"] == 8
    doc = egv_to_entry(stamp(egv), None, device=DEVICE)
    assert doc is not None
    assert doc["sgv"] == 5 < 39
    assert "direction" not in doc and doc.get("trend", 0) == 0
    assert doc["noise"] == egv.noise
    assert_times_agree(doc, expected_utc(want["system_time"]))
    for egv, want in specials:
        if want["display_only"]:
            continue
        doc = egv_to_entry(stamp(egv), None, device=DEVICE, special="codes")
        assert doc is not None and doc["sgv"] == want["glucose"] <= 12 and "direction" not in doc


def test_egv_special_value_skipped_by_setting() -> None:
    egv = next(r for r, w in vector_records(RecordType.EGV_DATA) if r.glucose == 5)
    assert egv_to_entry(stamp(egv), None, device=DEVICE, special="skip") is None


def test_egv_special_code_zero_is_never_uploaded() -> None:
    egv, _ = vector_records(RecordType.EGV_DATA)[0]
    zero = dataclasses.replace(egv, glucose=0, display_only=False)
    assert egv_to_entry(stamp(zero), None, device=DEVICE) is None


@pytest.mark.parametrize("trend", range(10, 16))
def test_egv_unknown_trend_has_no_direction(trend: int) -> None:
    egv = next(r for r, w in vector_records(RecordType.EGV_DATA) if w["special"] is None and not w["display_only"])
    doc = egv_to_entry(stamp(dataclasses.replace(egv, trend=trend)), None, device=DEVICE)
    assert doc is not None and doc["sgv"] == egv.glucose
    assert "direction" not in doc and "trend" not in doc


@pytest.mark.parametrize("trend", range(10))
def test_egv_every_known_trend_has_nightscouts_direction(trend: int) -> None:
    egv = next(r for r, w in vector_records(RecordType.EGV_DATA) if w["special"] is None and not w["display_only"])
    doc = egv_to_entry(stamp(dataclasses.replace(egv, trend=trend)), None, device=DEVICE)
    assert doc["direction"] == NS_DIRECTIONS[trend] and doc["trend"] == trend


def test_egv_rejects_other_records() -> None:
    meter, _ = vector_records(RecordType.METER_DATA)[0]
    with pytest.raises(TypeError):
        egv_to_entry(stamp(meter), None, device=DEVICE)


# --- Sensor pairing --------------------------------------------------------------------------

def test_pair_sensor_pairs_each_egv_with_its_raw_record_within_10_s() -> None:
    raw = sensors()
    first_raw = min(s.system_seconds for s in raw)
    paired = unpaired = 0
    for egv, _ in vector_records(RecordType.EGV_DATA):
        sensor = pair_sensor(egv, raw)
        if egv.system_seconds < first_raw - 10:  # the download's sensor pages start later
            assert sensor is None
            unpaired += 1
            continue
        assert sensor is not None
        assert 0 <= egv.system_seconds - sensor.system_seconds <= 1  # written just before its EGV
        paired += 1
    assert paired > 250 and unpaired > 0


def test_egv_entry_carries_the_paired_raw_values() -> None:
    raw = sensors()
    egv = next(r for r, w in vector_records(RecordType.EGV_DATA)
               if w["special"] is None and not w["display_only"] and pair_sensor(r, raw))
    sensor_vec = {r.system_seconds: w for r, w in vector_records(RecordType.SENSOR_DATA)}
    sensor = pair_sensor(egv, raw)
    doc = egv_to_entry(stamp(egv), sensor, device=DEVICE)
    want = sensor_vec[sensor.system_seconds]
    assert (doc["filtered"], doc["unfiltered"], doc["rssi"]) == (want["filtered"], want["unfiltered"], want["rssi"])
    assert doc["date"] == epoch_ms(ANCHOR.to_utc(egv.system_seconds))  # the EGV's time, not the sensor's


def test_pair_sensor_window_and_nearest() -> None:
    egv = EGVRecord(1000, 900, 120, False, 4, 1)
    far = SensorRecord(989, 889, 1, 1, 1)
    near = SensorRecord(999, 899, 2, 2, 2)
    after = SensorRecord(1010, 910, 3, 3, 3)
    assert pair_sensor(egv, [far]) is None
    assert pair_sensor(egv, [far, after, near]) is near
    assert pair_sensor(egv, [after]) is after
    assert pair_sensor(egv, [after], window_s=5) is None
    assert pair_sensor(egv, [SensorRecord(1001, 0, 4, 4, 4), SensorRecord(999, 0, 5, 5, 5)]).filtered == 5


# --- Meter, calibration ----------------------------------------------------------------------

def test_meter_entries_at_the_time_the_blood_glucose_was_taken() -> None:
    items = vector_records(RecordType.METER_DATA)
    assert len(items) == 32
    for meter, want in items:
        doc = meter_to_entry(stamp(meter), device=DEVICE)
        assert doc["type"] == "mbg" and doc["mbg"] == want["meter_glucose"]
        assert doc["device"] == DEVICE
        assert_times_agree(doc, expected_utc(want["meter_time"]))
    meter, _ = items[-1]
    assert meter.system_seconds - meter.meter_seconds == 30
    doc = meter_to_entry(stamp(meter), device=DEVICE)
    assert doc["date"] == epoch_ms(ANCHOR.to_utc(meter.system_seconds)) - 30_000


def test_cal_entries_carry_slope_intercept_scale() -> None:
    items = vector_records(RecordType.CAL_SET)
    assert len(items) == 20
    for cal, want in items:
        doc = cal_to_entry(stamp(cal), device=DEVICE)
        assert doc["type"] == "cal"
        assert (doc["slope"], doc["intercept"], doc["scale"]) == (want["slope"], want["intercept"], want["scale"])
        assert_times_agree(doc, expected_utc(want["system_time"]))
        json.dumps(doc, allow_nan=False)
    last, _ = items[-1]
    assert isinstance(last, CalibrationRecord)
    assert cal_to_entry(stamp(last), device=DEVICE)["intercept"] == 30000.0


# --- treatments ------------------------------------------------------------------------------

def event_utc(want: dict) -> datetime:
    """The event's UTC: its display time shifted into the system domain, then anchored."""
    display_offset = want["display_seconds"] - want["system_seconds"]
    return expected_utc(want["event_time"]) - timedelta(seconds=display_offset)


def test_user_events_become_treatments_at_the_events_time() -> None:
    items = vector_records(RecordType.USER_EVENT_DATA)
    assert len(items) == 35
    for event, want in items:
        doc = event_to_treatment(stamp(event), device=DEVICE)
        assert doc is not None
        assert doc["created_at"] == iso_z(event_utc(want))
        assert doc["enteredBy"] == DEVICE
        if want["event_type_name"] == "CARBS":
            assert doc["eventType"] == "Carb Correction" and doc["carbs"] == want["event_value"]
        else:
            assert doc["eventType"] == "Correction Bolus" and doc["insulin"] == want["insulin_units"]


def test_insulin_350_is_3_5_units() -> None:
    event, want = next((r, w) for r, w in vector_records(RecordType.USER_EVENT_DATA) if w["event_value"] == 350)
    doc = event_to_treatment(stamp(event), device=DEVICE)
    assert doc["insulin"] == 3.5 and "carbs" not in doc
    # event 2013-09-11T12:11:00 display time; display = system - 25162 s
    assert want["event_time"] == "2013-09-11T12:11:00"
    assert doc["created_at"] == iso_z(datetime(2013, 9, 11, 12, 11, tzinfo=UTC) + timedelta(seconds=25162 + 4321))


def test_health_and_exercise_events() -> None:
    event, _ = vector_records(RecordType.USER_EVENT_DATA)[0]
    assert isinstance(event, UserEventRecord)
    exercise = event_to_treatment(stamp(dataclasses.replace(event, event_type=4, event_subtype=2, value=45)),
                                  device=DEVICE)
    assert exercise["eventType"] == "Exercise" and exercise["duration"] == 45
    assert "Medium" in exercise["notes"]
    health = event_to_treatment(stamp(dataclasses.replace(event, event_type=3, event_subtype=1, value=0)),
                                device=DEVICE)
    assert health["eventType"] == "Note" and "Illness" in health["notes"]
    odd = event_to_treatment(stamp(dataclasses.replace(event, event_type=3, event_subtype=42)), device=DEVICE)
    assert "42" in odd["notes"]
    assert event_to_treatment(stamp(dataclasses.replace(event, event_type=9)), device=DEVICE) is None
    assert event_to_treatment(stamp(dataclasses.replace(event, event_type=1, value=0)), device=DEVICE) is None


def test_insertion_records_become_sensor_start_and_stop() -> None:
    items = vector_records(RecordType.INSERTION_TIME)
    starts = stops = 0
    for ins, want in items:
        assert isinstance(ins, InsertionRecord)
        doc = insertion_to_treatment(stamp(ins), device=DEVICE)
        if want["state_name"] == "STARTED":
            assert doc["eventType"] == "Sensor Start"
            assert doc["created_at"] == iso_z(expected_utc(want["insertion_time"]))
            starts += 1
        elif want["state_name"] in ("REMOVED", "EXPIRED"):
            assert doc["eventType"] == "Sensor Stop"
            assert doc["created_at"] == iso_z(expected_utc(want["system_time"]))
            stops += 1
        else:
            assert doc is None
        if doc is not None:
            assert doc["enteredBy"] == DEVICE
    assert starts and stops


def test_sensor_start_at_insertion_time_not_record_time() -> None:
    ins = InsertionRecord(system_seconds=148313960 + 600, display_seconds=0, insertion_seconds=148313960, state=7)
    doc = insertion_to_treatment(stamp(ins), device=DEVICE)
    assert doc["created_at"] == iso_z(ANCHOR.to_utc(148313960))
    other = dataclasses.replace(ins, state=3)
    assert insertion_to_treatment(stamp(other), device=DEVICE) is None


# --- devicestatus, device name ---------------------------------------------------------------

def test_devicestatus_puts_the_receiver_battery_where_nightscout_reads_it() -> None:
    when = datetime(2024, 5, 1, 10, 0, 0, 250000, tzinfo=UTC)
    health = {"last_read": "2024-05-01T09:59:00.000Z", "backlog": 3, "last_error": None}
    doc = devicestatus(device=DEVICE, receiver_name="Dexcom G4 SM12345678", battery=87,
                       bridge_health=health, created_at=when)
    assert doc == {
        "device": DEVICE,
        "created_at": "2024-05-01T10:00:00.250Z",
        "uploader": {"name": "Dexcom G4 SM12345678", "type": "RECEIVER", "battery": 87},
        "bridge": health,
    }
    json.dumps(doc)
    unknown = devicestatus(device=DEVICE, receiver_name="r", battery=None, bridge_health={}, created_at=when)
    assert "battery" not in unknown["uploader"]  # omitted, never faked


def test_device_name_default_and_configured() -> None:
    assert device_name("SM12345678") == "dexcom-bridge://SM12345678"
    assert device_name("SM12345678", "kitchen-pi") == "kitchen-pi"
    assert device_name("SM12345678", "  ") == "dexcom-bridge://SM12345678"


def test_epoch_ms_is_exact() -> None:
    assert epoch_ms(datetime(2013, 9, 14, 1, 9, 33, 999000, tzinfo=UTC)) == 1379120973999
    assert isinstance(epoch_ms(datetime(2013, 9, 14, tzinfo=UTC)), int)

