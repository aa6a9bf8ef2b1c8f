"""ReceiverEmulator: a whole emulated G4 receiver, its history, live readings, truth file and port.

Layer: emulator. Glues :mod:`~bridge.emulator.history` (what the receiver holds),
:mod:`~bridge.emulator.database` (pages), :mod:`~bridge.emulator.device` (commands, latency,
faults) and :mod:`~bridge.emulator.pty` (the port). The core never imports it.

Randomness: ``random.Random(seed)`` draws the history and ``random.Random(f"{seed}:faults")``
the faults, so faults never change the data and a seeded run with the same ``now`` is
repeatable.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from bridge.dexcom.clock import DEXCOM_EPOCH_UNIX
from bridge.dexcom.export import record_to_dict
from bridge.emulator.database import Database
from bridge.emulator.device import DeviceClock, DeviceInfo, LatencyModel, ReceiverDevice, firmware_header_xml
from bridge.emulator.faults import UNPLUG_S, FaultInjector, FaultSpec
from bridge.emulator.history import HISTORY_INTERVAL_S, HistoryGenerator, make_identity
from bridge.emulator.pty import PtyServer
from bridge.records import Record, RecordType

__all__ = ["ReceiverEmulator"]

#: Dump kind -> partition, for the truth file (the same kinds and fields as ``bridge dump``).
TRUTH_KINDS: dict[str, int] = {
    "egv": RecordType.EGV_DATA,
    "sensor": RecordType.SENSOR_DATA,
    "meter": RecordType.METER_DATA,
    "cal": RecordType.CAL_SET,
    "insertion": RecordType.INSERTION_TIME,
    "event": RecordType.USER_EVENT_DATA,
    "settings": RecordType.USER_SETTING_DATA,
}
MAX_CATCH_UP = 1000  # live readings generated at once after a stall
DEFAULT_DISPLAY_OFFSET_S = -7 * 3600


class ReceiverEmulator:
    """An emulated Dexcom G4 receiver, built at construction, served by :meth:`start`.

    Args:
        days: days of history before now.
        interval_s: seconds between live readings (the history is always every 300 s).
        calset_rev: CalSet page revision, 2 (148-byte records) or 3 (249-byte records).
        latency: sleep the modelled service time before each reply.
        faults: a :class:`FaultSpec`, its text form, or None.
        seed: makes history and faults repeatable.
        truth_path: keep a JSON file of every record held, rewritten as records are added.
        link_path: keep a symlink to the pty here.
        clock_offset_s: receiver system time minus true UTC, seconds.
        serial: the receiver's serial number (drawn when None).
        display_offset_s: display time minus system time (default about -7 h).
        max_pages: per-partition ring size; None keeps every page.
        unplug_s: how long an unplugged port stays away.
        now: the host clock (unix seconds), injectable for tests.
        on_port: called with the pty path whenever a port appears.
    """

    def __init__(
        self, *, days: float = 7, interval_s: float = 300, calset_rev: int = 2, latency: bool = True,
        faults: FaultSpec | str | None = None, seed: int | None = None,
        truth_path: str | os.PathLike[str] | None = None, link_path: str | os.PathLike[str] | None = None,
        clock_offset_s: int = 0, serial: str | None = None, display_offset_s: int | None = None,
        max_pages: int | None = None, unplug_s: float = UNPLUG_S, now: Callable[[], float] = time.time,
        on_port: Callable[[str], None] | None = None,
    ) -> None:
        if calset_rev not in (2, 3):
            raise ValueError(f"calset_rev must be 2 or 3, not {calset_rev}")
        if interval_s < 1:
            raise ValueError("interval_s must be at least 1 s (records have whole-second timestamps)")
        self.interval_s = interval_s
        self.calset_rev = calset_rev
        self.seed = seed
        self.truth_path = Path(truth_path) if truth_path is not None else None
        spec = faults if isinstance(faults, FaultSpec) else FaultSpec.parse(faults)
        rng = random.Random(seed)
        fault_rng = random.Random(f"{seed}:faults")
        system_now = int(now()) - DEXCOM_EPOCH_UNIX + clock_offset_s
        rtc_now = rng.randint(5_000_000, 60_000_000)  # seconds since the RTC was last reset
        if display_offset_s is None:
            display_offset_s = DEFAULT_DISPLAY_OFFSET_S + rng.randint(-150, 150)
        self.clock = DeviceClock(clock_offset_s, system_now - rtc_now, display_offset_s, now)
        identity = make_identity(rng, serial=serial, manufactured_s=system_now - rng.randint(300, 700) * 86400)
        start_s = system_now - int(days * 86400)
        self.generator = HistoryGenerator(
            rng, identity, start_s=start_s, display_offset=display_offset_s,
            system_offset=self.clock.system_offset_s, calset_rev=calset_rev,
        )
        self.database = Database(rng, calset_rev=calset_rev, max_pages=max_pages)
        self.database.extend(self.generator.initial_records())
        t = start_s + rng.randint(0, HISTORY_INTERVAL_S - 1)
        last = t
        while t < system_now:
            self.database.extend(self.generator.step(t))
            last, t = t, t + HISTORY_INTERVAL_S
        self._next_live = last + interval_s
        if self._next_live <= system_now:
            self._next_live = system_now + interval_s
        info = DeviceInfo(
            transmitter_id=identity.transmitter_id, firmware_header=firmware_header_xml(calset_rev),
            battery_level=rng.randint(60, 99),
        )
        self.device = ReceiverDevice(
            self.database, self.clock, info, latency=latency, model=LatencyModel(),
            faults=FaultInjector(spec, fault_rng) if spec.total > 0 else None,
            on_display_offset=self._display_offset_changed,
        )
        self.fault_spec = spec
        self._server = PtyServer(self.device, link_path=link_path, tick=self.tick, unplug_s=unplug_s, on_port=on_port)
        self._lock = self.database.lock  # one lock: records, pages and the truth rows change together
        self._truth_rows: dict[str, list[dict[str, Any]]] = {}
        self._truth_counts: dict[int, int] = {}
        self._truth_evicted = -1
        self.write_truth()

    # ------------------------------------------------------------------ identity

    @property
    def serial(self) -> str:
        """The receiver's serial number (in the ManufacturingData record)."""
        return self.generator.identity.serial

    @property
    def transmitter_id(self) -> str:
        """The transmitter id the receiver reports."""
        return self.generator.identity.transmitter_id

    # ------------------------------------------------------------------ serving

    def start(self) -> str:
        """Open the pty (and link) and answer in a background thread; returns the pty path."""
        return self._server.start()

    def stop(self) -> None:
        """Stop answering, close the pty and remove the link."""
        self._server.stop()

    def __enter__(self) -> ReceiverEmulator:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def unplug(self) -> None:
        """Unplug the port now; it comes back at the same link after ``unplug_s``."""
        self._server.unplug()

    @property
    def path(self) -> str | None:
        """The current pty path (None before start, while unplugged and after stop)."""
        return self._server.path

    @property
    def link_path(self) -> Path | None:
        """The symlink kept to the pty."""
        return self._server.link_path

    @property
    def unplugs(self) -> int:
        """How many times the port was unplugged."""
        return self._server.unplugs

    @property
    def modelled_service_s(self) -> float:
        """Total modelled service time of every reply so far (counted even without latency)."""
        return self.device.modelled_service_s

    @property
    def faults_injected(self) -> dict[str, int]:
        """Faults sent so far, by kind."""
        return dict(self.device.faults.counts) if self.device.faults is not None else {}

    # ------------------------------------------------------------------ records

    def tick(self) -> int:
        """Add the live readings that are due by the emulator's clock; returns records added."""
        added = 0
        with self._lock:
            now = self.clock.system_seconds()
            steps = 0
            while self._next_live <= now and steps < MAX_CATCH_UP:
                records = self.generator.step(int(self._next_live))
                self.database.extend(records)
                added += len(records)
                self._next_live += self.interval_s
                steps += 1
            if steps == MAX_CATCH_UP:
                self._next_live = now + self.interval_s
            if added:
                self.write_truth()
        return added

    def _display_offset_changed(self, offset: int) -> None:
        with self._lock:
            self.generator.display_offset = offset
            self.database.add(self.generator.settings_record(self.clock.system_seconds()))
            self.write_truth()

    @property
    def records(self) -> dict[str, list[Record]]:
        """Every record held, by dump kind (egv, sensor, meter, cal, insertion, event, settings)."""
        with self.database.lock:
            return {kind: self.database.records(rtype) for kind, rtype in TRUTH_KINDS.items()}

    def xml_records(self) -> list[Record]:
        """The XML records (manufacturing parameters, PC software parameters)."""
        with self.database.lock:
            return [
                *self.database.records(RecordType.MANUFACTURING_DATA),
                *self.database.records(RecordType.PC_SOFTWARE_PARAMETER),
            ]

    def truth(self) -> dict[str, Any]:
        """The truth document: ``meta`` and ``records`` (lists of dump dicts by kind)."""
        with self._lock:
            self._refresh_truth()
            return {"meta": self._meta(), "records": {k: list(v) for k, v in self._truth_rows.items()}}

    def write_truth(self) -> None:
        """Rewrite the truth file atomically (temp file + os.replace); no-op without truth_path."""
        if self.truth_path is None:
            return
        text = json.dumps(self.truth(), separators=(",", ":"))
        tmp = self.truth_path.with_name(f".{self.truth_path.name}.{os.getpid()}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, self.truth_path)

    def _refresh_truth(self) -> None:
        """Convert only the records added since the last call (everything after an eviction)."""
        if self.database.evicted != self._truth_evicted:
            self._truth_rows = {kind: [] for kind in TRUTH_KINDS}
            self._truth_counts = {}
            self._truth_evicted = self.database.evicted
        for kind, rtype in TRUTH_KINDS.items():
            part = self.database.partitions[rtype]
            done = self._truth_counts.get(rtype, 0)
            if len(part) > done:
                self._truth_rows[kind].extend(record_to_dict(r) for r in part.records()[done:])
                self._truth_counts[rtype] = len(part)

    def _meta(self) -> dict[str, Any]:
        clock = self.clock
        return {
            "serial": self.serial,
            "transmitter_id": self.transmitter_id,
            "calset_revision": self.calset_rev,
            "clock_offset_s": clock.clock_offset_s,
            "system_offset_s": clock.system_offset_s,
            "display_offset_s": clock.display_offset_s,
            "interval_s": self.interval_s,
            "seed": self.seed,
            "faults": str(self.fault_spec),
            "page_ranges": {
                str(int(rtype)): part.page_range() for rtype, part in self.database.partitions.items()
            },
        }
