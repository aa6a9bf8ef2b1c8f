"""``emulate`` as a process: prints the port, answers on the link, cleans up on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import serial
from click.testing import CliRunner

from bridge.emulator.cli import emulate

ROOT = Path(__file__).resolve().parents[2]


def test_emulate_serves_until_sigterm_then_removes_the_link(tmp_path) -> None:
    link, truth = tmp_path / "dexcom", tmp_path / "truth.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.Popen(
        [sys.executable, "-c", "from bridge.emulator.cli import emulate; emulate()",
         "--days", "1", "--no-latency", "--seed", "4", "--link", str(link), "--truth", str(truth),
         "--serial", "SM87654321", "--calset-rev", "3", "--clock-offset", "-600", "--interval", "1",
         "--faults", "crc=0.01"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        deadline = time.monotonic() + 15
        while not link.is_symlink():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        port = serial.serial_for_url(str(link), timeout=1)
        port.write(bytes.fromhex("0106000a5e65"))
        reply = port.read(6)
        port.close()
        assert reply in (bytes.fromhex("0106000135d4"), bytes.fromhex("0106000135d4")[:-1] + b"\x2b")  # or crc fault
        assert json.loads(truth.read_text())["meta"]["serial"] == "SM87654321"
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("pty: /dev/pts/") and lines[1] == f"link: {link}"
    assert "SM87654321" in lines[2]
    assert not link.exists() and not link.is_symlink()


def test_emulate_rejects_a_bad_fault_spec() -> None:
    result = CliRunner().invoke(emulate, ["--faults", "boom=1"])
    assert result.exit_code == 2
    assert "boom" in result.output
