"""`bridge emulate` -> `bridge sync` -> `bridge server`: every reading once, a second sync sends nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from nsserver import SECRET, Server, get_json

from bridge.emulator import ReceiverEmulator
from bridge.records import SPECIAL_GLUCOSE_MAX


@pytest.fixture
def nightscout(tmp_path: Path):
    server = Server(tmp_path)
    yield server
    server.stop()


def _sync(link: Path, state: Path, url: str, secret: str = SECRET) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BRIDGE_DEVICE": str(link), "BRIDGE_STATE_DIR": str(state),
           "NIGHTSCOUT_URL": url, "API_SECRET": secret}
    env.pop("BRIDGE_API_SECRET", None)
    return subprocess.run([sys.executable, "-m", "bridge", "sync"], capture_output=True, text=True, env=env,
                          timeout=300)


def _expected_sgv(emulator: ReceiverEmulator) -> list[int]:
    return [r.glucose for r in emulator.records["egv"] if not r.display_only and r.glucose != 0]


@pytest.mark.timeout(300)
def test_sync_uploads_every_reading_once_and_a_second_sync_nothing(nightscout: Server, tmp_path: Path) -> None:
    with ReceiverEmulator(days=3, seed=5, latency=False, link_path=tmp_path / "dexcom", interval_s=3600,
                          clock_offset_s=-7200) as emulator:
        first = _sync(tmp_path / "dexcom", tmp_path / "state", nightscout.base)
        assert first.returncode == 0, first.stderr
        assert "up to date" in first.stdout
        second = _sync(tmp_path / "dexcom", tmp_path / "state", nightscout.base)
        assert second.returncode == 0, second.stderr
        assert "uploaded 0" in second.stdout
        expected = _expected_sgv(emulator)
        meters = len(emulator.records["meter"])
    entries = get_json(nightscout.base, "/api/v1/entries/sgv.json",
                       {"count": "100000", "find[date][$gte]": "0"})
    entries.sort(key=lambda e: e["date"])
    assert [e["sgv"] for e in entries] == expected  # each reading once, in order, no extras
    assert len({e["date"] for e in entries}) == len(entries)
    assert all("direction" not in e for e in entries if e["sgv"] <= SPECIAL_GLUCOSE_MAX)
    assert all(e["device"].startswith("dexcom-bridge://") for e in entries)
    mbg = get_json(nightscout.base, "/api/v1/entries/mbg.json", {"count": "1000", "find[date][$gte]": "0"})
    assert len(mbg) == meters


def test_sync_with_a_wrong_secret_exits_77_and_keeps_the_data(nightscout: Server, tmp_path: Path) -> None:
    with ReceiverEmulator(days=0.2, seed=6, latency=False, link_path=tmp_path / "dexcom", interval_s=3600):
        refused = _sync(tmp_path / "dexcom", tmp_path / "state", nightscout.base, secret="not-the-secret-at-all")
        assert refused.returncode == 77, refused.stderr
        assert "refused" in refused.stderr and "not-the-secret-at-all" not in refused.stderr + refused.stdout
        fixed = _sync(tmp_path / "dexcom", tmp_path / "state", nightscout.base)
    assert fixed.returncode == 0, fixed.stderr
    assert "uploaded 0" not in fixed.stdout  # what was kept queued goes up now
