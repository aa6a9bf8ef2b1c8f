"""Fixtures for the emulator tests: a fake host clock and emulators built without a port."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from bridge.dexcom.framing import Frame, FrameDecoder
from bridge.emulator import ReceiverDevice, ReceiverEmulator

NOW = 1_764_000_000.0  # 2025-11-24, a fixed host time so seeded histories are identical


class FakeClock:
    """A host clock the test moves by hand."""

    def __init__(self, t: float = NOW) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def decode_reply(data: bytes) -> Frame:
    """The one frame in a reply."""
    decoder = FrameDecoder()
    decoder.feed(data)
    frame = decoder.next_frame()
    assert frame is not None, data.hex()
    assert decoder.pending == 0
    return frame


def ask(device: ReceiverDevice, request: bytes) -> Frame:
    """Send one request to a device; return its decoded reply."""
    replies = device.receive(request)
    assert len(replies) == 1
    return decode_reply(replies[0].data)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_emulator(clock: FakeClock) -> Callable[..., ReceiverEmulator]:
    def make(**kwargs: object) -> ReceiverEmulator:
        options: dict[str, object] = {"days": 3, "seed": 7, "latency": False, "now": clock}
        options.update(kwargs)
        return ReceiverEmulator(**options)  # type: ignore[arg-type]

    return make


@pytest.fixture
def emulator(make_emulator: Callable[..., ReceiverEmulator]) -> ReceiverEmulator:
    return make_emulator()


@pytest.fixture(name="ask")
def ask_fixture() -> Callable[[ReceiverDevice, bytes], Frame]:
    return ask


@pytest.fixture(name="decode_reply")
def decode_reply_fixture() -> Callable[[bytes], Frame]:
    return decode_reply
