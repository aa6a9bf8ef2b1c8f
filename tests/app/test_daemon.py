"""The daemon in this process (a thread) between an emulated receiver and the bundled server.

What a user would notice: each new reading reaches the server shortly after the receiver
records it; unplugs, an unsynchronised host clock and a network outage lose nothing and send
nothing twice; a receiver that is present but failing is reopened, reset and finally handed
back to systemd (exit 70), while an absent one is simply waited for.

Every wait is bounded (:func:`wait_for`); nothing asserts how long something took.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from nsserver import SECRET, Server, get_json

import bridge.app.daemon as daemon_module
from bridge.app.daemon import Daemon
from bridge.app.health import HEALTH_KEY, read_health
from bridge.app.hostprobe import ClockSync
from bridge.app.reading import ReceiverSession
from bridge.config import Destination, Settings
from bridge.dexcom.clock import DEXCOM_EPOCH_UNIX
from bridge.emulator import ReceiverEmulator
from bridge.errors import EX_OK, EX_SOFTWARE, ReceiverTimeoutError
from bridge.records import EGVRecord
from bridge.store import Outbox

CLOCK_OFFSET_S = -7200  # the receiver's system clock runs 2 h behind UTC: only the anchor gives true times
LIVE_AT_START_S = 20  # seconds of 1-s live readings the receiver holds when the daemon first sees it


# -- helpers ----------------------------------------------------------------------------------


class FakeHost:
    """A host whose clock sync answer (and wall clock) the test flips.

    While not synchronised its wall clock is ``skew`` off, as a Pi without a real-time clock is
    after boot, until NTP steps it.
    """

    def __init__(self, ok: bool = True, evidence: str = "test host: synchronised",
                 skew: timedelta = timedelta(0)) -> None:
        self.ok, self.evidence, self.skew = ok, evidence, skew

    def clock_synchronized(self) -> ClockSync:
        return ClockSync(self.ok, self.evidence)

    def now(self) -> datetime:
        return datetime.now(UTC) + (timedelta(0) if self.ok else self.skew)


def wait_for(predicate: Callable[[], object], what: str, timeout_s: float = 20.0) -> None:
    """Poll until ``predicate()`` is true; fail naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(0.05)


def emulator(tmp: Path, *, seed: int, days: float = 0.5) -> ReceiverEmulator:
    """A receiver recording every second whose last LIVE_AT_START_S seconds are already 1-s readings.

    The history is every 5 minutes; seeing the recent 1-s spacing lets the daemon learn the fast
    cadence at once, as it learns the 5-minute one of a real receiver.
    """
    lag = [float(LIVE_AT_START_S)]
    emu = ReceiverEmulator(days=days, seed=seed, latency=False, link_path=tmp / "dexcom", interval_s=1,
                           clock_offset_s=CLOCK_OFFSET_S, now=lambda: time.time() - lag[0])
    lag[0] = 0.0  # the receiver's clock catches up: it records the readings of those seconds at once
    emu.tick()
    return emu


def settings_for(tmp: Path, *urls: str, device: Path | None = None) -> Settings:
    return Settings(device=str(device or tmp / "dexcom"), state_dir=tmp / "state",
                    destinations=tuple(Destination(url, SECRET) for url in urls))


@contextmanager
def running(daemon: Daemon) -> Iterator[list[int]]:
    """Run ``daemon`` in a thread; stop it (bounded) on exit. Yields a list that gets the exit code."""
    code: list[int] = []
    thread = threading.Thread(target=lambda: code.append(daemon.run()), name="daemon", daemon=True)
    thread.start()
    try:
        yield code
    finally:
        daemon.stop()
        thread.join(60)
        assert not thread.is_alive(), "the daemon did not stop"


def readings(emu: ReceiverEmulator) -> list[EGVRecord]:
    """The EGV records Nightscout should get, as test_sync counts them."""
    return [r for r in emu.records["egv"] if isinstance(r, EGVRecord) and not r.display_only and r.glucose != 0]


def server_sgv(server: Server) -> list[dict[str, object]]:
    return list(get_json(server.base, "/api/v1/entries/sgv.json", {"count": "100000", "find[date][$gte]": "0"}))


def on_server(server: Server, wanted: list[EGVRecord], offset_s: int) -> Callable[[], bool]:
    def check() -> bool:
        dates = {e["date"] for e in server_sgv(server)}
        return all((r.system_seconds + DEXCOM_EPOCH_UNIX + offset_s) * 1000 in dates for r in wanted)
    return check


def arrival_order(tmp: Path) -> list[int]:
    """The sgv dates in the order the server first stored them (its table's rowid)."""
    with sqlite3.connect(f"file:{tmp / 'ns.sqlite'}?mode=ro", uri=True) as conn:
        return [d for (d,) in conn.execute("SELECT date FROM entries WHERE type = 'sgv' ORDER BY rowid")]


def assert_every_reading_once(server: Server, emu: ReceiverEmulator, offset_s: int, through: int) -> None:
    """Every reading up to system time ``through`` is on the server once, at its true time; nothing else is.

    The server upserts on the date, so a reading sent twice shows up as a second entry at a wrong
    date (a different anchor) or as a neighbour's date carrying this reading's value.
    """
    assert abs(offset_s + CLOCK_OFFSET_S) <= 1, f"anchor {offset_s} s: not the receiver's real offset"
    expected = {(r.system_seconds + DEXCOM_EPOCH_UNIX + offset_s) * 1000: r.glucose for r in readings(emu)}
    got = server_sgv(server)
    pairs = [(e["date"], e["sgv"]) for e in got]
    assert len({d for d, _ in pairs}) == len(pairs)
    wrong = [p for p in pairs if expected.get(p[0]) != p[1]]
    assert not wrong, f"entries at a wrong time or with a wrong value: {wrong[:5]}"
    missing = [d for d, s in expected.items() if d <= (through + DEXCOM_EPOCH_UNIX + offset_s) * 1000
               and d not in dict(pairs)]
    assert not missing, f"{len(missing)} readings never reached the server"


# -- 1. live -----------------------------------------------------------------------------------


@pytest.fixture
def nightscout(tmp_path: Path) -> Iterator[Server]:
    server = Server(tmp_path)
    yield server
    server.stop()


def test_daemon_uploads_each_new_reading_shortly_after_it_appears(nightscout: Server, tmp_path: Path) -> None:
    with emulator(tmp_path, seed=11) as emu:
        daemon = Daemon(settings_for(tmp_path, nightscout.base), host=FakeHost())
        with running(daemon) as code:
            wait_for(lambda: daemon.state.anchor_offset_s is not None, "the first read")
            offset = daemon.state.anchor_offset_s
            assert offset is not None
            seen = readings(emu)[-1].system_seconds
            for _ in range(4):  # each of the next readings reaches the server within a few seconds
                wait_for(lambda seen=seen: readings(emu)[-1].system_seconds > seen, "the receiver's next reading", 10)
                newest = readings(emu)[-1]
                seen = newest.system_seconds
                wait_for(on_server(nightscout, [newest], offset), f"reading {newest.system_seconds} on the server", 10)
            assert daemon.state.interval_s == 1.0  # the cadence was learned from the data
            assert daemon.state.receiver == "connected" and daemon.state.stale_reason is None
        assert code == [EX_OK]
        assert_every_reading_once(nightscout, emu, offset, through=seen)
    order = arrival_order(tmp_path)
    assert order == sorted(order), "readings reached the server out of order"
    assert len(order) > 100  # the history went up too, not only the live readings


# -- 2. unplug ---------------------------------------------------------------------------------


def test_unplug_and_replug_loses_nothing_and_sends_nothing_twice(nightscout: Server, tmp_path: Path) -> None:
    with emulator(tmp_path, seed=12) as emu:
        daemon = Daemon(settings_for(tmp_path, nightscout.base), host=FakeHost())
        with running(daemon) as code:
            wait_for(lambda: daemon.state.last_upload_at is not None, "the first upload")
            offset = daemon.state.anchor_offset_s
            assert offset is not None
            for moment in ("while waiting for the next reading", "right after the reconnect, mid catch-up"):
                emu.unplug()  # the pty goes away; the same link comes back 3 s later
                wait_for(lambda: daemon.state.receiver == "disconnected", f"'disconnected' after an unplug {moment}")
                assert daemon.state.stale_reason == "receiver disconnected"
                health = read_health_of(tmp_path)
                assert health["receiver"] == "disconnected"  # what `bridge status` shows
                wait_for(lambda: daemon.state.receiver == "connected", "the reconnect", 15)
            newest = readings(emu)[-1]
            wait_for(on_server(nightscout, [newest], offset), "the readings recorded while unplugged")
        assert code == [EX_OK]
        assert emu.unplugs == 2
        assert daemon.state.anchor_offset_s == offset  # the same anchor after each replug
        assert_every_reading_once(nightscout, emu, offset, through=newest.system_seconds)
    order = arrival_order(tmp_path)
    assert order == sorted(order)


def read_health_of(tmp: Path) -> dict[str, object]:
    with Outbox.open(tmp / "state" / "outbox.sqlite3") as outbox:
        health = read_health(outbox)
    assert health is not None
    return health


# -- 3. clock discipline -----------------------------------------------------------------------


def _status(tmp: Path, *extra: str) -> str:
    env = {**os.environ, "BRIDGE_STATE_DIR": str(tmp / "state")}
    for name in ("NIGHTSCOUT_URL", "BRIDGE_NIGHTSCOUT_URL", "NS_URL"):
        env.pop(name, None)
    done = subprocess.run([sys.executable, "-m", "bridge", "status", *extra], capture_output=True, text=True,
                          env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_unsynchronised_clock_holds_readings_until_it_is_good_then_sends_them_at_true_times(
    nightscout: Server, tmp_path: Path,
) -> None:
    # A Pi after boot: timesyncd runs but has not synchronised, and the wall clock is 6 h behind
    # until NTP steps it. Times fixed then would be wrong forever.
    host = FakeHost(ok=False, evidence="systemd-timesyncd is active but has not synchronised yet",
                    skew=-timedelta(hours=6))
    with emulator(tmp_path, seed=13) as emu:
        # held readings have no UTC time, so the 1-s cadence is not learned from them; look at least
        # every second (as `bridge demo` does) rather than the default 2 minutes
        daemon = Daemon(settings_for(tmp_path, nightscout.base), host=host, now=host.now, max_sleep_s=1)
        with running(daemon) as code:
            wait_for(lambda: daemon.state.held > 0 and daemon.state.last_read_at is not None, "held readings")
            wait_for(lambda: daemon.state.cycles >= 3, "a few more cycles")
            assert server_sgv(nightscout) == []  # nothing uploaded with an untrusted clock
            assert daemon.state.clock_ok is False
            assert "not synchronised" in (daemon.state.stale_reason or "")
            assert "timesyncd" in (daemon.state.stale_reason or "")
            text = _status(tmp_path)
            assert "NOT synchronised" in text and "readings held" in text

            host.ok = True  # NTP answered: the clock steps 6 h forward
            wait_for(lambda: daemon.state.held == 0 and daemon.state.anchor_offset_s is not None, "the release")
            offset = daemon.state.anchor_offset_s
            assert offset is not None
            newest = readings(emu)[-1]
            wait_for(on_server(nightscout, [newest], offset), "the held readings on the server")
            assert daemon.state.clock_ok and daemon.state.stale_reason is None
        assert code == [EX_OK]
        # true times: the receiver's system time + its real offset, not one measured on the 6 h-off boot clock
        assert_every_reading_once(nightscout, emu, offset, through=newest.system_seconds)
    assert "NOT synchronised" not in _status(tmp_path)


def test_assume_clock_ok_uploads_even_when_the_host_says_not_synchronised(
    nightscout: Server, tmp_path: Path,
) -> None:
    host = FakeHost(ok=False, evidence="timedatectl reports NTPSynchronized=no")
    with emulator(tmp_path, seed=14, days=0.1) as emu:
        newest = readings(emu)[-1].system_seconds
        daemon = Daemon(settings_for(tmp_path, nightscout.base), host=host, assume_clock_ok=True)
        assert daemon.run(max_cycles=1) == EX_OK
        offset = daemon.state.anchor_offset_s
        assert offset is not None
        assert daemon.state.held == 0 and daemon.state.clock_ok
        assert daemon.state.clock_evidence == "timedatectl reports NTPSynchronized=no"  # still reported
        assert_every_reading_once(nightscout, emu, offset, through=newest)


# -- 4. a failing receiver, an absent one ------------------------------------------------------


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Look for the receiver again at once instead of every 5 s (the ladder, not the pace, is tested)."""
    monkeypatch.setattr(daemon_module, "RECONNECT_POLL_S", 0.01)


@pytest.fixture
def silent_port() -> Iterator[str]:
    """A port that opens (a pty) behind which no receiver answers."""
    master, slave = os.openpty()
    try:
        yield os.ttyname(slave)
    finally:
        os.close(master)
        os.close(slave)


def test_receiver_that_keeps_timing_out_is_reopened_then_reset_then_exits_70(
    tmp_path: Path, silent_port: str, fast_retries: None, monkeypatch: pytest.MonkeyPatch,
) -> None:
    failures_at_open: list[int] = []
    failures_at_reset: list[int] = []

    def timing_out(cls: type[ReceiverSession], receiver: object) -> ReceiverSession:
        failures_at_open.append(daemon.state.failures)
        raise ReceiverTimeoutError(f"{silent_port}: no reply to PING within 1.0 s")

    def usb_reset() -> bool:
        failures_at_reset.append(daemon.state.failures)
        return True

    monkeypatch.setattr(ReceiverSession, "open", classmethod(timing_out))
    daemon = Daemon(settings_for(tmp_path, device=Path(silent_port)), host=FakeHost(), usb_reset=usb_reset)
    code = daemon.run(max_cycles=50)
    assert code == EX_SOFTWARE == 70  # systemd restarts it (Restart=on-failure)
    assert failures_at_open == [0, 1, 2, 3, 4, 5]  # reopened after each failure, six attempts in all
    assert failures_at_reset == [3]  # the USB reset comes with the third failure, once
    assert daemon.state.receiver == "failing"
    assert "no reply to PING" in (daemon.state.last_error or "")
    health = read_health_of(tmp_path)
    assert health["running"] is False and health["failures"] == 6


def test_receiver_that_recovers_does_not_escalate(
    tmp_path: Path, fast_retries: None, monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_open = ReceiverSession.open.__func__  # type: ignore[attr-defined]
    calls: list[int] = []
    resets: list[int] = []

    def flaky(cls: type[ReceiverSession], receiver: object) -> ReceiverSession:
        calls.append(1)
        if len(calls) <= 2:
            raise ReceiverTimeoutError("no reply")
        return real_open(cls, receiver)

    monkeypatch.setattr(ReceiverSession, "open", classmethod(flaky))
    with emulator(tmp_path, seed=15, days=0.05):
        daemon = Daemon(settings_for(tmp_path), host=FakeHost(), usb_reset=lambda: resets.append(1) or True)
        assert daemon.run(max_cycles=4) == EX_OK
    assert resets == [] and daemon.state.failures == 0
    assert daemon.state.receiver == "connected"


def test_absent_receiver_is_waited_for_and_reported_never_an_exit(tmp_path: Path, fast_retries: None) -> None:
    resets: list[int] = []
    daemon = Daemon(settings_for(tmp_path, device=tmp_path / "no-receiver-here"), host=FakeHost(),
                    usb_reset=lambda: resets.append(1) or True)
    assert daemon.run(max_cycles=40) == EX_OK  # only the test's cycle limit ends it
    assert daemon.state.receiver == "disconnected"
    assert daemon.state.stale_reason == "receiver disconnected"
    assert daemon.state.failures == 0 and resets == []
    assert read_health_of(tmp_path)["receiver"] == "disconnected"


# -- 5. network outage -------------------------------------------------------------------------


def backlog_in_store(tmp: Path, name: str) -> int:
    with Outbox.open(tmp / "state" / "outbox.sqlite3") as outbox:
        return outbox.backlog(name)


def test_network_outage_queues_readings_and_drains_them_oldest_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The outbox's real retry schedule (30 s, 60 s, ...): a new reading contacts the site anyway and
    # takes the whole backlog with it, oldest first. The client's in-call retries are real.
    server = Server(tmp_path)
    try:
        with emulator(tmp_path, seed=16) as emu:
            name = server.base
            daemon = Daemon(settings_for(tmp_path, server.base), host=FakeHost())
            with running(daemon) as code:
                wait_for(lambda: daemon.state.last_upload_at is not None, "the first upload")
                offset = daemon.state.anchor_offset_s
                assert offset is not None
                server.stop()  # the network goes away
                wait_for(lambda: "upload failing" in (daemon.state.stale_reason or ""), "'upload failing'", 30)
                first = backlog_in_store(tmp_path, name)
                assert first > 0 and daemon.state.backlog[name] > 0
                wait_for(lambda: str(read_health_of(tmp_path)["stale_reason"]).startswith("upload failing"),
                         "`bridge status` to say why")
                wait_for(lambda: backlog_in_store(tmp_path, name) > first, "the backlog to grow", 40)
                server.start()  # the network is back, same port and database
                newest = readings(emu)[-1]
                wait_for(on_server(server, [newest], offset), "the backlog to drain", 40)
                wait_for(lambda: daemon.state.backlog[name] == 0 and daemon.state.stale_reason is None,
                         "the state to say all is sent", 20)
            assert code == [EX_OK]
            assert_every_reading_once(server, emu, offset, through=newest.system_seconds)
        order = arrival_order(tmp_path)
        assert order == sorted(order), "the backlog did not drain oldest first"
    finally:
        server.stop()


# -- refused credentials, stopping during an outage, the outage log ---------------------------


def test_daemon_stops_uploading_to_a_site_that_refused_the_secret(tmp_path: Path) -> None:
    server = Server(tmp_path)
    try:
        with emulator(tmp_path, seed=21):
            settings = Settings(device=str(tmp_path / "dexcom"), state_dir=tmp_path / "state",
                                destinations=(Destination(server.base, "not-the-secret-at-all"),))
            daemon = Daemon(settings, host=FakeHost(), max_sleep_s=0.5)
            with running(daemon):
                wait_for(lambda: daemon.state.refused, "the refusal to be recorded")
                cycles = daemon.state.cycles
                wait_for(lambda: daemon.state.cycles >= cycles + 3, "more cycles")
        requests_after = server.log.read_text().count("POST /api/v1/entries")
    finally:
        server.stop()
    assert requests_after == 1  # one refused POST, then nothing more to that site
    assert daemon.state.backlog[server.base] > 0  # the data stays queued
    kinds = [o["kind"] for o in daemon.state.outages]
    assert f"upload {server.base}" in kinds


def test_daemon_stops_promptly_in_the_middle_of_an_outage(tmp_path: Path) -> None:
    with emulator(tmp_path, seed=22):
        dead = "http://127.0.0.1:9"  # nothing listens: every upload attempt retries
        daemon = Daemon(settings_for(tmp_path, dead), host=FakeHost(), max_sleep_s=0.5)
        thread = threading.Thread(target=daemon.run, daemon=True)
        thread.start()
        wait_for(lambda: daemon.state.last_read_at, "the first read")
        time.sleep(0.5)  # inside the upload's retry waits
        daemon.stop()
        thread.join(15)  # far below systemd's TimeoutStopSec=20 s
        assert not thread.is_alive()
    with Outbox.open(tmp_path / "state" / "outbox.sqlite3") as outbox:
        health = read_health(outbox)
        assert outbox.backlog(dead) > 0  # nothing lost: it goes up at the next start
    assert health is not None and health["running"] is False


def test_daemon_outage_log_survives_an_unclean_restart(tmp_path: Path) -> None:
    with emulator(tmp_path, seed=23) as emu:
        server = Server(tmp_path)
        try:
            first = Daemon(settings_for(tmp_path, server.base), host=FakeHost(), max_sleep_s=0.5)
            with running(first):
                wait_for(lambda: first.state.receiver == "connected", "the receiver")
                emu.unplug()
                wait_for(lambda: any(o["kind"] == "receiver" and o["until"] for o in first.state.outages),
                         "the unplug to be logged and closed")
            with Outbox.open(tmp_path / "state" / "outbox.sqlite3") as outbox:  # as if killed: still "running"
                state = read_health(outbox)
                assert state is not None
                outbox.set_meta(HEALTH_KEY, json.dumps({**state, "running": True}))
            second = Daemon(settings_for(tmp_path, server.base), host=FakeHost(), max_sleep_s=0.5)
            second.run(max_cycles=1)
        finally:
            server.stop()
    kinds = [o["kind"] for o in second.state.outages]
    assert kinds.count("receiver") == 1 and kinds[-1] == "daemon"
    assert "without a clean stop" in str(second.state.outages[-1]["reason"])
