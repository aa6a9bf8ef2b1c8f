"""The durable outbox: every record read from a receiver, its fixed UTC time, and its sent state.

Layer: store (adapter over sqlite3). Imports ``bridge.records``, ``bridge.errors``, the other
store modules and the standard library only; never ``bridge.dexcom`` nor ``bridge.nightscout``.
It reads no clock: callers pass ``now`` and the record-time rule (``utc_of``).

Guarantees:

- **Idempotent.** Records are unique on (receiver serial, kind, system time, record key, see
  :func:`bridge.store.codec.record_key`); re-adding a record is a no-op.
- **Fixed time.** A record's UTC is ``utc_of(system_seconds)`` when the store first sees it and
  is never recomputed, so every upload of it carries the same instant and Nightscout's
  ``{sysTime, type}`` key de-duplicates a re-send.
- **Durable.** WAL with ``synchronous=FULL``; each public write is one ``BEGIN IMMEDIATE``
  transaction, so a kill -9 loses at most the call that was running. A backfill calls
  :meth:`Outbox.add` in chunks of :data:`BACKFILL_CHUNK` records: an interrupted backfill keeps
  every chunk committed before it.
- **At least once, per destination.** Each uploadable record (:func:`is_uploadable`) has a
  pending row per destination until :meth:`Outbox.mark_sent`, which the caller calls only after
  the server acknowledged. A crash between the POST and ``mark_sent`` means one re-send.
- **Bounded, never lossy.** :meth:`Outbox.prune` removes only records older than the retention
  that every destination acknowledged (and raw/other records nothing pending still needs).
"""

from __future__ import annotations

import errno
import logging
import os
import sqlite3
from collections.abc import Mapping, Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import TypedDict

from bridge.errors import StoreError
from bridge.records import EGVRecord, Record, SensorRecord, StampedRecord
from bridge.store.codec import decode_record, encode_record, record_key
from bridge.store.schema import migrate

__all__ = [
    "BACKFILL_CHUNK",
    "DEFAULT_RETAIN_DAYS",
    "UPLOADABLE_KINDS",
    "DestinationStats",
    "Outbox",
    "Pending",
    "StoreStats",
    "is_uploadable",
]

log = logging.getLogger(__name__)

#: Kinds queued for upload; the others (sensor, settings, xml, opaque) are stored only.
UPLOADABLE_KINDS: frozenset[str] = frozenset({"egv", "meter", "cal", "event", "insertion"})
#: Records per add() call during a backfill: one commit per chunk.
BACKFILL_CHUNK = 500
DEFAULT_RETAIN_DAYS = 90
BUSY_TIMEOUT_MS = 10_000  # wait this long for another process's write before failing
#: A non-uploadable record this close to a pending EGV is kept by prune (it pairs with it).
_PAIRING_KEEP_S = 60
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Pending:
    """A record waiting for one destination.

    Attributes:
        id: the record's id in the store, for :meth:`Outbox.mark_sent` / ``mark_failed``.
        item: the record with its serial and fixed UTC time.
        attempts: failed attempts so far for this destination.
    """

    id: int
    item: StampedRecord
    attempts: int


class DestinationStats(TypedDict):
    """Status of one destination."""

    pending: int
    sent: int
    oldest_pending: datetime | None  # UTC of the oldest record still pending
    last_sent_at: datetime | None
    last_error: str | None
    last_error_at: datetime | None


class StoreStats(TypedDict):
    """What :meth:`Outbox.stats` returns."""

    records: dict[str, int]  # per kind
    destinations: dict[str, DestinationStats]


def is_uploadable(record: Record) -> bool:
    """Whether the store queues this record for upload.

    The uploadable kinds, except display-only EGVs: those are recomputed duplicates that are
    never uploaded as readings, so they are stored but not queued. Whatever else the uploader
    decides not to send (a special value, by a setting) it must still mark sent, or it stays
    pending at the head of the queue.
    """
    if record.KIND not in UPLOADABLE_KINDS:
        return False
    return not (isinstance(record, EGVRecord) and record.display_only)


def _us(when: datetime) -> int:
    """An aware datetime as integer Unix microseconds."""
    if when.tzinfo is None:
        raise ValueError(f"naive datetime {when!r}: the store takes aware UTC times only")
    delta = when - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _from_us(value: int | None) -> datetime | None:
    return None if value is None else _EPOCH + timedelta(microseconds=value)


def _record_seconds(when: datetime) -> int:
    """A record's UTC time as whole Unix seconds (the rule yields whole seconds)."""
    micros = _us(when)
    if micros % 1_000_000:
        raise ValueError(f"record time {when!r} is not a whole second")
    return micros // 1_000_000


def _pending(row: tuple[int, str, int, str, str, int]) -> Pending:
    """A Pending from ``(id, serial, utc, kind, body, attempts)``."""
    row_id, serial, utc_s, kind, body, attempts = row
    return Pending(
        row_id, StampedRecord(serial, _EPOCH + timedelta(seconds=utc_s), decode_record(kind, body)), attempts
    )


# Primary SQLite result codes (sqlite3.Error.sqlite_errorcode & 0xFF) and what to tell the user.
_WRITABLE_HINT = "make the state directory and the store file writable by this user (--state-dir, BRIDGE_STATE_DIR)"
_FULL_HINT = "the disk holding the state directory is full: free some space and run again"
_CORRUPT_HINT = (
    "the store file is damaged: move it (and its -wal/-shm files) aside and run again; "
    "the receiver still holds its records and they will be read again"
)
_SQLITE_HINTS = {
    3: _WRITABLE_HINT,  # SQLITE_PERM
    5: "another dexcom-bridge process is using the store: stop it or wait",  # SQLITE_BUSY
    6: "another dexcom-bridge process is using the store: stop it or wait",  # SQLITE_LOCKED
    8: _WRITABLE_HINT,  # SQLITE_READONLY
    10: "the disk reported an I/O error: check the storage device (SD card)",  # SQLITE_IOERR
    11: _CORRUPT_HINT,  # SQLITE_CORRUPT
    13: _FULL_HINT,  # SQLITE_FULL
    14: _WRITABLE_HINT,  # SQLITE_CANTOPEN
    23: _WRITABLE_HINT,  # SQLITE_AUTH
    26: _CORRUPT_HINT,  # SQLITE_NOTADB
}
_OS_HINTS = {
    errno.EACCES: _WRITABLE_HINT,
    errno.EPERM: _WRITABLE_HINT,
    errno.EROFS: _WRITABLE_HINT,
    errno.ENOSPC: _FULL_HINT,
    errno.EDQUOT: _FULL_HINT,
}


@contextmanager
def _store_errors(path: Path) -> Iterator[None]:
    """Re-raise SQLite and OS errors as StoreError with a hint, keeping the cause."""
    try:
        yield
    except sqlite3.Error as exc:
        code = getattr(exc, "sqlite_errorcode", None)
        hint = _SQLITE_HINTS.get(code & 0xFF) if isinstance(code, int) else None
        raise StoreError(f"store {path}: {exc}", hint=hint or "check the state directory and its disk") from exc
    except OSError as exc:
        raise StoreError(
            f"store {path}: {exc.strerror or exc}", hint=_OS_HINTS.get(exc.errno or 0, _WRITABLE_HINT)
        ) from exc


class Outbox:
    """The SQLite outbox. Make one with :meth:`open`; use it as a context manager.

    One connection, used from the thread that opened it. Several processes may open the same
    file (WAL): writers wait up to BUSY_TIMEOUT_MS for each other.
    """

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn: sqlite3.Connection | None = conn
        self.path = path

    # -- life cycle ---------------------------------------------------------------------------

    @classmethod
    def open(cls, path: Path) -> Outbox:
        """Open (creating or migrating as needed) the store at ``path``.

        The parent directory is created with mode 0700 and a new file with mode 0600.

        Raises:
            StoreError: the directory is not writable, the disk is full, the file is damaged,
                not a store, or from a newer version; the hint says what to do.
        """
        path = Path(path)
        with _store_errors(path):
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
            conn = sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
            try:
                conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    log.warning("store %s: journal mode is %s, not WAL", path, mode)
                conn.execute("PRAGMA synchronous = FULL")
                conn.execute("PRAGMA foreign_keys = ON")
                migrate(conn)
            except BaseException:
                conn.close()
                raise
        return cls(conn, path)

    def close(self) -> None:
        """Close the connection; further calls raise StoreError."""
        if self._conn is not None:
            conn, self._conn = self._conn, None
            with _store_errors(self.path):
                conn.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError(f"store {self.path} is closed", hint="this is a bug: please report it")
        return self._conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: all of it is committed, or none of it."""
        conn = self._connection()
        with _store_errors(self.path):
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """One read transaction: a consistent snapshot."""
        conn = self._connection()
        with _store_errors(self.path):
            conn.execute("BEGIN")
            try:
                yield conn
            finally:
                if conn.in_transaction:
                    conn.execute("COMMIT")

    # -- clock anchor -------------------------------------------------------------------------

    def get_anchor(self, serial: str) -> tuple[int, datetime] | None:
        """The stored clock anchor of a receiver: ``(offset_s, measured_at)``, or None."""
        with self._read() as conn:
            row = conn.execute("SELECT offset_s, measured_at FROM anchors WHERE serial = ?", (serial,)).fetchone()
        if row is None:
            return None
        measured_at = _from_us(row[1])
        assert measured_at is not None
        return int(row[0]), measured_at

    def set_anchor(self, serial: str, offset_s: int, measured_at: datetime) -> None:
        """Store a receiver's clock anchor (the caller decides when it moved enough)."""
        with self._write() as conn:
            conn.execute(
                "INSERT INTO anchors (serial, offset_s, measured_at) VALUES (?, ?, ?) "
                "ON CONFLICT (serial) DO UPDATE SET offset_s = excluded.offset_s, measured_at = excluded.measured_at",
                (serial, int(offset_s), _us(measured_at)),
            )

    # -- records ------------------------------------------------------------------------------

    def add(
        self,
        serial: str,
        records: Iterable[Record],
        utc_of: Callable[[int], datetime],
        *,
        destinations: Sequence[str],
        cursors: Mapping[str, int] | None = None,
    ) -> int:
        """Store records read from a receiver and queue the uploadable ones, in one transaction.

        A record already stored (or older than what :meth:`prune` removed) is skipped and keeps
        its UTC time. A destination not seen before is added as by :meth:`add_destination`.
        For a backfill, call this once per chunk of about :data:`BACKFILL_CHUNK` records.

        Args:
            serial: the receiver's serial number.
            records: records from that receiver, in any order.
            utc_of: the clock rule, ``system_seconds -> aware UTC`` in whole seconds; its
                answer is kept only for records the store has not seen.
            destinations: the destinations that upload now; each new uploadable record gets a
                pending row for each.
            cursors: read cursors to advance in the same transaction, by kind (see
                :meth:`cursor`); a cursor never moves backwards.

        Returns:
            How many records were new.

        Raises:
            StoreError: the write failed; nothing of this call was stored.
            ValueError: ``utc_of`` gave a naive or fractional time; nothing was stored.
        """
        rows = [
            (
                int(is_uploadable(rec)),
                rec.KIND,
                rec.system_seconds,
                record_key(rec),
                _record_seconds(utc_of(rec.system_seconds)),
                encode_record(rec),
            )
            for rec in records
        ]
        inserted = 0
        with self._write() as conn:
            for name in destinations:
                self._ensure_destination(conn, name)
            pruned = dict(
                conn.execute("SELECT kind, through_system_seconds FROM pruned WHERE serial = ?", (serial,)).fetchall()
            )
            for uploadable, kind, system_seconds, key, utc_s, body in rows:
                if kind in pruned and system_seconds <= pruned[kind]:
                    continue
                cur = conn.execute(
                    "INSERT INTO records (serial, kind, system_seconds, record_key, utc, uploadable, body) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    (serial, kind, system_seconds, key, utc_s, uploadable, body),
                )
                if cur.rowcount != 1:
                    continue
                inserted += 1
                if uploadable and destinations:
                    conn.executemany(
                        "INSERT INTO sent_state (destination, record_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
                        [(name, cur.lastrowid) for name in destinations],
                    )
            conn.executemany(
                "INSERT INTO cursors (serial, kind, through_system_seconds) VALUES (?, ?, ?) "
                "ON CONFLICT (serial, kind) DO UPDATE SET through_system_seconds = "
                "max(through_system_seconds, excluded.through_system_seconds)",
                [(serial, kind, int(value)) for kind, value in (cursors or {}).items()],
            )
        return inserted

    def cursor(self, serial: str, kind: str) -> int | None:
        """The read cursor: records of this kind through this system time have all been read.

        None when the receiver was never read whole for this kind (read everything).
        """
        with self._read() as conn:
            row = conn.execute(
                "SELECT through_system_seconds FROM cursors WHERE serial = ? AND kind = ?", (serial, kind)
            ).fetchone()
        return None if row is None else int(row[0])

    def get_meta(self, key: str) -> str | None:
        """A value kept between runs, or None."""
        with self._read() as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        """Keep a value between runs."""
        with self._write() as conn:
            conn.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    def newest_system_seconds(self, serial: str, kind: str) -> int | None:
        """The read cursor: the newest system time stored (or pruned) for a receiver and kind."""
        with self._read() as conn:
            row = conn.execute(
                "SELECT max(s) FROM (SELECT max(system_seconds) AS s FROM records WHERE serial = ? AND kind = ? "
                "UNION ALL SELECT through_system_seconds FROM pruned WHERE serial = ? AND kind = ?)",
                (serial, kind, serial, kind),
            ).fetchone()
        return None if row[0] is None else int(row[0])

    def sensor_near(self, serial: str, system_seconds: int, window_s: int = 10) -> SensorRecord | None:
        """The Sensor record nearest a system time within ``window_s`` (earlier wins a tie)."""
        with self._read() as conn:
            row = conn.execute(
                "SELECT body FROM records WHERE serial = ? AND kind = 'sensor' AND system_seconds BETWEEN ? AND ? "
                "ORDER BY abs(system_seconds - ?), system_seconds, id LIMIT 1",
                (serial, system_seconds - window_s, system_seconds + window_s, system_seconds),
            ).fetchone()
        if row is None:
            return None
        record = decode_record("sensor", row[0])
        assert isinstance(record, SensorRecord)
        return record

    def records(self, serial: str, kind: str, *, newer_than: int | None = None) -> list[StampedRecord]:
        """Stored records of one receiver and kind, oldest system time first.

        Args:
            serial: the receiver's serial number.
            kind: a record KIND (``"egv"``, ``"cal"``, ``"settings"`` …).
            newer_than: only records with a greater system time.
        """
        with self._read() as conn:
            rows = conn.execute(
                "SELECT utc, body FROM records WHERE serial = ? AND kind = ? AND system_seconds > ? "
                "ORDER BY system_seconds, id",
                (serial, kind, -(2**62) if newer_than is None else newer_than),
            ).fetchall()
        return [
            StampedRecord(serial, _EPOCH + timedelta(seconds=utc_s), decode_record(kind, body)) for utc_s, body in rows
        ]

    # -- destinations -------------------------------------------------------------------------

    @staticmethod
    def _ensure_destination(conn: sqlite3.Connection, name: str) -> None:
        if not name:
            raise ValueError("a destination needs a name")
        if conn.execute("SELECT 1 FROM destinations WHERE name = ?", (name,)).fetchone() is None:
            Outbox._queue_all(conn, name)

    @staticmethod
    def _queue_all(conn: sqlite3.Connection, name: str) -> int:
        conn.execute("INSERT INTO destinations (name) VALUES (?) ON CONFLICT DO NOTHING", (name,))
        cur = conn.execute(
            "INSERT OR IGNORE INTO sent_state (destination, record_id) SELECT ?, id FROM records WHERE uploadable = 1",
            (name,),
        )
        return cur.rowcount

    def add_destination(self, name: str) -> int:
        """Add a destination and queue for it every stored uploadable record it lacks.

        Idempotent: for a known destination it only fills gaps (records stored while it was
        not configured). Call it for each configured destination at start-up.

        Returns:
            How many records were queued.
        """
        if not name:
            raise ValueError("a destination needs a name")
        with self._write() as conn:
            return self._queue_all(conn, name)

    def remove_destination(self, name: str) -> int:
        """Forget a destination and its sent state (so prune is no longer held back by it).

        Returns:
            How many records were still pending for it.
        """
        with self._write() as conn:
            pending = conn.execute(
                "SELECT count(*) FROM sent_state WHERE destination = ? AND sent_at IS NULL", (name,)
            ).fetchone()[0]
            conn.execute("DELETE FROM destinations WHERE name = ?", (name,))
        return int(pending)

    # -- upload state -------------------------------------------------------------------------

    def due(self, destination: str, *, limit: int, now: datetime) -> list[Pending]:
        """Records pending for a destination whose next attempt is due, oldest first.

        Args:
            destination: the destination's name.
            limit: at most this many.
            now: the current time; rows whose ``next_attempt_at`` is later are skipped.
        """
        with self._read() as conn:
            rows = conn.execute(
                "SELECT r.id, r.serial, r.utc, r.kind, r.body, s.attempts FROM sent_state AS s "
                "JOIN records AS r ON r.id = s.record_id "
                "WHERE s.destination = ? AND s.sent_at IS NULL AND s.next_attempt_at <= ? "
                "ORDER BY r.utc, r.id LIMIT ?",
                (destination, _us(now), max(0, limit)),
            ).fetchall()
        return [_pending(row) for row in rows]

    def retry_now(self, destination: str) -> int:
        """Offer every pending row of a destination again now (it answered after an outage).

        Returns:
            How many rows were waiting out a backoff.
        """
        with self._write() as conn:
            cur = conn.execute(
                "UPDATE sent_state SET next_attempt_at = 0 WHERE destination = ? AND sent_at IS NULL "
                "AND next_attempt_at > 0",
                (destination,),
            )
        return max(cur.rowcount, 0)

    def mark_sent(self, destination: str, ids: Iterable[int], now: datetime) -> int:
        """Mark records acknowledged by a destination (call only after the server's 2xx).

        Returns:
            How many pending rows became sent.
        """
        now_us = _us(now)
        with self._write() as conn:
            cur = conn.executemany(
                "UPDATE sent_state SET sent_at = ?, last_error = NULL "
                "WHERE destination = ? AND record_id = ? AND sent_at IS NULL",
                [(now_us, destination, int(i)) for i in ids],
            )
            count = max(cur.rowcount, 0)
            if count:
                conn.execute("UPDATE destinations SET last_sent_at = ? WHERE name = ?", (now_us, destination))
        return count

    def mark_failed(
        self,
        destination: str,
        ids: Iterable[int],
        error: str,
        next_attempt_at: datetime,
        *,
        now: datetime | None = None,
    ) -> int:
        """Record a failed attempt: the rows stay pending until ``next_attempt_at``.

        With no ids it only records the destination's error (e.g. refused credentials).

        Args:
            destination: the destination's name.
            ids: the records that were attempted.
            error: what went wrong, shown by status.
            next_attempt_at: do not offer these rows from :meth:`due` before this time.
            now: when it failed (shown as ``last_error_at``); defaults to unknown.

        Returns:
            How many pending rows were updated.
        """
        when = _us(next_attempt_at)
        with self._write() as conn:
            cur = conn.executemany(
                "UPDATE sent_state SET attempts = attempts + 1, next_attempt_at = ?, last_error = ? "
                "WHERE destination = ? AND record_id = ? AND sent_at IS NULL",
                [(when, error, destination, int(i)) for i in ids],
            )
            conn.execute(
                "UPDATE destinations SET last_error = ?, last_error_at = ? WHERE name = ?",
                (error, None if now is None else _us(now), destination),
            )
        return max(cur.rowcount, 0)

    def requeue(self, destination: str, ids: Iterable[int]) -> int:
        """Make sent records pending again for a destination (a gap audit found them missing).

        Returns:
            How many rows became pending.
        """
        with self._write() as conn:
            cur = conn.executemany(
                "UPDATE sent_state SET sent_at = NULL, attempts = 0, next_attempt_at = 0 "
                "WHERE destination = ? AND record_id = ? AND sent_at IS NOT NULL",
                [(destination, int(i)) for i in ids],
            )
        return max(cur.rowcount, 0)

    def sent_since(self, destination: str, since: datetime) -> list[Pending]:
        """Records a destination acknowledged whose UTC time is at or after ``since``, oldest first."""
        with self._read() as conn:
            rows = conn.execute(
                "SELECT r.id, r.serial, r.utc, r.kind, r.body, s.attempts FROM sent_state AS s "
                "JOIN records AS r ON r.id = s.record_id "
                "WHERE s.destination = ? AND s.sent_at IS NOT NULL AND r.utc >= ? ORDER BY r.utc, r.id",
                (destination, _us(since) // 1_000_000),
            ).fetchall()
        return [_pending(row) for row in rows]

    def backlog(self, destination: str) -> int:
        """How many records are pending for a destination (due now or later)."""
        with self._read() as conn:
            row = conn.execute(
                "SELECT count(*) FROM sent_state WHERE destination = ? AND sent_at IS NULL", (destination,)
            ).fetchone()
        return int(row[0])

    def stats(self) -> StoreStats:
        """Counts per kind, and per destination its pending, sent and last error."""
        with self._read() as conn:
            kinds = conn.execute("SELECT kind, count(*) FROM records GROUP BY kind").fetchall()
            dests = conn.execute(
                "SELECT d.name, d.last_sent_at, d.last_error, d.last_error_at, "
                "(SELECT count(*) FROM sent_state s WHERE s.destination = d.name AND s.sent_at IS NULL), "
                "(SELECT count(*) FROM sent_state s WHERE s.destination = d.name AND s.sent_at IS NOT NULL), "
                "(SELECT min(r.utc) FROM sent_state s JOIN records r ON r.id = s.record_id "
                " WHERE s.destination = d.name AND s.sent_at IS NULL) "
                "FROM destinations d ORDER BY d.name"
            ).fetchall()
        return StoreStats(
            records={kind: int(n) for kind, n in kinds},
            destinations={
                name: DestinationStats(
                    pending=int(pending),
                    sent=int(sent),
                    oldest_pending=None if oldest is None else _EPOCH + timedelta(seconds=oldest),
                    last_sent_at=_from_us(last_sent),
                    last_error=last_error,
                    last_error_at=_from_us(last_error_at),
                )
                for name, last_sent, last_error, last_error_at, pending, sent, oldest in dests
            },
        )

    def prune(self, now: datetime, retain_days: int = DEFAULT_RETAIN_DAYS) -> int:
        """Delete records older than the retention that nothing still needs.

        An uploadable record goes only when it has sent state and every destination
        acknowledged it; an unsent record is never deleted. A stored-only record (sensor,
        settings, …) goes when it is older than the retention and no pending EGV is near it.
        The newest pruned system time is remembered per receiver and kind, so re-reading the
        receiver does not store (and upload) a pruned record again.

        Returns:
            How many records were deleted.
        """
        cutoff_s = _us(now) // 1_000_000 - retain_days * 86_400
        with self._write() as conn:
            conn.execute("CREATE TEMP TABLE IF NOT EXISTS doomed (id INTEGER PRIMARY KEY)")
            conn.execute("DELETE FROM temp.doomed")
            conn.execute(
                "INSERT INTO temp.doomed SELECT r.id FROM records AS r WHERE r.utc < ? AND ("
                " (r.uploadable = 1"
                "  AND EXISTS (SELECT 1 FROM sent_state s WHERE s.record_id = r.id)"
                "  AND NOT EXISTS (SELECT 1 FROM sent_state s WHERE s.record_id = r.id AND s.sent_at IS NULL))"
                " OR (r.uploadable = 0"
                "  AND NOT EXISTS (SELECT 1 FROM records e JOIN sent_state s ON s.record_id = e.id"
                "   WHERE e.serial = r.serial AND e.kind = 'egv' AND s.sent_at IS NULL"
                "   AND e.system_seconds BETWEEN r.system_seconds - ? AND r.system_seconds + ?)))",
                (cutoff_s, _PAIRING_KEEP_S, _PAIRING_KEEP_S),
            )
            conn.execute(
                "INSERT INTO pruned (serial, kind, through_system_seconds) "
                "SELECT serial, kind, max(system_seconds) FROM records WHERE id IN (SELECT id FROM temp.doomed) "
                "GROUP BY serial, kind "
                "ON CONFLICT (serial, kind) DO UPDATE SET through_system_seconds = "
                "max(through_system_seconds, excluded.through_system_seconds)"
            )
            cur = conn.execute("DELETE FROM records WHERE id IN (SELECT id FROM temp.doomed)")
            deleted = max(cur.rowcount, 0)
            conn.execute("DELETE FROM temp.doomed")
        return deleted

    def serials(self) -> list[str]:
        """Serials of the receivers with stored records, the one with the newest record first.

        Read-only; for followers such as ``bridge tail`` that do not know the receiver.
        """
        with self._read() as conn:
            rows = conn.execute(
                "SELECT serial FROM records GROUP BY serial ORDER BY max(utc) DESC, serial"
            ).fetchall()
        return [str(row[0]) for row in rows]
