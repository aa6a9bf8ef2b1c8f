"""`bridge run` as a real process: signals, the receiver lock, `bridge status`, sd_notify, journald.

The emulated receiver runs in this process, the bundled server and the daemon in their own.
Every wait is bounded; nothing asserts how long something took.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from nsserver import SECRET, Server, get_json

from bridge.emulator import ReceiverEmulator

LIVE_AT_START_S = 20  # seconds of 1-s live readings the receiver holds when the daemon first sees it
_OUR_ENV = ("BRIDGE_", "NIGHTSCOUT", "NS_URL", "API_SECRET", "CREDENTIALS_DIRECTORY", "NOTIFY_SOCKET",
            "WATCHDOG_", "JOURNAL_STREAM", "XDG_CONFIG_HOME")


def wait_for(predicate: Callable[[], object], what: str, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(0.05)


def emulator(tmp: Path, *, seed: int) -> ReceiverEmulator:
    """A receiver recording every second whose last LIVE_AT_START_S seconds are already 1-s readings,
    so the daemon learns the fast cadence from the data at once (as it learns a real receiver's 5 min)."""
    lag = [float(LIVE_AT_START_S)]
    emu = ReceiverEmulator(days=0.5, seed=seed, latency=False, link_path=tmp / "dexcom", interval_s=1,
                           now=lambda: time.time() - lag[0])
    lag[0] = 0.0
    emu.tick()
    return emu


def bridge_env(tmp: Path, **extra: str) -> dict[str, str]:
    """The environment of a `bridge` process: this test's state, no settings leaking in from outside."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_OUR_ENV)}
    env.update({"BRIDGE_DEVICE": str(tmp / "dexcom"), "BRIDGE_STATE_DIR": str(tmp / "state"), "API_SECRET": SECRET,
                "XDG_CONFIG_HOME": str(tmp / "xdg-config"), **extra})
    return env


def bridge(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bridge", *args], capture_output=True, text=True, env=env,
                          timeout=60)


class Daemon:
    """`bridge run` in a subprocess, its stderr kept in a file."""

    def __init__(self, tmp: Path, env: dict[str, str], *args: str, argv: list[str] | None = None) -> None:
        self.log = tmp / "daemon.log"
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(argv or [sys.executable, "-m", "bridge", "run", *args], env=env,
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=log)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_log(self, pattern: str, timeout_s: float = 20.0) -> None:
        wait_for(lambda: re.search(pattern, self.text(), re.MULTILINE) or self.proc.poll() is not None,
                 f"{pattern!r} in the daemon's log", timeout_s)
        assert self.proc.poll() is None, f"the daemon exited {self.proc.returncode}:\n{self.text()}"

    def terminate(self, timeout_s: float = 20.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail(f"the daemon did not stop within {timeout_s:g} s of SIGTERM:\n{self.text()}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def nightscout(tmp_path: Path) -> Iterator[Server]:
    server = Server(tmp_path)
    yield server
    server.stop()


def _all_sgv(server: Server) -> list[dict[str, object]]:
    return list(get_json(server.base, "/api/v1/entries/sgv.json", {"count": "100000", "find[date][$gte]": "0"}))


def _status(env: dict[str, str]) -> dict[str, object]:
    done = bridge(env, "status", "--json")
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def test_bridge_run_owns_the_receiver_reloads_on_sighup_and_stops_cleanly_on_sigterm(
    nightscout: Server, tmp_path: Path,
) -> None:
    (tmp_path / "second").mkdir()
    second = Server(tmp_path / "second")
    config = tmp_path / "config.toml"
    config.write_text(f'[[destination]]\nurl = "{nightscout.base}"\n')
    env = bridge_env(tmp_path)
    try:
        with emulator(tmp_path, seed=21) as emu:
            daemon = Daemon(tmp_path, env, "--config", str(config), "--assume-clock-ok")
            try:
                daemon.wait_log(r"read \d+ new sgv .* uploaded [1-9]")

                busy = bridge(env, "dump", "--device", str(tmp_path / "dexcom"), "--type", "egv", "--last", "1")
                assert busy.returncode == 75, busy.stderr  # EX_TEMPFAIL: try again once the daemon stops
                assert "in use" in busy.stderr and "bridge status" in busy.stderr

                status = _status(env)  # from the store, while the daemon holds the receiver
                health = status["daemon"]
                assert isinstance(health, dict)
                assert health["running"] is True and health["pid"] == daemon.proc.pid
                assert health["receiver"] == "connected" and health["serial"] == emu.serial
                assert health["last_read_at"] and health["newest_reading_utc"]
                assert abs(int(health["anchor_offset_s"])) <= 1  # this receiver's clock is right
                assert health["backlog"] == {nightscout.base: 0}
                text = bridge(env, "status")
                assert text.returncode == 0 and "receiver    connected" in text.stdout

                # add a second site to the config file; SIGHUP, and it gets every reading too
                config.write_text(f'[[destination]]\nurl = "{nightscout.base}"\n\n'
                                  f'[[destination]]\nurl = "{second.base}"\n')
                daemon.proc.send_signal(signal.SIGHUP)
                daemon.wait_log(r"configuration reloaded: 2 destination")
                first_dates = {e["date"] for e in _all_sgv(nightscout)}
                wait_for(lambda: first_dates <= {e["date"] for e in _all_sgv(second)},
                         "the second site to get every reading the first has")
                assert daemon.proc.poll() is None  # SIGHUP did not stop it

                assert daemon.terminate() == 0  # SIGTERM: finish the step, exit 0
            finally:
                daemon.kill()
            assert "Traceback" not in daemon.text()
            after = _status(env)["daemon"]
            assert isinstance(after, dict) and after["running"] is False
            # the receiver is free again
            free = bridge(env, "dump", "--device", str(tmp_path / "dexcom"), "--type", "egv", "--last", "1")
            assert free.returncode == 0, free.stderr
    finally:
        second.stop()


class NotifySocket:
    """A stand-in for systemd's notify socket: a bound AF_UNIX datagram socket."""

    def __init__(self, path: Path) -> None:
        assert len(str(path)) < 100, "AF_UNIX paths are limited to 107 bytes"
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.messages: list[str] = []

    def drain(self) -> list[str]:
        while True:
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except TimeoutError:
                return self.messages

    def wait(self, field: str, timeout_s: float = 20.0) -> None:
        wait_for(lambda: any(field in m.splitlines() for m in self.drain()), f"{field} on the notify socket",
                 timeout_s)

    def close(self) -> None:
        self.sock.close()


def test_bridge_run_speaks_sd_notify_ready_status_watchdog_stopping(nightscout: Server, tmp_path: Path) -> None:
    notify = NotifySocket(tmp_path / "notify.sock")
    # systemd sets WATCHDOG_PID to the service's main pid: `exec` keeps the shell's pid for Python
    env = bridge_env(tmp_path, NIGHTSCOUT_URL=nightscout.base, NOTIFY_SOCKET=str(notify.path),
                     WATCHDOG_USEC="1000000")
    argv = ["/bin/sh", "-c", 'WATCHDOG_PID=$$ exec "$@"', "sh", sys.executable, "-m", "bridge", "run",
            "--assume-clock-ok"]
    try:
        with emulator(tmp_path, seed=22):
            daemon = Daemon(tmp_path, env, argv=argv)
            try:
                notify.wait("READY=1")
                wait_for(lambda: sum(m == "WATCHDOG=1" for m in notify.drain()) >= 3, "three WATCHDOG=1 pings")
                assert daemon.terminate() == 0
            finally:
                daemon.kill()
        messages = notify.drain()
    finally:
        notify.close()
    ready = next(i for i, m in enumerate(messages) if "READY=1" in m.splitlines())
    assert not any(m == "WATCHDOG=1" for m in messages[:ready])  # pings only once ready
    statuses = [line for m in messages for line in m.splitlines() if line.startswith("STATUS=")]
    assert statuses and all("\n" not in s for s in statuses)
    assert any("receiver connected" in s for s in statuses), statuses
    assert messages[-1] == "STOPPING=1"


def test_bridge_run_under_journald_prefixes_priorities(nightscout: Server, tmp_path: Path) -> None:
    # a wrong secret (an error, <3>) and an unplug (a warning, <4>) beside the routine lines (<6>)
    env = bridge_env(tmp_path, NIGHTSCOUT_URL=nightscout.base, JOURNAL_STREAM="8:12345",
                     API_SECRET="not-the-right-secret")
    with emulator(tmp_path, seed=23) as emu:
        daemon = Daemon(tmp_path, env, "--assume-clock-ok")
        try:
            daemon.wait_log(r"refused the credentials")
            emu.unplug()
            daemon.wait_log(r"receiver disconnected")
            assert daemon.terminate() == 0
        finally:
            daemon.kill()
    lines = daemon.text().splitlines()
    assert lines and all(re.match(r"<[2-7]>", line) for line in lines), lines
    assert any(line.startswith("<6>bridge.app.daemon: receiver ") and "connected" in line for line in lines)
    assert any(line.startswith("<3>") and "refused the credentials" in line for line in lines)
    assert any(line.startswith("<4>") and "receiver disconnected" in line for line in lines)
    assert not any(re.match(r"<\d>\d{4}-\d\d-\d\d", line) for line in lines)  # journald adds the time
    assert "not-the-right-secret" not in daemon.text()
