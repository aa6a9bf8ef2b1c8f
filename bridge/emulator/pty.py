"""Serve an emulated receiver on a pseudo-terminal, in a background thread.

Layer: emulator adapter: the only emulator module that does I/O on a port. It moves bytes
between a pty and a :class:`ByteDevice` (the sans-I/O :class:`~bridge.emulator.device.ReceiverDevice`)
and sleeps each reply's delay.

The pty's slave side is put in raw mode (``tty.setraw``), so a client opening it with
pyserial (``serial_for_url(path)``) sees exactly the bytes sent. ``link_path`` gets a symlink
to the slave, created atomically (replacing whatever was there) once the server answers, and
removed on stop. An unplug closes the pty (the client's reads fail), removes the link, and
``unplug_s`` seconds later opens a new pty and links it at the same path.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import threading
import time
import tty
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from bridge.emulator.faults import UNPLUG_S

__all__ = ["ByteDevice", "PtyServer", "ReplyLike"]

log = logging.getLogger(__name__)

POLL_S = 0.05  # how often the loop wakes to tick and check for stop
STALE_REQUEST_S = 2.0  # a partial request older than this is dropped
WRITE_TIMEOUT_S = 5.0  # a reply nobody reads is dropped after this
READ_CHUNK = 4096


class ReplyLike(Protocol):
    """What the server needs of a reply."""

    @property
    def data(self) -> bytes:
        """The bytes to send."""

    @property
    def delay_s(self) -> float:
        """Seconds to wait before sending."""

    @property
    def unplug(self) -> bool:
        """Unplug instead of sending."""


class ByteDevice(Protocol):
    """A sans-I/O device: request bytes in, replies out."""

    @property
    def pending(self) -> int:
        """Bytes of an incomplete request."""
        ...

    def receive(self, data: bytes) -> Sequence[ReplyLike]:  # pragma: no cover - protocol
        """Replies to every complete request in the stream so far."""
        ...

    def reset_input(self) -> None:  # pragma: no cover - protocol
        """Drop a partial request."""
        ...


class PtyServer:
    """A background thread answering a device on a pty.

    Args:
        device: the device to serve.
        link_path: where to keep a symlink to the pty (None: no link).
        tick: called about every POLL_S seconds from the server thread (live records).
        unplug_s: how long an unplugged port stays away.
        on_port: called with the new pty path whenever a port appears (start and replug).
    """

    def __init__(
        self, device: ByteDevice, *, link_path: str | os.PathLike[str] | None = None,
        tick: Callable[[], object] | None = None, unplug_s: float = UNPLUG_S,
        on_port: Callable[[str], None] | None = None,
    ) -> None:
        self.device = device
        self.link_path = Path(link_path) if link_path is not None else None
        self.unplug_s = unplug_s
        self.unplugs = 0
        self._tick = tick
        self._on_port = on_port
        self._master: int | None = None
        self._slave: int | None = None
        self._path: str | None = None
        self._replug_at: float | None = None
        self._unplug_requested = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def path(self) -> str | None:
        """The current pty slave path (None while unplugged or stopped)."""
        return self._path

    @property
    def running(self) -> bool:
        """True between start() and stop()."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> str:
        """Open the pty, make the link and start answering; returns the pty path."""
        if self._thread is not None:
            raise RuntimeError("server already started")
        path = self._open()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="receiver-emulator", daemon=True)
        self._thread.start()
        return path

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the thread, close the pty and remove the link."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self._close()

    def unplug(self) -> None:
        """Unplug now (as the ``unplug`` fault does); the port comes back after ``unplug_s``."""
        self._unplug_requested.set()

    # ------------------------------------------------------------------ pty and link

    def _open(self) -> str:
        master, slave = os.openpty()
        tty.setraw(slave)
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        self._path = os.ttyname(slave)
        if self.link_path is not None:
            self._link(self._path)
        self.device.reset_input()
        if self._on_port is not None:
            self._on_port(self._path)
        log.info("receiver emulator on %s%s", self._path, f" (link {self.link_path})" if self.link_path else "")
        return self._path

    def _link(self, target: str) -> None:
        assert self.link_path is not None
        self.link_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.link_path.with_name(f".{self.link_path.name}.{os.getpid()}.tmp")
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
        os.symlink(target, tmp)
        os.replace(tmp, self.link_path)

    def _unlink(self) -> None:
        link = self.link_path
        if link is not None and link.is_symlink() and os.readlink(link) == self._path:
            link.unlink()

    def _close(self) -> None:
        self._unlink()
        for fd in (self._master, self._slave):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._master = self._slave = None
        self._path = None

    def _do_unplug(self) -> None:
        log.info("emulated unplug of %s for %.1f s", self._path, self.unplug_s)
        self.unplugs += 1
        self._close()
        self._replug_at = time.monotonic() + self.unplug_s

    # ------------------------------------------------------------------ loop

    def _run(self) -> None:
        last_rx = time.monotonic()
        while not self._stop.is_set():
            if self._tick is not None:
                self._tick()
            if self._unplug_requested.is_set():
                self._unplug_requested.clear()
                if self._master is not None:
                    self._do_unplug()
            if self._master is None:
                if self._replug_at is not None and time.monotonic() >= self._replug_at:
                    self._replug_at = None
                    self._open()
                else:
                    self._stop.wait(POLL_S)
                continue
            readable, _, _ = select.select([self._master], [], [], POLL_S)
            if not readable:
                if self.device.pending and time.monotonic() - last_rx > STALE_REQUEST_S:
                    self.device.reset_input()
                continue
            try:
                data = os.read(self._master, READ_CHUNK)
            except BlockingIOError:
                continue
            except OSError as exc:
                log.warning("pty read failed: %s", exc)
                self._stop.wait(POLL_S)
                continue
            last_rx = time.monotonic()
            self._serve(data, last_rx)

    def _serve(self, data: bytes, received_at: float) -> None:
        due = received_at
        for reply in self.device.receive(data):
            due = max(due, time.monotonic()) + reply.delay_s
            if self._stop.wait(max(0.0, due - time.monotonic())):
                return
            if reply.unplug:
                self._do_unplug()
                return
            self._write(reply.data)

    def _write(self, data: bytes) -> None:
        deadline = time.monotonic() + WRITE_TIMEOUT_S
        view = memoryview(data)
        while view and self._master is not None and not self._stop.is_set():
            try:
                sent = os.write(self._master, view)
            except BlockingIOError:
                sent = 0
            except OSError as exc:
                log.warning("pty write failed: %s", exc)
                return
            view = view[sent:]
            if view:
                if time.monotonic() > deadline:
                    log.warning("dropping %d reply bytes nobody reads", len(view))
                    return
                select.select([], [self._master], [], POLL_S)
