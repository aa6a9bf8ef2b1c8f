"""kill -9 `bridge sync` at random points of a 30-day backfill, rerun until done: every reading once.

The receiver is a 30-day `ReceiverEmulator` with ``latency=False``: with the latency model on,
a 30-day read takes about 7 s a run and the test several times as long; without it the whole
backfill (17,000 records read, 8,800 uploaded) takes about 1.5 s, so the kills are timed
against the store's progress rather than the clock alone. Each `python -m bridge sync`
subprocess is SIGKILLed at a seeded random point:

* read phase: once the store holds a random share of the receiver's records (the first read
  of a partition commits every 500 records; a rerun reads the rest of a partition it had
  started in one transaction), then a random 0-30 ms more, so the kill falls anywhere
  between two commits;
* upload phase: once the destination has a random share of its rows acknowledged (a commit
  per 100-entry batch), then a random 0-30 ms more, so some kills fall between a POST and its
  ``mark_sent``: the re-sent batch must then be absorbed by the server's upsert;
* start: a few runs are killed by a plain random delay from 0.05 s to 0.4 s (imports, the
  store's migration, opening the receiver, measuring the clock anchor), and a few right after
  the first read kill by one from 0.2 s to 0.5 s: these aim at the rerun's read of the rest
  of the partition, whose single commit comes at its end.

Then `bridge sync` is rerun until it exits 0, and the bundled server must hold exactly the
emulator's readings: every EGV that is not display-only and whose glucose is not 0, as one
``sgv`` entry at ``system time + anchor`` (the anchor the store kept), none missing, none
twice; the meter readings; the treatments without duplicates. A further sync uploads nothing.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from nsserver import SECRET, Server, get_json

from bridge.dexcom.clock import DEXCOM_EPOCH, DEXCOM_EPOCH_UNIX
from bridge.emulator import ReceiverEmulator
from bridge.nightscout import event_to_treatment, insertion_to_treatment
from bridge.records import EGVRecord, StampedRecord
from bridge.store import Outbox

SEED = 20261125
CLOCK_OFFSET_S = -7200  # the receiver's system clock runs 2 h behind true UTC
READ_KILLS = 8
UPLOAD_KILLS = 16
START_KILLS = 3
REREAD_KILLS = 3
MAX_RERUNS = 5
POLL_S = 0.003
KINDS = ("egv", "sensor", "meter", "cal", "insertion", "event", "settings")


def _env(link: Path, state: Path, url: str) -> dict[str, str]:
    env = {**os.environ, "BRIDGE_DEVICE": str(link), "BRIDGE_STATE_DIR": str(state), "NIGHTSCOUT_URL": url,
           "API_SECRET": SECRET}
    env.pop("BRIDGE_API_SECRET", None)
    return env


def _progress(store: Path) -> tuple[int, int] | None:
    """(records stored, rows acknowledged) as committed, read from a separate read-only connection."""
    try:
        conn = sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=0.05)
        try:
            row = conn.execute("SELECT (SELECT count(*) FROM records), "
                               "(SELECT count(*) FROM sent_state WHERE sent_at IS NOT NULL)").fetchone()
        finally:
            conn.close()
    except sqlite3.Error:  # not created yet, or not migrated yet
        return None
    return int(row[0]), int(row[1])


def _reached(store: Path, phase: str, target: int) -> bool:
    progress = _progress(store)
    if progress is None:
        return False
    stored, sent = progress
    return stored >= target if phase == "read" else sent >= target


def _acknowledged_not_marked(base: str, store: Path) -> int:
    """Readings the server holds that the store has not marked sent: a kill between POST and mark_sent."""
    conn = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    try:
        marked = {utc * 1000 for (utc,) in conn.execute(
            "SELECT r.utc FROM sent_state AS s JOIN records AS r ON r.id = s.record_id "
            "WHERE r.kind = 'egv' AND s.sent_at IS NOT NULL")}
    finally:
        conn.close()
    entries = get_json(base, "/api/v1/entries/sgv.json", {"count": "100000", "find[date][$gte]": "0"})
    return sum(1 for e in entries if e["date"] not in marked)


def _run_and_kill(env: dict[str, str], store: Path, phase: str, target: int, delay_s: float) -> int | None:
    """Start a sync; SIGKILL it once ``phase`` reached ``target`` plus ``delay_s``; None when killed.

    For ``phase == "start"`` the kill comes ``delay_s`` after the start. Returns the exit code
    when the run ended on its own first.
    """
    proc = subprocess.Popen([sys.executable, "-m", "bridge", "sync"], env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        if phase != "start":
            deadline = time.monotonic() + 120
            while proc.poll() is None and not _reached(store, phase, target):
                assert time.monotonic() < deadline, "the sync made no progress"
                time.sleep(POLL_S)
        time.sleep(delay_s)
        if proc.poll() is not None:
            return proc.wait()
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        return None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stderr is not None
        proc.stderr.close()


def _sync(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bridge", "sync"], env=env, capture_output=True, text=True,
                          timeout=120)


@pytest.mark.timeout(240)
def test_kill_9_at_random_points_of_a_backfill_loses_nothing_and_sends_nothing_twice(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    server = Server(tmp_path)
    link, state = tmp_path / "dexcom", tmp_path / "state"
    store = state / "outbox.sqlite3"
    env = _env(link, state, server.base)
    try:
        with ReceiverEmulator(days=30, seed=SEED % 1000, latency=False, link_path=link, interval_s=3600,
                              clock_offset_s=CLOCK_OFFSET_S) as emulator:
            held = emulator.records
            total = sum(len(held[k]) for k in KINDS)
            readings = [r for r in held["egv"] if isinstance(r, EGVRecord) and not r.display_only and r.glucose != 0]
            uploadable_floor = len(readings)  # sgv alone; mbg, cal and treatments come on top

            reads = sorted((("read", rng.randrange(1, total), rng.uniform(0, 0.03)) for _ in range(READ_KILLS)),
                           key=lambda p: p[1])
            uploads = sorted((("upload", rng.randrange(1, uploadable_floor), rng.uniform(0, 0.03))
                              for _ in range(UPLOAD_KILLS)), key=lambda p: p[1])
            starts = [("start", 0, rng.uniform(0.05, 0.4)) for _ in range(START_KILLS)]
            rereads = [("start", 0, rng.uniform(0.2, 0.5)) for _ in range(REREAD_KILLS)]
            # start kills first, between the phases and last; rereads after the first read kill
            plan = [starts[0], reads[0], *rereads, *reads[1:], starts[1], *uploads, *starts[2:]]
            kills: list[tuple[str, tuple[int, int] | None]] = []
            in_flight: list[int] = []  # per upload kill: readings the server holds that the store has not marked sent
            finished_early: list[int] = []
            for phase, target, delay in plan:
                code = _run_and_kill(env, store, phase, target, delay)
                if code is None:
                    kills.append((phase, _progress(store)))
                    if phase == "upload":
                        in_flight.append(_acknowledged_not_marked(server.base, store))
                else:
                    finished_early.append(code)
                    assert code == 0, f"a sync that was not killed exited {code}"
            reruns = []
            for _ in range(MAX_RERUNS):
                result = _sync(env)
                reruns.append(result.returncode)
                if result.returncode == 0:
                    break
            assert reruns[-1] == 0, result.stdout + result.stderr
            again = _sync(env)
            assert again.returncode == 0, again.stderr
            assert "uploaded 0," in again.stdout, again.stdout
            held = emulator.records  # no live reading was due (interval 1 h): the same as before
            serial = emulator.serial
        with Outbox.open(store) as outbox:
            anchor = outbox.get_anchor(serial)
        assert anchor is not None
        offset_s = anchor[0]
        assert abs(offset_s + CLOCK_OFFSET_S) <= 2, offset_s  # system time + offset = true UTC, to the second

        expected = Counter(((DEXCOM_EPOCH_UNIX + r.system_seconds + offset_s) * 1000, r.glucose)
                           for r in held["egv"] if isinstance(r, EGVRecord) and not r.display_only and r.glucose != 0)
        entries = get_json(server.base, "/api/v1/entries/sgv.json", {"count": "100000", "find[date][$gte]": "0"})
        got = Counter((e["date"], e["sgv"]) for e in entries)
        missing = expected - got
        duplicated = Counter({k: n - 1 for k, n in got.items() if n > 1})
        extra = got - expected

        mbg = get_json(server.base, "/api/v1/entries/mbg.json", {"count": "10000", "find[date][$gte]": "0"})
        stamped = [StampedRecord(serial, DEXCOM_EPOCH + timedelta(seconds=r.system_seconds + offset_s), r)
                   for r in held["event"] + held["insertion"]]
        docs = [event_to_treatment(s, device="x") if s.record.KIND == "event" else insertion_to_treatment(s, device="x")
                for s in stamped]
        expected_treatments = Counter((d["created_at"], d["eventType"]) for d in docs if d is not None)
        treatments = get_json(server.base, "/api/v1/treatments.json",
                              {"count": "10000", "find[created_at][$gte]": "2000-01-01"})
        got_treatments = Counter((t["created_at"], t["eventType"]) for t in treatments)

        print(f"\nkills: {len(kills)} ({', '.join(f'{p} at stored/sent {s}' for p, s in kills)}); "
              f"runs that finished before their kill: {len(finished_early)}; reruns until exit 0: {len(reruns)}")
        print(f"upload kills between a POST and its mark_sent: {sum(1 for n in in_flight if n)} of {len(in_flight)} "
              f"(readings then on the server but not marked sent: {in_flight})")
        print(f"readings: emulator {sum(expected.values())}, server {len(entries)}, "
              f"missing {sum(missing.values())}, duplicated {sum(duplicated.values())}, extra {sum(extra.values())}; "
              f"meter: emulator {len(held['meter'])}, server {len(mbg)}; "
              f"treatments: expected {sum(expected_treatments.values())}, server {len(treatments)}")
    finally:
        server.stop()

    assert len(kills) >= READ_KILLS + UPLOAD_KILLS - 2, kills  # nearly every planned kill hit a running sync
    assert any(p == "read" for p, _ in kills) and any(p == "upload" for p, _ in kills), kills
    assert any(in_flight), "no kill fell between a POST and its mark_sent: the re-send path went untested"
    assert not missing, sorted(missing)[:10]
    assert not duplicated, sorted(duplicated)[:10]
    assert not extra, sorted(extra)[:10]
    assert len({e["date"] for e in entries}) == len(entries)
    assert len(mbg) == len(held["meter"])
    assert len({m["date"] for m in mbg}) == len(mbg)
    assert got_treatments == expected_treatments
