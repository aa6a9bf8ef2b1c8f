"""SerialLink on a real pseudo-terminal: deadlines, flushing, unplug, error translation."""

from __future__ import annotations

import errno
import os
import threading
import time
import tty

import pytest
import serial

from bridge.dexcom.link import SerialLink, serial_errors
from bridge.dexcom.receiver import Receiver, Timeouts
from bridge.errors import (
    ReceiverDisconnectedError,
    ReceiverNotFoundError,
    ReceiverPermissionError,
    ReceiverTimeoutError,
)

PING_ACK = bytes.fromhex("01060001" "35d4")  # captured reply to PING


@pytest.fixture
def pty_pair():
    master, slave = os.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    path = os.ttyname(slave)
    yield master, path
    for fd in (master, slave):
        try:
            os.close(fd)
        except OSError:
            pass


def test_link_silent_port_fails_within_the_configured_time(pty_pair) -> None:
    _, path = pty_pair
    link = SerialLink(path)
    link.open()
    receiver = Receiver(link, attempts=2, timeouts=Timeouts(command_s=0.3), reconnect_wait_s=0)
    started = time.monotonic()
    with pytest.raises(ReceiverTimeoutError):
        receiver.ping()
    elapsed = time.monotonic() - started
    link.close()
    assert 0.55 <= elapsed < 3.0  # two bounded attempts, never a hang


def test_link_ping_over_a_pty_and_stale_bytes_are_flushed(pty_pair) -> None:
    master, path = pty_pair
    link = SerialLink(path)
    link.open()
    os.write(master, b"\x01\x06\x00\x01\x99\x99")  # a stale reply waiting in the port
    time.sleep(0.05)

    def answer() -> None:
        request = os.read(master, 64)
        assert request == bytes.fromhex("0106000a5e65")
        os.write(master, PING_ACK)

    responder = threading.Thread(target=answer)
    responder.start()
    Receiver(link, attempts=1, reconnect_wait_s=0).ping()
    responder.join(2)
    link.close()


def test_link_open_missing_path_says_not_found(tmp_path) -> None:
    with pytest.raises(ReceiverNotFoundError) as info:
        SerialLink(str(tmp_path / "ttyACM9")).open()
    assert info.value.hint and "cable" in info.value.hint


def test_link_permission_error_names_the_fix() -> None:
    with pytest.raises(ReceiverPermissionError) as info:
        with serial_errors("/dev/ttyACM0", opening=True):
            raise serial.SerialException(errno.EACCES, "could not open port: Permission denied")
    assert "dialout" in (info.value.hint or "")
    assert info.value.exit_code == 77


def test_link_unplug_is_reported_as_disconnect(pty_pair) -> None:
    master, path = pty_pair
    link = SerialLink(path)
    link.open()
    os.close(master)  # the far end vanishes
    with pytest.raises((ReceiverDisconnectedError, ReceiverTimeoutError)):
        link.write(b"\x01\x06\x00\x0a\x5e\x65")
        link.read(10, time.monotonic() + 0.5)
    link.close()


def test_link_second_opener_is_told_the_receiver_is_busy(pty_pair) -> None:
    import subprocess
    import sys

    _, path = pty_pair
    owner = SerialLink(path)
    owner.open()
    probe = ("from bridge.dexcom.link import SerialLink\n"
             "from bridge.errors import ReceiverBusyError\n"
             f"try:\n    SerialLink({path!r}).open()\nexcept ReceiverBusyError as exc:\n"
             "    print(exc.exit_code, exc.hint)\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    owner.close()
    assert done.stdout.startswith("75 ") and "bridge status" in done.stdout, done.stderr
