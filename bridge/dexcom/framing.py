"""Packet framing: encode_frame() and a stream FrameDecoder. Layer: dexcom, pure (no I/O).

::

    offset  size  field
    0       1     SOF = 0x01
    1       2     total length, u16 LE, counting everything (SOF .. CRC)
    3       1     command (request) or status (reply)
    4       n     payload, n = length - 6
    4+n     2     CRC-16/XMODEM of bytes [0, 4+n), LE

Real receivers send 4-page replies (6 + 4 x 528 = 2118 bytes), longer than the 1590 bytes
several open clients assume (PROTOCOL.md §2.1); the decoder accepts up to MAX_FRAME_LEN.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from bridge.dexcom.crc import crc16_xmodem
from bridge.errors import CRCError, FrameError

__all__ = ["CRC", "HEADER", "MAX_FRAME_LEN", "MIN_FRAME_LEN", "SOF", "Frame", "FrameDecoder", "encode_frame"]

SOF = 0x01
HEADER = struct.Struct("<BHB")  # sof, total length incl. CRC, command/status
CRC = struct.Struct("<H")
MIN_FRAME_LEN = HEADER.size + CRC.size
MAX_FRAME_LEN = 6 + 8 * 528  # twice the largest reply seen, and far below any noise length


@dataclass(frozen=True, slots=True)
class Frame:
    """One packet: the command (request) or status (reply) byte and its payload."""

    command: int
    payload: bytes


def encode_frame(command: int, payload: bytes = b"") -> bytes:
    """Build a packet around ``payload``.

    Raises:
        FrameError: the packet would exceed MAX_FRAME_LEN.
    """
    length = MIN_FRAME_LEN + len(payload)
    if length > MAX_FRAME_LEN:
        raise FrameError(f"packet of {length} bytes exceeds {MAX_FRAME_LEN}")
    body = HEADER.pack(SOF, length, command) + payload
    return body + CRC.pack(crc16_xmodem(body))


class FrameDecoder:
    """Split a receiver byte stream into frames, resynchronising after noise and bad CRCs."""

    def __init__(self, max_len: int = MAX_FRAME_LEN) -> None:
        self._buf = bytearray()
        self._max_len = max_len
        # bytes at the head of the buffer that belong to a frame which failed its CRC: a SOF
        # found in them is likely a false one and must not hold up the frames after them
        self._damaged = 0

    def feed(self, data: bytes) -> None:
        """Append received bytes."""
        self._buf += data

    def clear(self) -> None:
        """Forget everything buffered (before a resend)."""
        self._buf.clear()
        self._damaged = 0

    @property
    def pending(self) -> int:
        """Bytes buffered but not yet returned as a frame."""
        return len(self._buf)

    def needed(self) -> int:
        """How many more bytes the frame at the head of the buffer needs (at least 1)."""
        if len(self._buf) < HEADER.size or self._buf[0] != SOF:
            return max(1, HEADER.size - len(self._buf))
        _, length, _ = HEADER.unpack_from(self._buf)
        return max(1, length - len(self._buf))

    def next_frame(self) -> Frame | None:
        """Return the next complete frame, or None if more bytes are needed.

        After a CRC failure only the false SOF is dropped, so a good frame hidden in the bytes
        after it is still found. A SOF inside the damaged frame that announces more bytes than
        have arrived does not hold up a good frame inside or right after the damaged one: once
        such a frame is complete and valid, the bytes before it are dropped. Candidates inside
        the damaged frame that fail their own CRC are dropped without a second CRCError.

        Raises:
            CRCError: a damaged frame was dropped; the caller may resend.
        """
        while (start := self._buf.find(SOF)) >= 0:
            self._drop(start)  # noise before SOF
            if len(self._buf) < HEADER.size:
                return None
            _, length, command = HEADER.unpack_from(self._buf)
            if not MIN_FRAME_LEN <= length <= self._max_len:
                self._drop(1)  # false SOF: hunt again
                continue
            if len(self._buf) < length:
                if self._damaged and (good := self._next_valid_frame()):
                    self._drop(good)  # a whole good frame follows: this SOF was false
                    continue
                return None
            body = bytes(self._buf[: length - CRC.size])
            (sent,) = CRC.unpack_from(self._buf, length - CRC.size)
            if (calc := crc16_xmodem(body)) != sent:
                # drop only the false SOF: the bytes after it may hold the next good frame
                reported = self._damaged > 0
                self._drop(1)
                if reported:
                    continue  # a false SOF inside a damaged frame already reported
                self._damaged = length - 1
                raise CRCError(f"packet CRC {sent:#06x}, computed {calc:#06x}")
            self._drop(length)
            return Frame(command, body[HEADER.size :])
        self._drop(len(self._buf))
        return None

    def _drop(self, count: int) -> None:
        del self._buf[:count]
        self._damaged = max(0, self._damaged - count)

    def _next_valid_frame(self) -> int:
        """Find a good frame among or right after the damaged bytes.

        Returns:
            The offset of the first complete frame with a valid CRC that starts after the head
            and no later than the end of the damaged bytes; 0 when there is none (yet).
        """
        pos = 0
        while (pos := self._buf.find(SOF, pos + 1, self._damaged + 1)) > 0:
            if self._valid_frame_at(pos):
                return pos
        return 0

    def _valid_frame_at(self, offset: int) -> bool:
        """Whether a complete frame with a good CRC starts at ``offset`` in the buffer."""
        if len(self._buf) < offset + HEADER.size or self._buf[offset] != SOF:
            return False
        _, length, _ = HEADER.unpack_from(self._buf, offset)
        if not MIN_FRAME_LEN <= length <= self._max_len or len(self._buf) < offset + length:
            return False
        end = offset + length - CRC.size
        (sent,) = CRC.unpack_from(self._buf, end)
        return bool(crc16_xmodem(bytes(self._buf[offset:end])) == sent)
