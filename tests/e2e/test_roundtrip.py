"""`bridge emulate --days 30` read back with `bridge dump`: exactly the emulator's records.

Both run as real processes (`python -m bridge`) talking over a pseudo-terminal, with every
fault kind switched on, for CalSet revision 2 and revision 3, and a receiver clock far from
the host's.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bridge.dexcom import DUMP_KINDS

FAULTS = "crc=0.02,header=0.01,record=0.01,truncate=0.01,slow=0.01,nak=0.01,unplug=0.003"
CLOCK_OFFSET_S = -3 * 86400 - 1234  # the receiver's system clock is 3 days behind UTC


def _bridge(*args: str, **kwargs: object) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "bridge", *args], text=True, **kwargs)  # type: ignore[call-overload]


@pytest.fixture(params=[2, 3], ids=["calset-rev2", "calset-rev3"])
def emulated(request: pytest.FixtureRequest, tmp_path: Path):
    link, truth = tmp_path / "dexcom", tmp_path / "truth.json"
    proc = _bridge(
        "emulate", "--days", "30", "--interval", "3600", "--calset-rev", str(request.param),
        "--faults", FAULTS, "--seed", str(40 + request.param), "--truth", str(truth),
        "--link", str(link), "--clock-offset", str(CLOCK_OFFSET_S), "--no-latency",
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 30
    while not (link.exists() and truth.exists()):
        assert proc.poll() is None, proc.stderr.read()  # type: ignore[union-attr]
        assert time.monotonic() < deadline, "emulator did not come up"
        time.sleep(0.05)
    yield link, json.loads(truth.read_text())
    proc.send_signal(signal.SIGTERM)
    proc.wait(10)
    assert not link.exists(), "the emulator removes its link on SIGTERM"


@pytest.mark.timeout(600)
def test_dump_reads_back_exactly_what_the_emulator_holds(emulated) -> None:
    link, truth = emulated
    env = {**os.environ, "BRIDGE_DEVICE": str(link)}
    for kind in DUMP_KINDS:
        done = subprocess.run(
            [sys.executable, "-m", "bridge", "dump", "--type", kind],
            capture_output=True, text=True, env=env, timeout=300,
        )
        assert done.returncode == 0, f"{kind}: exit {done.returncode}\n{done.stderr[-2000:]}"
        rows = [json.loads(line) for line in done.stdout.splitlines()]
        expected = truth["records"][kind]
        assert len(rows) == len(expected), kind
        for row in rows:
            assert row.pop("utc").endswith("Z")
        assert rows == expected, kind
    assert len(truth["records"]["egv"]) > 8000  # 30 days at 5 minutes
