"""The durable outbox: receiver records, their fixed UTC times and per-destination sent state.

Layer: store. Sees only ``bridge.records``, ``bridge.errors`` and the standard library; never
imports ``bridge.dexcom``, ``bridge.nightscout``, ``bridge.app``, the emulator or the server.
The clock rule reaches it as a callable (``utc_of``) and the anchor as plain values.
"""

from __future__ import annotations

from bridge.store.codec import decode_record, encode_record, record_key
from bridge.store.outbox import (
    BACKFILL_CHUNK,
    DEFAULT_RETAIN_DAYS,
    UPLOADABLE_KINDS,
    DestinationStats,
    Outbox,
    Pending,
    StoreStats,
)
from bridge.store.held import held_count, hold, release
from bridge.store.schema import SCHEMA_VERSION

__all__ = [
    "BACKFILL_CHUNK",
    "DEFAULT_RETAIN_DAYS",
    "SCHEMA_VERSION",
    "UPLOADABLE_KINDS",
    "DestinationStats",
    "Outbox",
    "Pending",
    "StoreStats",
    "decode_record",
    "held_count",
    "hold",
    "encode_record",
    "record_key",
    "release",
]
