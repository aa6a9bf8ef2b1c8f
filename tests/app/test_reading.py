"""Receiver -> store: the cursor, chunked backfill, and a backfill resumed after a crash."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.app.reading import ReceiverSession, read_into_store
from bridge.app.session import open_receiver
from bridge.emulator import ReceiverEmulator
from bridge.store import BACKFILL_CHUNK, Outbox


class Crash(Exception):
    """Stands for a kill -9 after some commits."""


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory):
    link = tmp_path_factory.mktemp("rx") / "dexcom"
    with ReceiverEmulator(days=10, seed=9, latency=False, link_path=link, interval_s=3600) as emu:
        yield emu


def _egv_count(outbox: Outbox, serial: str) -> int:
    return len(outbox.records(serial, "egv"))


def test_reading_resumes_an_interrupted_backfill_in_committed_chunks(
    emulator: ReceiverEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = len(emulator.records["egv"])
    with Outbox.open(tmp_path / "outbox.sqlite3") as outbox, open_receiver(str(emulator.link_path)) as rx:
        session = ReceiverSession.open(rx)
        real_add = Outbox.add
        calls: list[int] = []

        def add(self: Outbox, serial: str, records: list, *args: object, **kwargs: object) -> int:
            if records and records[0].KIND == "egv":
                calls.append(len(records))
                if len(calls) > 2:
                    raise Crash  # killed in the middle of the EGV backfill, after two commits
            return real_add(self, serial, records, *args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(Outbox, "add", add)
        with pytest.raises(Crash):
            read_into_store(session, outbox, ["ns"])
        kept = _egv_count(outbox, session.serial)
        assert 0 < kept < expected  # what was committed before the crash is kept
        cursor = outbox.cursor(session.serial, "egv")
        assert cursor is not None

        calls.clear()
        monkeypatch.setattr(Outbox, "add", lambda self, *a, **k: (calls.append(len(a[1])), real_add(self, *a, **k))[1])
        read_into_store(session, outbox, ["ns"])
        assert _egv_count(outbox, session.serial) == expected  # nothing lost, nothing twice
        assert max(calls) <= BACKFILL_CHUNK + 40  # resumed in chunks, not one giant transaction
        assert sum(1 for n in calls if n) >= 2


def test_reading_live_cycle_reads_only_what_is_new(emulator: ReceiverEmulator, tmp_path: Path) -> None:
    with Outbox.open(tmp_path / "outbox.sqlite3") as outbox, open_receiver(str(emulator.link_path)) as rx:
        session = ReceiverSession.open(rx)
        first = read_into_store(session, outbox, ["ns"])
        assert first.backfill and first.read["egv"] == len(emulator.records["egv"])
        before = rx.counters.commands
        again = read_into_store(session, outbox, ["ns"])
        assert not again.backfill and again.stored == 0 and not any(again.read.values())
        assert rx.counters.commands - before <= 2 * 7  # a page range and one page per kind
