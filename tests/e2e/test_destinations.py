"""Several Nightscout destinations: each gets every reading once, a site that was down catches up,
and a site added later receives the whole history.

Two (then three) bundled servers, one emulated receiver with a live reading every 2 s, and
`python -m bridge sync --nightscout-url A --nightscout-url B` (one shared API_SECRET). Every
check compares a server's ``sgv`` entries, as a multiset of (date, sgv), with the emulator's
readings: everything the receiver held before the sync started must be there, nothing it did
not hold by the end, each exactly once.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from nsserver import SECRET, Server, get_json

from bridge.dexcom.clock import DEXCOM_EPOCH_UNIX
from bridge.emulator import ReceiverEmulator
from bridge.errors import EX_OK, EX_TEMPFAIL
from bridge.records import EGVRecord, Record
from bridge.store import Outbox

Reading = tuple[int, int]  # (date ms, sgv)
BACKOFF_WAIT_S = 45  # the outbox's first retry comes 15-30 s after a failure (bridge.app.upload.BACKOFF_BASE_S)


@pytest.fixture
def servers(tmp_path: Path):
    started: list[Server] = []

    def start(name: str) -> Server:
        server = Server(tmp_path / name)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def _sync(link: Path, state: Path, *urls: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BRIDGE_DEVICE": str(link), "BRIDGE_STATE_DIR": str(state), "API_SECRET": SECRET}
    for name in ("BRIDGE_API_SECRET", "NIGHTSCOUT_URL", "BRIDGE_NIGHTSCOUT_URL", "NS_URL"):
        env.pop(name, None)
    flags = [arg for url in urls for arg in ("--nightscout-url", url)]
    return subprocess.run([sys.executable, "-m", "bridge", "sync", *flags], capture_output=True, text=True,
                          env=env, timeout=120)


def _uploadable(records: list[Record], offset_s: int) -> Counter[Reading]:
    """The uploadable readings among EGV records, as (date ms, sgv)."""
    return Counter(((DEXCOM_EPOCH_UNIX + r.system_seconds + offset_s) * 1000, r.glucose)
                   for r in records if isinstance(r, EGVRecord) and not r.display_only and r.glucose != 0)


def _readings(emulator: ReceiverEmulator, offset_s: int) -> Counter[Reading]:
    """The emulator's uploadable readings now."""
    return _uploadable(emulator.records["egv"], offset_s)


def _held(server: Server) -> Counter[Reading]:
    entries = get_json(server.base, "/api/v1/entries/sgv.json", {"count": "100000", "find[date][$gte]": "0"})
    return Counter((e["date"], e["sgv"]) for e in entries)


def _anchor(state: Path, serial: str) -> int:
    with Outbox.open(state / "outbox.sqlite3") as outbox:
        anchor = outbox.get_anchor(serial)
    assert anchor is not None
    return anchor[0]


def _assert_holds(server: Server, before: Counter[Reading], after: Counter[Reading]) -> int:
    """The server holds every reading of ``before``, none outside ``after``, none twice; returns the count."""
    held = _held(server)
    assert not before - held, f"{server.base} is missing {sorted(before - held)[:5]}"
    assert not held - after, f"{server.base} holds readings the receiver never had: {sorted(held - after)[:5]}"
    assert max(held.values()) == 1, f"{server.base} holds readings twice"
    return sum(held.values())


@pytest.mark.timeout(240)
def test_every_destination_gets_every_reading_once_and_a_site_that_was_down_catches_up(
    servers, tmp_path: Path
) -> None:
    a, b = servers("a"), servers("b")
    link, state = tmp_path / "dexcom", tmp_path / "state"
    with ReceiverEmulator(days=2, seed=41, latency=False, link_path=link, interval_s=2,
                          clock_offset_s=-3600) as emulator:
        # 1. both sites up: both get every reading once
        before = emulator.records["egv"]
        first = _sync(link, state, a.base, b.base)
        assert first.returncode == EX_OK, first.stdout + first.stderr
        offset_s = _anchor(state, emulator.serial)
        before_c = _uploadable(before, offset_s)
        after_c = _readings(emulator, offset_s)
        n_a, n_b = _assert_holds(a, before_c, after_c), _assert_holds(b, before_c, after_c)
        assert n_a == n_b >= 500
        assert f"{a.base}: uploaded" in first.stdout and f"{b.base}: uploaded" in first.stdout

        # 2. B goes down, the receiver gets new readings: A takes them, B's stay pending, exit 75
        b.stop()
        time.sleep(6)
        before_c = _readings(emulator, offset_s)
        started = time.monotonic()
        down = _sync(link, state, a.base, b.base)
        down_s = time.monotonic() - started
        after_c = _readings(emulator, offset_s)
        assert down.returncode == EX_TEMPFAIL, down.stdout + down.stderr
        a_line = down.stdout.split(f"{a.base}:")[1].split("\n")[0]
        assert "up to date" in a_line, down.stdout
        b_line = down.stdout.split(f"{b.base}:")[1].split("\n")[0]
        assert "uploaded 0" in b_line and "pending" in b_line, down.stdout
        pending_b = int(b_line.split(",")[1].split()[0])
        n_a2 = _assert_holds(a, before_c, after_c)
        assert n_a2 >= n_a + 2  # at least two new readings in 6 s at one every 2 s

        # 3. B back on the same port and database: it catches up, exit 0
        b.restart()
        assert sum(_held(b).values()) == n_b  # what it had before it went down
        before_c = _readings(emulator, offset_s)
        back = _sync(link, state, a.base, b.base)  # a one-shot sync retries backed-off rows at once
        first_back = back.returncode, back.stdout.split(f"{b.base}:")[1].split("\n")[0].strip()
        after_c = _readings(emulator, offset_s)
        assert back.returncode == EX_OK, back.stdout + back.stderr
        n_a3, n_b3 = _assert_holds(a, before_c, after_c), _assert_holds(b, before_c, after_c)
        assert _held(a) == _held(b)

        # 4. a third site added later receives the whole history
        c = servers("c")
        before_c = _readings(emulator, offset_s)
        later = _sync(link, state, a.base, b.base, c.base)
        after_c = _readings(emulator, offset_s)
        assert later.returncode == EX_OK, later.stdout + later.stderr
        counts = [_assert_holds(s, before_c, after_c) for s in (a, b, c)]
        assert _held(a) == _held(b) == _held(c)
        mbg = [len(get_json(s.base, "/api/v1/entries/mbg.json", {"count": "1000", "find[date][$gte]": "0"}))
               for s in (a, b, c)]
        treatments = [sorted((t["created_at"], t["eventType"]) for t in get_json(
            s.base, "/api/v1/treatments.json", {"count": "1000", "find[created_at][$gte]": "2000-01-01"}))
            for s in (a, b, c)]
        meters = len(emulator.records["meter"])
    assert mbg == [meters] * 3
    assert treatments[0] == treatments[1] == treatments[2] and treatments[0]
    print(f"\nreadings: both up {n_a}/{n_b}; B down: A {n_a2}, B pending {pending_b} records, exit "
          f"{down.returncode} after {down_s:.1f} s; B back: first sync exit {first_back[0]} "
          f"({first_back[1]}), then A {n_a3}, B {n_b3}; C added: {counts}; meters {mbg} of {meters}")
    assert first_back[0] == EX_OK
