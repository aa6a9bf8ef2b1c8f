"""SQLite storage of entries, device statuses, treatments and access tokens.

Layer: server (storage adapter). Imports sqlite3 and stdlib only; never imports starlette or
the core packages.

The database runs in WAL mode with ``synchronous=FULL``. Every public write is one
``BEGIN IMMEDIATE`` transaction: a request is stored completely or not at all. Documents are
kept as JSON text next to the columns that queries use. Entries upsert on ``{sysTime, type}``
with ``$set`` semantics (new fields win, absent fields are kept); treatments are replaced on
``identifier``, then ``_id``, then ``{created_at, eventType}``; device statuses are never merged.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bridge.server.documents import InvalidDocumentError, NormalisedDoc
from bridge.server.queries import Query

__all__ = ["Database", "StorageError", "StoredWrite"]

SCHEMA_VERSION = 1
BUSY_TIMEOUT_MS = 5_000  # wait this long for another writer before failing
_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    id TEXT PRIMARY KEY, sys_time TEXT NOT NULL, type TEXT, date INTEGER,
    date_string TEXT, sgv REAL, device TEXT, doc TEXT NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS entries_key ON entries (sys_time, type) WHERE type IS NOT NULL;
CREATE INDEX IF NOT EXISTS entries_date ON entries (date);
CREATE TABLE IF NOT EXISTS devicestatus (
    id TEXT PRIMARY KEY, created_at TEXT NOT NULL, device TEXT, doc TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS devicestatus_created ON devicestatus (created_at);
CREATE TABLE IF NOT EXISTS treatments (
    id TEXT PRIMARY KEY, created_at TEXT NOT NULL, event_type TEXT, entered_by TEXT,
    identifier TEXT, doc TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS treatments_key ON treatments (created_at, event_type);
CREATE INDEX IF NOT EXISTS treatments_identifier ON treatments (identifier);
CREATE TABLE IF NOT EXISTS tokens (
    token_sha256 TEXT PRIMARY KEY, name TEXT NOT NULL, role TEXT NOT NULL, created_ms INTEGER NOT NULL);
"""
# Query field -> column, per table. Only these names ever reach SQL text.
_COLUMNS = {
    "entries": {"date": "date", "dateString": "date_string", "sgv": "sgv", "type": "type", "device": "device"},
    "devicestatus": {"created_at": "created_at", "device": "device"},
    "treatments": {"created_at": "created_at", "eventType": "event_type", "enteredBy": "entered_by"},
}
_ORDER = {"entries": "date", "devicestatus": "created_at", "treatments": "created_at"}
_SQL_OPS = {"$eq": "=", "$gte": ">=", "$gt": ">", "$lte": "<=", "$lt": "<"}
_OBJECT_ID_RE = re.compile(r"^[0-9a-f]{24}\Z")

Doc = dict[str, Any]


class StorageError(Exception):
    """SQLite failed (disk full, locked too long); the request stored nothing."""


@dataclass(frozen=True)
class StoredWrite:
    """The outcome of one write request.

    Attributes:
        echoed: what the response says was stored, one per posted document.
        stored: the documents as now stored, with ``_id`` (for live updates).
    """

    echoed: list[Doc]
    stored: list[Doc]


class Database:
    """The server's SQLite database; safe to share between threads."""

    def __init__(self, path: Path) -> None:
        """Open (creating) the database at ``path`` in WAL mode.

        Raises:
            StorageError: the file cannot be opened or is from a newer version.
        """
        self._lock = threading.Lock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                                         timeout=BUSY_TIMEOUT_MS / 1000)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            version = self._conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StorageError(f"{path}: schema version {version} is newer than this server")
            self._conn.executescript(_SCHEMA)
            self._conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except (sqlite3.Error, OSError) as exc:
            raise StorageError(f"{path}: {exc}") from exc

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """Run a block in one immediate transaction, rolled back on any exception."""
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StorageError(str(exc)) from exc
            try:
                yield self._conn
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def upsert_entries(self, docs: Sequence[NormalisedDoc], now_ms: int) -> StoredWrite:
        """Upsert entries on ``{sysTime, type}`` with ``$set`` semantics, in one transaction.

        Raises:
            InvalidDocumentError: a client ``_id`` already names another entry.
            StorageError: SQLite failed.
        """
        echoed: list[Doc] = []
        stored: list[Doc] = []
        with self._guard(), self._transaction() as conn:
            for index, item in enumerate(docs):
                doc = item.doc
                row = None
                if isinstance(doc.get("type"), str):
                    row = conn.execute("SELECT id, doc FROM entries WHERE sys_time = ? AND type = ?",
                                       (doc["sysTime"], doc["type"])).fetchone()
                if row is not None:
                    entry_id, merged = row[0], {**json.loads(row[1]), **doc}
                    conn.execute(
                        "UPDATE entries SET date = ?, date_string = ?, sgv = ?, device = ?, doc = ? WHERE id = ?",
                        (*_entry_columns(merged)[2:], _dump(merged), entry_id))
                    echoed.append(dict(doc))
                else:
                    entry_id, merged = item.object_id or _new_id(now_ms), doc
                    self._insert(conn, index, "INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                                 (entry_id, *_entry_columns(doc), _dump(doc)))
                    echoed.append({"_id": entry_id, **doc})
                stored.append({"_id": entry_id, **merged})
        return StoredWrite(echoed=echoed, stored=stored)

    def insert_devicestatus(self, docs: Sequence[NormalisedDoc], now_ms: int) -> StoredWrite:
        """Insert device statuses (never merged, as Nightscout's insertMany).

        Raises:
            InvalidDocumentError: a client ``_id`` is already used.
            StorageError: SQLite failed.
        """
        stored: list[Doc] = []
        with self._guard(), self._transaction() as conn:
            for index, item in enumerate(docs):
                doc_id = item.object_id or _new_id(now_ms)
                device = item.doc.get("device") if isinstance(item.doc.get("device"), str) else None
                self._insert(conn, index, "INSERT INTO devicestatus VALUES (?, ?, ?, ?)",
                             (doc_id, item.doc["created_at"], device, _dump(item.doc)))
                stored.append({"_id": doc_id, **item.doc})
        return StoredWrite(echoed=stored, stored=stored)

    def upsert_treatments(self, docs: Sequence[NormalisedDoc], now_ms: int) -> StoredWrite:
        """Replace treatments matching ``identifier``, ``_id`` or ``{created_at, eventType}``.

        Raises:
            StorageError: SQLite failed.
        """
        stored: list[Doc] = []
        with self._guard(), self._transaction() as conn:
            for item in docs:
                doc = item.doc
                identifier = doc.get("identifier") if isinstance(doc.get("identifier"), str) else None
                row = None
                if identifier is not None:
                    row = conn.execute("SELECT id FROM treatments WHERE identifier = ?", (identifier,)).fetchone()
                if row is None and item.object_id is not None:
                    row = conn.execute("SELECT id FROM treatments WHERE id = ?", (item.object_id,)).fetchone()
                if row is None:
                    row = conn.execute("SELECT id FROM treatments WHERE created_at = ? AND event_type IS ?",
                                       (doc["created_at"], doc.get("eventType"))).fetchone()
                doc_id = row[0] if row is not None else item.object_id or _new_id(now_ms)
                entered_by = doc.get("enteredBy") if isinstance(doc.get("enteredBy"), str) else None
                conn.execute("INSERT OR REPLACE INTO treatments VALUES (?, ?, ?, ?, ?, ?)",
                             (doc_id, doc["created_at"], doc.get("eventType"), entered_by, identifier, _dump(doc)))
                stored.append({"_id": doc_id, **doc})
        return StoredWrite(echoed=stored, stored=stored)

    def find(self, table: str, query: Query) -> list[Doc]:
        """Return the documents of ``table`` matching ``query``, newest first.

        Raises:
            StorageError: SQLite failed.
        """
        columns = _COLUMNS[table]
        where = " AND ".join(f"{columns[c.field]} {_SQL_OPS[c.op]} ?" for c in query.conditions) or "1"
        sql = f"SELECT id, doc FROM {table} WHERE {where} ORDER BY {_ORDER[table]} DESC, rowid DESC LIMIT ?"
        with self._guard(), self._lock:
            rows = self._conn.execute(sql, (*(c.value for c in query.conditions), query.count)).fetchall()
        return [{"_id": row[0], **json.loads(row[1])} for row in rows]

    def get_entry(self, entry_id: str) -> Doc | None:
        """Return one entry by ``_id``, or None."""
        with self._guard(), self._lock:
            row = self._conn.execute("SELECT id, doc FROM entries WHERE id = ?", (entry_id.lower(),)).fetchone()
        return None if row is None else {"_id": row[0], **json.loads(row[1])}

    def create_token(self, name: str, role: str, now_ms: int) -> str:
        """Create an access token for subject ``name`` with ``role`` and return it.

        The token looks like Nightscout's: ``<name, ≤10 word chars>-<16 hex>``. Only its
        SHA-256 is stored.
        """
        prefix = re.sub(r"\W", "", name.lower())[:10] or "token"
        token = f"{prefix}-{secrets.token_hex(8)}"
        with self._guard(), self._transaction() as conn:
            conn.execute("INSERT INTO tokens VALUES (?, ?, ?, ?)", (_token_digest(token), name, role, now_ms))
        return token

    def find_token_role(self, token: str) -> str | None:
        """Return the role of an access token, or None when it is unknown."""
        with self._guard(), self._lock:
            row = self._conn.execute("SELECT role FROM tokens WHERE token_sha256 = ?",
                                     (_token_digest(token),)).fetchone()
        return None if row is None else str(row[0])

    @staticmethod
    def _insert(conn: sqlite3.Connection, index: int, sql: str, values: tuple[Any, ...]) -> None:
        """Insert a row; a clash on the primary key means a client ``_id`` was reused."""
        try:
            conn.execute(sql, values)
        except sqlite3.IntegrityError:
            raise InvalidDocumentError("_id", f"{values[0]} is already used by another document").at(index) from None

    @staticmethod
    @contextmanager
    def _guard() -> Iterator[None]:
        """Translate SQLite failures into StorageError."""
        try:
            yield
        except sqlite3.Error as exc:
            raise StorageError(str(exc)) from exc


def _entry_columns(doc: Doc) -> tuple[Any, ...]:
    """Return the indexed columns of an entry: sys_time, type, date, date_string, sgv, device."""
    def text(key: str) -> str | None:
        value = doc.get(key)
        return value if isinstance(value, str) else None

    date = doc.get("date")
    sgv = doc.get("sgv")
    return (
        doc["sysTime"], text("type"),
        date if isinstance(date, int) and not isinstance(date, bool) else None,
        text("dateString"),
        float(sgv) if isinstance(sgv, (int, float)) and not isinstance(sgv, bool) else None,
        text("device"),
    )


def _dump(doc: Doc) -> str:
    """Serialise a document for storage."""
    return json.dumps(doc, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def _new_id(now_ms: int) -> str:
    """Return a new ObjectId-like id: 8 hex of seconds, 16 random hex."""
    return f"{(now_ms // 1000) & 0xFFFFFFFF:08x}{secrets.token_hex(8)}"


def _token_digest(token: str) -> str:
    """Return the stored form of a token."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()
