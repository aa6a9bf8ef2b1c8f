"""`bridge doctor`: every check, each failing case, with fakes; and the command through CliRunner."""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import bridge.commands.doctor as doctor_command
from bridge.app import doctor
from bridge.app.doctor import CheckResult, exit_code_of, run_checks
from bridge.app.hostprobe import ClockSync, DirStatus, GroupStatus, PortAccess, UdevRule
from bridge.config import Destination, Settings
from bridge.dexcom import ReceiverClock
from bridge.dexcom.clock import DEXCOM_EPOCH
from bridge.errors import (
    ConfigError,
    NAKError,
    ReceiverBusyError,
    ReceiverError,
    ReceiverNotFoundError,
    ReceiverPermissionError,
    ReceiverTimeoutError,
    StoreError,
    UploadRejectedError,
    UploadUnavailableError,
)
from bridge.store import Outbox

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
PORT = "/dev/ttyACM0"
SITE = "https://ns.example.org"
ADMIN = {"canRead": True, "canWrite": True, "isAdmin": True, "message": "OK", "rolefound": "FOUND",
         "permissions": "ROLE"}
GOOD_RULE = UdevRule(Path("/etc/udev/rules.d/70-dexcom-bridge.rules"), ignores_modemmanager=True)
MB = 1024 * 1024


# --- fakes -------------------------------------------------------------------------------------


@dataclass
class FakeHost:
    """A HostProbe whose every answer is a field."""

    clock: ClockSync = field(default_factory=lambda: ClockSync(True, "timedatectl reports NTPSynchronized=yes"))
    rule: UdevRule | None = GOOD_RULE
    groups: dict[str, GroupStatus] = field(default_factory=lambda: {
        "dialout": GroupStatus("dialout", exists=True, active=True, listed=True)})
    ports: dict[str, PortAccess] = field(default_factory=lambda: {
        PORT: PortAccess(PORT, exists=True, readable=True, writable=True, group="dialout", mode=0o660)})
    modemmanager: bool = False
    free: int | None = 5_000 * MB
    writable: DirStatus | None = None

    def clock_synchronized(self) -> ClockSync:
        return self.clock

    def udev_rule(self) -> UdevRule | None:
        return self.rule

    def group(self, name: str) -> GroupStatus:
        return self.groups.get(name, GroupStatus(name, exists=False, active=False, listed=False))

    def port_access(self, path: str) -> PortAccess:
        return self.ports.get(path, PortAccess(path, exists=False, readable=False, writable=False))

    def modemmanager_running(self) -> bool:
        return self.modemmanager

    def disk_free_bytes(self, path: Path) -> int | None:
        return self.free

    def dir_writable(self, path: Path) -> DirStatus:
        return self.writable or DirStatus(True, True, f"{path} is writable")


class FakeReceiver:
    def __init__(self, skew_s: int = 2) -> None:
        self.skew_s = skew_s
        self.pinged = False

    def ping(self) -> None:
        self.pinged = True

    def read_clock(self) -> ReceiverClock:
        system = int((NOW - DEXCOM_EPOCH).total_seconds()) - self.skew_s
        return ReceiverClock(system_seconds=system, display_offset=-3600, host_utc=NOW)


def receiver_opener(receiver: FakeReceiver | None = None, error: Exception | None = None,
                    opened: list[str] | None = None) -> Callable[[str], Any]:
    @contextmanager
    def open_receiver(port: str) -> Iterator[FakeReceiver]:
        if opened is not None:
            opened.append(port)
        if error is not None:
            raise error
        yield receiver or FakeReceiver()
    return open_receiver


class FakeClient:
    def __init__(self, answer: dict[str, Any] | None = None, error: Exception | None = None) -> None:
        self.answer = ADMIN if answer is None else answer
        self.error = error
        self.closed = False

    def verify_auth(self) -> dict[str, Any]:
        if self.error is not None:
            raise self.error
        return self.answer

    def close(self) -> None:
        self.closed = True


def client_factory(*clients: FakeClient, error: Exception | None = None) -> Callable[[Destination, Settings], Any]:
    queue = list(clients)

    def make_client(destination: Destination, settings: Settings) -> FakeClient:
        if error is not None:
            raise error
        return queue.pop(0) if queue else FakeClient()
    return make_client


def raised_from(exc: Exception, cause: BaseException) -> Exception:
    """``exc`` as the client raises it: ``from`` an httpx error that was raised from ``cause``."""
    middle = RuntimeError("httpx.ConnectError stand-in")
    middle.__cause__ = cause
    exc.__cause__ = middle
    return exc


@dataclass
class FakeStore:
    stats_value: dict[str, Any]

    def __enter__(self) -> FakeStore:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def stats(self) -> dict[str, Any]:
        return self.stats_value


def make_settings(tmp_path: Path, **changes: Any) -> Settings:
    base = Settings(device="auto", state_dir=tmp_path / "state", destinations=(Destination(SITE, secret="s" * 16),))
    return replace(base, **changes)


def check(tmp_path: Path, *, host: FakeHost | None = None, settings: Settings | None = None,
          locate: Callable[[str], str] | None = None, **seams: Any) -> list[CheckResult]:
    seams.setdefault("open_receiver", receiver_opener())
    seams.setdefault("make_client", client_factory())
    seams.setdefault("open_store", lambda path: pytest.fail("no store should be opened"))
    return run_checks(settings or make_settings(tmp_path), host or FakeHost(),
                      locate=locate or (lambda device: PORT if device == "auto" else device),
                      now=lambda: NOW, **seams)


def by_name(results: list[CheckResult]) -> dict[str, CheckResult]:
    return {r.name: r for r in results}


def not_found(device: str) -> str:
    raise ReceiverNotFoundError("no Dexcom receiver found (USB 22a3:0047)",
                                hint="plug the receiver in with a data cable, or pass --device PATH")


# --- all good ----------------------------------------------------------------------------------


def test_all_checks_pass_in_order(tmp_path: Path) -> None:
    opened: list[str] = []
    results = check(tmp_path, open_receiver=receiver_opener(opened=opened))
    assert [r.name for r in results] == [
        "receiver found", "receiver readable", "ModemManager", "receiver answers", "host clock",
        "server reachable", "TLS certificate valid", "credentials accepted", "can upload entries",
        "state directory", "disk space",
    ]
    assert all(r.status == "ok" and not r.blocks_upload and r.fix is None for r in results), results
    assert opened == [PORT]
    assert exit_code_of(results) == 0
    assert by_name(results)["server reachable"].target == SITE
    assert "found by USB id 22a3:0047" in by_name(results)["receiver found"].detail


# --- receiver found ------------------------------------------------------------------------------


def test_receiver_not_found_fails_69_and_skips_the_receiver_dialogue(tmp_path: Path) -> None:
    opened: list[str] = []
    results = check(tmp_path, locate=not_found, open_receiver=receiver_opener(opened=opened))
    found = by_name(results)["receiver found"]
    assert found.status == "fail" and found.blocks_upload and found.exit_code == 69
    assert "data cable" in (found.fix or "") and "--device" in (found.fix or "")
    assert "receiver answers" not in by_name(results) and opened == []
    assert by_name(results)["receiver readable"].status == "ok"  # rule and group are ready
    assert exit_code_of(results) == 69


def test_explicit_device_that_does_not_exist(tmp_path: Path) -> None:
    results = check(tmp_path, settings=make_settings(tmp_path, device="/dev/ttyUSB7"))
    found = by_name(results)["receiver found"]
    assert found.status == "fail" and found.exit_code == 69 and "/dev/ttyUSB7 does not exist" in found.detail
    assert "--device /dev/ttyUSB7" in (found.fix or "") and "data cable" in (found.fix or "")


def test_pyserial_url_needs_no_node(tmp_path: Path) -> None:
    results = check(tmp_path, settings=make_settings(tmp_path, device="socket://127.0.0.1:9"))
    assert by_name(results)["receiver found"].status == "ok"
    assert by_name(results)["receiver readable"].status == "ok"
    assert by_name(results)["receiver answers"].status == "ok"


# --- receiver readable -----------------------------------------------------------------------------


def locked_port(group: str = "dialout", mode: int = 0o660) -> dict[str, PortAccess]:
    return {PORT: PortAccess(PORT, exists=True, readable=False, writable=False, group=group, mode=mode)}


def test_port_not_readable_and_user_not_in_dialout(tmp_path: Path) -> None:
    host = FakeHost(ports=locked_port(), groups={"dialout": GroupStatus("dialout", True, False, False)})
    results = check(tmp_path, host=host)
    readable = by_name(results)["receiver readable"]
    assert readable.status == "fail" and readable.exit_code == 77 and readable.blocks_upload
    assert "cannot be read" in readable.detail and "group dialout, mode 0660" in readable.detail
    assert "sudo usermod -aG dialout $USER" in (readable.fix or "") and "log out" in (readable.fix or "")
    assert "receiver answers" not in by_name(results)
    assert exit_code_of(results) == 77


def test_port_not_readable_added_to_dialout_after_login(tmp_path: Path) -> None:
    host = FakeHost(ports=locked_port(), groups={"dialout": GroupStatus("dialout", True, False, True)})
    readable = by_name(check(tmp_path, host=host))["receiver readable"]
    assert readable.status == "fail" and "log out and in again" in (readable.fix or "")
    assert "newgrp dialout" in (readable.fix or "") and "usermod" not in (readable.fix or "")


def test_port_owned_by_root_needs_the_udev_rule(tmp_path: Path) -> None:
    host = FakeHost(ports=locked_port(group="root", mode=0o600), rule=None)
    readable = by_name(check(tmp_path, host=host))["receiver readable"]
    assert readable.status == "fail" and readable.exit_code == 77
    fix = readable.fix or ""
    assert "sudo cp udev/70-dexcom-bridge.rules /etc/udev/rules.d/" in fix
    assert "sudo udevadm control --reload && sudo udevadm trigger" in fix


def test_port_in_group_but_mode_denies(tmp_path: Path) -> None:
    host = FakeHost(ports=locked_port(mode=0o600))
    readable = by_name(check(tmp_path, host=host))["receiver readable"]
    assert readable.status == "fail" and 'MODE="0660"' in (readable.fix or "")


def test_port_readable_but_not_writable(tmp_path: Path) -> None:
    host = FakeHost(ports={PORT: PortAccess(PORT, True, True, False, "dialout", 0o640)},
                    groups={"dialout": GroupStatus("dialout", True, False, False)})
    readable = by_name(check(tmp_path, host=host))["receiver readable"]
    assert readable.status == "fail" and "cannot be written" in readable.detail


def test_no_receiver_yet_but_rule_and_group_missing_warns(tmp_path: Path) -> None:
    host = FakeHost(rule=None, groups={"dialout": GroupStatus("dialout", True, False, False)})
    readable = by_name(check(tmp_path, host=host, locate=not_found))["receiver readable"]
    assert readable.status == "warn" and not readable.blocks_upload
    assert "no udev rule" in readable.detail and "not in the dialout group" in readable.detail
    assert "udevadm" in (readable.fix or "") and "usermod -aG dialout" in (readable.fix or "")


def test_no_receiver_yet_root_needs_no_group(tmp_path: Path) -> None:
    host = FakeHost(groups={"dialout": GroupStatus("dialout", True, False, False, superuser=True)})
    assert by_name(check(tmp_path, host=host, locate=not_found))["receiver readable"].status == "ok"


# --- ModemManager --------------------------------------------------------------------------------


def test_modemmanager_running_without_rule_warns_but_does_not_block(tmp_path: Path) -> None:
    host = FakeHost(modemmanager=True, rule=UdevRule(Path("/lib/udev/rules.d/99-old.rules"), False))
    results = check(tmp_path, host=host)
    mm = by_name(results)["ModemManager"]
    assert mm.status == "warn" and not mm.blocks_upload
    assert "ID_MM_DEVICE_IGNORE" in (mm.fix or "") and "sudo systemctl disable --now ModemManager" in (mm.fix or "")
    assert exit_code_of(results) == 0


def test_modemmanager_running_but_told_to_ignore(tmp_path: Path) -> None:
    mm = by_name(check(tmp_path, host=FakeHost(modemmanager=True)))["ModemManager"]
    assert mm.status == "ok" and "ID_MM_DEVICE_IGNORE" in mm.detail


# --- receiver answers ----------------------------------------------------------------------------


@pytest.mark.parametrize(("error", "code", "words"), [
    (ReceiverTimeoutError("no reply"), 74, "did not answer"),
    (ReceiverPermissionError(f"{PORT}: permission denied", hint="sudo usermod -aG dialout $USER"), 77, "permission"),
    (ReceiverNotFoundError(f"{PORT}: no such device"), 69, "no such device"),
    (NAKError("READ_SYSTEM_TIME refused", status=0x15), 74, "refused"),
    (ReceiverError(f"{PORT}: link vanished"), 74, "vanished"),
])
def test_receiver_that_does_not_answer(tmp_path: Path, error: Exception, code: int, words: str) -> None:
    answers = by_name(check(tmp_path, open_receiver=receiver_opener(error=error)))["receiver answers"]
    assert answers.status == "fail" and answers.exit_code == code and answers.blocks_upload
    assert words in answers.detail and answers.fix


def test_receiver_busy_with_the_daemon_is_only_a_warning(tmp_path: Path) -> None:
    busy = ReceiverBusyError(f"{PORT}: the receiver is in use by another process")
    results = check(tmp_path, open_receiver=receiver_opener(error=busy))
    answers = by_name(results)["receiver answers"]
    assert answers.status == "warn" and "bridge status" in (answers.fix or "")
    assert exit_code_of(results) == 0


def test_receiver_clock_far_from_host_warns(tmp_path: Path) -> None:
    receiver = FakeReceiver(skew_s=-600)
    results = check(tmp_path, open_receiver=receiver_opener(receiver))
    answers = by_name(results)["receiver answers"]
    assert receiver.pinged
    assert answers.status == "warn" and "10 min ahead of the host's" in answers.detail
    assert "still timed correctly through the clock anchor" in answers.detail
    assert exit_code_of(results) == 0


def test_receiver_clock_skew_blames_an_unsynchronised_host_too(tmp_path: Path) -> None:
    host = FakeHost(clock=ClockSync(False, "the host clock says 2000-01-01"))
    receiver = receiver_opener(FakeReceiver(skew_s=3 * 86400))
    answers = by_name(check(tmp_path, host=host, open_receiver=receiver))["receiver answers"]
    assert "3 days behind" in answers.detail and "not synchronised either" in answers.detail


def test_receiver_clock_close_to_host_is_ok(tmp_path: Path) -> None:
    answers = by_name(check(tmp_path, open_receiver=receiver_opener(FakeReceiver(skew_s=-4))))["receiver answers"]
    assert answers.status == "ok" and "-4 s" in answers.detail


# --- host clock ----------------------------------------------------------------------------------


def test_host_clock_not_synchronised_blocks_with_fix(tmp_path: Path) -> None:
    host = FakeHost(clock=ClockSync(False, "systemd-timesyncd is active but has not synchronised yet"))
    results = check(tmp_path, host=host)
    clock = by_name(results)["host clock"]
    assert clock.status == "fail" and clock.exit_code == 75 and clock.blocks_upload
    assert "systemd-timesyncd is active" in clock.detail
    assert "sudo timedatectl set-ntp true" in (clock.fix or "") and "--assume-clock-ok" in (clock.fix or "")
    assert exit_code_of(results) == 75


def test_host_clock_evidence_is_shown(tmp_path: Path) -> None:
    clock = by_name(check(tmp_path))["host clock"]
    assert clock.status == "ok" and clock.detail == "timedatectl reports NTPSynchronized=yes"


# --- destinations --------------------------------------------------------------------------------


def test_no_destination_is_a_configuration_failure(tmp_path: Path) -> None:
    results = check(tmp_path, settings=make_settings(tmp_path, destinations=()))
    configured = by_name(results)["Nightscout configured"]
    assert configured.status == "fail" and configured.exit_code == 78
    assert "--nightscout-url" in (configured.fix or "") and "API_SECRET" in (configured.fix or "")
    assert exit_code_of(results) == 78


def test_destination_without_secret_is_a_configuration_failure(tmp_path: Path) -> None:
    error = ConfigError(f"no API secret or token for {SITE}", hint="set API_SECRET in the environment")
    results = check(tmp_path, make_client=client_factory(error=error),
                    open_receiver=receiver_opener(error=ReceiverTimeoutError("slow")))
    configured = by_name(results)["Nightscout configured"]
    assert configured.status == "fail" and configured.target == SITE and configured.fix == error.hint
    assert "server reachable" not in by_name(results)
    assert exit_code_of(results) == 78  # configuration first, before the receiver's 74


def test_unknown_host_name(tmp_path: Path) -> None:
    error = raised_from(UploadUnavailableError(f"GET {SITE}/api/v1/verifyauth: ConnectError: Name or service not "
                                               "known"), socket.gaierror(-2, "Name or service not known"))
    client = FakeClient(error=error)
    results = check(tmp_path, make_client=client_factory(client))
    reachable = by_name(results)["server reachable"]
    assert reachable.status == "fail" and reachable.exit_code == 75
    assert "cannot resolve ns.example.org" in reachable.detail
    assert "DNS" in (reachable.fix or "") and "ping ns.example.org" in (reachable.fix or "")
    assert "credentials accepted" not in by_name(results) and client.closed
    assert exit_code_of(results) == 75


def test_connection_refused(tmp_path: Path) -> None:
    error = raised_from(UploadUnavailableError(f"GET {SITE}/api/v1/verifyauth: ConnectError: Connection refused"),
                        ConnectionRefusedError(111, "Connection refused"))
    reachable = by_name(check(tmp_path, make_client=client_factory(FakeClient(error=error))))["server reachable"]
    assert reachable.status == "fail" and reachable.exit_code == 75 and "Connection refused" in reachable.detail
    assert "opens in a browser" in (reachable.fix or "")


def test_server_error_status(tmp_path: Path) -> None:
    error = UploadUnavailableError(f"GET {SITE}/api/v1/verifyauth answered 503 Service Unavailable", status=503)
    reachable = by_name(check(tmp_path, make_client=client_factory(FakeClient(error=error))))["server reachable"]
    assert reachable.status == "fail" and reachable.exit_code == 75 and "503" in reachable.detail
    assert "down or overloaded" in (reachable.fix or "")


def test_redirect_is_a_configuration_failure(tmp_path: Path) -> None:
    error = UploadRejectedError("answered 301 redirect", status=301, hint="set the Nightscout URL to https://x.org")
    results = check(tmp_path, make_client=client_factory(FakeClient(error=error)))
    reachable = by_name(results)["server reachable"]
    assert reachable.status == "fail" and reachable.exit_code == 78 and reachable.fix == error.hint


def tls_error(message: str = "certificate verify failed: self-signed certificate") -> Exception:
    cause = ssl.SSLCertVerificationError(1, f"[SSL: CERTIFICATE_VERIFY_FAILED] {message}")
    cause.verify_message = "self-signed certificate"
    return raised_from(UploadUnavailableError(f"GET {SITE}/api/v1/verifyauth: ConnectError: {message}",
                                              hint="the site's certificate is not trusted"), cause)


def test_tls_certificate_not_trusted(tmp_path: Path) -> None:
    results = check(tmp_path, make_client=client_factory(FakeClient(error=tls_error())))
    names = by_name(results)
    assert names["server reachable"].status == "ok"
    tls = names["TLS certificate valid"]
    assert tls.status == "fail" and tls.exit_code == 75 and "self-signed certificate" in tls.detail
    assert "fix the site's certificate" in (tls.fix or "") and "ca_bundle" in (tls.fix or "")
    assert "credentials accepted" not in names


def test_tls_failure_with_a_ca_bundle_names_it(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, ca_bundle="/etc/ssl/my-ca.pem")
    tls = by_name(check(tmp_path, settings=settings,
                        make_client=client_factory(FakeClient(error=tls_error()))))["TLS certificate valid"]
    assert "ca_bundle /etc/ssl/my-ca.pem" in (tls.fix or "")


def test_tls_failure_with_a_wrong_host_clock_says_so(tmp_path: Path) -> None:
    host = FakeHost(clock=ClockSync(False, "the host clock says 2000-01-01"))
    tls = by_name(check(tmp_path, host=host,
                        make_client=client_factory(FakeClient(error=tls_error()))))["TLS certificate valid"]
    assert (tls.fix or "").startswith("first synchronise the host clock")


@pytest.mark.parametrize("status", [401, 403])
def test_credentials_refused_by_status(tmp_path: Path, status: int) -> None:
    error = UploadRejectedError(f"Nightscout refused the API secret (HTTP {status})", status=status,
                                hint="check that API_SECRET holds exactly the site's API_SECRET")
    results = check(tmp_path, make_client=client_factory(FakeClient(error=error)))
    names = by_name(results)
    assert names["server reachable"].status == "ok" and names["TLS certificate valid"].status == "ok"
    auth = names["credentials accepted"]
    assert auth.status == "fail" and auth.exit_code == 77 and auth.fix == error.hint
    assert exit_code_of(results) == 77


@pytest.mark.parametrize(("destination", "words"), [
    (Destination(SITE, secret="wrong-secret-1"), "API_SECRET"),
    (Destination(SITE, token="uploader-0123456789abcdef"), "token again"),
])
def test_credentials_unauthorized_per_verifyauth(tmp_path: Path, destination: Destination, words: str) -> None:
    answer = {"canRead": False, "canWrite": False, "isAdmin": False, "message": "UNAUTHORIZED",
              "rolefound": "NOTFOUND", "permissions": "DEFAULT"}
    results = check(tmp_path, settings=make_settings(tmp_path, destinations=(destination,)),
                    make_client=client_factory(FakeClient(answer)))
    auth = by_name(results)["credentials accepted"]
    assert auth.status == "fail" and auth.exit_code == 77 and "UNAUTHORIZED" in auth.detail
    assert words in (auth.fix or "")
    assert "can upload entries" not in by_name(results)


def test_read_only_token_cannot_upload(tmp_path: Path) -> None:
    answer = {"canRead": True, "canWrite": False, "isAdmin": False, "message": "OK", "rolefound": "FOUND",
              "permissions": "ROLE"}
    results = check(tmp_path, make_client=client_factory(FakeClient(answer)))
    names = by_name(results)
    assert names["credentials accepted"].status == "ok"
    role = names["can upload entries"]
    assert role.status == "fail" and role.exit_code == 77 and "may read but not write" in role.detail
    assert "api:entries:create" in (role.fix or "") and "admin" in (role.fix or "") and "API_SECRET" in (role.fix or "")
    assert exit_code_of(results) == 77


def test_token_found_but_role_cannot_read_or_write(tmp_path: Path) -> None:
    answer = {"canRead": False, "canWrite": False, "isAdmin": False, "message": "UNAUTHORIZED", "rolefound": "FOUND",
              "permissions": "ROLE"}
    names = by_name(check(tmp_path, make_client=client_factory(FakeClient(answer))))
    assert names["credentials accepted"].status == "ok" and "subject was found" in names["credentials accepted"].detail
    assert names["can upload entries"].status == "fail"


def test_unexpected_verifyauth_answer_warns(tmp_path: Path) -> None:
    results = check(tmp_path, make_client=client_factory(FakeClient({"message": 200})))
    auth = by_name(results)["credentials accepted"]
    assert auth.status == "warn" and "bridge sync" in (auth.fix or "")
    assert exit_code_of(results) == 0


@pytest.mark.parametrize(("url", "status"), [("http://127.0.0.1:1337", "ok"), ("http://ns.lan", "warn")])
def test_plain_http(tmp_path: Path, url: str, status: str) -> None:
    settings = make_settings(tmp_path, destinations=(Destination(url, secret="s" * 16),), allow_insecure_http=True)
    tls = by_name(check(tmp_path, settings=settings))["TLS certificate valid"]
    assert tls.status == status and tls.target == url


def test_every_destination_is_checked_and_clients_closed(tmp_path: Path) -> None:
    second = "https://backup.example.org"
    settings = make_settings(tmp_path, destinations=(Destination(SITE, secret="s" * 16),
                                                     Destination(second, secret="t" * 16)))
    good = FakeClient()
    bad = FakeClient(error=UploadUnavailableError("timed out"))
    results = check(tmp_path, settings=settings, make_client=client_factory(good, bad))
    reachable = [r for r in results if r.name == "server reachable"]
    assert [(r.target, r.status) for r in reachable] == [(SITE, "ok"), (second, "fail")]
    assert good.closed and bad.closed


# --- state directory and backlog -----------------------------------------------------------------


def test_state_directory_not_writable(tmp_path: Path) -> None:
    host = FakeHost(writable=DirStatus(False, False, "/var/lib/dexcom-bridge does not exist and /var/lib is not "
                                                     "writable"))
    results = check(tmp_path, host=host)
    state = by_name(results)["state directory"]
    assert state.status == "fail" and state.exit_code == 77 and "/var/lib is not writable" in state.detail
    assert "sudo install -d -m 0700" in (state.fix or "") and "--state-dir" in (state.fix or "")


def test_state_directory_without_outbox(tmp_path: Path) -> None:
    state = by_name(check(tmp_path))["state directory"]
    assert state.status == "ok" and "no outbox yet" in state.detail


def stats(pending: int, oldest: datetime | None) -> dict[str, Any]:
    return {"records": {"egv": 10, "meter": 2}, "destinations": {SITE: {
        "pending": pending, "sent": 12 - pending, "oldest_pending": oldest, "last_sent_at": None,
        "last_error": None, "last_error_at": None}}}


def with_store(tmp_path: Path) -> Settings:
    settings = make_settings(tmp_path)
    settings.state_dir.mkdir()
    settings.store_path.write_bytes(b"")
    return settings


def test_backlog_reported(tmp_path: Path) -> None:
    settings = with_store(tmp_path)
    state = by_name(check(tmp_path, settings=settings,
                          open_store=lambda path: FakeStore(stats(2, NOW - timedelta(minutes=6)))))["state directory"]
    assert state.status == "ok"
    assert "outbox holds 12 records" in state.detail and f"{SITE} 2 pending (oldest from 6 min ago)" in state.detail


def test_old_backlog_warns(tmp_path: Path) -> None:
    settings = with_store(tmp_path)
    results = check(tmp_path, settings=settings,
                    open_store=lambda path: FakeStore(stats(40, NOW - timedelta(hours=3))))
    state = by_name(results)["state directory"]
    assert state.status == "warn" and "3 h ago" in state.detail and SITE in (state.fix or "")
    assert exit_code_of(results) == 0


def test_destination_not_yet_in_the_store(tmp_path: Path) -> None:
    settings = with_store(tmp_path)
    empty = {"records": {}, "destinations": {}}
    state = by_name(check(tmp_path, settings=settings, open_store=lambda path: FakeStore(empty)))["state directory"]
    assert state.status == "ok" and "not registered yet" in state.detail


def test_damaged_store_fails(tmp_path: Path) -> None:
    settings = with_store(tmp_path)

    def broken(path: Path) -> FakeStore:
        raise StoreError(f"store {path}: file is not a database", hint="move it aside")
    state = by_name(check(tmp_path, settings=settings, open_store=broken))["state directory"]
    assert state.status == "fail" and state.exit_code == 74 and state.fix == "move it aside"


def test_backlog_from_a_real_outbox(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    with Outbox.open(settings.store_path) as outbox:
        outbox.add_destination(SITE)
    results = run_checks(settings, FakeHost(), open_receiver=receiver_opener(), make_client=client_factory(),
                         locate=lambda device: PORT, now=lambda: NOW)
    state = by_name(results)["state directory"]
    assert state.status == "ok" and f"{SITE} 0 pending" in state.detail


# --- disk ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("free", "status", "code"), [
    (5 * MB, "fail", 74), (50 * MB, "warn", 0), (500 * MB, "ok", 0), (None, "warn", 0),
])
def test_disk_space(tmp_path: Path, free: int | None, status: str, code: int) -> None:
    results = check(tmp_path, host=FakeHost(free=free))
    disk = by_name(results)["disk space"]
    assert disk.status == status and exit_code_of(results) == code
    if status != "ok":
        assert disk.fix or free is None
    if free is not None:
        assert f"{free / MB:.1f} MB free" in disk.detail


# --- exit codes ------------------------------------------------------------------------------------


def result(code: int, *, blocks: bool = True) -> CheckResult:
    return CheckResult("x", "fail" if blocks else "warn", "d", blocks_upload=blocks, exit_code=code)


@pytest.mark.parametrize(("codes", "expected"), [
    ([], 0), ([75, 77], 77), ([69, 78, 75], 78), ([75, 69], 69), ([75, 74], 74), ([75], 75), ([70], 70),
])
def test_exit_code_priority(codes: list[int], expected: int) -> None:
    assert exit_code_of([result(c) for c in codes] + [result(0, blocks=False)]) == expected


# --- the real default seams, on loopback ------------------------------------------------------------


def test_doctor_client_fails_fast_on_a_closed_port(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, destinations=(Destination("http://127.0.0.1:1", secret="s" * 16),))
    results = doctor.check_destinations(settings, doctor.doctor_client)
    assert results[0].name == "server reachable" and results[0].status == "fail" and results[0].exit_code == 75


def test_doctor_client_needs_credentials(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        doctor.doctor_client(Destination(SITE), make_settings(tmp_path))


def test_doctor_client_tells_a_self_signed_certificate(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True, timeout=30)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(10)

    def serve_one() -> None:
        try:
            conn, _ = server.accept()
            with context.wrap_socket(conn, server_side=True):
                pass
        except OSError:  # the client hangs up during the handshake
            pass
    thread = threading.Thread(target=serve_one, daemon=True)
    thread.start()
    url = f"https://127.0.0.1:{server.getsockname()[1]}"
    try:
        settings = make_settings(tmp_path, destinations=(Destination(url, secret="s" * 16),))
        results = doctor.check_destinations(settings, doctor.doctor_client)
    finally:
        thread.join(10)
        server.close()
    assert [(r.name, r.status) for r in results] == [("server reachable", "ok"), ("TLS certificate valid", "fail")]
    assert "self-signed" in results[1].detail


# --- the command -------------------------------------------------------------------------------------


@pytest.fixture
def fake_checks(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, Any]:
    """Run the real checks with fakes; remember the settings the command built."""
    seen: dict[str, Any] = {"host": FakeHost(), "client": FakeClient()}

    def fake_run_checks(settings: Settings, host: Any) -> list[CheckResult]:
        seen["settings"] = settings
        seen["real_host"] = host
        return run_checks(settings, seen["host"], open_receiver=receiver_opener(),
                          make_client=client_factory(seen["client"]), locate=lambda device: PORT, now=lambda: NOW)
    monkeypatch.setattr(doctor_command, "run_checks", fake_run_checks)
    return seen


def invoke(tmp_path: Path, *args: str) -> Any:
    config = tmp_path / "config.toml"
    config.write_text("")
    env = {"API_SECRET": "s" * 16, "NIGHTSCOUT_URL": None, "BRIDGE_NIGHTSCOUT_URL": None, "NS_URL": None,
           "BRIDGE_DEVICE": None, "BRIDGE_STATE_DIR": None, "BRIDGE_API_SECRET": None, "NIGHTSCOUT_TOKEN": None,
           "BRIDGE_NIGHTSCOUT_TOKEN": None, "CREDENTIALS_DIRECTORY": None}
    return CliRunner().invoke(doctor_command.doctor, ["--config", str(config), *args], env=env)


def test_command_plain_text_when_piped(tmp_path: Path, fake_checks: dict[str, Any]) -> None:
    fake_checks["host"] = FakeHost(modemmanager=True, rule=None)
    fake_checks["client"] = FakeClient({**ADMIN, "canWrite": False, "isAdmin": False})
    result = invoke(tmp_path, "--nightscout-url", SITE, "--nightscout-url", "https://b.example",
                    "--device", "/dev/dexcom", "--state-dir", str(tmp_path / "s"))
    assert result.exit_code == 77, result.output
    lines = result.output.splitlines()
    assert lines[0] == "ok   receiver found: /dev/ttyACM0"
    assert any(line.startswith("warn ModemManager: running") for line in lines)
    assert any(line.startswith(f"FAIL can upload entries ({SITE}): ") for line in lines)
    fix = lines.index(next(line for line in lines if line.startswith("warn ModemManager"))) + 1
    assert lines[fix].startswith("    fix: install the udev rule")
    assert lines[-1] == "1 problem blocks uploads (exit 77)."
    assert "✓" not in result.output and "✗" not in result.output
    settings: Settings = fake_checks["settings"]
    assert settings.device == "/dev/dexcom" and settings.state_dir == tmp_path / "s"
    assert [d.url for d in settings.destinations] == [SITE, "https://b.example"]
    assert type(fake_checks["real_host"]).__name__ == "SystemHost"


def test_command_json(tmp_path: Path, fake_checks: dict[str, Any]) -> None:
    fake_checks["host"] = FakeHost(modemmanager=True, rule=None)
    result = invoke(tmp_path, "--nightscout-url", SITE, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["ok"] is True and report["exit_code"] == 0
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["ModemManager"]["status"] == "warn" and checks["ModemManager"]["fix"]
    assert checks["server reachable"]["target"] == SITE
    assert set(checks["disk space"]) == {"name", "status", "detail", "fix", "blocks_upload", "exit_code", "target"}


def test_command_nothing_blocks(tmp_path: Path, fake_checks: dict[str, Any]) -> None:
    result = invoke(tmp_path, "--nightscout-url", SITE)
    assert result.exit_code == 0 and result.output.splitlines()[-1] == "Nothing blocks uploads."


def test_command_symbols_on_a_terminal(tmp_path: Path, fake_checks: dict[str, Any],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(doctor_command, "_fancy", lambda: True)
    fake_checks["host"] = FakeHost(free=1 * MB, modemmanager=True, rule=None)
    result = invoke(tmp_path, "--nightscout-url", SITE)
    assert result.exit_code == 74
    assert "✓ receiver found" in result.output and "! ModemManager" in result.output
    assert "✗ disk space" in result.output


def test_command_configuration_error(tmp_path: Path, fake_checks: dict[str, Any]) -> None:
    result = CliRunner().invoke(doctor_command.doctor, ["--config", str(tmp_path / "missing.toml"), "--json"])
    assert result.exit_code == 78
    report = json.loads(result.output)
    assert [c["name"] for c in report["checks"]] == ["configuration"]
    assert "does not exist" in report["checks"][0]["detail"] and "settings" not in fake_checks


def test_command_with_the_real_host_and_no_site(tmp_path: Path) -> None:
    """The default seams end to end, with nothing to reach: a missing port and no Nightscout."""
    config = tmp_path / "config.toml"
    config.write_text("")
    env = {"NIGHTSCOUT_URL": None, "BRIDGE_NIGHTSCOUT_URL": None, "NS_URL": None}
    result = CliRunner().invoke(doctor_command.doctor, ["--config", str(config), "--device", "/dev/ttyACM-none",
                                                        "--state-dir", str(tmp_path / "state")], env=env)
    assert result.exit_code == 78, result.output
    assert "FAIL receiver found: /dev/ttyACM-none does not exist" in result.output
    assert "FAIL Nightscout configured: no Nightscout site configured" in result.output
    assert "host clock:" in result.output and "disk space:" in result.output


def test_command_help_has_an_example() -> None:
    result = CliRunner().invoke(doctor_command.doctor, ["--help"])
    assert result.exit_code == 0
    assert "Example" in result.output and "bridge doctor" in result.output and "--json" in result.output
