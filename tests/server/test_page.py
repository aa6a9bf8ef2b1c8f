"""The live page: served by the app itself, no external resources, loads without credentials."""

from __future__ import annotations

import re

import pytest

from bridge.server.app import STATIC_DIR

from .conftest import TestClient


def test_page_served_at_root_without_credentials(denied_client: TestClient) -> None:
    response = denied_client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    for element in ('id="reading"', 'id="arrow"', 'id="delta"', 'id="age"', 'id="chart"',
                    'id="transport"', 'id="token-form"', 'name="viewport"'):
        assert element in html
    for hours in (3, 6, 12, 24):
        assert f'data-hours="{hours}"' in html


@pytest.mark.parametrize("asset", ["/static/app.js", "/static/style.css"])
def test_page_assets_are_served(denied_client: TestClient, asset: str) -> None:
    response = denied_client.get(asset)
    assert response.status_code == 200 and len(response.text) > 500


def test_page_uses_no_external_resources() -> None:
    for path in STATIC_DIR.iterdir():
        text = path.read_text(encoding="utf-8").replace('"http://www.w3.org/2000/svg"', "")  # a namespace name
        urls = re.findall(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text, flags=re.IGNORECASE)
        assert urls == [], path.name
        assert "@import" not in text and "url(" not in text


def test_page_script_speaks_the_server_api() -> None:
    script = (STATIC_DIR / "app.js").read_text(encoding="utf-8")
    for needle in ("/api/v1/verifyauth", "/api/v1/status.json", "/api/v1/entries/sgv.json", '"/ws"',
                   "4401", "polling", "WebSocket", "stale", "token="):
        assert needle in script, needle
    assert "innerHTML" not in script  # data is only ever set as text
