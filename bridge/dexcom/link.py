"""SerialLink: the receiver's byte pipe over pyserial. Layer: dexcom adapter.

With discovery.py, the only module that imports pyserial. Every read and write has a
deadline; pyserial and OS errors are translated here, at the seam, into the project's
errors (nothing above sees ``serial.SerialException``). ``serial_for_url`` lets a pty path
or ``loop://`` stand in for the USB port.
"""

from __future__ import annotations

import errno
import logging
import os
import termios
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import serial

from bridge.errors import (
    ReceiverBusyError,
    ReceiverDisconnectedError,
    ReceiverError,
    ReceiverNotFoundError,
    ReceiverPermissionError,
    ReceiverTimeoutError,
)

__all__ = ["BAUD_RATE", "REOPEN_POLL_S", "SerialLink"]

log = logging.getLogger(__name__)
wire = logging.getLogger("bridge.wire")

BAUD_RATE = 115200  # irrelevant to CDC-ACM, but what every client sets (PROTOCOL.md §1.2)
WRITE_TIMEOUT_S = 1.0  # a write that cannot drain in a second means the link is gone
REOPEN_POLL_S = 0.25  # how often to look for a replugged receiver
_READ_CHUNK = 4096

PERMISSION_HINT = (
    "add yourself to the dialout group (sudo usermod -aG dialout $USER, then log in again) "
    "and install the udev rule: sudo cp udev/70-dexcom-bridge.rules /etc/udev/rules.d/ && "
    "sudo udevadm control --reload && sudo udevadm trigger"
)
NOT_FOUND_HINT = (
    "check the USB cable and that the receiver is switched on; "
    "`bridge info --device auto` searches by VID:PID 22a3:0047"
)


class _Hex:
    """Formats bytes as hex only when the wire logger actually emits."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __str__(self) -> str:
        return self.data.hex(" ")


@contextmanager
def serial_errors(url: str, *, opening: bool = False) -> Iterator[None]:
    """Re-raise pyserial and OS errors as ReceiverError, keeping the cause.

    Once a port is open, any failure means the receiver went away (a disconnect the session
    may recover from); only while opening does a missing device mean "not found".
    """
    try:
        yield
    except serial.SerialTimeoutException as exc:
        raise ReceiverTimeoutError(f"{url}: write timed out") from exc
    except (serial.SerialException, OSError, termios.error) as exc:
        cause = exc.__cause__ if isinstance(exc.__cause__, OSError) else exc
        code = getattr(cause, "errno", None)
        if isinstance(exc, termios.error) and exc.args and isinstance(exc.args[0], int):
            code = exc.args[0]  # termios.error carries (errno, text) but is no OSError
        if opening and (code in (errno.EAGAIN, errno.EWOULDBLOCK) or "exclusively lock" in str(exc)):
            raise ReceiverBusyError(
                f"{url}: the receiver is in use by another process",
                hint="`bridge run` owns the receiver while it runs: use `bridge status` or `bridge tail`, "
                "or stop it (sudo systemctl stop dexcom-bridge) first",
            ) from exc
        if code in (errno.EACCES, errno.EPERM):
            raise ReceiverPermissionError(f"{url}: permission denied", hint=PERMISSION_HINT) from exc
        if opening and (code in (errno.ENOENT, errno.ENODEV, errno.ENXIO) or not _exists(url)):
            raise ReceiverNotFoundError(f"{url}: no such device", hint=NOT_FOUND_HINT) from exc
        raise ReceiverDisconnectedError(
            f"{url}: {exc}", hint="the receiver was unplugged or reset; check the cable"
        ) from exc


def _exists(url: str) -> bool:
    return "://" in url or os.path.exists(url)


class SerialLink:
    """A byte pipe to one receiver with deadlines on every operation.

    Args:
        url: a device path (``/dev/ttyACM0``, a pty) or a pyserial URL.
        resolve: called on reopen to find the port again (auto-discovery after a replug);
            defaults to ``url``.
        monotonic: the clock deadlines are measured on (injectable for tests).
    """

    def __init__(
        self,
        url: str,
        *,
        resolve: Callable[[], str] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self._resolve = resolve
        self._monotonic = monotonic
        self._port: serial.SerialBase | None = None

    def __repr__(self) -> str:
        return f"SerialLink({self.url!r}, open={self._port is not None})"

    @property
    def is_open(self) -> bool:
        """True while a port is open."""
        return self._port is not None

    def open(self) -> None:
        """Open the port and discard anything already waiting in it.

        Raises:
            ReceiverNotFoundError: the path does not exist.
            ReceiverPermissionError: the port cannot be opened by this user.
        """
        self.close()
        if not _exists(self.url):
            raise ReceiverNotFoundError(f"{self.url}: no such device", hint=NOT_FOUND_HINT)
        with serial_errors(self.url, opening=True):
            port = serial.serial_for_url(
                self.url, baudrate=BAUD_RATE, timeout=0, write_timeout=WRITE_TIMEOUT_S, exclusive=True
            )
            port.reset_input_buffer()
        self._port = port
        log.debug("opened %s", self.url)

    def reopen(self, wait_s: float) -> None:
        """Wait up to ``wait_s`` for the receiver to come back, then open it.

        Raises:
            ReceiverNotFoundError: it did not come back in time.
        """
        self.close()
        deadline = self._monotonic() + wait_s
        last: ReceiverError | None = None
        while True:
            try:
                if self._resolve is not None:
                    self.url = self._resolve()
                self.open()
                return
            except (ReceiverNotFoundError, ReceiverDisconnectedError) as exc:
                last = exc
            if self._monotonic() >= deadline:
                raise ReceiverNotFoundError(
                    f"receiver did not come back within {wait_s:g} s ({last})", hint=NOT_FOUND_HINT
                ) from last
            time.sleep(REOPEN_POLL_S)

    def close(self) -> None:
        """Close the port (idempotent)."""
        if self._port is not None:
            try:
                self._port.close()
            except (serial.SerialException, OSError, termios.error):  # already gone: nothing to release
                pass
            self._port = None

    def _require(self) -> serial.SerialBase:
        if self._port is None:
            raise ReceiverDisconnectedError(f"{self.url}: link is not open")
        return self._port

    def write(self, data: bytes) -> None:
        """Write all of ``data`` (bounded by the write timeout)."""
        port = self._require()
        wire.debug("-> %s", _Hex(data))
        with serial_errors(self.url):
            port.write(data)
            port.flush()

    def read(self, max_bytes: int, deadline: float) -> bytes:
        """Return between 1 and ``max_bytes`` bytes, waiting until ``deadline`` at most.

        Returns:
            b"" when nothing arrived before the deadline.
        """
        port = self._require()
        remaining = deadline - self._monotonic()
        if remaining <= 0:
            return b""
        with serial_errors(self.url):
            port.timeout = remaining
            first: bytes = port.read(1)
            if not first:
                return b""
            waiting = port.in_waiting
            rest = port.read(min(waiting, max_bytes - 1)) if waiting and max_bytes > 1 else b""
        data = first + rest
        wire.debug("<- %s", _Hex(data))
        return data

    def flush_input(self) -> None:
        """Discard everything received but not yet read."""
        port = self._require()
        with serial_errors(self.url):
            port.reset_input_buffer()

    def drain(self, quiet_s: float, max_s: float) -> int:
        """Read and discard until the line has been quiet for ``quiet_s`` (at most ``max_s``).

        Returns:
            The number of bytes discarded.
        """
        end = self._monotonic() + max_s
        dropped = 0
        while (now := self._monotonic()) < end:
            got = self.read(_READ_CHUNK, min(end, now + quiet_s))
            if not got:
                break
            dropped += len(got)
        if dropped:
            log.debug("discarded %d late bytes", dropped)
        return dropped
