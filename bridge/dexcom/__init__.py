"""The Dexcom G4 receiver: protocol codec (pure), serial link and receiver session.

Public surface for the rest of the bridge; nothing here imports the store, the Nightscout
client, the emulator or the server.
"""

from __future__ import annotations

from bridge.dexcom.clock import ClockAnchor, ReceiverClock, choose_anchor, format_utc, measure_anchor
from bridge.dexcom.commands import Command, Partition, Status
from bridge.dexcom.discovery import PortInfo, find_receivers, resolve_device
from bridge.dexcom.export import DUMP_KINDS, DUMP_RECORD_TYPES, FIELDS, record_to_dict
from bridge.dexcom.link import SerialLink
from bridge.dexcom.pages import Page, PageHeader, decode_page, encode_page
from bridge.dexcom.receiver import ReadResult, Receiver, Timeouts

__all__ = [
    "DUMP_KINDS",
    "DUMP_RECORD_TYPES",
    "FIELDS",
    "ClockAnchor",
    "Command",
    "Page",
    "PageHeader",
    "Partition",
    "PortInfo",
    "ReadResult",
    "Receiver",
    "ReceiverClock",
    "SerialLink",
    "Status",
    "Timeouts",
    "choose_anchor",
    "decode_page",
    "encode_page",
    "find_receivers",
    "format_utc",
    "measure_anchor",
    "record_to_dict",
    "resolve_device",
]
