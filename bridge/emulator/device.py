"""The emulated receiver's command handler: request bytes in, reply bytes out (sans-I/O).

Layer: emulator. Uses the project's codec (framing, commands, pages) and never touches a
port: :mod:`bridge.emulator.pty` moves the bytes, so every command is unit-testable.

Answers every command of PROTOCOL.md §12. An unknown command gets INVALID_COMMAND, a bad
parameter (unknown partition, empty partition, page out of range, page count 0 or > 4, wrong
payload size) INVALID_PARAM, a request with a bad CRC NAK; error replies have an empty
payload (PROTOCOL.md §2.3). Clocks: SystemTime = RTC + SystemTimeOffset and DisplayTime =
SystemTime + DisplayTimeOffset, the same clock that stamps the records.

Latency (PROTOCOL.md §2.4) is data: :class:`LatencyModel` gives each reply's modelled
service time and :attr:`ReceiverDevice.modelled_service_s` sums it, whether or not the
server sleeps it.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from bridge.dexcom.clock import DEXCOM_EPOCH_UNIX
from bridge.dexcom.commands import (
    XML_COMMANDS,
    Command,
    Status,
    decode_page_header_request,
    decode_read_pages,
    encode_page_range,
)
from bridge.dexcom.framing import Frame, FrameDecoder, encode_frame
from bridge.emulator.database import Database
from bridge.emulator.faults import FaultInjector
from bridge.errors import CRCError, RecordError

__all__ = [
    "MAX_PAGES_PER_READ",
    "DeviceClock",
    "DeviceInfo",
    "LatencyModel",
    "ReceiverDevice",
    "Response",
    "firmware_header_xml",
]

MAX_PAGES_PER_READ = 4  # Dexcom Studio reads 4 at once; more is refused
MAX_REQUEST_LEN = 64  # the longest request is 12 bytes; longer lengths are noise
_U8 = struct.Struct("<B")
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_S32 = struct.Struct("<i")


@dataclass(frozen=True, slots=True)
class LatencyModel:
    """Modelled receiver service times, from the Dexcom Studio capture (PROTOCOL.md §2.4)."""

    per_command_s: float = 0.006
    per_page_s: float = 0.009
    xml_s: float = 0.150

    def service_time(self, command: int, pages: int = 0) -> float:
        """Seconds the receiver takes to answer ``command`` (1 page 15 ms, 4 pages 42 ms, XML 150 ms)."""
        if command in XML_COMMANDS:
            return self.xml_s
        return self.per_command_s + self.per_page_s * pages


@dataclass(slots=True)
class DeviceClock:
    """The receiver's clocks, derived from the host's clock.

    system = host UTC (Dexcom seconds) + ``clock_offset_s``; RTC = system - ``system_offset_s``;
    display = system + ``display_offset_s``.
    """

    clock_offset_s: int = 0
    system_offset_s: int = 126467628
    display_offset_s: int = -25200
    now: Callable[[], float] = time.time

    def system_seconds(self) -> int:
        """The receiver's system time now."""
        return int(self.now()) - DEXCOM_EPOCH_UNIX + self.clock_offset_s

    def rtc(self) -> int:
        """The raw RTC now."""
        return self.system_seconds() - self.system_offset_s

    def display_seconds(self) -> int:
        """The receiver's display time now."""
        return self.system_seconds() + self.display_offset_s


def firmware_header_xml(calset_rev: int) -> str:
    """The firmware header: the real 2013 G4 for CalSet rev 2, a later G4 build for rev 3."""
    software, firmware = ("SW10050", "2.0.1.104") if calset_rev <= 2 else ("SW10505", "2.0.1.216")
    return (
        "<FirmwareHeader SchemaVersion='1' ApiVersion='2.2.0.0' TestApiVersion='2.4.0.0' "
        f"ProductId='G4Receiver' ProductName='Dexcom G4 Receiver' SoftwareNumber='{software}' "
        f"FirmwareVersion='{firmware}' PortVersion='4.6.4.45' RFVersion='1.0.0.27' DexBootVersion='3'/>"
    )


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """The receiver's fixed answers."""

    transmitter_id: str = "60HMW"
    firmware_header: str = field(default_factory=lambda: firmware_header_xml(2))
    firmware_settings: str = '<FirmwareSettings FirmwareImageId="" />'
    battery_level: int = 97
    battery_state: int = 1  # CHARGING: it is plugged into the host
    language: int = 1033
    glucose_unit: int = 1  # mg/dL
    clock_mode: int = 1
    blinded_mode: int = 0
    device_mode: int = 0


@dataclass(frozen=True, slots=True)
class Response:
    """One reply, with what the server must do with it."""

    command: int  # the request's command byte (-1 for an undecodable request)
    status: int
    data: bytes  # the bytes to send (faults applied)
    pages: int = 0
    service_s: float = 0.0  # the modelled service time
    delay_s: float = 0.0  # wait this long before sending (0 without latency, +4 s when slow)
    fault: str | None = None
    unplug: bool = False


_Handled = tuple[int, bytes, int]  # status, payload, pages


class ReceiverDevice:
    """A Dexcom G4 receiver as a function from request bytes to replies.

    Args:
        database: the partitions to serve.
        clock: the receiver's clocks.
        info: fixed answers (transmitter id, firmware XML, battery, ...).
        latency: sleep the modelled service time before each reply (the server does the sleeping).
        model: the latency model (counted in :attr:`modelled_service_s` even without latency).
        faults: the fault injector, or None for clean replies.
        on_display_offset: called with the new offset after WRITE_DISPLAY_TIME_OFFSET.
    """

    def __init__(
        self, database: Database, clock: DeviceClock, info: DeviceInfo | None = None, *, latency: bool = True,
        model: LatencyModel | None = None, faults: FaultInjector | None = None,
        on_display_offset: Callable[[int], None] | None = None,
    ) -> None:
        self.database = database
        self.clock = clock
        self.info = info or DeviceInfo()
        self.latency = latency
        self.model = model or LatencyModel()
        self.faults = faults
        self.on_display_offset = on_display_offset
        self.modelled_service_s = 0.0
        self.commands_served = 0
        self._decoder = FrameDecoder(max_len=MAX_REQUEST_LEN)
        self._handlers: dict[int, Callable[[bytes], _Handled]] = {
            Command.PING: lambda p: self._empty(p),
            Command.READ_FIRMWARE_HEADER: lambda p: self._text(p, self.info.firmware_header),
            Command.READ_DATABASE_PARTITION_INFO: lambda p: self._text(p, self.database.partition_info_xml()),
            Command.READ_FIRMWARE_SETTINGS: lambda p: self._text(p, self.info.firmware_settings),
            Command.READ_DATABASE_PAGE_RANGE: self._page_range,
            Command.READ_DATABASE_PAGES: self._pages,
            Command.READ_DATABASE_PAGE_HEADER: self._page_header,
            Command.READ_SYSTEM_TIME: lambda p: self._value(p, _U32, self.clock.system_seconds()),
            Command.READ_RTC: lambda p: self._value(p, _U32, self.clock.rtc()),
            Command.READ_SYSTEM_TIME_OFFSET: lambda p: self._value(p, _S32, self.clock.system_offset_s),
            Command.READ_DISPLAY_TIME_OFFSET: lambda p: self._value(p, _S32, self.clock.display_offset_s),
            Command.WRITE_DISPLAY_TIME_OFFSET: self._write_display_offset,
            Command.READ_TRANSMITTER_ID: lambda p: self._raw(p, self.info.transmitter_id.encode("ascii")),
            Command.READ_BATTERY_LEVEL: lambda p: self._value(p, _U32, self.info.battery_level),
            Command.READ_BATTERY_STATE: lambda p: self._value(p, _U8, self.info.battery_state),
            Command.READ_LANGUAGE: lambda p: self._value(p, _U16, self.info.language),
            Command.READ_GLUCOSE_UNIT: lambda p: self._value(p, _U8, self.info.glucose_unit),
            Command.READ_CLOCK_MODE: lambda p: self._value(p, _U8, self.info.clock_mode),
            Command.READ_BLINDED_MODE: lambda p: self._value(p, _U8, self.info.blinded_mode),
            Command.READ_DEVICE_MODE: lambda p: self._value(p, _U8, self.info.device_mode),
        }

    # ------------------------------------------------------------------ byte stream

    @property
    def pending(self) -> int:
        """Request bytes buffered but not yet a complete frame."""
        return self._decoder.pending

    def reset_input(self) -> None:
        """Forget a partial request (stale bytes, or a new connection)."""
        self._decoder.clear()

    def receive(self, data: bytes) -> list[Response]:
        """Feed request bytes (any split); return a reply for every complete request."""
        self._decoder.feed(data)
        out: list[Response] = []
        while True:
            try:
                frame = self._decoder.next_frame()
            except CRCError:
                self._decoder.clear()  # a client sends one request and waits: drop the rest
                out.append(self._finish(-1, Status.NAK, b"", 0))
                continue
            if frame is None:
                return out
            out.append(self.respond(frame))

    # ------------------------------------------------------------------ one request

    def respond(self, frame: Frame) -> Response:
        """Answer one request frame, with latency and faults applied."""
        status, payload, pages = self.handle(frame)
        return self._finish(frame.command, status, payload, pages)

    def handle(self, frame: Frame) -> _Handled:
        """The clean answer to one request: (status, payload, page count)."""
        handler = self._handlers.get(frame.command)
        if handler is None:
            return Status.INVALID_COMMAND, b"", 0
        with self.database.lock:
            return handler(frame.payload)

    def service_time(self, command: int, pages: int = 0) -> float:
        """The modelled service time of a command reading ``pages`` pages."""
        return self.model.service_time(command, pages)

    def _finish(self, command: int, status: int, payload: bytes, pages: int) -> Response:
        service = self.service_time(command, pages) if status == Status.ACK else self.model.per_command_s
        self.modelled_service_s += service
        self.commands_served += 1
        reply = encode_frame(status, payload)
        delay = service if self.latency else 0.0
        fault = None
        if self.faults is not None and command >= 0:
            fault = self.faults.inject(reply, pages=pages)
        if fault is None:
            return Response(command, status, reply, pages, service, delay)
        return Response(
            command, status, fault.data, pages, service, delay + fault.extra_delay_s, fault.kind, fault.unplug
        )

    # ------------------------------------------------------------------ handlers

    @staticmethod
    def _empty(payload: bytes) -> _Handled:
        return Status.ACK, b"", 0

    @staticmethod
    def _text(payload: bytes, text: str) -> _Handled:
        return Status.ACK, text.encode("utf-8"), 0

    @staticmethod
    def _raw(payload: bytes, value: bytes) -> _Handled:
        return Status.ACK, value, 0

    @staticmethod
    def _value(payload: bytes, shape: struct.Struct, value: int) -> _Handled:
        return Status.ACK, shape.pack(value), 0

    def _page_range(self, payload: bytes) -> _Handled:
        if len(payload) != _U8.size or (part := self.database.partition(payload[0])) is None:
            return Status.INVALID_PARAM, b"", 0
        return Status.ACK, encode_page_range(part.page_range()), 0

    def _pages(self, payload: bytes) -> _Handled:
        try:
            rtype, first, count = decode_read_pages(payload)
        except RecordError:
            return Status.INVALID_PARAM, b"", 0
        part = self.database.partition(rtype)
        if part is None or not 1 <= count <= MAX_PAGES_PER_READ:
            return Status.INVALID_PARAM, b"", 0
        if not (part.has_page(first) and part.has_page(first + count - 1)):
            return Status.INVALID_PARAM, b"", 0
        return Status.ACK, b"".join(part.page(n) for n in range(first, first + count)), count

    def _page_header(self, payload: bytes) -> _Handled:
        try:
            rtype, number = decode_page_header_request(payload)
        except RecordError:
            return Status.INVALID_PARAM, b"", 0
        part = self.database.partition(rtype)
        if part is None or not part.has_page(number):
            return Status.INVALID_PARAM, b"", 0
        return Status.ACK, part.header_bytes(number), 0

    def _write_display_offset(self, payload: bytes) -> _Handled:
        if len(payload) != _S32.size:
            return Status.INVALID_PARAM, b"", 0
        (offset,) = _S32.unpack(payload)
        self.clock.display_offset_s = offset
        if self.on_display_offset is not None:
            self.on_display_offset(offset)
        return Status.ACK, b"", 0
