"""Use cases that wire the receiver, the store and the Nightscout client together.

Layer: app. The CLI calls these; they never print.
"""

from __future__ import annotations

from bridge.app.diagnostics import DumpReport, InfoReport, dump_records, receiver_info
from bridge.app.session import open_receiver

__all__ = ["DumpReport", "InfoReport", "dump_records", "open_receiver", "receiver_info"]
