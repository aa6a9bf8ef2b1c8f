"""Read-only receiver helpers for `bridge info` and `bridge dump`. Layer: app."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bridge.dexcom import (
    DUMP_KINDS,
    DUMP_RECORD_TYPES,
    Command,
    Receiver,
    ReceiverClock,
    format_utc,
    measure_anchor,
    record_to_dict,
)
from bridge.dexcom.clock import display_time
from bridge.dexcom.layouts import record_size
from bridge.dexcom.pages import PAGE_DATA_LEN
from bridge.errors import ProtocolError, ReceiverTimeoutError
from bridge.records import RecordType

__all__ = ["DumpReport", "InfoReport", "dump_records", "receiver_info"]

BATTERY_STATES = {1: "charging", 2: "not charging", 3: "NTC fault", 4: "bad battery"}


@dataclass(frozen=True, slots=True)
class InfoReport:
    """What `bridge info` shows."""

    port: str
    serial_number: str
    firmware: dict[str, str]
    transmitter_id: str
    battery_percent: int | None
    battery_state: str | None
    clock: ReceiverClock
    record_counts: dict[str, int | None]  # partition name -> records (None: unreadable)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view (``bridge info --json``)."""
        return {
            "port": self.port,
            "serial_number": self.serial_number,
            "firmware_version": self.firmware.get("FirmwareVersion"),
            "software_number": self.firmware.get("SoftwareNumber"),
            "product": self.firmware.get("ProductName") or self.firmware.get("ProductId"),
            "transmitter_id": self.transmitter_id,
            "battery_percent": self.battery_percent,
            "battery_state": self.battery_state,
            "host_utc": format_utc(self.clock.host_utc),
            "receiver_system_time": self.clock.system_as_utc.strftime("%Y-%m-%dT%H:%M:%S"),
            "receiver_display_time": display_time(self.clock.display_seconds).isoformat(),
            "clock_skew_seconds": self.clock.skew_s,
            "display_offset_seconds": self.clock.display_offset,
            "record_counts": self.record_counts,
        }


def _optional(read: Any) -> Any:
    """Battery reads "flake out" on real receivers (PROTOCOL.md §10 #7): never fatal."""
    try:
        return read()
    except (ReceiverTimeoutError, ProtocolError):
        return None


def _record_count(receiver: Receiver, record_type: int) -> int | None:
    page_range = receiver.page_range(record_type)
    if page_range is None:
        return 0
    first, last = page_range
    try:
        head = receiver.page_header(record_type, first)
        tail = head if last == first else receiver.page_header(record_type, last)
    except (ReceiverTimeoutError, ProtocolError):
        return None
    return tail.first_index + tail.record_count - head.first_index


def receiver_info(receiver: Receiver) -> InfoReport:
    """Identify the receiver and read its clocks and partition sizes."""
    state = _optional(lambda: receiver.read_u8(Command.READ_BATTERY_STATE))
    return InfoReport(
        port=receiver.link.url,
        serial_number=receiver.serial_number(),
        firmware=receiver.firmware_header(),
        transmitter_id=receiver.transmitter_id(),
        battery_percent=_optional(receiver.battery_level),
        battery_state=None if state is None else BATTERY_STATES.get(state, f"state {state}"),
        clock=receiver.read_clock(),
        record_counts={
            t.name: _record_count(receiver, t)
            for t in RecordType
        },
    )


@dataclass(slots=True)
class DumpReport:
    """Rows of `bridge dump`, oldest first, and what could not be read."""

    kind: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    skipped_pages: list[int] = field(default_factory=list)
    bad_records: int = 0
    clock: ReceiverClock | None = None


def dump_records(
    receiver: Receiver,
    kind: str,
    *,
    since: datetime | None = None,
    last: int | None = None,
    since_system: int | None = None,
) -> DumpReport:
    """Read one kind of record with its UTC time through the clock rule.

    Args:
        receiver: an open receiver.
        kind: a ``bridge dump --type`` name.
        since: only records after this instant (pages read newest first, stopping early).
        last: only the newest N records.
        since_system: only records after this receiver system time (a follower's cursor).
    """
    cls = DUMP_KINDS[kind]
    record_type = DUMP_RECORD_TYPES[kind]
    clock = receiver.read_clock()
    anchor = measure_anchor(clock)
    if since is not None:
        since_system = anchor.to_system(since)
    newest_pages = None
    if last is not None and since is None:
        partitions = receiver.partitions()
        size = record_size(record_type, partitions[record_type].revision) if record_type in partitions else 13
        newest_pages = math.ceil(last / max(1, PAGE_DATA_LEN // size)) + 2  # room for display-only
    result = receiver.read_records(record_type, since_system=since_system, newest_pages=newest_pages)
    records = [r for r in result.records if isinstance(r, cls)]
    if last is not None:
        records = records[-last:] if last > 0 else []
    report = DumpReport(kind, skipped_pages=result.skipped_pages, bad_records=result.bad_records, clock=clock)
    for record in records:
        row = record_to_dict(record)
        row["utc"] = format_utc(anchor.to_utc(record.system_seconds))
        report.rows.append(row)
    return report
