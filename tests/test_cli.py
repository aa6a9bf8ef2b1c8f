"""`bridge info` and `bridge dump` as a user runs them, against an emulated receiver."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

import bridge.cli
from bridge.cli import cli
from bridge.dexcom.pages import decode_page
from bridge.dexcom.receiver import Receiver
from bridge.emulator import ReceiverEmulator

from tests.dexcom.fakes import FakeLink


@pytest.fixture(scope="module")
def receiver_path(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, ReceiverEmulator]]:
    link = tmp_path_factory.mktemp("rx") / "dexcom"
    emulator = ReceiverEmulator(days=2, seed=11, latency=False, link_path=link, interval_s=3600,
                                clock_offset_s=-5 * 3600)
    with emulator:
        yield str(link), emulator


def invoke(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def test_cli_info_identifies_the_receiver(receiver_path) -> None:
    path, emulator = receiver_path
    result = invoke("info", "--device", path, "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["serial_number"] == emulator.serial
    assert info["transmitter_id"] == emulator.transmitter_id
    assert abs(info["clock_skew_seconds"] - 5 * 3600) <= 2  # reported, not refused
    assert info["record_counts"]["EGV_DATA"] == len(emulator.records["egv"])
    text = invoke("info", "--device", path).output
    assert "system clock is 5.0 h behind the host" in text and emulator.serial in text


def test_cli_dump_json_has_the_documented_fields(receiver_path) -> None:
    path, emulator = receiver_path
    result = invoke("dump", "--type", "egv", "--last", "5", env={"BRIDGE_DEVICE": path})
    assert result.exit_code == 0
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert [r["system_seconds"] for r in rows] == [r.system_seconds for r in emulator.records["egv"][-5:]]
    assert set(rows[0]) == {"type", "system_seconds", "display_seconds", "utc", "glucose", "display_only",
                            "special", "trend", "direction", "noise"}
    # utc through the anchor: the receiver runs 5 h slow, the record's UTC is the host's
    newest = datetime.fromisoformat(rows[-1]["utc"].replace("Z", "+00:00"))
    assert abs(newest - datetime.now(UTC)) < timedelta(minutes=6)


def test_cli_dump_since_and_csv(receiver_path) -> None:
    path, emulator = receiver_path
    since = datetime.now(UTC) - timedelta(hours=2)
    result = invoke("dump", "--device", path, "--type", "meter", "--format", "csv",
                    "--since", since.isoformat())
    assert result.exit_code == 0
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert all(datetime.fromisoformat(r["utc"].replace("Z", "+00:00")) > since for r in rows)
    cal = invoke("dump", "--device", path, "--type", "cal", "--format", "csv", "--last", "1")
    (row,) = list(csv.DictReader(io.StringIO(cal.output)))
    assert json.loads(row["subrecords"]) == [
        {"entered_seconds": s.entered_seconds, "meter_glucose": s.meter_glucose, "sensor_raw": s.sensor_raw,
         "applied_seconds": s.applied_seconds, "unknown": s.unknown}
        for s in emulator.records["cal"][-1].subrecords
    ]


def test_cli_dump_exits_74_after_printing_what_it_could_read(monkeypatch: pytest.MonkeyPatch) -> None:
    link = FakeLink()
    link.damaged_records.add((1470, 3))  # a record that fails its CRC on every read

    @contextmanager
    def fake_open(device: str, **_: object) -> Iterator[Receiver]:
        yield Receiver(link, monotonic=link.monotonic)  # type: ignore[arg-type]

    monkeypatch.setattr(bridge.cli, "open_receiver", fake_open)
    result = CliRunner().invoke(cli, ["dump", "--type", "egv"])
    assert result.exit_code == 74
    printed = [line for line in result.stdout.splitlines() if line.startswith("{")]
    held = sum(len(decode_page(page).records) for page in link.pages[4].values())
    assert len(printed) == held - 1  # every record of the 8 real pages but the damaged one
    assert "1 page(s) could not be read whole" in result.stderr and "[1470]" in result.stderr


def test_cli_missing_device_exits_69_with_a_hint(tmp_path: Path) -> None:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "bridge", "dump", "--type", "egv", "--device",
                           str(tmp_path / "ttyACM7")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 69
    assert "Hint:" in done.stderr and "no such device" in done.stderr
