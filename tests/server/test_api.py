"""API v1 tests: every endpoint and its Nightscout semantics."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import ADMIN, MINUTE_MS, NOW_MS, TestClient, entry


def post(client: TestClient, path: str, body: Any) -> Any:
    """POST as admin and return the JSON answer, asserting a 200."""
    response = client.post(path, json=body, headers=ADMIN)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.parametrize("path", ["/api/v1/entries", "/api/v1/entries/", "/api/v1/entries.json"])
def test_entries_post_accepts_every_route(client: TestClient, path: str) -> None:
    stored = post(client, path, [entry(5)])
    assert len(stored) == 1 and len(stored[0]["_id"]) == 24
    assert stored[0]["sysTime"] == "2026-11-25T19:25:00.000Z"
    assert stored[0]["utcOffset"] == 0
    assert client.get("/api/v1/entries.json").json()[0]["_id"] == stored[0]["_id"]


def test_entries_post_single_object_with_date(client: TestClient) -> None:
    stored = post(client, "/api/v1/entries", entry(1, sgv=99))
    assert [e["sgv"] for e in stored] == [99]


def test_entries_post_empty_array_stores_nothing(client: TestClient) -> None:
    assert post(client, "/api/v1/entries", []) == []
    assert client.get("/api/v1/entries.json").json() == []


def test_entries_post_keeps_extra_fields_and_drops_body_secret(client: TestClient) -> None:
    body = [entry(1, delta=1.5, trendRate=0.3, noise=1, filtered=120000)]
    body[0]["secret"] = "x"
    stored = post(client, "/api/v1/entries", body)[0]
    assert stored["delta"] == 1.5 and stored["noise"] == 1 and "secret" not in stored
    got = client.get("/api/v1/entries.json").json()[0]
    assert got == stored


def test_entries_post_rewrites_datestring_to_utc(client: TestClient) -> None:
    stored = post(client, "/api/v1/entries", [entry(0, dateString="2026-11-25T20:30:00.000+0100")])[0]
    assert stored["dateString"] == stored["sysTime"] == "2026-11-25T19:30:00.000Z"
    assert stored["utcOffset"] == 60


def test_entries_without_date_get_it_from_datestring(client: TestClient) -> None:
    doc = entry(0, dateString="2026-11-25T19:30:00.000Z")
    del doc["date"]
    stored = post(client, "/api/v1/entries", [doc])[0]
    assert stored["date"] == NOW_MS


def test_entries_client_sent_systime_is_overwritten(client: TestClient) -> None:
    stored = post(client, "/api/v1/entries", [entry(0, sysTime="1999-01-01T00:00:00Z")])[0]
    assert stored["sysTime"] == "2026-11-25T19:30:00.000Z"


def test_entries_object_id_and_uuid(client: TestClient) -> None:
    stored = post(client, "/api/v1/entries", [entry(1, _id="AABBCCDDEEFF001122334455"),
                                              entry(2, _id="0b6c8a8e-7f3d-4f1c-9a43-2f8a0e1b9c77")])
    assert stored[0]["_id"] == "aabbccddeeff001122334455"
    assert stored[1]["identifier"] == "0b6c8a8e-7f3d-4f1c-9a43-2f8a0e1b9c77"
    assert len(stored[1]["_id"]) == 24
    one = client.get("/api/v1/entries/aabbccddeeff001122334455.json").json()
    assert [e["sgv"] for e in one] == [120]
    assert client.get("/api/v1/entries/000000000000000000000000.json").json() == []


def test_entries_get_newest_first_default_count_10(client: TestClient) -> None:
    post(client, "/api/v1/entries", [entry(5 * i, sgv=100 + i) for i in range(15)])
    got = client.get("/api/v1/entries.json").json()
    assert [e["sgv"] for e in got] == [100 + i for i in range(10)]
    assert len(client.get("/api/v1/entries.json?count=15").json()) == 15


def test_entries_get_default_window_is_four_days(client: TestClient) -> None:
    post(client, "/api/v1/entries", [entry(0, sgv=101), entry(4 * 24 * 60 + 5, sgv=102)])
    assert [e["sgv"] for e in client.get("/api/v1/entries.json?count=100").json()] == [101]
    old = client.get("/api/v1/entries.json", params={"find[date][$gte]": NOW_MS - 10 * 86_400_000}).json()
    assert [e["sgv"] for e in old] == [101, 102]
    by_string = client.get("/api/v1/entries.json", params={"find[dateString][$gte]": "2026-11-01"}).json()
    assert [e["sgv"] for e in by_string] == []  # neither has a dateString


def test_entries_find_operators(client: TestClient) -> None:
    post(client, "/api/v1/entries", [entry(i * 5, sgv=100 + 10 * i) for i in range(6)])
    def sgvs(params: dict[str, Any]) -> list[int]:
        return [e["sgv"] for e in client.get("/api/v1/entries.json", params=params).json()]

    assert sgvs({"find[sgv][$gte]": "130"}) == [130, 140, 150]  # newest first: 130 is 15 min old
    assert sgvs({"find[sgv][$gt]": "130", "find[sgv][$lt]": "150"}) == [140]
    assert sgvs({"find[sgv][$lte]": "110"}) == [100, 110]
    assert sgvs({"find[sgv]": "120"}) == [120]
    assert sgvs({"find[date][$gt]": str(NOW_MS - 11 * MINUTE_MS)}) == [100, 110, 120]
    assert sgvs({"find[date][$lte]": "2026-11-25T19:10:00Z"}) == [140, 150]
    assert sgvs({"find[device]": "test", "count": "2"}) == [100, 110]
    assert sgvs({"find[device]": "other"}) == []


def test_entries_datestring_query_compares_utc_strings(client: TestClient) -> None:
    post(client, "/api/v1/entries", [entry(0, sgv=101, dateString="2026-11-25T20:30:00+01:00"),
                                     entry(60, sgv=102, dateString="2026-11-25T18:30:00Z")])
    got = client.get("/api/v1/entries.json", params={"find[dateString][$gte]": "2026-11-25T19"}).json()
    assert [e["sgv"] for e in got] == [101]


def test_entries_type_routes_and_current(client: TestClient) -> None:
    post(client, "/api/v1/entries", [
        entry(10, sgv=110),
        {"type": "mbg", "mbg": 115, "date": NOW_MS - 8 * MINUTE_MS, "device": "meter"},
        {"type": "cal", "slope": 800, "intercept": 30000, "scale": 1, "date": NOW_MS - 7 * MINUTE_MS},
        entry(5, sgv=125),
    ])
    assert [e["sgv"] for e in client.get("/api/v1/entries/sgv.json").json()] == [125, 110]
    assert [e["mbg"] for e in client.get("/api/v1/entries/mbg.json").json()] == [115]
    assert [e["slope"] for e in client.get("/api/v1/entries/cal.json").json()] == [800]
    assert [e["type"] for e in client.get("/api/v1/entries.json", params={"find[type]": "mbg"}).json()] == ["mbg"]
    current = client.get("/api/v1/entries/current.json").json()
    assert [e["sgv"] for e in current] == [125]
    assert client.get("/api/v1/entries/current.json?count=5").json() == current


def test_entries_current_is_empty_without_data(client: TestClient) -> None:
    assert client.get("/api/v1/entries/current.json").json() == []


def test_entries_text_formats(client: TestClient) -> None:
    post(client, "/api/v1/entries", [entry(0, dateString="2026-11-25T19:30:00Z")])
    tsv = client.get("/api/v1/entries", headers={"accept": "*/*"})
    assert tsv.headers["content-type"].startswith("text/tab-separated-values")
    assert tsv.text == f'"2026-11-25T19:30:00.000Z"\t{NOW_MS}\t120\t"Flat"\t"test"\n'
    assert client.get("/api/v1/entries.csv").text.count(",") == 4
    assert client.get("/api/v1/entries", headers={"accept": "application/json"}).json()[0]["sgv"] == 120
    assert client.get("/api/v1/entries.xml").status_code == 404


def test_entries_preview_stores_nothing(client: TestClient) -> None:
    response = client.post("/api/v1/entries/preview.json", json=[entry(0)], headers=ADMIN)
    assert response.status_code == 200
    assert response.json()[0]["sysTime"] == "2026-11-25T19:30:00.000Z"
    assert client.get("/api/v1/entries.json").json() == []


def test_devicestatus_post_and_get_without_dedup(client: TestClient) -> None:
    doc = {"device": "pi", "uploader": {"battery": 87}, "created_at": "2026-11-25T20:29:00+01:00"}
    first = post(client, "/api/v1/devicestatus", doc)
    second = post(client, "/api/v1/devicestatus.json", [doc])
    assert first[0]["created_at"] == "2026-11-25T19:29:00.000Z" and first[0]["utcOffset"] == 60
    assert first[0]["_id"] != second[0]["_id"]
    got = client.get("/api/v1/devicestatus.json").json()
    assert len(got) == 2 and got[0]["uploader"] == {"battery": 87}
    no_time = post(client, "/api/v1/devicestatus", {"uploaderBattery": False})[0]
    assert no_time["created_at"] == "2026-11-25T19:30:00.000Z"  # missing created_at: now
    since = client.get("/api/v1/devicestatus.json", params={"find[created_at][$gte]": "2026-11-25T19:29:30Z"}).json()
    assert [d.get("uploaderBattery") for d in since] == [False]
    assert len(client.get("/api/v1/devicestatus.json?count=1").json()) == 1


def test_devicestatus_rejects_bad_object_id(client: TestClient) -> None:
    response = client.post("/api/v1/devicestatus", json={"_id": "nope"}, headers=ADMIN)
    assert response.status_code == 400 and "Invalid _id format" in response.json()["description"]


def test_treatments_upsert_on_created_at_and_event_type(client: TestClient) -> None:
    check = {"eventType": "BG Check", "glucose": "110", "glucoseType": "Finger", "units": "mg/dl",
             "created_at": "2026-11-25T19:00:00Z", "enteredBy": "uploader", "carbs": 0}
    first = post(client, "/api/v1/treatments", check)[0]
    assert first["glucose"] == 110 and "carbs" not in first
    again = post(client, "/api/v1/treatments.json", [{**check, "glucose": 112, "notes": "re-sent"}])[0]
    assert again["_id"] == first["_id"]
    other = post(client, "/api/v1/treatments", {**check, "eventType": "Note"})[0]
    assert other["_id"] != first["_id"]
    got = client.get("/api/v1/treatments.json").json()
    assert len(got) == 2
    replaced = next(t for t in got if t["eventType"] == "BG Check")
    assert replaced["glucose"] == 112 and replaced["notes"] == "re-sent"
    put = client.put("/api/v1/treatments", json={**check, "eventTime": "2026-11-25T19:05:00Z"}, headers=ADMIN)
    assert put.status_code == 200 and put.json()[0]["created_at"] == "2026-11-25T19:05:00.000Z"
    notes = client.get("/api/v1/treatments.json", params={"find[eventType]": "Note"}).json()
    assert [t["eventType"] for t in notes] == ["Note"]


def test_treatments_identifier_wins(client: TestClient) -> None:
    a = post(client, "/api/v1/treatments", {"eventType": "Note", "identifier": "abc",
                                            "created_at": "2026-11-25T19:00:00Z"})[0]
    b = post(client, "/api/v1/treatments", {"eventType": "Note", "identifier": "abc",
                                            "created_at": "2026-11-25T19:10:00Z"})[0]
    assert a["_id"] == b["_id"]
    assert [t["created_at"] for t in client.get("/api/v1/treatments").json()] == ["2026-11-25T19:10:00.000Z"]


def test_status_json(client: TestClient) -> None:
    for path in ("/api/v1/status.json", "/api/v1/status"):
        body = client.get(path).json()
        assert body["status"] == "ok" and body["apiEnabled"] is True
        assert body["serverTimeEpoch"] == NOW_MS and body["serverTime"] == "2026-11-25T19:30:00.000Z"
        assert body["settings"]["authDefaultRoles"] == "readable"
        assert body["settings"]["thresholds"]["bgTargetBottom"] == 80


def test_unknown_routes_and_methods_answer_json(client: TestClient) -> None:
    missing = client.get("/api/v1/nothing")
    assert missing.status_code == 404 and missing.json()["status"] == 404
    method = client.delete("/api/v1/entries", headers=ADMIN)
    assert method.status_code == 405 and method.json()["status"] == 405
    assert client.post("/api/v1/entries/sgv.json", json=[], headers=ADMIN).status_code == 405
