"""Fault injection for the emulator's replies: the fault model as data. Layer: emulator, pure.

``--faults crc=0.02,header=0.01,record=0.01,truncate=0.01,slow=0.01,nak=0.01,unplug=0.003``:
for each reply one uniform draw picks at most one fault, with these probabilities:

=========  ===============================================================================
crc        the packet CRC is wrong
header     one page of a page reply has a wrong header CRC (packet CRC recomputed: valid)
record     one record of one page has a wrong CRC (packet CRC recomputed: valid)
truncate   only a prefix of the reply is sent
slow       the reply is sent SLOW_DELAY_S late (after a client has given up)
nak        a NAK with an empty payload instead of the reply
unplug     no reply; the port goes away and comes back at the same link UNPLUG_S later
=========  ===============================================================================

A drawn ``header`` or ``record`` fault that cannot apply (a reply without pages, or pages
without records) is dropped, not replaced. Faults corrupt a copy of the reply bytes, never
the stored records: a clean re-read always gets the truth.
"""

from __future__ import annotations

import random
import struct
from collections import Counter
from dataclasses import dataclass, fields

from bridge.dexcom.commands import Status
from bridge.dexcom.crc import crc16_xmodem
from bridge.dexcom.framing import encode_frame
from bridge.dexcom.layouts import record_size
from bridge.dexcom.pages import PAGE_HEADER_LEN, PAGE_SIZE

__all__ = ["FAULT_KINDS", "SLOW_DELAY_S", "UNPLUG_S", "Fault", "FaultInjector", "FaultSpec"]

SLOW_DELAY_S = 4.0  # a late reply: longer than any sane per-command timeout
UNPLUG_S = 3.0  # how long an unplugged port stays away
FAULT_KINDS = ("crc", "header", "record", "truncate", "slow", "nak", "unplug")
_FRAME_HEAD = 4  # SOF, length, status
_CRC = struct.Struct("<H")
_COUNT = struct.Struct("<I")


@dataclass(frozen=True, slots=True)
class FaultSpec:
    """Per-reply probabilities of each fault kind (their sum is at most 1)."""

    crc: float = 0.0
    header: float = 0.0
    record: float = 0.0
    truncate: float = 0.0
    slow: float = 0.0
    nak: float = 0.0
    unplug: float = 0.0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"fault {f.name}={value}: a probability must be between 0 and 1")
        if self.total > 1.0 + 1e-9:
            raise ValueError(f"fault probabilities add up to {self.total:g}, more than 1")

    @classmethod
    def parse(cls, text: str | None) -> FaultSpec:
        """Parse ``kind=p,kind=p`` (empty or None: no faults).

        Raises:
            ValueError: an unknown kind, a malformed item or an impossible probability.
        """
        values: dict[str, float] = {}
        for item in (text or "").replace(" ", "").split(","):
            if not item:
                continue
            name, sep, number = item.partition("=")
            if not sep or name not in FAULT_KINDS:
                raise ValueError(f"bad fault {item!r}: expected one of {', '.join(FAULT_KINDS)} as kind=probability")
            try:
                values[name] = float(number)
            except ValueError:
                raise ValueError(f"bad fault probability in {item!r}") from None
        return cls(**values)

    @property
    def total(self) -> float:
        """The probability that a reply gets any fault."""
        return float(sum(getattr(self, k) for k in FAULT_KINDS))

    def __str__(self) -> str:
        return ",".join(f"{k}={getattr(self, k):g}" for k in FAULT_KINDS if getattr(self, k)) or "none"


@dataclass(frozen=True, slots=True)
class Fault:
    """What to send instead of a clean reply."""

    kind: str
    data: bytes  # the bytes to send (empty on unplug)
    extra_delay_s: float = 0.0
    unplug: bool = False


def _reframe(body: bytearray) -> bytes:
    """Recompute the packet CRC over a modified frame (everything but the last 2 bytes)."""
    body[-2:] = _CRC.pack(crc16_xmodem(bytes(body[:-2])))
    return bytes(body)


class FaultInjector:
    """Draws at most one fault per reply and corrupts a copy of it.

    Args:
        spec: the probabilities.
        rng: the random source (seed it for a repeatable run).
    """

    def __init__(self, spec: FaultSpec, rng: random.Random) -> None:
        self.spec = spec
        self.counts: Counter[str] = Counter()
        self._rng = rng

    def draw(self) -> str | None:
        """One uniform draw: a fault kind or None."""
        roll = self._rng.random()
        for kind in FAULT_KINDS:
            roll -= getattr(self.spec, kind)
            if roll < 0:
                return kind
        return None

    def inject(self, reply: bytes, *, pages: int = 0) -> Fault | None:
        """Decide the fault for one framed reply; None when it goes out clean.

        Args:
            reply: the clean framed reply.
            pages: how many 528-byte pages its payload holds.
        """
        if self.spec.total <= 0:
            return None
        kind = self.draw()
        fault = None if kind is None else self._apply(kind, reply, pages)
        if fault is not None:
            self.counts[fault.kind] += 1
        return fault

    def _apply(self, kind: str, reply: bytes, pages: int) -> Fault | None:
        rng = self._rng
        if kind == "crc":
            data = bytearray(reply)
            data[-1] ^= 0xFF
            return Fault(kind, bytes(data))
        if kind == "truncate":
            return Fault(kind, reply[: rng.randint(1, len(reply) - 1)])
        if kind == "slow":
            return Fault(kind, reply, extra_delay_s=SLOW_DELAY_S)
        if kind == "nak":
            return Fault(kind, encode_frame(Status.NAK))
        if kind == "unplug":
            return Fault(kind, b"", unplug=True)
        if pages <= 0:
            return None
        data = bytearray(reply)
        if kind == "header":
            page = _FRAME_HEAD + rng.randrange(pages) * PAGE_SIZE
            data[page + PAGE_HEADER_LEN - 2] ^= 0xFF
            return Fault(kind, _reframe(data))
        # kind == "record": a page with records, then one of its records
        counts = [_COUNT.unpack_from(reply, _FRAME_HEAD + i * PAGE_SIZE + 4)[0] for i in range(pages)]
        candidates = [i for i, n in enumerate(counts) if n > 0]
        if not candidates:
            return None
        i = rng.choice(candidates)
        j = rng.randrange(counts[i])
        page = _FRAME_HEAD + i * PAGE_SIZE
        record_length = record_size(reply[page + 8], reply[page + 9])  # type and revision bytes
        crc_at = page + PAGE_HEADER_LEN + j * record_length + record_length - 2
        data[crc_at] ^= 0xFF
        return Fault(kind, _reframe(data))
