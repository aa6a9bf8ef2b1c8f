"""The files a Pi install copies: the udev rule and the systemd unit.

`systemd-analyze verify` checks the unit as systemd would load it, on a copy whose ExecStart
points at this environment's `bridge` (verify insists the command exists); the installed
unit itself must run the venv the README's Raspberry Pi section creates.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from bridge.config import CREDENTIAL_NAME
from bridge.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "systemd" / "dexcom-bridge.service"
RULE = ROOT / "udev" / "70-dexcom-bridge.rules"
INSTALLED_EXEC_START = "/opt/dexcom-bridge/venv/bin/bridge run"


def unit_directives(text: str) -> dict[str, dict[str, list[str]]]:
    """``{section: {key: [values...]}}``; systemd allows a key more than once (Environment=)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if match := re.fullmatch(r"\[(\w+)\]", line):
            current = sections.setdefault(match.group(1), {})
            continue
        assert current is not None, f"directive outside a section: {line}"
        key, sep, value = line.partition("=")
        assert sep, f"not a directive: {line}"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def the(section: dict[str, list[str]], key: str) -> str:
    values = section.get(key, [])
    assert len(values) == 1, f"{key}= should be set exactly once, found {values}"
    return values[0]


def this_bridge() -> Path:
    """The `bridge` console script of the environment running the tests."""
    beside = Path(sys.executable).parent / "bridge"
    found = beside if beside.is_file() else Path(shutil.which("bridge") or beside)
    assert found.is_file(), f"no `bridge` script next to {sys.executable} or on PATH: install the package"
    return found


def verify(unit_text: str, tmp_path: Path) -> tuple[int, list[str]]:
    """Run systemd-analyze verify on a unit file named as installed; return its code and its lines about the unit.

    verify reports parse errors (an unknown Type=, bad rights in DeviceAllow=) as warnings and
    still exits 0, so its lines about our unit are the real verdict. Lines about other units
    (the host's own targets) are the environment's, not ours.
    """
    path = tmp_path / "dexcom-bridge.service"
    path.write_text(unit_text)
    done = subprocess.run(["systemd-analyze", "verify", "--man=no", str(path)], capture_output=True, text=True,
                          timeout=60, env={"PATH": "/usr/bin:/bin", "SYSTEMD_LOG_COLOR": "0", "LC_ALL": "C"})
    lines = [line for line in (done.stdout + done.stderr).splitlines() if "dexcom-bridge" in line]
    return done.returncode, lines


def test_unit_passes_systemd_analyze_verify_with_this_environments_bridge(tmp_path: Path) -> None:
    text = UNIT.read_text()
    local = re.sub(r"(?m)^ExecStart=.*$", f"ExecStart={this_bridge()} run", text)
    assert local != text
    code, complaints = verify(local, tmp_path)
    assert code == 0 and complaints == [], complaints


def test_verify_would_catch_a_broken_unit(tmp_path: Path) -> None:
    local = re.sub(r"(?m)^ExecStart=.*$", f"ExecStart={this_bridge()} run", UNIT.read_text())
    _, complaints = verify(local.replace("Type=notify", "Type=notfy"), tmp_path)
    assert any("Type" in line or "service type" in line for line in complaints), complaints
    code, complaints = verify(re.sub(r"(?m)^ExecStart=.*$", "ExecStart=/nonexistent/bridge run", local), tmp_path)
    assert code != 0 or complaints


def test_installed_unit_runs_the_pi_venv_under_systemd_supervision() -> None:
    service = unit_directives(UNIT.read_text())["Service"]
    assert the(service, "ExecStart") == INSTALLED_EXEC_START
    assert the(service, "Type") == "notify"  # READY=1 after the first look at the receiver
    assert the(service, "NotifyAccess") == "main"
    assert int(the(service, "WatchdogSec")) > 0  # the loop pings at half of it
    assert the(service, "Restart") == "on-failure"  # exit 70 after a receiver that keeps failing: restart
    assert the(service, "RestartPreventExitStatus") == str(ConfigError.exit_code) == "78"  # a config error: don't loop


def test_installed_unit_is_least_privilege_but_can_reach_the_receiver() -> None:
    service = unit_directives(UNIT.read_text())["Service"]
    assert the(service, "DynamicUser") == "yes"
    assert "dialout" in the(service, "SupplementaryGroups").split()  # the udev rule's group
    assert the(service, "StateDirectory") == "dexcom-bridge"
    assert the(service, "ConfigurationDirectory") == "dexcom-bridge"
    assert "BRIDGE_STATE_DIR=/var/lib/dexcom-bridge" in service.get("Environment", [])  # = StateDirectory
    name, _, source = the(service, "LoadCredential").partition(":")
    assert name == CREDENTIAL_NAME and source == f"/etc/dexcom-bridge/{CREDENTIAL_NAME}"  # what config reads
    assert any(v.split()[0] == "char-ttyACM" for v in service.get("DeviceAllow", []))
    assert the(service, "DevicePolicy") == "closed"
    assert "PrivateDevices" not in service  # it would hide /dev/ttyACM*
    assert "AF_UNIX" in the(service, "RestrictAddressFamilies").split()  # the sd_notify socket


def _rule_lines(text: str) -> list[str]:
    joined = re.sub(r"\\\n\s*", " ", text)
    return [line.strip() for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_udev_rule_gives_the_receiver_to_dialout_a_stable_name_and_keeps_modemmanager_off() -> None:
    lines = _rule_lines(RULE.read_text())
    assert len(lines) == 1, lines
    tokens = set(re.findall(r'[A-Z_]+(?:\{[A-Za-z_]+\})?[=!+:]?=+"[^"]*"', lines[0]))
    for token in ('SUBSYSTEM=="tty"', 'ATTRS{idVendor}=="22a3"', 'ATTRS{idProduct}=="0047"', 'GROUP="dialout"',
                  'MODE="0660"', 'ENV{ID_MM_DEVICE_IGNORE}="1"', 'SYMLINK+="dexcom"'):
        assert token in tokens, f"{token} missing from {lines[0]}"
    assert 'MODE="0666"' not in tokens and "RUN" not in lines[0]
