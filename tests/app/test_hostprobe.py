"""SystemHost: every probe against a fake root and a fake command runner, plus a smoke test."""

from __future__ import annotations

import grp
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bridge.app.hostprobe import (
    TIME_SYNC_UNITS,
    TIMESYNC_FLAG,
    ClockSync,
    CommandResult,
    HostProbe,
    SystemHost,
    run_command,
)

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
TIMEDATECTL = ("timedatectl", "show", "-p", "NTPSynchronized", "-p", "NTP")
UNITS = ("systemctl", "is-active", *TIME_SYNC_UNITS)
NO_SYSTEMD = CommandResult(1, "")  # what systemctl prints on stdout without systemd as init


class FakeRunner:
    """Answers commands from a table; a command not in it is missing (None)."""

    def __init__(self, answers: dict[tuple[str, ...], CommandResult | None] | None = None) -> None:
        self.answers = answers or {}
        self.calls: list[tuple[str, ...]] = []

    def __call__(self, argv: Sequence[str]) -> CommandResult | None:
        self.calls.append(tuple(argv))
        return self.answers.get(tuple(argv))


def units(*active: str) -> CommandResult:
    """`systemctl is-active` output: one state line per unit."""
    lines = ["active" if unit in active else "inactive" for unit in TIME_SYNC_UNITS]
    return CommandResult(0 if active else 3, "\n".join(lines))


def host(tmp_path: Path, answers: dict[tuple[str, ...], CommandResult | None] | None = None,
         now: datetime = NOW) -> SystemHost:
    return SystemHost(root=tmp_path, run=FakeRunner(answers), now=lambda: now)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# --- clock -------------------------------------------------------------------------------


def test_clock_before_2024_is_not_synchronised_whatever_else_says(tmp_path: Path) -> None:
    write(tmp_path / TIMESYNC_FLAG, "")
    result = host(tmp_path, now=datetime(2000, 1, 1, tzinfo=UTC)).clock_synchronized()
    assert result == ClockSync(False, result.evidence)
    assert "2000-01-01" in result.evidence and "2024" in result.evidence


def test_clock_timesyncd_flag_file_means_synchronised(tmp_path: Path) -> None:
    write(tmp_path / TIMESYNC_FLAG, "")
    answers = {TIMEDATECTL: CommandResult(0, "NTP=yes\nNTPSynchronized=no")}
    result = host(tmp_path, answers).clock_synchronized()
    assert result.ok and "synchronized" in result.evidence


def test_clock_timedatectl_synchronised(tmp_path: Path) -> None:
    answers = {TIMEDATECTL: CommandResult(0, "NTP=yes\nNTPSynchronized=yes"), UNITS: units("chrony")}
    result = host(tmp_path, answers).clock_synchronized()
    assert result.ok and "NTPSynchronized=yes" in result.evidence


def test_clock_active_service_without_sync_is_not_synchronised(tmp_path: Path) -> None:
    answers = {TIMEDATECTL: CommandResult(0, "NTP=yes\nNTPSynchronized=no"), UNITS: units("systemd-timesyncd")}
    result = host(tmp_path, answers).clock_synchronized()
    assert not result.ok
    assert "systemd-timesyncd is active" in result.evidence and "NTPSynchronized=no" in result.evidence


def test_clock_ntp_enabled_but_unit_unknown_is_not_synchronised(tmp_path: Path) -> None:
    answers = {TIMEDATECTL: CommandResult(0, "NTP=yes\nNTPSynchronized=no")}
    result = host(tmp_path, answers).clock_synchronized()
    assert not result.ok and "time-sync service is active" in result.evidence


def test_clock_chrony_active_but_unsynchronised_is_not_synchronised(tmp_path: Path) -> None:
    answers = {TIMEDATECTL: CommandResult(0, "NTP=no\nNTPSynchronized=no"), UNITS: units("chrony")}
    result = host(tmp_path, answers).clock_synchronized()
    assert not result.ok and "chrony" in result.evidence


def test_clock_no_service_active_counts_as_synchronised(tmp_path: Path) -> None:
    answers = {TIMEDATECTL: CommandResult(0, "NTP=no\nNTPSynchronized=no"), UNITS: units()}
    result = host(tmp_path, answers).clock_synchronized()
    assert result.ok and "no time-sync service is active" in result.evidence


def test_clock_timesyncd_active_without_flag_and_without_timedatectl(tmp_path: Path) -> None:
    answers = {UNITS: units("systemd-timesyncd")}
    result = host(tmp_path, answers).clock_synchronized()
    assert not result.ok and "has not synchronised yet" in result.evidence


def test_clock_other_service_without_timedatectl_is_no_evidence(tmp_path: Path) -> None:
    result = host(tmp_path, {UNITS: units("ntpd")}).clock_synchronized()
    assert result.ok and "ntpd" in result.evidence


@pytest.mark.parametrize("answers", [
    {},  # neither tool installed
    {TIMEDATECTL: CommandResult(1, ""), UNITS: NO_SYSTEMD},  # a container: both fail without systemd
])
def test_clock_without_any_service_counts_as_synchronised(tmp_path: Path, answers: dict) -> None:
    result = host(tmp_path, answers).clock_synchronized()
    assert result.ok and "counted as synchronised" in result.evidence


# --- udev --------------------------------------------------------------------------------

RULE = ('ACTION=="add|change", SUBSYSTEM=="tty", ATTRS{idVendor}=="22a3", ATTRS{idProduct}=="0047", '
        'ENV{ID_MM_DEVICE_IGNORE}="1", GROUP="dialout", MODE="0660", SYMLINK+="dexcom"\n')


def test_udev_rule_found_in_etc_with_modemmanager_ignore(tmp_path: Path) -> None:
    path = write(tmp_path / "etc/udev/rules.d/70-dexcom-bridge.rules", RULE)
    write(tmp_path / "lib/udev/rules.d/50-udev-default.rules", 'KERNEL=="ttyACM*", GROUP="dialout"\n')
    rule = host(tmp_path).udev_rule()
    assert rule is not None and rule.path == path and rule.ignores_modemmanager


@pytest.mark.parametrize("folder", ["usr/lib/udev/rules.d", "lib/udev/rules.d"])
def test_udev_rule_found_in_package_folders(tmp_path: Path, folder: str) -> None:
    path = write(tmp_path / folder / "99-dexcom.rules", 'ATTRS{idVendor}=="22A3", MODE="0666"\n')
    rule = host(tmp_path).udev_rule()
    assert rule is not None and rule.path == path and not rule.ignores_modemmanager


def test_udev_rule_overridden_in_etc_by_a_file_without_the_id(tmp_path: Path) -> None:
    write(tmp_path / "usr/lib/udev/rules.d/70-dexcom-bridge.rules", RULE)
    write(tmp_path / "etc/udev/rules.d/70-dexcom-bridge.rules", "# disabled by the admin\n")
    assert host(tmp_path).udev_rule() is None


def test_udev_rule_missing(tmp_path: Path) -> None:
    write(tmp_path / "lib/udev/rules.d/60-serial.rules", 'SUBSYSTEM=="tty", IMPORT{builtin}="path_id"\n')
    write(tmp_path / "etc/udev/rules.d/notes.txt", "22a3 but not a rules file")
    assert host(tmp_path).udev_rule() is None


# --- groups and ports ----------------------------------------------------------------------


def test_group_of_this_process_is_active() -> None:
    name = grp.getgrgid(os.getegid()).gr_name
    status = SystemHost().group(name)
    assert status.exists and status.active and status.listed
    assert status.superuser == (os.geteuid() == 0)


def test_group_that_does_not_exist() -> None:
    status = SystemHost().group("no-such-group-for-doctor")
    assert not status.exists and not status.active and not status.listed


def test_port_access_of_missing_node() -> None:
    access = SystemHost().port_access("/dev/ttyACM-no-such-port")
    assert not access.exists and not access.usable and access.group is None


def test_port_access_of_readable_node() -> None:
    access = SystemHost().port_access("/dev/null")
    assert access.exists and access.readable and access.writable and access.usable
    assert access.group is not None and access.mode is not None


def test_port_access_without_permission(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    node = write(tmp_path / "ttyACM0", "")
    node.chmod(0o000)
    if os.geteuid() == 0:  # root may open anything: deny as the kernel would for a normal user
        monkeypatch.setattr("bridge.app.hostprobe.os.access", lambda *_: False)
    access = SystemHost().port_access(str(node))
    assert access.exists and not access.readable and not access.writable and access.mode == 0


# --- ModemManager ----------------------------------------------------------------------------


def test_modemmanager_found_in_proc(tmp_path: Path) -> None:
    write(tmp_path / "proc/1/comm", "systemd\n")
    write(tmp_path / "proc/412/comm", "ModemManager\n")
    assert host(tmp_path).modemmanager_running()


def test_modemmanager_active_per_systemd_when_proc_hides_it(tmp_path: Path) -> None:
    write(tmp_path / "proc/1/comm", "systemd\n")
    answers = {("systemctl", "is-active", "ModemManager"): CommandResult(0, "active")}
    assert host(tmp_path, answers).modemmanager_running()


@pytest.mark.parametrize("answer", [None, CommandResult(3, "inactive"), NO_SYSTEMD])
def test_modemmanager_not_running(tmp_path: Path, answer: CommandResult | None) -> None:
    write(tmp_path / "proc/1/comm", "init\n")
    write(tmp_path / "proc/self/comm", "ModemManager\n")  # not a pid: ignored
    assert not host(tmp_path, {("systemctl", "is-active", "ModemManager"): answer}).modemmanager_running()


# --- disk and state directory ---------------------------------------------------------------


def test_disk_free_of_existing_and_future_folders(tmp_path: Path) -> None:
    probe = SystemHost()
    free = probe.disk_free_bytes(tmp_path)
    assert isinstance(free, int) and free > 0
    assert probe.disk_free_bytes(tmp_path / "not" / "yet") is not None


def test_dir_writable_existing(tmp_path: Path) -> None:
    status = SystemHost().dir_writable(tmp_path)
    assert status.ok and status.exists
    assert list(tmp_path.iterdir()) == []  # the probe file is gone


def test_dir_writable_missing_but_creatable(tmp_path: Path) -> None:
    status = SystemHost().dir_writable(tmp_path / "state" / "dexcom-bridge")
    assert status.ok and not status.exists and "will be created" in status.detail
    assert not (tmp_path / "state").exists()  # nothing created


def test_dir_writable_refuses_a_file(tmp_path: Path) -> None:
    path = write(tmp_path / "outbox", "")
    status = SystemHost().dir_writable(path)
    assert not status.ok and "not a directory" in status.detail


def test_dir_writable_under_a_file_cannot_be_created(tmp_path: Path) -> None:
    path = write(tmp_path / "plain-file", "")
    status = SystemHost().dir_writable(path / "state")
    assert not status.ok and not status.exists


def test_dir_writable_read_only_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "state"
    folder.mkdir()
    folder.chmod(0o500)
    if os.geteuid() == 0:  # root may write anywhere: fail the create as the kernel would for a normal user
        def refuse(*_: object, **__: object) -> None:
            raise PermissionError(13, "Permission denied")

        monkeypatch.setattr("bridge.app.hostprobe.tempfile.NamedTemporaryFile", refuse)
    try:
        status = SystemHost().dir_writable(folder)
    finally:
        folder.chmod(0o700)
    assert not status.ok and status.exists


# --- commands and the real host ---------------------------------------------------------------


def test_run_command_success_missing_and_timeout() -> None:
    assert run_command(["sh", "-c", "echo NTP=yes"]) == CommandResult(0, "NTP=yes")
    assert run_command(["no-such-tool-for-doctor"]) is None
    assert run_command(["sleep", "5"], timeout_s=0.1) is None


def test_system_host_smoke_on_this_machine() -> None:
    probe: HostProbe = SystemHost()
    clock = probe.clock_synchronized()
    assert isinstance(clock.ok, bool) and clock.evidence
    if not Path("/run/systemd/system").exists() and datetime.now(UTC).year >= 2024:
        assert clock.ok, clock.evidence  # no systemd as init (a container, CI): no evidence against it
    probe.udev_rule()
    assert probe.group("dialout").name == "dialout"
    assert isinstance(probe.modemmanager_running(), bool)
    assert probe.disk_free_bytes(Path.cwd()) is not None
    assert probe.dir_writable(Path.cwd()).exists
    assert not probe.port_access("/dev/ttyACM-no-such-port").exists
