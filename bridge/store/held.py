"""Records read before the host clock could be trusted, kept without a UTC time.

Layer: store. A Pi without a real-time clock boots with a stale time until NTP answers; a
UTC time fixed then would be wrong forever (the store never changes it). So the daemon reads
and keeps the records here, advancing the read cursor as usual, and :func:`release` moves
them into the outbox with their UTC times once the clock is good.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime

from bridge.records import Record
from bridge.store.codec import decode_record, encode_record, record_key
from bridge.store.outbox import Outbox

__all__ = ["held_count", "hold", "release"]


def hold(outbox: Outbox, serial: str, records: Iterable[Record], *, cursors: Mapping[str, int] | None = None) -> int:
    """Keep records without a UTC time, advancing read cursors in the same transaction.

    Returns:
        How many records were new here.
    """
    rows = [(serial, r.KIND, r.system_seconds, record_key(r), encode_record(r)) for r in records]
    with outbox._write() as conn:  # noqa: SLF001 - the store package shares its connection
        before = conn.total_changes
        conn.executemany(
            "INSERT INTO held (serial, kind, system_seconds, record_key, body) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT DO NOTHING",
            rows,
        )
        inserted = conn.total_changes - before
        conn.executemany(
            "INSERT INTO cursors (serial, kind, through_system_seconds) VALUES (?, ?, ?) "
            "ON CONFLICT (serial, kind) DO UPDATE SET through_system_seconds = "
            "max(through_system_seconds, excluded.through_system_seconds)",
            [(serial, kind, int(value)) for kind, value in (cursors or {}).items()],
        )
    return int(inserted)


def release(outbox: Outbox, serial: str, utc_of: Callable[[int], datetime], *, destinations: Sequence[str]) -> int:
    """Stamp a receiver's held records with the clock rule and move them into the outbox.

    Safe to interrupt: the records are added idempotently before they leave ``held``.

    Returns:
        How many held records were released.
    """
    with outbox._read() as conn:  # noqa: SLF001
        rows = conn.execute("SELECT kind, body FROM held WHERE serial = ?", (serial,)).fetchall()
    if not rows:
        return 0
    outbox.add(serial, [decode_record(kind, body) for kind, body in rows], utc_of, destinations=destinations)
    with outbox._write() as conn:  # noqa: SLF001
        conn.execute("DELETE FROM held WHERE serial = ?", (serial,))
    return len(rows)


def held_count(outbox: Outbox) -> int:
    """How many records wait for a trustworthy clock."""
    with outbox._read() as conn:  # noqa: SLF001
        return int(conn.execute("SELECT count(*) FROM held").fetchone()[0])
