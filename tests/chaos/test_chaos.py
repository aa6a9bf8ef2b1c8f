"""Chaos: the whole pipeline under every fault at once, then every reading on the server exactly once.

One scenario (issue 6), seeded by ``CHAOS_SEED``:

* the receiver: a :class:`ReceiverEmulator` in this process recording every second, whose system
  clock is 3 days behind UTC, injecting every fault kind (crc, header, record, truncate, slow,
  nak, unplug), with a truth file;
* the site: the bundled server (``python -m bridge server``) as a subprocess, stopped (SIGTERM,
  or SIGKILL as a crash) and restarted on the same port and database at seeded moments, behind
  :class:`~proxy.FaultProxy`, which answers 500/502/503 and 429 (Retry-After 1-2 s) to some
  requests, and for a few seconds to all of them in a burst;
* the daemon: ``daemon_child.py`` (the real :class:`~bridge.app.daemon.Daemon`, as `bridge run`
  builds it) pointed at the proxy, ``kill -9``-ed at seeded moments and restarted at once on the
  same state directory, and restarted too whenever it exits on its own, as systemd would;
* the host clock: "not synchronised" for the first :data:`CLOCK_UNSYNCED_S` seconds.

Then the faults stop, the receiver records a few more readings and stops recording (it keeps
answering), the daemon drains (a bounded wait until the server holds every reading), and
SIGTERM stops it. Afterwards the server must hold every reading the receiver recorded (each
EGV that is not display-only and whose glucose is not 0) exactly once, at exactly
``(DEXCOM_EPOCH + system_seconds + anchor) * 1000`` with the anchor the store kept, and no
other sgv entry; and the daemon's outage log (``bridge status --json``, sampled during the run
as well, since it keeps the newest 50) must hold an entry for each class of fault injected:
``clock``, ``receiver``, ``upload <url>`` and ``daemon`` (an unclean exit).

Size: ``CHAOS_SCALE`` (default 1: 100 s of live readings, about 2.5 minutes in all) multiplies
the live time and the number of kills, server outages and bursts; ``make chaos`` runs it at 10.
Every wait is bounded; nothing asserts how long anything took.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from nsserver import SECRET, Server, get_json
from proxy import FaultProxy

from bridge.dexcom.clock import DEXCOM_EPOCH_UNIX
from bridge.emulator import FaultSpec, ReceiverEmulator
from bridge.records import EGVRecord

SCALE = float(os.environ.get("CHAOS_SCALE", "1"))
SEED = int(os.environ.get("CHAOS_SEED", "20261206"))
LIVE_S = 100.0 * SCALE  # seconds of live readings under faults
INTERVAL_S = 1  # the emulator's shortest interval
LIVE_AT_START_S = 20  # 1-s readings the receiver already holds: the daemon learns the cadence at once
CLOCK_OFFSET_S = -3 * 86400  # the receiver's system clock runs 3 days behind UTC
CLOCK_UNSYNCED_S = 15.0  # the host clock is "not synchronised" this long after the start
EMULATOR_FAULTS = FaultSpec(crc=0.02, header=0.015, record=0.015, truncate=0.01, slow=0.005, nak=0.01, unplug=0.004)
PROXY_RATES = {500: 0.04, 502: 0.03, 503: 0.04, 429: 0.05}  # per request
KILLS = max(1, round(4 * SCALE))
SERVER_OUTAGES = max(2, round(2 * SCALE))  # the first of each pair long enough to outlast in-call retries
BURSTS = max(1, round(1 * SCALE))
LONG_OUTAGE_S = (12.0, 15.0)  # > 1 + 2 + 4 s of in-call retries (+ jitter): an upload round fails
SHORT_OUTAGE_S = (2.0, 8.0)
BURST_S = (8.0, 12.0)
QUIET_S = 5.0  # faults off, the receiver still recording: the next new reading drains the backlog
DRAIN_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 30.0
SAMPLE_S = 2.0  # read the daemon's outage log this often
CHILD = Path(__file__).resolve().parent / "daemon_child.py"


class _Emulator(ReceiverEmulator):
    """The emulator with a switch that stops new readings while it keeps answering."""

    frozen = False

    def tick(self) -> int:
        return 0 if self.frozen else super().tick()


def _emulator(tmp: Path) -> _Emulator:
    """A receiver recording every second whose last LIVE_AT_START_S seconds are already 1-s readings."""
    lag = [float(LIVE_AT_START_S)]
    emu = _Emulator(days=0.5, seed=SEED, interval_s=INTERVAL_S, faults=EMULATOR_FAULTS, link_path=tmp / "dexcom",
                    truth_path=tmp / "truth.json", clock_offset_s=CLOCK_OFFSET_S, now=lambda: time.time() - lag[0])
    lag[0] = 0.0
    emu.tick()
    return emu


class _Supervisor:
    """The daemon child, restarted like systemd's Restart=always (kill -9 included)."""

    def __init__(self, tmp: Path, env: dict[str, str], flag: Path) -> None:
        self.env, self.flag = env, flag
        self.log = tmp / "daemon.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.kills = 0
        self.exits: Counter[int] = Counter()  # exit codes of the runs that ended by themselves
        self.last_exit: int | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            out.write(f"---- chaos: start {self.starts + 1}\n".encode())
            out.flush()
            self.proc = subprocess.Popen([sys.executable, str(CHILD), str(self.flag)], env=self.env,
                                         stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        self.starts += 1

    def keep_alive(self) -> bool:
        """Restart the daemon if it exited by itself (True); a clean exit 0 unasked is a failure."""
        assert self.proc is not None
        code = self.proc.poll()
        if code is None:
            return False
        self.exits[code] += 1
        self.last_exit = code
        assert code != 0, f"the daemon exited 0 without being asked:\n{self.tail()}"
        self.start()
        return True

    def kill(self) -> None:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
            self.kills += 1
            with self.log.open("ab") as out:
                out.write(b"---- chaos: kill -9\n")
        else:
            self.exits[self.proc.returncode] += 1
        self.start()

    def terminate(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail(f"the daemon did not stop within {STOP_TIMEOUT_S:g} s of SIGTERM:\n{self.tail()}")

    def cleanup(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:]


def _schedule(rng: random.Random) -> list[tuple[float, str, float]]:
    """(seconds after the start, action, parameter): kills, server outages and proxy bursts.

    Each kind is spread over slots of the live time, one event at a random moment in each slot,
    so two events of a kind never fall on top of each other.
    """
    events: list[tuple[float, str, float]] = []

    def spread(count: int, action: str, param: Any) -> None:
        slot = LIVE_S / count
        for i in range(count):
            events.append((i * slot + rng.uniform(0.1, 0.7) * slot, action, param(i)))

    spread(KILLS, "kill", lambda i: 0.0)
    spread(SERVER_OUTAGES, "server down",
           lambda i: rng.uniform(*(LONG_OUTAGE_S if i % 2 == 0 else SHORT_OUTAGE_S)))
    spread(BURSTS, "burst", lambda i: rng.uniform(*BURST_S))
    return sorted(events)


def _health(store: Path) -> dict[str, Any] | None:
    """The daemon's saved state, read from its store without disturbing it (None if unreadable now)."""
    if not store.exists():
        return None
    try:
        with contextlib.closing(sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=2)) as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = 'health'").fetchone()
    except sqlite3.Error:
        return None
    return None if row is None else dict(json.loads(row[0]))


def _stored_anchors(store: Path) -> list[int]:
    with contextlib.closing(sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=5)) as conn:
        return [int(offset) for (offset,) in conn.execute("SELECT offset_s FROM anchors")]


def _expected(records: list[EGVRecord], anchor_s: int) -> dict[int, int]:
    """date (ms) -> sgv of every reading Nightscout must hold: not display-only, glucose not 0."""
    return {(DEXCOM_EPOCH_UNIX + r.system_seconds + anchor_s) * 1000: r.glucose
            for r in records if not r.display_only and r.glucose != 0}


def _held(base: str) -> list[tuple[int, int]]:
    entries = get_json(base, "/api/v1/entries/sgv.json", {"count": "100000", "find[date][$gte]": "0"})
    return [(int(e["date"]), int(e["sgv"])) for e in entries]


def _status(env: dict[str, str]) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", "bridge", "status", "--json"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    status: dict[str, Any] = json.loads(done.stdout)
    return status


def _env(tmp: Path, link: Path, url: str) -> dict[str, str]:
    """A `bridge` environment with this test's settings and nothing leaking in from outside."""
    ours = ("BRIDGE_", "NIGHTSCOUT", "NS_URL", "API_SECRET", "CREDENTIALS_DIRECTORY", "NOTIFY_SOCKET",
            "WATCHDOG_", "JOURNAL_STREAM", "XDG_CONFIG_HOME", "STATE_DIRECTORY")
    env = {k: v for k, v in os.environ.items() if not k.startswith(ours)}
    env.update({"BRIDGE_DEVICE": str(link), "BRIDGE_STATE_DIR": str(tmp / "state"), "NIGHTSCOUT_URL": url,
                "API_SECRET": SECRET, "XDG_CONFIG_HOME": str(tmp / "xdg-config")})
    return env


@pytest.mark.timeout(int(LIVE_S + QUIET_S + DRAIN_TIMEOUT_S + 240))
def test_chaos_every_reading_once_with_its_time_and_every_outage_explained(tmp_path: Path) -> None:
    rng = random.Random(f"{SEED}:schedule")
    server = Server(tmp_path)
    proxy = FaultProxy(server.port, rates=PROXY_RATES, seed=SEED)
    flag = tmp_path / "clock-not-synchronised"
    flag.touch()
    env = _env(tmp_path, tmp_path / "dexcom", proxy.base)
    store = tmp_path / "state" / "outbox.sqlite3"
    emulator = _emulator(tmp_path)
    daemon = _Supervisor(tmp_path, env, flag)
    seen: dict[tuple[str, str], dict[str, Any]] = {}  # (kind, since) -> outage, over every sample
    timeline = tmp_path / "chaos-events.log"  # what the test did when, beside daemon.log and server.log
    server_stops: list[tuple[str, float]] = []
    bursts: list[tuple[int, float]] = []

    def sample() -> None:
        health = _health(store)
        for outage in (health or {}).get("outages") or []:
            seen[(str(outage["kind"]), str(outage["since"]))] = outage

    started = time.monotonic()

    def note(text: str) -> None:
        with timeline.open("a") as out:
            out.write(f"{datetime.now(UTC).isoformat(timespec='milliseconds')} +{time.monotonic() - started:6.1f} s "
                      f"{text}\n")

    try:
        emulator.start()
        live_from = emulator.clock.system_seconds()
        daemon.start()
        note(f"receiver recording, host clock not synchronised, daemon started; logs in {tmp_path}")
        events = _schedule(rng)
        server_back_at: float | None = None
        next_sample = 0.0
        while (elapsed := time.monotonic() - started) < LIVE_S:
            if flag.exists() and elapsed >= CLOCK_UNSYNCED_S:
                flag.unlink()
                note("host clock synchronised (flag removed)")
            if server_back_at is not None and elapsed >= server_back_at:
                server.start()
                server_back_at = None
                note("server up again")
            while events and events[0][0] <= elapsed:
                _, action, param = events.pop(0)
                if action == "kill":
                    daemon.kill()
                    note(f"daemon kill -9, started again (start {daemon.starts})")
                elif action == "server down" and server.up:
                    crash = rng.random() < 0.5
                    server.stop(crash=crash)
                    server_stops.append(("SIGKILL" if crash else "SIGTERM", param))
                    server_back_at = elapsed + param
                    note(f"server stopped by {server_stops[-1][0]} for {param:.1f} s")
                elif action == "burst":
                    answer = rng.choice([503, 429])
                    proxy.burst(answer, param)
                    bursts.append((answer, param))
                    note(f"proxy burst: {answer} to every request for {param:.1f} s")
            if daemon.keep_alive():
                note(f"daemon exited {daemon.last_exit} by itself, started again")
            if elapsed >= next_sample:
                sample()
                next_sample = elapsed + SAMPLE_S
            time.sleep(0.1)

        # stop the faults; the receiver records a little longer, then stops recording
        note("faults stopped")
        proxy.stop_faults()
        assert emulator.device.faults is not None
        emulator.device.faults.spec = FaultSpec()
        if not server.up:
            server.start()
        flag.unlink(missing_ok=True)
        quiet_until = time.monotonic() + QUIET_S
        while time.monotonic() < quiet_until:
            if daemon.keep_alive():
                note(f"daemon exited {daemon.last_exit} by itself, started again")
            time.sleep(0.2)
        emulator.frozen = True
        note("receiver stopped recording; draining")
        truth = [r for r in emulator.records["egv"] if isinstance(r, EGVRecord)]
        drain_started = time.monotonic()
        drained = False
        while time.monotonic() - drain_started < DRAIN_TIMEOUT_S:
            if daemon.keep_alive():
                note(f"daemon exited {daemon.last_exit} by itself, started again")
            sample()
            anchor = (_health(store) or {}).get("anchor_offset_s")
            if anchor is not None and set(_expected(truth, anchor).items()) <= set(_held(server.base)):
                drained = True
                break
            time.sleep(1.0)
        drain_s = time.monotonic() - drain_started
        note(f"drain {'done' if drained else 'NOT done'} after {drain_s:.1f} s; SIGTERM to the daemon")
        exit_code = daemon.terminate()
        log_text = daemon.log.read_text(errors="replace")
        assert exit_code == 0, f"SIGTERM: exit {exit_code}\n{daemon.tail()}"
        status = _status(env)
        sample()
        held = _held(server.base)
        faults = emulator.faults_injected
        unplugs = emulator.unplugs
        truth = [r for r in emulator.records["egv"] if isinstance(r, EGVRecord)]
    finally:
        daemon.cleanup()
        emulator.stop()
        proxy.close()
        server.stop()
    total_s = time.monotonic() - started

    health = status["daemon"]
    anchor = health["anchor_offset_s"]
    anchors = _stored_anchors(store)
    expected = _expected(truth, anchor)
    live = sum(1 for r in truth if r.system_seconds > live_from)
    by_date = Counter(date for date, _ in held)
    missing = sorted(set(expected) - set(by_date))
    duplicated = sorted(date for date, n in by_date.items() if n > 1)
    unexpected = sorted(date for date in by_date if date not in expected)
    wrong_value = sorted(date for date, sgv in held if date in expected and expected[date] != sgv)
    final = health.get("outages") or []
    for outage in final:
        seen[(str(outage["kind"]), str(outage["since"]))] = outage
    kinds = Counter("upload" if k.startswith("upload ") else k for k, _ in seen)
    proxy_counts = dict(proxy.counts)
    print(f"\nchaos (scale {SCALE:g}, seed {SEED}): {total_s:.0f} s in all, drain {drain_s:.1f} s "
          f"({'done' if drained else 'NOT done'})\n"
          f"  readings: {len(expected)} expected on the server ({live} live at {INTERVAL_S} s, the rest history), "
          f"held {len(held)} sgv entries; missing {len(missing)}, duplicated {len(duplicated)}, "
          f"unexpected {len(unexpected)}, wrong value {len(wrong_value)}\n"
          f"  anchor {anchor} s (store: {anchors}; receiver clock offset {CLOCK_OFFSET_S} s)\n"
          f"  receiver faults injected: {dict(sorted(faults.items()))} ({sum(faults.values())} in all, "
          f"{unplugs} unplugs)\n"
          f"  proxy: injected {proxy.injected()}, bursts {bursts}, forwarded {proxy_counts.get('forwarded', 0)}, "
          f"502 while the server was down {proxy_counts.get('upstream down', 0)}\n"
          f"  server restarts {len(server_stops)}: {[(how, round(s, 1)) for how, s in server_stops]}\n"
          f"  daemon: {daemon.kills} kill -9, {sum(daemon.exits.values())} exits by itself {dict(daemon.exits)}, "
          f"{daemon.starts - 1} restarts; {health.get('cycles')} cycles in the last run, "
          f"{log_text.count('Traceback')} tracebacks\n"
          f"  outages explained: {dict(kinds)} ({len(seen)} distinct over the run, {len(final)} in the final "
          f"status)")
    for outage in final[-8:]:
        print(f"    {outage['since']} -> {outage['until']}  {outage['kind']}: {outage['reason']}")

    assert drained, (f"the server did not get every reading within {DRAIN_TIMEOUT_S:g} s (logs: {tmp_path})\n"
                     f"{daemon.tail()}")
    assert live >= LIVE_S / INTERVAL_S * 0.8
    assert anchors == [anchor], f"the store's anchors {anchors} are not the status's {anchor}"
    assert abs(anchor + CLOCK_OFFSET_S) <= 2, f"anchor {anchor} s does not undo the receiver's {CLOCK_OFFSET_S} s"
    assert not missing, f"{len(missing)} readings missing, e.g. {missing[:5]}"
    assert not duplicated, f"{len(duplicated)} readings held twice, e.g. {duplicated[:5]}"
    assert not unexpected, f"{len(unexpected)} sgv entries the receiver never recorded, e.g. {unexpected[:5]}"
    assert not wrong_value, f"{len(wrong_value)} readings with another value, e.g. {wrong_value[:5]}"
    assert "Traceback" not in log_text, daemon.tail()
    assert health["running"] is False and health["backlog"] == {proxy.base: 0}
    assert all(o["reason"] for o in seen.values()), f"an outage without a reason: {list(seen.values())}"
    blamed = [o for o in seen.values() if o["kind"] == "receiver" and proxy.base in str(o["reason"])]
    assert not blamed, ("APP BUG (bridge/app/daemon.py Daemon._cycle): a receiver outage explained by an upload "
                        "error: the receiver outage is tracked with state.last_error after _upload() overwrote it "
                        f"in the same cycle: {blamed[:2]}")
    assert all(o["until"] is not None for o in final), f"outages still open after the drain: {final}"
    # every class of fault that was injected left its outage in the daemon's status
    assert kinds["clock"] >= 1, "the unsynchronised host clock at the start is not in the outage log"
    if unplugs:
        assert kinds["receiver"] >= 1, f"{unplugs} unplugs but no receiver outage in the log"
    if server_stops or bursts:
        assert kinds["upload"] >= 1, "the server was down and the proxy refused uploads, but no upload outage"
    if daemon.kills:
        assert kinds["daemon"] >= 1, f"{daemon.kills} kill -9 but no unclean exit in the outage log"
