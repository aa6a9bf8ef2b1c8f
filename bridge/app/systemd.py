"""systemd integration without dependencies: sd_notify, journald priorities, rate-limited logs.

Layer: app. ``notify`` speaks the datagram protocol of sd_notify(3) to ``$NOTIFY_SOCKET``
(READY=1, WATCHDOG=1, STATUS=..., STOPPING=1, RELOADING=1); outside systemd it does nothing.
The log helpers are installed by the CLI, the only place that configures handlers.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Mapping

__all__ = ["JournalFormatter", "RateLimitFilter", "Notifier", "watchdog_interval_s"]

#: syslog priorities journald reads from a "<N>" line prefix (sd-daemon(3)).
_PRIORITY = {logging.CRITICAL: 2, logging.ERROR: 3, logging.WARNING: 4, logging.INFO: 6, logging.DEBUG: 7}


class Notifier:
    """Sends sd_notify messages when run under systemd with Type=notify.

    Args:
        env: the environment (``os.environ`` when None); ``NOTIFY_SOCKET`` selects the socket.
    """

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        address = (os.environ if env is None else env).get("NOTIFY_SOCKET", "")
        self.address = "\0" + address[1:] if address.startswith("@") else address
        self.sent: list[str] = []  # what was sent, for status and tests

    @property
    def enabled(self) -> bool:
        """True under systemd with a notify socket."""
        return bool(self.address)

    def send(self, **fields: str) -> None:
        """Send ``KEY=value`` lines, e.g. ``send(READY="1", STATUS="reading")``; never raises."""
        message = "\n".join(f"{k}={v}" for k, v in fields.items())
        self.sent.append(message)
        if not self.address:
            return
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.connect(self.address)
                sock.sendall(message.encode())
        except OSError as exc:  # systemd gone or socket missing: nothing to tell
            logging.getLogger(__name__).debug("sd_notify failed: %s", exc)


def watchdog_interval_s(env: Mapping[str, str] | None = None) -> float | None:
    """Half of systemd's ``WatchdogSec`` (``$WATCHDOG_USEC``), the longest the loop may go without a ping."""
    env = os.environ if env is None else env
    usec = env.get("WATCHDOG_USEC")
    pid = env.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 2_000_000


class JournalFormatter(logging.Formatter):
    """``<priority>logger: message`` lines for journald (no timestamps: journald adds them)."""

    def format(self, record: logging.LogRecord) -> str:
        """Prefix the journald priority of the record's level."""
        priority = _PRIORITY.get(record.levelno, 6 if record.levelno < logging.WARNING else 3)
        return f"<{priority}>{super().format(record)}"


class RateLimitFilter(logging.Filter):
    """Lets an identical WARNING-or-worse message through once per ``window_s``; counts the rest.

    Args:
        window_s: how long an identical message stays quiet after it was logged.
        clock: the monotonic clock (injectable).
    """

    def __init__(self, window_s: float = 3600.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.window_s = window_s
        self.clock = clock
        self._seen: dict[tuple[str, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        """True to log the record."""
        if record.levelno < logging.WARNING:
            return True
        key = (record.name, record.getMessage())
        now = self.clock()
        last = self._seen.get(key)
        if last is not None and now - last[0] < self.window_s:
            self._seen[key] = (last[0], last[1] + 1)
            return False
        if last is not None and last[1]:
            record.msg = f"{record.getMessage()} (repeated {last[1]} more times)"
            record.args = None
        self._seen[key] = (now, 0)
        return True
