"""Fixtures for the bundled server: an app on a temporary SQLite file with a fixed clock."""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette

from bridge.server import ServerSettings, create_app

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # starlette's notice that its TestClient will move to httpx2
    from starlette.testclient import TestClient

SECRET = "correct-horse-battery"
SHA1 = hashlib.sha1(SECRET.encode()).hexdigest()
SHA512 = hashlib.sha512(SECRET.encode()).hexdigest()
ADMIN = {"api-secret": SHA1}
NOW_MS = 1_795_635_000_000  # 2026-11-25T19:30:00.000Z
MINUTE_MS = 60_000


def entry(minutes_ago: float = 0, sgv: int = 120, **extra: Any) -> dict[str, Any]:
    """Return an sgv entry ``minutes_ago`` before NOW_MS, without dateString unless given."""
    doc: dict[str, Any] = {"type": "sgv", "sgv": sgv, "direction": "Flat", "device": "test",
                           "date": int(NOW_MS - minutes_ago * MINUTE_MS)}
    doc.update(extra)
    return doc


AppFactory = Callable[..., Starlette]


@pytest.fixture
def make_app(tmp_path: Path) -> AppFactory:
    """Return a factory of apps sharing one database file; keywords override settings."""
    def factory(**overrides: Any) -> Starlette:
        values: dict[str, Any] = {"db_path": tmp_path / "ns.sqlite", "api_secret": SECRET,
                                  "auth_fail_delay_s": 0.3}
        values.update(overrides)
        return create_app(ServerSettings(**values), clock_ms=lambda: NOW_MS)

    return factory


@pytest.fixture
def client(make_app: AppFactory) -> Iterator[TestClient]:
    """A client of the default app (readable default role, secret set)."""
    with TestClient(make_app()) as test_client:
        yield test_client


@pytest.fixture
def denied_client(make_app: AppFactory) -> Iterator[TestClient]:
    """A client of an app whose default role is denied."""
    with TestClient(make_app(default_role="denied")) as test_client:
        yield test_client
