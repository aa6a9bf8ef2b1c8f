"""systemd integration without dependencies: sd_notify, the watchdog interval, journald lines, rate limits.

The daemon's side (READY once, WATCHDOG from the waits, STOPPING last) is shown here with a
recording notifier; tests/e2e/test_daemon.py shows the same through a real notify socket.
"""

from __future__ import annotations

import io
import logging
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

import bridge.app.daemon as daemon_module
from bridge.app.daemon import Daemon
from bridge.app.hostprobe import ClockSync
from bridge.app.systemd import JournalFormatter, Notifier, RateLimitFilter, watchdog_interval_s
from bridge.config import Settings


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify"))
    sock.settimeout(2)
    yield sock
    sock.close()


# -- Notifier ----------------------------------------------------------------------------------


def test_notifier_sends_one_datagram_of_key_value_lines(notify_socket: socket.socket, tmp_path: Path) -> None:
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "notify")})
    assert notifier.enabled
    notifier.send(READY="1", STATUS="receiver connected; queue 0")
    notifier.send(WATCHDOG="1")
    assert notify_socket.recv(4096) == b"READY=1\nSTATUS=receiver connected; queue 0"
    assert notify_socket.recv(4096) == b"WATCHDOG=1"


def test_notifier_reaches_an_abstract_socket() -> None:
    name = f"dexcom-bridge-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(2)
        Notifier({"NOTIFY_SOCKET": "@" + name}).send(STOPPING="1")
        assert sock.recv(4096) == b"STOPPING=1"


def test_notifier_outside_systemd_or_with_the_socket_gone_does_nothing_and_never_raises(tmp_path: Path) -> None:
    outside = Notifier({})
    assert not outside.enabled
    outside.send(READY="1")
    gone = Notifier({"NOTIFY_SOCKET": str(tmp_path / "no-such-socket")})
    gone.send(READY="1")  # systemd went away: nothing to tell, nothing raised
    assert gone.sent == ["READY=1"]


# -- watchdog ----------------------------------------------------------------------------------


def test_watchdog_pings_at_half_of_watchdogsec_and_only_in_the_main_process() -> None:
    assert watchdog_interval_s({"WATCHDOG_USEC": "180000000"}) == 90.0
    assert watchdog_interval_s({"WATCHDOG_USEC": "180000000", "WATCHDOG_PID": str(os.getpid())}) == 90.0
    assert watchdog_interval_s({"WATCHDOG_USEC": "180000000", "WATCHDOG_PID": str(os.getpid() + 1)}) is None
    assert watchdog_interval_s({}) is None


class _Host:
    def clock_synchronized(self) -> ClockSync:
        return ClockSync(True, "test")


def test_daemon_is_ready_once_pings_the_watchdog_while_it_waits_and_says_stopping_last(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(daemon_module, "RECONNECT_POLL_S", 0.1)
    sent: list[dict[str, str]] = []
    daemon = Daemon(Settings(device=str(tmp_path / "absent"), state_dir=tmp_path / "state"), host=_Host(),
                    notify=lambda **fields: sent.append(fields), watchdog_s=0.02)
    assert daemon.run(max_cycles=3) == 0
    keys = [next(iter(m)) for m in sent]
    assert keys.count("READY") == 1 and keys.index("READY") < keys.index("WATCHDOG")
    assert keys.count("WATCHDOG") >= 3  # a wait longer than the watchdog interval pings on the way
    assert sent[-1] == {"STOPPING": "1"}
    statuses = [m["STATUS"] for m in sent if "STATUS" in m]
    assert statuses and all("receiver disconnected" in s and "\n" not in s for s in statuses)


# -- journald lines ----------------------------------------------------------------------------


def _journal_logger(*filters: logging.Filter) -> tuple[logging.Logger, io.StringIO]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JournalFormatter("%(name)s: %(message)s"))
    for f in filters:
        handler.addFilter(f)
    logger = logging.getLogger(f"bridge.test.journal.{id(out)}")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    return logger, out


def test_journal_lines_carry_the_syslog_priority_and_no_timestamp() -> None:
    logger, out = _journal_logger()
    logger.debug("frame")
    logger.info("read 1 new sgv")
    logger.warning("receiver disconnected")
    logger.error("refused the credentials")
    logger.critical("store broken")
    lines = out.getvalue().splitlines()
    assert [line[:3] for line in lines] == ["<7>", "<6>", "<4>", "<3>", "<2>"]
    assert lines[1] == f"<6>{logger.name}: read 1 new sgv"


# -- rate limit --------------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_identical_error_logs_once_per_window_then_says_how_often_it_repeated() -> None:
    clock = FakeClock()
    logger, out = _journal_logger(RateLimitFilter(window_s=3600, clock=clock))
    for _ in range(5):
        logger.error("nightscout unavailable: %s", "connection refused")
        clock.t += 60
    assert out.getvalue().splitlines() == [f"<3>{logger.name}: nightscout unavailable: connection refused"]
    clock.t += 3600  # the window passed: the next one is logged, with the count of those kept quiet
    logger.error("nightscout unavailable: %s", "connection refused")
    assert out.getvalue().splitlines()[-1] == (
        f"<3>{logger.name}: nightscout unavailable: connection refused (repeated 4 more times)")
    logger.error("nightscout unavailable: %s", "connection refused")  # a new window: quiet again
    assert len(out.getvalue().splitlines()) == 2


def test_rate_limit_keeps_different_errors_apart_and_never_limits_info() -> None:
    clock = FakeClock()
    logger, out = _journal_logger(RateLimitFilter(window_s=3600, clock=clock))
    for _ in range(3):
        logger.warning("receiver disconnected")
        logger.error("site A refused the credentials")
        logger.info("read 1 new sgv")
    lines = out.getvalue().splitlines()
    assert sum("receiver disconnected" in line for line in lines) == 1
    assert sum("refused" in line for line in lines) == 1
    assert sum("read 1 new sgv" in line for line in lines) == 3
