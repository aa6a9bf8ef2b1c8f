"""The outbox's tables and their numbered migrations, keyed on ``PRAGMA user_version``.

Layer: store. Imports ``sqlite3``, ``bridge.errors`` and the standard library only; never
``bridge.dexcom`` nor ``bridge.nightscout``.

Migration *n* (1-based) turns a version *n-1* database into version *n*. :func:`migrate` runs
the missing ones in one transaction with the new ``user_version``, so a crash leaves the
database at the old version or the new one, never between. A database newer than this code is
refused with a :class:`~bridge.errors.StoreError`, as is a SQLite file that is not a store.

Version 1:

``records``
    One row per receiver record, unique on ``(serial, kind, system_seconds, record_key)``
    (``record_key`` from :func:`bridge.store.codec.record_key`). ``utc`` is integer Unix
    seconds, fixed at first insert and never updated. ``uploadable`` says whether the record
    is queued for destinations (:func:`bridge.store.outbox.is_uploadable`). ``body`` is the
    codec's JSON.
``destinations``
    Each upload destination ever added, with its last error and last success for status.
``sent_state``
    One row per (uploadable record, destination): pending while ``sent_at`` is NULL.
``anchors``
    The clock anchor per receiver serial.
``pruned``
    Per (serial, kind), the newest system time pruned: records at or below it are not stored
    again, so a pruned record re-read from the receiver is not uploaded a second time.

Version 2:

``cursors``
    Per (serial, kind), the system time through which the receiver has been read without a
    hole: the next read starts after it. It advances in the same transaction as the records,
    and never past a page that could not be read, so a skipped page is read again next time.
``meta``
    Small named values the bridge keeps between runs (devicestatus state, health), as text.

Version 3:

``held``
    Records read while the host clock was not yet synchronised: kept without a UTC time
    (none could be fixed correctly) until :func:`bridge.store.held.release` stamps them.

Host times (``sent_at``, ``next_attempt_at``, ``measured_at``, ``last_*_at``) are integer Unix
microseconds; record times (``utc``) are integer Unix seconds.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from bridge.errors import StoreError

__all__ = ["APPLICATION_ID", "MIGRATIONS", "SCHEMA_VERSION", "migrate"]

#: ``PRAGMA application_id`` of a dexcom-bridge store ("DXBO").
APPLICATION_ID = 0x4458424F


def _v1(conn: sqlite3.Connection) -> None:
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    for statement in (
        """CREATE TABLE records (
            id INTEGER PRIMARY KEY,
            serial TEXT NOT NULL,
            kind TEXT NOT NULL,
            system_seconds INTEGER NOT NULL,
            record_key TEXT NOT NULL,
            utc INTEGER NOT NULL,
            uploadable INTEGER NOT NULL,
            body TEXT NOT NULL,
            UNIQUE (serial, kind, system_seconds, record_key))""",
        "CREATE INDEX records_utc ON records (utc)",
        """CREATE TABLE destinations (
            name TEXT PRIMARY KEY,
            last_sent_at INTEGER,
            last_error TEXT,
            last_error_at INTEGER)""",
        """CREATE TABLE sent_state (
            destination TEXT NOT NULL REFERENCES destinations (name) ON DELETE CASCADE,
            record_id INTEGER NOT NULL REFERENCES records (id) ON DELETE CASCADE,
            sent_at INTEGER,
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at INTEGER NOT NULL DEFAULT 0,
            last_error TEXT,
            PRIMARY KEY (destination, record_id)) WITHOUT ROWID""",
        "CREATE INDEX sent_state_record ON sent_state (record_id)",
        "CREATE INDEX sent_state_pending ON sent_state (destination, next_attempt_at) WHERE sent_at IS NULL",
        """CREATE TABLE anchors (
            serial TEXT PRIMARY KEY,
            offset_s INTEGER NOT NULL,
            measured_at INTEGER NOT NULL)""",
        """CREATE TABLE pruned (
            serial TEXT NOT NULL,
            kind TEXT NOT NULL,
            through_system_seconds INTEGER NOT NULL,
            PRIMARY KEY (serial, kind)) WITHOUT ROWID""",
    ):
        conn.execute(statement)


def _v2(conn: sqlite3.Connection) -> None:
    for statement in (
        """CREATE TABLE cursors (
            serial TEXT NOT NULL,
            kind TEXT NOT NULL,
            through_system_seconds INTEGER NOT NULL,
            PRIMARY KEY (serial, kind)) WITHOUT ROWID""",
        """CREATE TABLE meta (
            key TEXT PRIMARY KEY,
            value TEXT NOT NULL) WITHOUT ROWID""",
    ):
        conn.execute(statement)


def _v3(conn: sqlite3.Connection) -> None:
    conn.execute(
        """CREATE TABLE held (
            serial TEXT NOT NULL,
            kind TEXT NOT NULL,
            system_seconds INTEGER NOT NULL,
            record_key TEXT NOT NULL,
            body TEXT NOT NULL,
            PRIMARY KEY (serial, kind, system_seconds, record_key)) WITHOUT ROWID"""
    )


#: Migration n is ``MIGRATIONS[n - 1]``. Append only; never edit a released one.
MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (_v1, _v2, _v3)
SCHEMA_VERSION = len(MIGRATIONS)


Migration = Callable[[sqlite3.Connection], None]


def migrate(conn: sqlite3.Connection, *, migrations: tuple[Migration, ...] = MIGRATIONS) -> int:
    """Bring the database up to the latest version.

    Args:
        conn: a connection in autocommit mode (``isolation_level=None``).
        migrations: the migration list; tests pass a longer one.

    Returns:
        The version the database had before (0 for a new database).

    Raises:
        StoreError: the database is newer than this code, or is not a dexcom-bridge store.
        sqlite3.Error: SQLite failed; the caller maps it.
    """
    latest = len(migrations)
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        has_tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] > 0
        if app_id not in (0, APPLICATION_ID) or (app_id == 0 and has_tables):
            raise StoreError(
                "the file is a SQLite database but not a dexcom-bridge store",
                hint="point --state-dir at a directory of its own",
            )
        if version > latest:
            raise StoreError(
                f"the store is at schema version {version}, newer than this dexcom-bridge knows ({latest})",
                hint="upgrade dexcom-bridge, or use a new --state-dir (the receiver still holds its data)",
            )
        for number in range(version + 1, latest + 1):
            migrations[number - 1](conn)
            conn.execute(f"PRAGMA user_version = {number}")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return int(version)
