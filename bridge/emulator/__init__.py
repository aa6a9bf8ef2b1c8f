"""The receiver emulator (``bridge emulate``): a Dexcom G4 on a pseudo-terminal.

Layer: emulator, a product feature outside the core: it imports the pure codec
(:mod:`bridge.dexcom` framing, commands, pages, layouts, export) and :mod:`bridge.records`;
the core (``dexcom``, ``nightscout``, ``store``, ``app``) never imports it.

Modules: ``history`` (plausible data), ``database`` (partitions as ring buffers of pages),
``faults`` (the fault model), ``device`` (the sans-I/O command handler and latency model),
``pty`` (serving on a pty), ``receiver`` (:class:`ReceiverEmulator`, all of it together)
and ``cli`` (the ``emulate`` click command).
"""

from __future__ import annotations

from bridge.emulator.device import DeviceClock, DeviceInfo, LatencyModel, ReceiverDevice, Response
from bridge.emulator.faults import FAULT_KINDS, FaultInjector, FaultSpec
from bridge.emulator.receiver import ReceiverEmulator

__all__ = [
    "FAULT_KINDS",
    "DeviceClock",
    "DeviceInfo",
    "FaultInjector",
    "FaultSpec",
    "LatencyModel",
    "ReceiverDevice",
    "ReceiverEmulator",
    "Response",
]
