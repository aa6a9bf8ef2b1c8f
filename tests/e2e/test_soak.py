"""Soak: `bridge run` between a faulty emulated receiver and a server that goes away twice.

At least 500 live readings at the emulator's shortest interval (1 s: records carry whole-second
system times, so ``ReceiverEmulator`` refuses anything shorter), with garbage replies (bad CRC,
truncated frames, NAKs) and unplugs injected on the receiver, and the bundled server stopped
twice for a few seconds and restarted on the same port and database. Then the emulator stops
recording (it keeps answering), the daemon drains, SIGTERM stops it, and the server must hold
every reading the receiver recorded exactly once: none missing, none twice, nothing else.

A reading's Nightscout ``date`` is ``(DEXCOM_EPOCH + system_seconds + anchor) * 1000``; the
anchor (host UTC minus receiver system time, 0 ± 1 s here: ``--clock-offset 0``) is read from
``bridge status --json``. The run takes about 9 minutes (500 s of readings plus start and
drain); ``BRIDGE_SOAK_READINGS`` sets another number of live readings for a quicker look.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from nsserver import SECRET, Server, get_json

from bridge.dexcom.clock import DEXCOM_EPOCH_UNIX
from bridge.emulator import ReceiverEmulator

LIVE_READINGS = int(os.environ.get("BRIDGE_SOAK_READINGS", "500"))
INTERVAL_S = 1  # the emulator's shortest interval; the daemon keeps up with it (about 0.8 s a cycle)
FAULTS = "crc=0.02,truncate=0.01,nak=0.01,unplug=0.003"
OUTAGES = ((0.25, 4.0), (0.6, 9.0))  # (fraction of the live readings done, seconds the server is down)
DRAIN_TIMEOUT_S = 150.0  # the outbox backs off 15-60 s after failed rounds: allow two of them


class _Emulator(ReceiverEmulator):
    """The emulator with a switch that stops new readings while it keeps answering."""

    frozen = False

    def tick(self) -> int:
        return 0 if self.frozen else super().tick()


def _daemon_env(link: Path, state: Path, url: str) -> dict[str, str]:
    env = {**os.environ, "BRIDGE_DEVICE": str(link), "BRIDGE_STATE_DIR": str(state), "NIGHTSCOUT_URL": url,
           "API_SECRET": SECRET}
    env.pop("BRIDGE_API_SECRET", None)
    env.pop("JOURNAL_STREAM", None)
    env.pop("NOTIFY_SOCKET", None)
    return env


def _start_daemon(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "bridge", "run", "--assume-clock-ok"], env=env,
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)


def _status(env: dict[str, str]) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", "bridge", "status", "--json"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    status: dict[str, Any] = json.loads(done.stdout)
    return status


def _expected(truth: dict[str, Any], anchor_s: int) -> set[tuple[int, int]]:
    """(date ms, sgv) of every reading Nightscout must hold: not display-only, glucose not 0."""
    return {((DEXCOM_EPOCH_UNIX + r["system_seconds"] + anchor_s) * 1000, r["glucose"])
            for r in truth["records"]["egv"] if not r["display_only"] and r["glucose"] != 0}


def _held(base: str) -> collections.Counter[tuple[int, int]]:
    entries = get_json(base, "/api/v1/entries/sgv.json", {"count": "100000", "find[date][$gte]": "0"})
    return collections.Counter((int(e["date"]), int(e["sgv"])) for e in entries)


def _overtaken(db: Path) -> int:
    """Readings the server stored after a newer one (the outbox should drain oldest first)."""
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        dates = [d for (d,) in conn.execute("SELECT date FROM entries WHERE type = 'sgv' ORDER BY rowid")]
    newest, late = 0, 0
    for date in dates:
        late += date < newest
        newest = max(newest, date)
    return late


@pytest.mark.timeout(LIVE_READINGS * INTERVAL_S + 420)
def test_soak_daemon_delivers_every_reading_once_through_faults_and_outages(tmp_path: Path) -> None:
    server = Server(tmp_path)
    link, truth_path, daemon_log = tmp_path / "dexcom", tmp_path / "truth.json", tmp_path / "daemon.log"
    env = _daemon_env(link, tmp_path / "state", server.base)
    emulator = _Emulator(days=0.1, interval_s=INTERVAL_S, faults=FAULTS, seed=2024, link_path=link,
                         truth_path=truth_path)
    daemon: subprocess.Popen[bytes] | None = None
    outages: list[float] = []
    restarts = 0
    try:
        emulator.start()
        live_from = emulator.clock.system_seconds()
        time.sleep(6 * INTERVAL_S)  # a few live readings first: the cadence is learned at the first read
        daemon = _start_daemon(env, daemon_log)
        pending_outages = list(OUTAGES)

        def live_count() -> int:
            return sum(1 for r in emulator.records["egv"] if r.system_seconds > live_from)

        while (live := live_count()) < LIVE_READINGS:
            if daemon.poll() is not None:  # as systemd's Restart=on-failure would
                assert daemon.returncode != 0, "the daemon stopped by itself with exit 0"
                restarts += 1
                daemon = _start_daemon(env, daemon_log)
            if pending_outages and live >= pending_outages[0][0] * LIVE_READINGS:
                _, down_s = pending_outages.pop(0)
                started = time.monotonic()
                server.stop()
                time.sleep(down_s)
                server.start()
                outages.append(time.monotonic() - started)
            time.sleep(0.5)
        emulator.frozen = True  # no new readings; the receiver keeps answering
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        while time.monotonic() < deadline:
            anchor = _status(env)["daemon"].get("anchor_offset_s") or 0
            expected = _expected(json.loads(truth_path.read_text()), anchor)
            if set(_held(server.base)) >= expected:
                break
            time.sleep(2)
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(60) == 0, daemon_log.read_text(errors="replace")[-3000:]
        status = _status(env)
        faults = emulator.faults_injected
        unplugs = emulator.unplugs
    finally:
        if daemon is not None and daemon.poll() is None:
            daemon.kill()
            daemon.wait()
        emulator.stop()
        server.stop()

    server.start()  # the db as the daemon left it, read through the API
    try:
        held = _held(server.base)
    finally:
        server.stop()
    overtaken = _overtaken(server.db)
    truth = json.loads(truth_path.read_text())
    anchor = status["daemon"]["anchor_offset_s"]
    expected = _expected(truth, anchor)
    live_readings = sum(1 for r in truth["records"]["egv"] if r["system_seconds"] > live_from)
    missing = sorted(expected - set(held))
    duplicated = sorted(k for k, n in held.items() if n > 1)
    unexpected = sorted(set(held) - expected)
    log_text = daemon_log.read_text(errors="replace")
    print(f"\nsoak: {live_readings} live readings at {INTERVAL_S} s ({len(expected)} expected on the server "
          f"with the history), anchor {anchor} s; faults injected {dict(faults)} "
          f"({sum(faults.values())} in all, {unplugs} unplugs); server outages {len(outages)} "
          f"({', '.join(f'{s:.1f} s' for s in outages)}); daemon restarts {restarts}; "
          f"receiver commands {status['daemon']['receiver_commands']}, cycles {status['daemon']['cycles']}; "
          f"held {sum(held.values())}: missing {len(missing)}, duplicated {len(duplicated)}, "
          f"unexpected {len(unexpected)}; stored after a newer reading {overtaken}; daemon log: "
          f"{log_text.count(' connected on ') - 1} reconnects, {log_text.count('; attempt ')} failed requests "
          f"retried in the call, {log_text.count('unavailable, retrying in')} upload rounds deferred")
    assert live_readings >= LIVE_READINGS
    assert len(outages) == len(OUTAGES)
    assert faults.get("unplug", 0) > 0 and faults.get("crc", 0) + faults.get("truncate", 0) > 0
    assert not missing, f"{len(missing)} readings missing, e.g. {missing[:5]}"
    assert not duplicated, f"{len(duplicated)} readings held twice, e.g. {duplicated[:5]}"
    assert not unexpected, f"{len(unexpected)} entries the receiver never recorded, e.g. {unexpected[:5]}"
    assert status["daemon"]["backlog"] == {server.base: 0}
