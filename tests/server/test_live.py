"""Live updates: the WebSocket push and the polling path the page falls back to."""

from __future__ import annotations

import pytest
from starlette.websockets import WebSocketDisconnect

from .conftest import ADMIN, MINUTE_MS, NOW_MS, SHA1, TestClient, entry


def test_websocket_receives_posted_entry(client: TestClient) -> None:
    with client.websocket_connect("/ws") as socket:
        assert socket.receive_json() == {"type": "hello", "transport": "websocket"}
        assert client.post("/api/v1/entries", json=[entry(0, sgv=142)], headers=ADMIN).status_code == 200
        message = socket.receive_json()
        assert message["type"] == "entries"
        [pushed] = message["entries"]
        assert pushed["sgv"] == 142 and len(pushed["_id"]) == 24
        assert pushed["sysTime"] == "2026-11-25T19:30:00.000Z"


def test_websocket_push_after_merge_carries_stored_document(client: TestClient) -> None:
    client.post("/api/v1/entries", json=[entry(0, sgv=100, noise=1)], headers=ADMIN)
    with client.websocket_connect("/ws") as socket:
        socket.receive_json()
        client.post("/api/v1/entries", json=[entry(0, sgv=101)], headers=ADMIN)
        [pushed] = socket.receive_json()["entries"]
        assert pushed["sgv"] == 101 and pushed["noise"] == 1 and "_id" in pushed


def test_websocket_fans_out_to_every_client(client: TestClient) -> None:
    with client.websocket_connect("/ws") as first, client.websocket_connect("/ws") as second:
        first.receive_json()
        second.receive_json()
        client.post("/api/v1/entries", json=[entry(0)], headers=ADMIN)
        assert first.receive_json()["type"] == second.receive_json()["type"] == "entries"
    assert client.app.state.ctx.hub.subscriber_count == 0  # type: ignore[attr-defined]


def test_websocket_nothing_pushed_for_rejected_post(client: TestClient) -> None:
    with client.websocket_connect("/ws") as socket:
        socket.receive_json()
        assert client.post("/api/v1/entries", json=[{"date": 5}], headers=ADMIN).status_code == 400
        client.post("/api/v1/entries", json=[entry(0, sgv=77)], headers=ADMIN)
        assert socket.receive_json()["entries"][0]["sgv"] == 77  # the first message is the good post


def test_websocket_needs_read_permission(denied_client: TestClient) -> None:
    with denied_client.websocket_connect("/ws") as socket:
        assert socket.receive_json()["status"] == 401
        with pytest.raises(WebSocketDisconnect) as closed:
            socket.receive_json()
        assert closed.value.code == 4401
    with denied_client.websocket_connect(f"/ws?secret={SHA1}") as socket:
        assert socket.receive_json()["type"] == "hello"


def test_polling_path_returns_new_entries(client: TestClient) -> None:
    """The page polls /api/v1/entries/sgv.json?count=1000&find[date][$gte]=<latest - 15 min>."""
    client.post("/api/v1/entries", json=[entry(30, sgv=100)], headers=ADMIN)
    since = NOW_MS - 30 * MINUTE_MS - 15 * MINUTE_MS
    url = f"/api/v1/entries/sgv.json?count=1000&find[date][$gte]={since}"
    assert [e["sgv"] for e in client.get(url).json()] == [100]
    client.post("/api/v1/entries", json=[entry(0, sgv=105), {"type": "mbg", "mbg": 99, "date": NOW_MS}],
                headers=ADMIN)
    assert [e["sgv"] for e in client.get(url).json()] == [105, 100]
