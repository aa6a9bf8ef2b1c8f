"""The outbox: idempotent add, fixed UTC, anchors, per-destination state, due(), prune, errors."""

from __future__ import annotations

import errno
import os
import sqlite3
import stat
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from bridge.errors import StoreError
from bridge.store import BACKFILL_CHUNK, Outbox, UPLOADABLE_KINDS

from .samples import (
    ALL_FACTORIES,
    BASE_S,
    NOW,
    SERIAL,
    cal,
    egv,
    event,
    meter,
    rule,
    sensor,
    settings,
)

FAR_PAST = NOW - timedelta(days=3650)


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    with Outbox.open(tmp_path / "state" / "outbox.sqlite3") as box:
        yield box


def egvs(n: int, start: int = BASE_S, step: int = 300) -> list:
    return [egv(start + i * step, 100 + i) for i in range(n)]


# -- open ---------------------------------------------------------------------------------------


def test_open_creates_private_directory_and_file_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "outbox.sqlite3"
    with Outbox.open(path) as box:
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        conn = box._connection()
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] > 0
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1


def test_reopen_keeps_everything(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    with Outbox.open(path) as box:
        box.add(SERIAL, egvs(3), rule(0), destinations=["ns"])
        box.set_anchor(SERIAL, 42, NOW)
    with Outbox.open(path) as box:
        assert box.backlog("ns") == 3
        assert box.get_anchor(SERIAL) == (42, NOW)


def test_open_refuses_a_path_under_a_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError) as info:
        Outbox.open(tmp_path / "file" / "outbox.sqlite3")
    assert info.value.hint


def test_open_refuses_a_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    path.write_bytes(b"this is not a database at all" * 200)
    with pytest.raises(StoreError) as info:
        Outbox.open(path)
    assert "damaged" in (info.value.hint or "")


def test_disk_full_is_a_store_error_and_keeps_the_committed_data(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    with Outbox.open(path) as box:
        box.add(SERIAL, egvs(5), rule(0), destinations=["ns"])
        conn = box._connection()
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages + 1}")  # what a full disk looks like to SQLite
        with pytest.raises(StoreError) as info:
            box.add(SERIAL, egvs(3000, start=BASE_S + 10**6), rule(0), destinations=["ns"])
        assert "full" in (info.value.hint or "")
        assert box.backlog("ns") == 5
        assert box.stats()["records"] == {"egv": 5}


def test_closed_outbox_raises_store_error(tmp_path: Path) -> None:
    box = Outbox.open(tmp_path / "outbox.sqlite3")
    box.close()
    box.close()  # idempotent
    with pytest.raises(StoreError):
        box.backlog("ns")


# -- add ----------------------------------------------------------------------------------------


def test_add_is_idempotent(outbox: Outbox) -> None:
    records = [make(BASE_S + i) for i, make in enumerate(ALL_FACTORIES.values())]
    assert outbox.add(SERIAL, records, rule(0), destinations=["ns"]) == len(records)
    assert outbox.add(SERIAL, records, rule(0), destinations=["ns"]) == 0
    assert outbox.add(SERIAL, records + records, rule(0), destinations=["ns"]) == 0
    assert outbox.stats()["records"] == {kind: 1 for kind in ALL_FACTORIES}
    assert outbox.backlog("ns") == len(UPLOADABLE_KINDS)


def test_same_time_on_another_receiver_is_another_record(outbox: Outbox) -> None:
    assert outbox.add(SERIAL, [egv(BASE_S)], rule(0), destinations=[]) == 1
    assert outbox.add("SM00000001", [egv(BASE_S)], rule(0), destinations=[]) == 1


def test_display_only_duplicate_is_stored_but_not_queued(outbox: Outbox) -> None:
    real, dup = egv(BASE_S, 120), egv(BASE_S, 131, display_only=True)
    assert outbox.add(SERIAL, [real, dup], rule(0), destinations=["ns"]) == 2
    assert [p.item.record for p in outbox.due("ns", limit=10, now=NOW)] == [real]
    assert [s.record for s in outbox.records(SERIAL, "egv")] == [real, dup]
    assert outbox.add_destination("other") == 1


def test_utc_is_fixed_at_first_insert(outbox: Outbox) -> None:
    first = egvs(3)
    outbox.add(SERIAL, first, rule(0), destinations=["ns"])
    later = [first[-1], egv(BASE_S + 900)]  # the anchor moved; the overlap is read again
    assert outbox.add(SERIAL, first + later, rule(3600), destinations=["ns"]) == 1
    got = {p.item.record.system_seconds: p.item.utc for p in outbox.due("ns", limit=10, now=NOW)}
    for s in (BASE_S, BASE_S + 300, BASE_S + 600):
        assert got[s] == rule(0)(s)
    assert got[BASE_S + 900] == rule(3600)(BASE_S + 900)
    assert all(u.tzinfo is not None and u.utcoffset() == timedelta(0) for u in got.values())


def test_stored_utc_round_trips_exactly(outbox: Outbox) -> None:
    outbox.add(SERIAL, [egv(BASE_S)], rule(-12345), destinations=["ns"])
    (item,) = outbox.records(SERIAL, "egv")
    assert item.utc == rule(-12345)(BASE_S)
    assert item.utc.isoformat() == rule(-12345)(BASE_S).isoformat()


@pytest.mark.parametrize("bad", [lambda s: NOW.replace(tzinfo=None), lambda s: NOW + timedelta(microseconds=5)])
def test_add_refuses_naive_or_fractional_times_and_stores_nothing(outbox: Outbox, bad) -> None:
    with pytest.raises(ValueError):
        outbox.add(SERIAL, egvs(3), bad, destinations=["ns"])
    assert outbox.stats()["records"] == {}


def test_newest_system_seconds_per_receiver_and_kind(outbox: Outbox) -> None:
    assert outbox.newest_system_seconds(SERIAL, "egv") is None
    outbox.add(SERIAL, [egv(BASE_S + 600), egv(BASE_S), sensor(BASE_S + 900)], rule(0), destinations=[])
    assert outbox.newest_system_seconds(SERIAL, "egv") == BASE_S + 600
    assert outbox.newest_system_seconds(SERIAL, "sensor") == BASE_S + 900
    assert outbox.newest_system_seconds("other", "egv") is None


def test_records_lists_oldest_first_with_a_cursor(outbox: Outbox) -> None:
    outbox.add(SERIAL, [settings(BASE_S + 10), settings(BASE_S)], rule(0), destinations=["ns"])
    assert [s.record.system_seconds for s in outbox.records(SERIAL, "settings")] == [BASE_S, BASE_S + 10]
    assert [s.record.system_seconds for s in outbox.records(SERIAL, "settings", newer_than=BASE_S)] == [BASE_S + 10]
    assert outbox.backlog("ns") == 0  # settings are stored, not queued


def test_sensor_near_pairs_by_time(outbox: Outbox) -> None:
    outbox.add(
        SERIAL, [sensor(BASE_S - 1, 1), sensor(BASE_S + 300, 2), sensor(BASE_S + 302, 3)], rule(0), destinations=[]
    )
    near = outbox.sensor_near(SERIAL, BASE_S)
    assert near is not None and near.unfiltered == 1
    near = outbox.sensor_near(SERIAL, BASE_S + 301)
    assert near is not None and near.unfiltered == 2  # a tie goes to the earlier record
    assert outbox.sensor_near(SERIAL, BASE_S + 150) is None
    assert outbox.sensor_near("other", BASE_S) is None


def test_large_backfill_in_chunks(outbox: Outbox) -> None:
    records = [r for i in range(3 * BACKFILL_CHUNK) for r in (egv(BASE_S + 300 * i), sensor(BASE_S + 300 * i - 1))]
    total = sum(
        outbox.add(SERIAL, records[i : i + BACKFILL_CHUNK], rule(0), destinations=["ns"])
        for i in range(0, len(records), BACKFILL_CHUNK)
    )
    assert total == len(records)
    assert outbox.backlog("ns") == 3 * BACKFILL_CHUNK


# -- anchors ------------------------------------------------------------------------------------


def test_anchor_persistence(outbox: Outbox) -> None:
    assert outbox.get_anchor(SERIAL) is None
    measured = NOW + timedelta(microseconds=123456)
    outbox.set_anchor(SERIAL, 478_000_123, measured)
    assert outbox.get_anchor(SERIAL) == (478_000_123, measured)
    outbox.set_anchor(SERIAL, -5, NOW)
    assert outbox.get_anchor(SERIAL) == (-5, NOW)
    assert outbox.get_anchor("other") is None
    offset, when = outbox.get_anchor(SERIAL) or (0, NOW)
    assert when.utcoffset() == timedelta(0)


# -- destinations and sent state ----------------------------------------------------------------


def test_sent_state_is_per_destination(outbox: Outbox) -> None:
    outbox.add(SERIAL, egvs(4), rule(0), destinations=["a", "b"])
    ids = [p.id for p in outbox.due("a", limit=10, now=NOW)]
    assert outbox.mark_sent("a", ids, NOW) == 4
    assert outbox.mark_sent("a", ids, NOW) == 0  # already sent
    assert outbox.backlog("a") == 0 and outbox.due("a", limit=10, now=NOW) == []
    assert outbox.backlog("b") == 4
    assert [p.id for p in outbox.due("b", limit=10, now=NOW)] == ids


def test_add_destination_queues_the_stored_history(outbox: Outbox) -> None:
    outbox.add(SERIAL, egvs(3) + [sensor(BASE_S), meter(BASE_S), settings(BASE_S)], rule(0), destinations=["a"])
    assert outbox.add_destination("b") == 4  # 3 EGVs and the meter; sensor/settings are not queued
    assert outbox.add_destination("b") == 0
    assert outbox.backlog("b") == 4
    outbox.add(SERIAL, egvs(1, start=BASE_S + 5000), rule(0), destinations=["a", "b"])
    assert outbox.backlog("a") == outbox.backlog("b") == 5


def test_add_with_a_new_destination_gives_it_the_history(outbox: Outbox) -> None:
    outbox.add(SERIAL, egvs(3), rule(0), destinations=["a"])
    outbox.add(SERIAL, egvs(2, start=BASE_S + 5000), rule(0), destinations=["a", "b"])
    assert outbox.backlog("b") == 5


def test_add_destination_fills_gaps_after_a_pause(outbox: Outbox) -> None:
    outbox.add(SERIAL, egvs(2), rule(0), destinations=["a", "b"])
    outbox.add(SERIAL, egvs(2, start=BASE_S + 5000), rule(0), destinations=["a"])  # b not configured
    assert outbox.backlog("b") == 2
    assert outbox.add_destination("b") == 2
    assert outbox.backlog("b") == 4


def test_remove_destination_drops_its_state(outbox: Outbox) -> None:
    outbox.add(SERIAL, egvs(3), rule(0), destinations=["a", "b"])
    assert outbox.remove_destination("b") == 3
    assert outbox.backlog("b") == 0 and "b" not in outbox.stats()["destinations"]
    assert outbox.backlog("a") == 3


def test_due_is_oldest_first_with_limit(outbox: Outbox) -> None:
    records = egvs(10)
    outbox.add(SERIAL, records[5:], rule(0), destinations=["ns"])
    outbox.add(SERIAL, records[:5], rule(0), destinations=["ns"])  # read newest first, stored later
    due = outbox.due("ns", limit=4, now=NOW)
    assert [p.item.record for p in due] == records[:4]
    assert all(p.attempts == 0 and p.item.serial == SERIAL for p in due)
    assert outbox.due("ns", limit=0, now=NOW) == []


def test_due_skips_rows_waiting_for_their_next_attempt(outbox: Outbox) -> None:
    outbox.add(SERIAL, egvs(3), rule(0), destinations=["ns"])
    first = outbox.due("ns", limit=1, now=NOW)[0]
    retry_at = NOW + timedelta(minutes=5)
    assert outbox.mark_failed("ns", [first.id], "HTTP 503", retry_at, now=NOW) == 1
    assert [p.id for p in outbox.due("ns", limit=10, now=NOW)] == [first.id + 1, first.id + 2]
    assert outbox.backlog("ns") == 3
    again = outbox.due("ns", limit=10, now=retry_at)
    assert again[0].id == first.id and again[0].attempts == 1


def test_mark_failed_is_reported_by_stats(outbox: Outbox) -> None:
    outbox.add(SERIAL, egvs(3) + [sensor(BASE_S)], rule(0), destinations=["a", "b"])
    ids = [p.id for p in outbox.due("a", limit=2, now=NOW)]
    outbox.mark_sent("a", ids, NOW)
    outbox.mark_failed("b", [], "401: API_SECRET refused", NOW, now=NOW)
    stats = outbox.stats()
    assert stats["records"] == {"egv": 3, "sensor": 1}
    a, b = stats["destinations"]["a"], stats["destinations"]["b"]
    assert (a["pending"], a["sent"], a["last_sent_at"], a["last_error"]) == (1, 2, NOW, None)
    assert a["oldest_pending"] == rule(0)(BASE_S + 600)
    assert (b["pending"], b["sent"], b["last_error"], b["last_error_at"]) == (3, 0, "401: API_SECRET refused", NOW)


def test_requeue_and_sent_since_support_a_gap_audit(outbox: Outbox) -> None:
    outbox.add(SERIAL, egvs(3), rule(0), destinations=["ns"])
    outbox.mark_sent("ns", [p.id for p in outbox.due("ns", limit=10, now=NOW)], NOW)
    sent = outbox.sent_since("ns", rule(0)(BASE_S + 300))
    assert [p.item.record.system_seconds for p in sent] == [BASE_S + 300, BASE_S + 600]
    assert outbox.requeue("ns", [sent[0].id]) == 1
    assert [p.id for p in outbox.due("ns", limit=10, now=NOW)] == [sent[0].id]


# -- prune --------------------------------------------------------------------------------------


def test_prune_never_drops_unsent_records(outbox: Outbox) -> None:
    old = egvs(3)  # about a day before NOW
    outbox.add(SERIAL, old + [meter(BASE_S), sensor(BASE_S + 1000)], rule(0), destinations=["a", "b"])
    later = NOW + timedelta(days=100)
    outbox.mark_sent("a", [p.id for p in outbox.due("a", limit=10, now=NOW)], NOW)
    assert outbox.prune(later) == 1  # only the sensor record, no pending EGV near it
    assert outbox.backlog("b") == 4
    outbox.mark_sent("b", [p.id for p in outbox.due("b", limit=2, now=NOW)], NOW)
    assert outbox.prune(later) == 2
    assert outbox.backlog("b") == 2 and outbox.stats()["records"] == {"egv": 2}


def test_prune_respects_retention(outbox: Outbox) -> None:
    outbox.add(SERIAL, egvs(3), rule(0), destinations=["ns"])
    outbox.mark_sent("ns", [p.id for p in outbox.due("ns", limit=10, now=NOW)], NOW)
    assert outbox.prune(NOW, retain_days=90) == 0
    assert outbox.prune(NOW + timedelta(days=89), retain_days=90) == 0
    assert outbox.prune(NOW + timedelta(days=91), retain_days=90) == 3


def test_prune_keeps_uploadable_records_that_were_never_queued(outbox: Outbox) -> None:
    outbox.add(SERIAL, egvs(3), rule(0), destinations=[])
    assert outbox.prune(NOW + timedelta(days=1000)) == 0
    assert outbox.add_destination("ns") == 3


def test_prune_keeps_raw_values_a_pending_egv_still_needs(outbox: Outbox) -> None:
    outbox.add(SERIAL, [egv(BASE_S), sensor(BASE_S - 1), sensor(BASE_S + 5000)], rule(0), destinations=["ns"])
    assert outbox.prune(NOW + timedelta(days=1000)) == 1
    assert outbox.sensor_near(SERIAL, BASE_S) is not None


def test_pruned_records_are_not_stored_or_sent_again(outbox: Outbox) -> None:
    records = egvs(3) + [cal(BASE_S), event(BASE_S), sensor(BASE_S + 1)]
    outbox.add(SERIAL, records, rule(0), destinations=["ns"])
    outbox.mark_sent("ns", [p.id for p in outbox.due("ns", limit=10, now=NOW)], NOW)
    assert outbox.prune(NOW + timedelta(days=100)) == len(records)
    assert outbox.newest_system_seconds(SERIAL, "egv") == BASE_S + 600  # the read cursor survives
    assert outbox.add(SERIAL, records, rule(999), destinations=["ns"]) == 0  # a full re-read
    assert outbox.backlog("ns") == 0
    assert outbox.add(SERIAL, egvs(1, start=BASE_S + 900), rule(0), destinations=["ns"]) == 1


def test_foreign_keys_cascade_on_prune(outbox: Outbox) -> None:
    outbox.add(SERIAL, egvs(2), rule(0), destinations=["ns"])
    outbox.mark_sent("ns", [p.id for p in outbox.due("ns", limit=10, now=NOW)], NOW)
    outbox.prune(NOW + timedelta(days=100))
    conn = outbox._connection()
    assert conn.execute("SELECT count(*) FROM sent_state").fetchone()[0] == 0
    assert outbox.stats()["destinations"]["ns"]["sent"] == 0


def test_another_process_sees_committed_writes(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    with Outbox.open(path) as writer, Outbox.open(path) as reader:
        writer.add(SERIAL, egvs(2), rule(0), destinations=["ns"])
        assert reader.backlog("ns") == 2
    assert sqlite3.connect(path).execute("PRAGMA integrity_check").fetchone()[0] == "ok"


@pytest.mark.parametrize(
    "code, hint_word", [(errno.EACCES, "writable"), (errno.EROFS, "writable"), (errno.ENOSPC, "full")]
)
def test_open_maps_os_errors_to_hints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int, hint_word: str
) -> None:
    def refuse(*args: object, **kwargs: object) -> int:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr("bridge.store.outbox.os.open", refuse)
    with pytest.raises(StoreError) as info:
        Outbox.open(tmp_path / "outbox.sqlite3")
    assert hint_word in (info.value.hint or "")
    assert os.strerror(code) in str(info.value)
