"""Schema migrations keyed on PRAGMA user_version."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from bridge.errors import StoreError
from bridge.store import SCHEMA_VERSION, Outbox
from bridge.store.schema import APPLICATION_ID, MIGRATIONS, migrate

from .samples import SERIAL, egv, rule, BASE_S


def connect(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None)


def test_fresh_database_is_at_the_latest_version(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    Outbox.open(path).close()
    conn = connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == len(MIGRATIONS)
    assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"records", "destinations", "sent_state", "anchors", "pruned"} <= tables
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_reopening_runs_no_migration(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    with Outbox.open(path) as box:
        box.add(SERIAL, [egv(BASE_S)], rule(0), destinations=["ns"])
    conn = connect(path)
    assert migrate(conn) == SCHEMA_VERSION
    conn.close()
    with Outbox.open(path) as box:
        assert box.backlog("ns") == 1


def test_a_newer_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    Outbox.open(path).close()
    conn = connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StoreError, match="newer") as info:
        Outbox.open(path)
    assert "upgrade" in (info.value.hint or "")


def test_a_foreign_sqlite_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.sqlite3"
    conn = connect(path)
    conn.execute("CREATE TABLE notes (text TEXT)")
    conn.close()
    with pytest.raises(StoreError, match="not a dexcom-bridge store"):
        Outbox.open(path)
    assert connect(path).execute("SELECT count(*) FROM notes").fetchone()[0] == 0  # untouched


def test_migrations_run_in_order_up_to_the_latest(tmp_path: Path) -> None:
    conn = connect(tmp_path / "db.sqlite3")

    def v2(c: sqlite3.Connection) -> None:
        c.execute("ALTER TABLE records ADD COLUMN note TEXT")

    assert migrate(conn, migrations=MIGRATIONS[:1]) == 0
    assert migrate(conn, migrations=(*MIGRATIONS[:1], v2)) == 1
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 2
    assert "note" in {row[1] for row in conn.execute("PRAGMA table_info(records)")}


def test_a_failing_migration_leaves_the_old_version(tmp_path: Path) -> None:
    conn = connect(tmp_path / "db.sqlite3")
    migrate(conn, migrations=MIGRATIONS[:1])

    def broken(c: sqlite3.Connection) -> None:
        c.execute("CREATE TABLE half_done (x)")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        migrate(conn, migrations=(*MIGRATIONS[:1], broken))
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
    assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'half_done'").fetchone()[0] == 0
    assert not conn.in_transaction


def test_store_imports_only_records_errors_and_the_standard_library() -> None:
    import ast
    import sys

    allowed = {"bridge.records", "bridge.errors"}
    package = Path(__file__).resolve().parents[2] / "bridge" / "store"
    for source in package.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                ok = top in sys.stdlib_module_names or name in allowed or name.startswith("bridge.store")
                assert ok, f"{source.name} imports {name}"
