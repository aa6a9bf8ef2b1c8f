"""kill -9 at random moments loses nothing committed, changes no UTC and duplicates nothing."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bridge.store import Outbox
from bridge.store.codec import record_key

from .crash_child import DEXCOM_EPOCH, SERIAL, chunk

CHILD = Path(__file__).with_name("crash_child.py")
REPO = Path(__file__).resolve().parents[2]
ITERATIONS = 8
SEED = 20240601

Key = tuple[str, int, str]


def snapshot(path: Path) -> dict[Key, int]:
    """Every stored record's key and UTC, read without the Outbox (read only)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows = conn.execute("SELECT kind, system_seconds, record_key, utc FROM records").fetchall()
        return {(kind, s, key): utc for kind, s, key, utc in rows}
    finally:
        conn.close()


def sent_ids(path: Path, destination: str) -> set[int]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = conn.execute(
            "SELECT record_id FROM sent_state WHERE destination = ? AND sent_at IS NOT NULL", (destination,)
        )
        return {row[0] for row in rows}
    finally:
        conn.close()


def keys(n: int) -> set[Key]:
    return {(r.KIND, r.system_seconds, record_key(r)) for r in chunk(n)}


def run_and_kill(path: Path, start: int, offset_s: int, delay_s: float) -> list[str]:
    """Start the child, SIGKILL it delay_s after it is ready, and return what it reported."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, str(CHILD), str(path), str(start), str(offset_s)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(delay_s)
    proc.send_signal(signal.SIGKILL)
    lines = proc.stdout.read().splitlines()
    assert proc.wait(timeout=10) == -signal.SIGKILL, "the child ended before the kill"
    return lines


def test_kill_9_at_random_moments_loses_nothing(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    path = tmp_path / "state" / "outbox.sqlite3"
    Outbox.open(path).close()
    before: dict[Key, int] = {}
    committed: set[int] = set()
    sent_a: set[int] = set()
    offsets: list[int] = []
    for iteration in range(ITERATIONS):
        offset_s = 100_000 * (iteration + 1)  # another anchor every run: a recomputed UTC would show
        offsets.append(offset_s)
        start = max(0, max(committed, default=0) - 3)  # re-read a few chunks, as an overlap would
        lines = run_and_kill(path, start, offset_s, rng.uniform(0.0, 0.25))
        newly = {int(line.split()[1]) for line in lines if line.startswith("committed ")}
        for line in lines:
            if line.startswith("sent "):
                sent_a |= {int(i) for i in line.split()[1].split(",")}

        after = snapshot(path)
        # nothing committed before is lost, and no UTC changed
        assert {k: after.get(k) for k in before} == before
        # every chunk reported committed is there, and every chunk is all or nothing
        committed |= newly
        for n in committed:
            assert keys(n) <= after.keys()
        present = {n for n in range(max(committed, default=0) + 3) if keys(n) & after.keys()}
        for n in present:
            assert keys(n) <= after.keys(), f"chunk {n} stored in part"
        # records new in this run carry this run's anchor; older ones an earlier run's
        for k, utc in after.items():
            expected_base = int((DEXCOM_EPOCH - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds()) + k[1]
            assert utc - expected_base in offsets
            if k not in before:
                assert utc - expected_base == offset_s
        # acknowledged stays acknowledged
        assert sent_a <= sent_ids(path, "a")
        before = after

    assert len(committed) > ITERATIONS  # the kills did land in the middle of the work
    # re-adding everything (another anchor again) inserts nothing and changes nothing
    with Outbox.open(path) as box:
        for n in sorted(committed):
            assert (
                box.add(SERIAL, chunk(n), lambda s: DEXCOM_EPOCH + timedelta(seconds=s + 1), destinations=["a", "b"])
                == 0
            )
        stats = box.stats()
        assert sum(stats["records"].values()) == len(before)
        for name in ("a", "b"):
            d = stats["destinations"][name]
            assert d["pending"] + d["sent"] == stats["records"]["egv"] + stats["records"]["event"]
    assert snapshot(path) == before
