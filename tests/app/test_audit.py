"""The gap audit re-queues exactly the entries a site lost, and the next upload restores them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from bridge.app.audit import audit_destination
from bridge.app.upload import upload_destination
from bridge.nightscout import Credentials
from bridge.nightscout.client import NightscoutClient
from bridge.records import EGVRecord, MeterRecord
from bridge.store import Outbox

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
SERIAL = "SM12345678"
BASE = 600_000_000  # receiver system seconds of the first record


class FakeSite:
    """Stores posted entries by (type, date); can lose some, as a restored database would."""

    def __init__(self) -> None:
        self.entries: dict[tuple[str, int], dict[str, object]] = {}
        self.posts = 0

    def handler(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            self.posts += 1
            docs = json.loads(request.content)
            for doc in docs:
                self.entries[(doc["type"], doc["date"])] = doc
            return httpx.Response(200, json=docs)
        lo = int(request.url.params["find[date][$gte]"])
        hi = int(request.url.params["find[date][$lte]"])
        held = [d for (_, date), d in self.entries.items() if lo <= date <= hi]
        return httpx.Response(200, json=sorted(held, key=lambda d: -int(d["date"]))[: int(request.url.params["count"])])


def _utc_of(system_seconds: int) -> datetime:
    return NOW - timedelta(seconds=BASE + 12 * 3600 - system_seconds)


def test_audit_requeues_what_the_site_lost(tmp_path: Path) -> None:
    site = FakeSite()
    client = NightscoutClient("http://127.0.0.1:9", Credentials.from_secret("a-long-enough-secret"),
                              http=httpx.Client(transport=httpx.MockTransport(site.handler)))
    egvs = [EGVRecord(BASE + i * 300, BASE + i * 300 - 25200, 100 + i % 50, False, 4, 1) for i in range(144)]
    meters = [MeterRecord(BASE + 3600 * h, BASE + 3600 * h - 25200, 110, BASE + 3600 * h - 30) for h in range(12)]
    with Outbox.open(tmp_path / "outbox.sqlite3") as outbox:
        outbox.add(SERIAL, [*egvs, *meters], _utc_of, destinations=["site"])
        first = upload_destination(outbox, client, "site", now=lambda: NOW)
        assert first.uploaded == 156 and first.pending == 0
        lost = [key for key in list(site.entries) if key[1] % 7 == 0]
        for key in lost:
            del site.entries[key]
        report = audit_destination(outbox, client, "site", hours=24, now=NOW)
        assert report.checked == 156 and report.missing == len(lost) > 0
        assert outbox.backlog("site") == len(lost)
        again = upload_destination(outbox, client, "site", now=lambda: NOW)
        assert again.uploaded == len(lost) and again.pending == 0
        assert len(site.entries) == 156
        clean = audit_destination(outbox, client, "site", hours=24, now=NOW)
        assert clean.missing == 0
