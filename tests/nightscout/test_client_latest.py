"""NightscoutClient.latest_entries(): the site's newest entries of every device (pytest-httpx)."""

from __future__ import annotations

import hashlib

import pytest
from pytest_httpx import HTTPXMock

from bridge.errors import UploadRejectedError
from bridge.nightscout.auth import Credentials
from bridge.nightscout.client import NightscoutClient
from bridge.nightscout.retry import NO_RETRY

SECRET = "correct-horse-battery"
BASE = "https://ns.example.org"
DOCS = [
    {"type": "sgv", "sgv": 120, "direction": "Flat", "date": 1_700_000_300_000, "device": "xDrip"},
    {"type": "sgv", "sgv": 118, "direction": "Flat", "date": 1_700_000_000_000, "device": "dexcom"},
]


def client() -> NightscoutClient:
    return NightscoutClient(BASE, Credentials.from_secret(SECRET), retry=NO_RETRY, sleep=lambda _s: None)


def test_latest_entries_gets_newest_sgv_without_device_filter(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=f"{BASE}/api/v1/entries.json?count=10&find%5Btype%5D=sgv", json=[*DOCS, "junk"])
    with client() as ns:
        assert ns.latest_entries(10) == DOCS
    request = httpx_mock.get_request()
    assert request is not None
    assert request.headers["api-secret"] == hashlib.sha1(SECRET.encode()).hexdigest()
    assert "find[device]" not in str(request.url) and "find%5Bdevice%5D" not in str(request.url)


def test_latest_entries_any_type(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=f"{BASE}/api/v1/entries.json?count=3", json=[])
    with client() as ns:
        assert ns.latest_entries(3, entry_type=None) == []


def test_latest_entries_refused_secret_raises(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(status_code=401, json={"status": 401, "message": "Unauthorized"})
    with client() as ns, pytest.raises(UploadRejectedError):
        ns.latest_entries(5)
