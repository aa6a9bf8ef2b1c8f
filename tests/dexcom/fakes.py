"""An in-memory receiver that answers with real captured bytes (2013 Dexcom Studio session).

Replies carry the real payloads of ../shared/vectors (page bytes, clocks, XML); only the
framing around them is ours (framing itself is checked against the capture elsewhere).
Faults are scripted per request so the Receiver's retry and isolation rules can be shown
without a pty or any sleep: the link's clock jumps to the deadline when nothing arrives.
"""

from __future__ import annotations

from collections import defaultdict, deque

from bridge.dexcom.commands import Command, Status, decode_read_pages, encode_page_range
from bridge.dexcom.framing import FrameDecoder, encode_frame
from bridge.dexcom.layouts import record_size
from bridge.dexcom.receiver import Receiver
from bridge.errors import ReceiverDisconnectedError

from vectors import load

Fault = str  # "silent" | "late" | "crc" | "nak" | "garbage" | "invalid_param" | "unplug" | "badpage"


def captured_device() -> tuple[dict[int, bytes], dict[int, dict[int, bytes]]]:
    """Simple replies by command and real pages by (type, number), from the capture."""
    capture = load("capture_dexcom_studio_g4_2013.json")["packets"]
    simple: dict[int, bytes] = {}
    for out, reply in zip(capture, capture[1:], strict=False):
        if out["dir"] == "out" and reply["dir"] == "in":
            command = bytes.fromhex(out["hex"])[3]
            body = bytes.fromhex(reply["hex"])
            simple.setdefault(command, body[4:-2])
    pages: dict[int, dict[int, bytes]] = defaultdict(dict)
    for page in load("pages_dexcom_studio_g4_2013.json")["pages"]:
        pages[page["record_type"]][page["page_number"]] = bytes.fromhex(page["hex"])
    return simple, pages


class FakeLink:
    """A ByteLink whose far end is the captured receiver, with scripted faults."""

    url = "fake://captured"

    def __init__(
        self, faults: dict[int, Fault] | None = None, *, max_pages: int = 4, ignore_multi_page: bool = False
    ) -> None:
        self.ignore_multi_page = ignore_multi_page  # a receiver that never answers count > 1
        self.damaged_records: set[tuple[int, int]] = set()  # (page, record index) always corrupt
        self.simple, self.pages = captured_device()
        self.faults = dict(faults or {})  # request number (1-based) -> fault
        self.max_pages = max_pages
        self.requests: list[tuple[int, bytes]] = []
        self.now = 0.0
        self._rx = bytearray()
        self._late: deque[bytes] = deque()
        self._decoder = FrameDecoder()
        self.opened = 0
        self.connected = True

    # ByteLink ---------------------------------------------------------------------------
    def open(self) -> None:
        self.opened += 1
        self._rx.clear()

    def reopen(self, wait_s: float) -> None:
        self.now += 3.0
        self.connected = True
        self.open()

    def close(self) -> None:
        pass

    def monotonic(self) -> float:
        return self.now

    def flush_input(self) -> None:
        self._rx.clear()

    def write(self, data: bytes) -> None:
        if not self.connected:
            raise ReceiverDisconnectedError("fake: unplugged")
        self._rx += b"".join(self._late)  # a reply that was late arrives now, after the flush
        self._late.clear()
        self._decoder.feed(data)
        frame = self._decoder.next_frame()
        assert frame is not None
        self.requests.append((frame.command, frame.payload))
        reply = self.answer(frame.command, frame.payload)
        fault = self.faults.get(len(self.requests))
        if self.ignore_multi_page and frame.command == Command.READ_DATABASE_PAGES and frame.payload[-1] > 1:
            fault = "silent"
        if fault == "silent":
            return
        if fault == "late":
            self._late.append(reply)
            return
        if fault == "crc":
            reply = reply[:-1] + bytes([reply[-1] ^ 0xFF])
        elif fault == "nak":
            reply = encode_frame(Status.NAK)
        elif fault == "invalid_param":
            reply = encode_frame(Status.INVALID_PARAM)
        elif fault == "garbage":
            reply = b"\x00\xff\x01\x99" + reply
        elif fault == "badpage":  # flip a byte inside the first page's first record
            body = bytearray(reply[4:-2])
            body[30] ^= 0xFF
            reply = encode_frame(Status.ACK, bytes(body))
        elif fault == "unplug":
            self.connected = False
            raise ReceiverDisconnectedError("fake: unplugged")
        self._rx += reply

    def read(self, max_bytes: int, deadline: float) -> bytes:
        if not self._rx:
            self.now = max(self.now, deadline)  # nothing will come: the deadline passes
            return b""
        data = bytes(self._rx[:max_bytes])
        del self._rx[:max_bytes]
        return data

    def drain(self, quiet_s: float, max_s: float) -> int:
        dropped = len(self._rx) + sum(map(len, self._late))
        self._rx.clear()
        self._late.clear()
        return dropped

    # the far end ------------------------------------------------------------------------
    def page_range(self, record_type: int) -> tuple[int, int] | None:
        numbers = sorted(self.pages.get(record_type, {}))
        return (numbers[0], numbers[-1]) if numbers else None

    def answer(self, command: int, payload: bytes) -> bytes:
        if command == Command.READ_DATABASE_PAGE_RANGE:
            return encode_frame(Status.ACK, encode_page_range(self.page_range(payload[0])))
        if command == Command.READ_DATABASE_PAGES:
            record_type, first, count = decode_read_pages(payload)
            have = self.pages.get(record_type, {})
            wanted = range(first, first + count)
            if count > self.max_pages or not all(n in have for n in wanted):
                return encode_frame(Status.INVALID_PARAM)
            pages = [bytearray(have[n]) for n in wanted]
            for page, number in zip(pages, wanted, strict=True):
                for damaged, index in self.damaged_records:
                    if damaged == number:  # flip a bit of that record's first byte: its CRC fails
                        page[28 + index * record_size(record_type, page[9])] ^= 0x01
            return encode_frame(Status.ACK, b"".join(bytes(p) for p in pages))
        if command in self.simple:
            return encode_frame(Status.ACK, self.simple[command])
        return encode_frame(Status.INVALID_COMMAND)


def make_receiver(link: FakeLink, **kwargs: object) -> Receiver:
    """A Receiver on the fake link, its deadlines on the link's own clock."""
    return Receiver(link, monotonic=link.monotonic, **kwargs)  # type: ignore[arg-type]
