"""The generated history, the page database and the truth file."""

from __future__ import annotations

import json
import random
import time
from collections import Counter

from bridge.dexcom.export import DUMP_KINDS, record_to_dict
from bridge.emulator import ReceiverEmulator
from bridge.emulator.database import Database
from bridge.emulator.receiver import TRUTH_KINDS
from bridge.records import EGVRecord, RecordType


def test_thirty_days_build_fast_and_hold_about_700_pages(clock) -> None:
    started = time.perf_counter()
    emulator = ReceiverEmulator(days=30, seed=1, latency=False, now=clock)
    elapsed = time.perf_counter() - started
    assert elapsed < 3.0
    egvs = emulator.records["egv"]
    assert 30 * 288 * 0.93 < len(egvs) < 30 * 288 * 1.02
    pages = 0
    for part in emulator.database.partitions.values():
        if (page_range := part.page_range()) is not None:
            pages += page_range[1] - page_range[0] + 1
            for n in range(page_range[0], page_range[1] + 1):
                part.page(n)
    assert 550 < pages < 800
    assert time.perf_counter() - started < 5.0


def test_history_is_plausible(make_emulator) -> None:
    emulator = make_emulator(days=15)
    records = emulator.records
    egvs = [r for r in records["egv"] if not r.display_only]
    real = [r.glucose for r in egvs if r.special is None]
    assert 40 <= min(real) < 80 and 180 < max(real) <= 400
    assert 95 < sum(real) / len(real) < 170
    assert Counter(r.trend for r in egvs).most_common(1)[0][0] == 4  # mostly flat
    # a Sensor record one second before each EGV
    sensors = records["sensor"]
    assert len(sensors) == len(egvs)
    assert all(s.system_seconds == e.system_seconds - 1 for s, e in zip(sensors, egvs, strict=True))
    # calibrations about twice a day, each with a meter record
    assert 15 * 1.5 < len(records["cal"]) < 15 * 2.5 + 4
    assert len(records["meter"]) >= len(records["cal"])
    assert all(m.system_seconds - m.meter_seconds == 30 for m in records["meter"])
    # a sensor session change (STARTED, and EXPIRED or REMOVED) within 7 days
    states = [r.state_name for r in records["insertion"]]
    assert states.count("STARTED") >= 2 and {"EXPIRED", "REMOVED"} & set(states)
    # user events of every type, insulin in 1/100 U
    events = records["event"]
    assert {e.event_type for e in events} >= {1, 2, 4}
    assert all(e.value % 50 == 0 and e.value >= 100 for e in events if e.event_type == 2)
    assert all(e.event_seconds % 60 == 0 for e in events)
    assert records["settings"]


def test_raw_values_follow_the_current_calibration(make_emulator) -> None:
    emulator = make_emulator(days=10)
    cals = emulator.records["cal"]
    timeline = sorted(
        [(c.system_seconds, 0, c) for c in cals]
        + [(s.system_seconds + 1, 1, s) for s in emulator.records["sensor"]]
    , key=lambda item: item[:2])
    egv_at = {e.system_seconds: e for e in emulator.records["egv"] if not e.display_only}
    current = None
    checked = 0
    for _, kind, record in timeline:
        if kind == 0:
            current = record
            continue
        egv = egv_at[record.system_seconds + 1]
        if current is None or egv.special is not None or not 40 < egv.glucose < 400:
            continue
        assert abs((record.filtered - current.intercept) / current.slope - egv.glucose) <= 1.0
        assert abs(record.unfiltered - record.filtered) < 0.08 * record.filtered
        checked += 1
    assert checked > 1000


def test_calibrations_bring_display_only_duplicates_and_starts_bring_not_calibrated(make_emulator) -> None:
    emulator = make_emulator(days=12)
    egvs = emulator.records["egv"]
    duplicates = [(i, e) for i, e in enumerate(egvs) if e.display_only]
    assert len(duplicates) > 10
    for i, dup in duplicates:
        before = egvs[i - 1]
        assert not before.display_only
        assert dup.system_seconds - before.system_seconds in (0, 1)
        assert dup.display_seconds - before.display_seconds in (0, 1)
    started = [r for r in emulator.records["insertion"] if r.state_name == "STARTED"][1]
    after = [e for e in egvs if e.system_seconds > started.system_seconds][:2]
    assert all(e.special == "SENSOR_NOT_CALIBRATED" and e.glucose == 5 and e.trend == 8 for e in after)
    assert after[0].system_seconds - started.system_seconds >= 2 * 3600  # the warm-up


def test_calset_subrecords_fit_their_revision(make_emulator) -> None:
    for rev, slots in ((2, 6), (3, 11)):
        cals = make_emulator(days=8, calset_rev=rev).records["cal"]
        counts = [len(c.subrecords) for c in cals]
        assert max(counts) <= slots and min(counts) >= 1
        assert max(counts) > 6 if rev == 3 else max(counts) == 6
        assert all(s.entered_seconds <= s.applied_seconds for c in cals for s in c.subrecords)


def test_manufacturing_record_holds_the_serial(make_emulator) -> None:
    emulator = make_emulator(serial="SM12345678")
    manufacturing, pc = emulator.xml_records()
    assert manufacturing.attributes["SerialNumber"] == "SM12345678"
    assert pc.attributes["Nickname"] == "SM12345678"


def test_a_seed_makes_the_history_repeatable(make_emulator) -> None:
    first, second, other = make_emulator(), make_emulator(), make_emulator(seed=8)
    assert first.records == second.records
    assert first.serial == second.serial
    assert first.records["egv"] != other.records["egv"]


def test_ring_buffer_erases_old_pages_and_keeps_indexes_running() -> None:
    database = Database(random.Random(3), max_pages=3)
    part = database.partition(RecordType.EGV_DATA)
    first_page, first_index = part.first_page, part.first_index
    assert first_page > 0 and first_index == first_page * 38
    for t in range(38 * 5):
        database.add(EGVRecord(t, t, 100, False, 4, 1))
    assert part.page_range() == (first_page + 2, first_page + 4)
    assert part.header(first_page + 2).first_index == first_index + 2 * 38
    assert len(part) == 3 * 38 and part.evicted == 2 * 38
    assert part.records()[0].system_seconds == 2 * 38


def test_truth_file_is_written_atomically_and_follows_live_records(make_emulator, clock, tmp_path) -> None:
    path = tmp_path / "truth.json"
    emulator = make_emulator(truth_path=path, interval_s=30)
    truth = json.loads(path.read_text())
    assert truth["meta"]["serial"] == emulator.serial
    assert set(truth["records"]) == {"egv", "sensor", "meter", "cal", "insertion", "event", "settings"}
    assert set(TRUTH_KINDS) == set(DUMP_KINDS)
    for kind, records in emulator.records.items():
        assert truth["records"][kind] == json.loads(json.dumps([record_to_dict(r) for r in records]))
    egv = truth["records"]["egv"][-1]
    assert {"type", "system_seconds", "display_seconds", "glucose", "display_only", "special", "trend",
            "direction", "noise"} <= set(egv)
    cal = truth["records"]["cal"][-1]
    assert set(cal["subrecords"][0]) == {"entered_seconds", "meter_glucose", "sensor_raw", "applied_seconds",
                                         "unknown"}
    clock.t += 90
    assert emulator.tick() == 6
    again = json.loads(path.read_text())
    assert len(again["records"]["egv"]) == len(truth["records"]["egv"]) + 3
    assert [p.name for p in tmp_path.iterdir()] == ["truth.json"]
