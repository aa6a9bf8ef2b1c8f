"""De-duplication as Nightscout does it (NIGHTSCOUT_API.md §3.1): upsert on {sysTime, type}."""

from __future__ import annotations

from typing import Any

from .conftest import ADMIN, NOW_MS, TestClient, entry


def post(client: TestClient, body: Any) -> list[dict[str, Any]]:
    """POST entries as admin and return the echo."""
    response = client.post("/api/v1/entries.json", json=body, headers=ADMIN)
    assert response.status_code == 200, response.text
    result: list[dict[str, Any]] = response.json()
    return result


def stored(client: TestClient) -> list[dict[str, Any]]:
    """Return every stored entry of the last 4 days, newest first."""
    result: list[dict[str, Any]] = client.get("/api/v1/entries.json?count=100").json()
    return result


def test_dedup_same_reading_twice_is_idempotent(client: TestClient) -> None:
    reading = entry(0, dateString="2026-11-25T19:30:00.000Z")
    first = post(client, [reading])
    second = post(client, [reading])
    assert "_id" in first[0]
    assert "_id" not in second[0]  # Nightscout: re-sent duplicates come back without _id
    assert len(stored(client)) == 1


def test_dedup_same_instant_other_offset_updates(client: TestClient) -> None:
    post(client, [entry(0, sgv=120, dateString="2026-11-25T19:30:00.000Z", noise=1)])
    echo = post(client, [entry(0, sgv=125, dateString="2026-11-25T21:30:00.000+02:00")])
    assert echo[0]["sysTime"] == "2026-11-25T19:30:00.000Z" and "_id" not in echo[0]
    [doc] = stored(client)
    assert doc["sgv"] == 125 and doc["utcOffset"] == 120  # the new values win ($set)
    assert doc["noise"] == 1  # fields absent from the new post are kept


def test_dedup_one_millisecond_apart_makes_two(client: TestClient) -> None:
    post(client, [entry(0, dateString="2026-11-25T19:30:00.000Z")])
    post(client, [entry(0, dateString="2026-11-25T19:30:00.001Z")])  # same date, dateString 1 ms later
    assert len(stored(client)) == 2


def test_dedup_without_datestring_uses_date(client: TestClient) -> None:
    post(client, [entry(0)])
    post(client, [entry(0, sgv=121)])
    post(client, [{**entry(0), "date": NOW_MS + 1}])
    assert [e["sgv"] for e in stored(client)] == [120, 121]


def test_dedup_types_do_not_collide_devices_do(client: TestClient) -> None:
    post(client, [entry(0), {"type": "mbg", "mbg": 118, "date": NOW_MS}])
    post(client, [entry(0, device="other-uploader", sgv=119)])
    docs = stored(client)
    assert sorted(e["type"] for e in docs) == ["mbg", "sgv"]
    assert next(e for e in docs if e["type"] == "sgv")["device"] == "other-uploader"  # last writer wins


def test_dedup_within_one_batch(client: TestClient) -> None:
    echo = post(client, [entry(0, sgv=100), entry(0, sgv=101)])
    assert "_id" in echo[0] and "_id" not in echo[1]
    assert [e["sgv"] for e in stored(client)] == [101]


def test_entries_without_type_are_never_merged(client: TestClient) -> None:
    doc = {"sgv": 130, "date": NOW_MS}
    post(client, [doc])
    post(client, [doc])
    assert len(stored(client)) == 2
