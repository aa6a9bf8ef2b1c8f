"""The emulator on a real pseudo-terminal, opened with pyserial."""

from __future__ import annotations

import contextlib
import os
import time

import pytest
import serial

from bridge.dexcom import commands
from bridge.dexcom.framing import FrameDecoder
from bridge.dexcom.pages import PAGE_SIZE, decode_page, split_pages
from bridge.emulator import ReceiverEmulator
from bridge.records import RecordType

PING = bytes.fromhex("0106000a5e65")
PING_ACK = bytes.fromhex("0106000135d4")


def read_frame(port: serial.Serial, timeout: float = 2.0):
    decoder = FrameDecoder()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        decoder.feed(port.read(max(1, port.in_waiting)))
        if (frame := decoder.next_frame()) is not None:
            return frame
    raise AssertionError("no reply")


def wait_for(condition, timeout: float = 5.0) -> float:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError("timed out")
        time.sleep(0.02)
    return time.monotonic() - started


@pytest.fixture
def served(tmp_path):
    emulator = ReceiverEmulator(days=2, seed=5, latency=True, link_path=tmp_path / "dexcom", interval_s=1)
    emulator.start()
    yield emulator
    emulator.stop()


def test_ping_over_a_pty_gets_the_captured_ack(served) -> None:
    port = serial.serial_for_url(str(served.link_path), timeout=1)
    try:
        port.write(PING)
        assert port.read(6) == PING_ACK
    finally:
        port.close()


def test_split_writes_and_multi_page_reads_with_latency(served) -> None:
    port = serial.serial_for_url(served.path, timeout=1)
    try:
        request = commands.read_page_range(RecordType.EGV_DATA)
        port.write(request[:3])
        port.flush()
        time.sleep(0.05)
        port.write(request[3:])
        first, last = commands.decode_page_range(read_frame(port).payload)
        assert first > 0
        started = time.monotonic()
        port.write(commands.read_pages(RecordType.EGV_DATA, last - 3, 4))
        frame = read_frame(port)
        elapsed = time.monotonic() - started
        assert len(frame.payload) == 4 * PAGE_SIZE
        assert 0.040 <= elapsed < 0.5  # about 42 ms modelled
        pages = [decode_page(raw) for raw in split_pages(frame.payload)]
        assert [p.header.page_number for p in pages] == list(range(last - 3, last + 1))
    finally:
        port.close()


def test_live_readings_arrive_at_the_interval(served) -> None:
    before = len(served.records["egv"])
    wait_for(lambda: len(served.records["egv"]) >= before + 2, timeout=3)


def test_link_is_created_replaced_and_removed(tmp_path) -> None:
    link = tmp_path / "dev" / "dexcom"
    link.parent.mkdir()
    link.write_text("stale")  # whatever was there is replaced
    emulator = ReceiverEmulator(days=0.2, seed=1, latency=False, link_path=link)
    path = emulator.start()
    try:
        assert link.is_symlink() and os.readlink(link) == path
        port = serial.serial_for_url(str(link), timeout=1)
        port.write(PING)
        assert port.read(6) == PING_ACK
        port.close()
    finally:
        emulator.stop()
    assert not link.exists() and not link.is_symlink()
    assert list(link.parent.iterdir()) == []


def test_unplug_closes_the_port_and_replugs_at_the_same_link(tmp_path) -> None:
    link = tmp_path / "dexcom"
    emulator = ReceiverEmulator(days=0.2, seed=2, latency=False, link_path=link)
    emulator.start()
    try:
        port = serial.serial_for_url(str(link), timeout=1)
        emulator.unplug()
        wait_for(lambda: not link.is_symlink(), timeout=1)
        with pytest.raises(serial.SerialException):
            port.write(PING)
            port.read(6)
        port.close()
        away = wait_for(link.is_symlink, timeout=6)
        assert 2.0 <= away <= 4.5
        assert emulator.unplugs == 1
        port = serial.serial_for_url(str(link), timeout=1)
        port.write(PING)
        assert port.read(6) == PING_ACK
        port.close()
    finally:
        emulator.stop()
    assert not link.is_symlink()


def test_unplug_fault_takes_the_port_away(tmp_path) -> None:
    link = tmp_path / "dexcom"
    with ReceiverEmulator(days=0.2, seed=3, latency=False, link_path=link, faults="unplug=1", unplug_s=0.5) as emulator:
        port = serial.serial_for_url(str(link), timeout=0.5)
        port.write(PING)
        with contextlib.suppress(serial.SerialException):  # the port may already be gone
            assert port.read(6) == b""
        port.close()
        wait_for(lambda: emulator.unplugs == 1, timeout=2)
        wait_for(link.is_symlink, timeout=3)
        assert emulator.faults_injected == {"unplug": 1}
