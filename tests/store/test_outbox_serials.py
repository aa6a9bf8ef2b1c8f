"""Outbox.serials(): the receivers with stored records, the newest first; read-only."""

from __future__ import annotations

from pathlib import Path

from bridge.store import Outbox

from .samples import BASE_S, SERIAL, egv, rule, sensor


def test_serials_empty_store_has_none(tmp_path: Path) -> None:
    with Outbox.open(tmp_path / "outbox.sqlite3") as box:
        assert box.serials() == []


def test_serials_newest_record_first(tmp_path: Path) -> None:
    with Outbox.open(tmp_path / "outbox.sqlite3") as box:
        box.add("SM00000001", [egv(BASE_S), sensor(BASE_S + 1)], rule(0), destinations=[])
        box.add(SERIAL, [egv(BASE_S + 600)], rule(0), destinations=[])
        box.add("SM00000002", [egv(BASE_S + 300)], rule(0), destinations=["https://ns.example"])
        assert box.serials() == [SERIAL, "SM00000002", "SM00000001"]
        assert box.stats()["records"] == {"egv": 3, "sensor": 1}  # nothing written
