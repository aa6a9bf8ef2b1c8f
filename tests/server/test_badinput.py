"""Bad input never gives a 500, a partial write or stored garbage."""

from __future__ import annotations

import gzip
import json
import zlib
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import ADMIN, NOW_MS, AppFactory, TestClient, entry

JSON_ADMIN = {**ADMIN, "content-type": "application/json"}
POST_PATHS = ("/api/v1/entries", "/api/v1/devicestatus", "/api/v1/treatments")


def count_all(client: TestClient) -> int:
    """Count stored documents in every collection (far back in time)."""
    total = 0
    for path, field in (("/api/v1/entries.json", "date"), ("/api/v1/devicestatus.json", "created_at"),
                        ("/api/v1/treatments.json", "created_at")):
        value = "0" if field == "date" else "1970-01-02T00:00:00Z"
        total += len(client.get(path, params={f"find[{field}][$gte]": value, "count": "100000"}).json())
    return total


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded",
                                          "application/octet-stream", "application/jsonx"])
@pytest.mark.parametrize("path", POST_PATHS)
def test_post_without_json_content_type_is_415(client: TestClient, path: str, content_type: str | None) -> None:
    headers = dict(ADMIN)
    if content_type:
        headers["content-type"] = content_type
    response = client.post(path, content=json.dumps([entry()]), headers=headers)
    assert response.status_code == 415
    assert response.json()["status"] == 415
    assert count_all(client) == 0


def test_json_content_type_with_charset_is_accepted(client: TestClient) -> None:
    response = client.post("/api/v1/entries", content=json.dumps([entry()]),
                           headers={**ADMIN, "content-type": "application/json; charset=utf-8"})
    assert response.status_code == 200


@pytest.mark.parametrize("body", [b"{", b"[1,", b"nope", b"", b"[NaN]", b'[{"date": Infinity}]',
                                  b"\xff\xfe[]", b'[{"sgv": 1e999}]', b'["\\ud800"]',
                                  b'{"date": 1795635000000, "\\ud800x": 1}', b"1" * 5000])
def test_malformed_json_is_json_400(client: TestClient, body: bytes) -> None:
    response = client.post("/api/v1/entries", content=body, headers=JSON_ADMIN)
    assert response.status_code == 400, response.text
    assert response.json()["status"] == 400
    assert count_all(client) == 0


def test_deep_nesting_is_400(client: TestClient) -> None:
    for depth in (70, 100_000):
        body = '[{"date": 1795635000000, "x": ' + "[" * depth + "]" * depth + "}]"
        response = client.post("/api/v1/entries", content=body, headers=JSON_ADMIN)
        assert response.status_code == 400, depth


def test_oversized_body_is_413(make_app: AppFactory) -> None:
    with TestClient(make_app(max_body_bytes=1000)) as client:
        big = json.dumps([entry(i) for i in range(50)])
        response = client.post("/api/v1/entries", content=big, headers=JSON_ADMIN)
        assert response.status_code == 413 and response.json()["status"] == 413
        chunks = iter([big[:600].encode(), big[600:].encode()])  # no Content-Length: streamed
        response = client.post("/api/v1/entries", content=chunks, headers=JSON_ADMIN)
        assert response.status_code == 413
        assert count_all(client) == 0


def test_gzip_body_is_accepted_and_bomb_is_413(make_app: AppFactory) -> None:
    with TestClient(make_app(max_body_bytes=10_000)) as client:
        body = gzip.compress(json.dumps([entry(1)]).encode())
        headers = {**JSON_ADMIN, "content-encoding": "gzip"}
        assert client.post("/api/v1/entries", content=body, headers=headers).status_code == 200
        deflated = zlib.compress(json.dumps([entry(2)]).encode())
        assert client.post("/api/v1/entries", content=deflated,
                           headers={**JSON_ADMIN, "content-encoding": "deflate"}).status_code == 200
        bomb = gzip.compress(b"[" + b" " * 5_000_000 + b"]")
        assert len(bomb) < 10_000
        assert client.post("/api/v1/entries", content=bomb, headers=headers).status_code == 413
        assert client.post("/api/v1/entries", content=b"not gzip", headers=headers).status_code == 400
        assert client.post("/api/v1/entries", content=b"[]",
                           headers={**JSON_ADMIN, "content-encoding": "br"}).status_code == 415


@pytest.mark.parametrize(("doc", "field"), [
    ({"type": "sgv", "sgv": 120, "date": 1_795_635_000}, "date"),  # seconds
    ({"type": "sgv", "sgv": 120, "date": "1795635000000"}, "date"),
    ({"type": "sgv", "sgv": 120, "date": 1_795_635_000_000.5}, "date"),
    ({"type": "sgv", "sgv": 120, "date": True}, "date"),
    ({"type": "sgv", "sgv": 120, "date": 10**30}, "date"),
    ({"type": "sgv", "sgv": 120, "date": NOW_MS, "dateString": "yesterday"}, "dateString"),
    ({"type": "sgv", "sgv": 120, "date": NOW_MS, "dateString": "2026-11-25T19:30:00+99:00"}, "dateString"),
    ({"type": "sgv", "sgv": 120, "date": NOW_MS, "dateString": 5}, "dateString"),
    ({"type": "sgv", "sgv": 120}, "date"),
    ({"type": 5, "sgv": 120, "date": NOW_MS}, "type"),
    ({"type": "sgv", "sgv": "120", "date": NOW_MS}, "sgv"),
    ({"type": "sgv", "sgv": 10**40, "date": NOW_MS}, "sgv"),
    ({"type": "sgv", "sgv": 120, "date": NOW_MS, "device": ["x"]}, "device"),
    ({"type": "sgv", "sgv": 120, "date": NOW_MS, "_id": 7}, "_id"),
])
def test_invalid_entry_is_400_naming_the_field(client: TestClient, doc: dict[str, Any], field: str) -> None:
    response = client.post("/api/v1/entries", json=[entry(1), doc], headers=ADMIN)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["field"] == f"[1].{field}" and field in body["description"]
    assert count_all(client) == 0  # the valid first entry was not written either


def test_single_entry_object_without_date_is_400(client: TestClient) -> None:
    response = client.post("/api/v1/entries", json={"sgv": 120, "type": "sgv"}, headers=ADMIN)
    assert response.status_code == 400 and response.json()["field"] == "date"


@pytest.mark.parametrize("body", [5, "x", None, [1], [[entry()]], True])
@pytest.mark.parametrize("path", POST_PATHS)
def test_wrong_body_shapes_are_400(client: TestClient, path: str, body: Any) -> None:
    response = client.post(path, content=json.dumps(body), headers=JSON_ADMIN)
    assert response.status_code == 400
    assert count_all(client) == 0


@pytest.mark.parametrize(("path", "doc", "field"), [
    ("/api/v1/treatments", {"eventType": "Note", "created_at": "soon"}, "created_at"),
    ("/api/v1/treatments", {"eventType": "Note", "eventTime": 5}, "eventTime"),
    ("/api/v1/treatments", {"eventType": "Meal", "carbs": "lots"}, "carbs"),
    ("/api/v1/treatments", {"eventType": ["Note"]}, "eventType"),
    ("/api/v1/devicestatus", {"created_at": "2026-02-30T00:00:00Z"}, "created_at"),
    ("/api/v1/devicestatus", {"device": 5}, "device"),
])
def test_invalid_treatment_and_devicestatus_are_400(client: TestClient, path: str, doc: dict[str, Any],
                                                    field: str) -> None:
    response = client.post(path, json=[{"eventType": "Note"}, doc], headers=ADMIN)
    assert response.status_code == 400 and response.json()["field"] == f"[1].{field}"
    assert count_all(client) == 0


def test_reused_client_object_id_is_400_and_atomic(client: TestClient) -> None:
    oid = "aabbccddeeff001122334455"
    assert client.post("/api/v1/entries", json=[entry(1, _id=oid)], headers=ADMIN).status_code == 200
    response = client.post("/api/v1/entries", json=[entry(2), entry(3, _id=oid)], headers=ADMIN)
    assert response.status_code == 400 and response.json()["field"] == "[1]._id"
    assert count_all(client) == 1


@pytest.mark.parametrize("params", [
    {"find[sgv][$ne]": "1"}, {"find[sgv][$in]": "1"}, {"find[sgv][$regex]": "1"},
    {"find[$where]": "1"}, {"find[date][$gte][$gt]": "1"}, {"find[sgv][$eq]": "1"},
    {"find[noise]": "1"}, {"find[sgv]": "high"}, {"find[date][$gte]": "tomorrow"},
    {"count": "-1"}, {"count": "0"}, {"count": "ten"}, {"count": "9" * 30},
    {"find[date][$gte]": "9" * 40},
])
def test_disallowed_queries_are_400(client: TestClient, params: dict[str, str]) -> None:
    response = client.get("/api/v1/entries.json", params=params)
    assert response.status_code == 400, response.text
    assert response.json()["status"] == 400


def test_repeated_query_key_is_400(client: TestClient) -> None:
    response = client.get("/api/v1/entries.json?find[sgv][$gt]=1&find[sgv][$gt]=2")
    assert response.status_code == 400


def test_sql_looking_strings_are_just_data(client: TestClient) -> None:
    evil = "x'); DROP TABLE entries; --"
    doc = entry(0, device=evil, type="sgv' OR '1'='1", note="<script>alert(1)</script>")
    assert client.post("/api/v1/entries", json=[doc], headers=ADMIN).status_code == 200
    got = client.get("/api/v1/entries.json", params={"find[device]": evil}).json()
    assert got[0]["device"] == evil and got[0]["note"] == "<script>alert(1)</script>"
    assert client.get("/api/v1/entries.json", params={"find[type]": "' OR 1=1 --"}).json() == []
    assert client.get("/api/v1/entries.json", params={"find[sgv' OR 1=1 --]": "1"}).status_code == 400


def test_dollar_keys_are_refused(client: TestClient) -> None:
    response = client.post("/api/v1/entries", json=[entry(0, extra={"$ne": None})], headers=ADMIN)
    assert response.status_code == 400


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20) | st.sampled_from([NOW_MS, 1_795_635_000, "2026-11-25T19:30:00Z", "sgv", "date"]),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(["date", "dateString", "sgv", "type", "device", "_id", "created_at",
                                       "eventType", "eventTime", "carbs", "identifier", "secret", "x"])
                      | st.text(max_size=8), children, max_size=6),
    max_leaves=20,
)


@settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=JSON_VALUES, path=st.sampled_from(POST_PATHS))
def test_arbitrary_json_never_500(client: TestClient, body: Any, path: str) -> None:
    before = count_all(client)
    response = client.post(path, content=json.dumps(body), headers=JSON_ADMIN)
    assert response.status_code in (200, 400), response.text
    echoed = response.json()
    if response.status_code == 200:
        assert isinstance(echoed, list)
        assert count_all(client) <= before + len(echoed)
    else:
        assert count_all(client) == before


@settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(params=st.lists(st.tuples(st.text(max_size=25) | st.sampled_from(
    ["count", "find[date][$gte]", "find[sgv]", "find[type]", "find[dateString][$lt]", "token"]),
    st.text(max_size=25)), max_size=4),
    path=st.sampled_from(["/api/v1/entries.json", "/api/v1/entries/current.json", "/api/v1/entries/sgv.json",
                          "/api/v1/devicestatus.json", "/api/v1/treatments.json"]))
def test_arbitrary_queries_never_500(client: TestClient, params: list[tuple[str, str]], path: str) -> None:
    response = client.get(path, params=[(k, v) for k, v in params if k != "token"])
    assert response.status_code in (200, 400), response.text
