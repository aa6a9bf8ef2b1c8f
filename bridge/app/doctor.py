"""`bridge doctor`: a pre-flight that checks what uploads need and says how to fix each problem.

Layer: app. Never prints and never exits: :func:`run_checks` returns :class:`CheckResult` s
and :func:`exit_code_of` the sysexits code they add up to. Imports no pyserial and no httpx:
the host is reached through :class:`~bridge.app.hostprobe.HostProbe`, the receiver through
``open_receiver``, Nightscout through ``make_client`` and the outbox through ``open_store``;
all four are parameters, so every failing case is testable without hardware or network.

How a TLS or DNS failure is told from another connection failure: the client raises
:class:`~bridge.errors.UploadUnavailableError` ``from`` the httpx error, whose own cause
chain ends in the standard library's :class:`ssl.SSLError` or :class:`socket.gaierror`;
:func:`_cause` walks that chain.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

from bridge.app.hostprobe import ClockSync, HostProbe
from bridge.app.session import open_receiver as _session_open_receiver
from bridge.app.sync import make_client as _sync_make_client
from bridge.config import Destination, Settings
from bridge.dexcom import ReceiverClock, resolve_device
from bridge.errors import (
    EX_CONFIG,
    EX_IOERR,
    EX_NOPERM,
    EX_OK,
    EX_SOFTWARE,
    EX_TEMPFAIL,
    EX_UNAVAILABLE,
    BridgeError,
    ConfigError,
    ReceiverBusyError,
    ReceiverError,
    ReceiverNotFoundError,
    ReceiverPermissionError,
    ReceiverTimeoutError,
    StoreError,
    UploadError,
    UploadRejectedError,
)
from bridge.nightscout import NO_RETRY
from bridge.nightscout.client import NightscoutClient
from bridge.store import Outbox, StoreStats

__all__ = [
    "BACKLOG_WARN_AGE",
    "CLOCK_SKEW_WARN_S",
    "DISK_FAIL_BYTES",
    "DISK_WARN_BYTES",
    "EXIT_PRIORITY",
    "CheckResult",
    "CheckStatus",
    "config_failure",
    "doctor_client",
    "exit_code_of",
    "run_checks",
]

CheckStatus = Literal["ok", "warn", "fail"]

CLOCK_SKEW_WARN_S = 300  # receiver vs host clock difference worth a warning (5 minutes)
DISK_WARN_BYTES = 100 * 1024 * 1024  # warn below 100 MB free
DISK_FAIL_BYTES = 10 * 1024 * 1024  # fail below 10 MB free: the outbox cannot grow
BACKLOG_WARN_AGE = timedelta(minutes=30)  # a pending record older than this: uploads are behind
DOCTOR_CONNECT_TIMEOUT_S = 5.0  # a pre-flight answers quickly or says "unreachable"
DOCTOR_READ_TIMEOUT_S = 15.0
#: Which blocking problem names the exit code when there are several: fix configuration first.
EXIT_PRIORITY = (EX_CONFIG, EX_NOPERM, EX_UNAVAILABLE, EX_IOERR, EX_TEMPFAIL)

RULE_FILE = "udev/70-dexcom-bridge.rules"
INSTALL_RULE = (
    f"sudo cp {RULE_FILE} /etc/udev/rules.d/ && sudo udevadm control --reload && sudo udevadm trigger"
)
PLUG_IN = (
    "plug the receiver in with a data cable (some USB cables only charge), switch it on and wait for its "
    "screen, then run doctor again"
)
RECEIVER_FIX = f"{PLUG_IN}; or pass --device PATH (or set BRIDGE_DEVICE)"


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One line of the doctor's report.

    Attributes:
        name: what was checked (``receiver found``, ``server reachable``, ...).
        status: ``ok``, ``warn`` (worth fixing, uploads still work) or ``fail``.
        detail: what was found.
        fix: what to do about it (exact commands where there are some), or None.
        blocks_upload: this problem stops readings reaching Nightscout.
        exit_code: the sysexits code this problem stands for when it blocks.
        target: the Nightscout site a destination check is about, else None.
    """

    name: str
    status: CheckStatus
    detail: str
    fix: str | None = None
    blocks_upload: bool = False
    exit_code: int = EX_OK
    target: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view (``bridge doctor --json``)."""
        return asdict(self)


def _ok(name: str, detail: str, *, target: str | None = None) -> CheckResult:
    return CheckResult(name, "ok", detail, target=target)


def _warn(name: str, detail: str, fix: str | None = None, *, target: str | None = None) -> CheckResult:
    return CheckResult(name, "warn", detail, fix, target=target)


def _fail(name: str, detail: str, fix: str | None, exit_code: int, *, target: str | None = None) -> CheckResult:
    return CheckResult(name, "fail", detail, fix, blocks_upload=True, exit_code=exit_code, target=target)


def exit_code_of(results: Sequence[CheckResult]) -> int:
    """The sysexits code for a report: 0 unless a problem blocks uploads.

    78 (configuration) before 77 (permission or credentials) before 69 (no receiver) before
    74 (receiver or disk I/O) before 75 (server unreachable, clock not synchronised).
    Warnings never change it.
    """
    codes = {r.exit_code or EX_SOFTWARE for r in results if r.blocks_upload}
    return next((code for code in EXIT_PRIORITY if code in codes), max(codes, default=EX_OK))


def config_failure(exc: ConfigError) -> CheckResult:
    """The report's one line when the settings themselves cannot be loaded."""
    return _fail("configuration", str(exc), exc.hint, EX_CONFIG)


# --- seams -------------------------------------------------------------------------------


class ReceiverProbe(Protocol):
    """What the doctor asks of a receiver (:class:`bridge.dexcom.Receiver` is one)."""

    def ping(self) -> None: ...
    def read_clock(self) -> ReceiverClock: ...


class AuthProbe(Protocol):
    """What the doctor asks of a Nightscout client (:class:`NightscoutClient` is one)."""

    def verify_auth(self) -> dict[str, Any]: ...
    def close(self) -> None: ...


class BacklogSource(Protocol):
    """What the doctor asks of the outbox (:class:`bridge.store.Outbox` is one)."""

    def stats(self) -> StoreStats: ...


OpenReceiver = Callable[[str], AbstractContextManager[ReceiverProbe]]
MakeClient = Callable[[Destination, Settings], AuthProbe]
OpenStore = Callable[[Path], AbstractContextManager[BacklogSource]]


@contextmanager
def _open_receiver(port: str) -> Iterator[ReceiverProbe]:
    """The real receiver, failing at once on an unplug instead of waiting for it."""
    with _session_open_receiver(port, reconnect_wait_s=0.0) as receiver:
        yield receiver


def doctor_client(destination: Destination, settings: Settings) -> NightscoutClient:
    """A client like `bridge sync`'s, but with no in-call retries and a short timeout.

    Raises:
        ConfigError: no secret or token, or a bad or insecure URL (as ``make_client``).
    """
    return _sync_make_client(destination, settings, retry=NO_RETRY, connect_timeout_s=DOCTOR_CONNECT_TIMEOUT_S,
                             read_timeout_s=DOCTOR_READ_TIMEOUT_S)


def _open_store(path: Path) -> AbstractContextManager[BacklogSource]:
    return Outbox.open(path)


def _utc_now() -> datetime:
    return datetime.now(UTC)


# --- the checks ---------------------------------------------------------------------------


def run_checks(
    settings: Settings,
    host: HostProbe,
    *,
    open_receiver: OpenReceiver = _open_receiver,
    make_client: MakeClient = doctor_client,
    open_store: OpenStore = _open_store,
    locate: Callable[[str], str] = resolve_device,
    now: Callable[[], datetime] = _utc_now,
) -> list[CheckResult]:
    """Run every check in order; a check that depends on a failed one is left out.

    Args:
        settings: what to check.
        host: the host probes.
        open_receiver: opens the receiver at a port (a context manager).
        make_client: a Nightscout client for one destination.
        open_store: opens the outbox at a path (only called when the file exists).
        locate: turns ``--device`` into a port path (``auto`` searches USB).
        now: UTC now, for the backlog's age.

    Returns:
        The results, in the order they are shown.
    """
    results: list[CheckResult] = []
    port, found = check_receiver_found(settings.device, host, locate)
    results.append(found)
    readable = check_receiver_readable(port, host)
    results.append(readable)
    results.append(check_modemmanager(host))
    clock = host.clock_synchronized()
    if port is not None and readable.status != "fail":
        results.append(_guard("receiver answers", lambda: check_receiver_answers(port, open_receiver, clock)))
    results.append(check_host_clock(clock))
    results.extend(check_destinations(settings, make_client, clock))
    results.append(_guard("state directory", lambda: check_state_dir(settings, host, open_store, now)))
    results.append(check_disk(settings.state_dir, host))
    return results


def _guard(name: str, check: Callable[[], CheckResult]) -> CheckResult:
    """Run a check; a BridgeError it did not expect still becomes a failed line, not a crash."""
    try:
        return check()
    except BridgeError as exc:
        return _fail(name, str(exc), exc.hint, exc.exit_code)


def check_receiver_found(device: str, host: HostProbe, locate: Callable[[str], str]) -> tuple[str | None, CheckResult]:
    """Find the receiver's port; returns it (None when missing) and the result."""
    name = "receiver found"
    try:
        port = locate(device)
    except ReceiverNotFoundError as exc:
        return None, _fail(name, str(exc), exc.hint or RECEIVER_FIX, EX_UNAVAILABLE)
    if "://" in port:
        return port, _ok(name, f"{port} (a pyserial URL, not a device node)")
    if not host.port_access(port).exists:
        fix = RECEIVER_FIX if device == "auto" else (
            f"check --device {device} (or BRIDGE_DEVICE) and {PLUG_IN}; --device auto searches USB for 22a3:0047"
        )
        return None, _fail(name, f"{port} does not exist", fix, EX_UNAVAILABLE)
    how = " (found by USB id 22a3:0047)" if device == "auto" else ""
    return port, _ok(name, f"{port}{how}")


def check_receiver_readable(port: str | None, host: HostProbe) -> CheckResult:
    """Permissions on the port; without a port, whether the udev rule and dialout are ready."""
    name = "receiver readable"
    rule = host.udev_rule()
    dialout = host.group("dialout")
    if port is not None and "://" in port:
        return _ok(name, f"{port} is not a device node: no permissions to check")
    if port is None:
        missing = []
        fixes = []
        if rule is None:
            missing.append("no udev rule for the receiver (22a3) is installed")
            fixes.append(f"install the udev rule: {INSTALL_RULE}")
        if dialout.exists and not dialout.active and not dialout.superuser:
            missing.append("you are not in the dialout group")
            fixes.append(_group_fix(dialout.name, listed=dialout.listed))
        if not missing:
            groups = "; this user is in dialout" if dialout.active else ""
            return _ok(name, f"no receiver to open yet; the udev rule {rule.path if rule else ''} is "
                       f"installed{groups}")
        return _warn(name, "no receiver to open yet, but " + " and ".join(missing), "; ".join(fixes))
    access = host.port_access(port)
    node = f"group {access.group}, mode {access.mode:04o}" if access.mode is not None else f"group {access.group}"
    if access.usable:
        return _ok(name, f"{port} can be read and written ({node})")
    what = "read" if not access.readable else "written"
    fixes = []
    owner = host.group(access.group) if access.group and access.group != "root" else None
    if owner is not None and owner.exists and not owner.active:
        fixes.append(_group_fix(owner.name, listed=owner.listed))
    if rule is None or owner is None:
        fixes.append(f"install the udev rule (group dialout, mode 0660), then replug the receiver: {INSTALL_RULE}")
    if not fixes:
        fixes.append(f"the node's mode lets the group no access: check {rule.path if rule else RULE_FILE} "
                     'sets MODE="0660" and replug the receiver')
    return _fail(name, f"{port} cannot be {what} by this user ({node})", "; ".join(fixes), EX_NOPERM)


def _group_fix(group: str, *, listed: bool) -> str:
    if listed:
        return f"you were added to {group} after logging in: log out and in again (or run `newgrp {group}`)"
    return f"sudo usermod -aG {group} $USER, then log out and in again"


def check_modemmanager(host: HostProbe) -> CheckResult:
    """ModemManager probes new ttyACM ports with AT commands unless a rule tells it not to."""
    name = "ModemManager"
    if not host.modemmanager_running():
        return _ok(name, "not running")
    rule = host.udev_rule()
    if rule is not None and rule.ignores_modemmanager:
        return _ok(name, f"running, but {rule.path} tells it to ignore the receiver (ID_MM_DEVICE_IGNORE)")
    return _warn(
        name,
        "running, and no udev rule tells it to ignore the receiver: it may probe the port with AT commands "
        "and garble or block the bridge's replies",
        f"install the udev rule, which sets ID_MM_DEVICE_IGNORE=1: {INSTALL_RULE}; or, if this machine needs no "
        "modem: sudo systemctl disable --now ModemManager",
    )


def check_receiver_answers(port: str, open_receiver: OpenReceiver, clock: ClockSync) -> CheckResult:
    """PING and read the clocks; report the receiver's clock against the host's."""
    name = "receiver answers"
    busy = "make sure no other program uses the port (`bridge run`, another uploader, ModemManager)"
    try:
        with open_receiver(port) as receiver:
            receiver.ping()
            reading = receiver.read_clock()
    except ReceiverPermissionError as exc:
        return _fail(name, str(exc), exc.hint, EX_NOPERM)
    except ReceiverNotFoundError as exc:
        return _fail(name, str(exc), exc.hint or RECEIVER_FIX, EX_UNAVAILABLE)
    except ReceiverBusyError as exc:
        return _warn(name, f"{exc}: not opened, so not checked (the daemon reading it is fine)",
                     "`bridge status` shows what the daemon reads; stop it first to check the receiver here")
    except ReceiverTimeoutError as exc:
        return _fail(name, f"{port} did not answer in time ({exc})",
                     f"unplug the receiver and plug it in again; {busy}", EX_IOERR)
    except ReceiverError as exc:
        return _fail(name, str(exc), exc.hint or f"unplug the receiver and plug it in again; {busy}", exc.exit_code)
    skew = reading.skew_s
    if abs(skew) <= CLOCK_SKEW_WARN_S:
        return _ok(name, f"PING and clock read; its clock is {skew:+d} s from the host's")
    side = "behind" if skew > 0 else "ahead of"
    detail = (f"PING and clock read; its clock is {_duration(abs(skew))} {side} the host's. Readings are still "
              "timed correctly through the clock anchor")
    if not clock.ok:
        detail += "; the host clock is not synchronised either, so part of the difference may be the host's"
    return _warn(name, detail)


def check_host_clock(clock: ClockSync) -> CheckResult:
    """The host clock must be synchronised before readings get UTC times and are uploaded."""
    name = "host clock"
    if clock.ok:
        return _ok(name, clock.evidence)
    return _fail(
        name,
        f"not synchronised: {clock.evidence}. `bridge run` keeps reading and storing, but uploads nothing until "
        "it is",
        "sudo timedatectl set-ntp true, and check the network; if the clock is known to be right, "
        "`bridge run --assume-clock-ok` skips this check",
        EX_TEMPFAIL,
    )


def check_destinations(
    settings: Settings, make_client: MakeClient, clock: ClockSync | None = None
) -> list[CheckResult]:
    """Reachable, TLS, credentials and role, for every configured Nightscout site."""
    if not settings.destinations:
        return [_fail(
            "Nightscout configured", "no Nightscout site configured",
            "pass --nightscout-url https://your-site (or set NIGHTSCOUT_URL), and the site's API secret in "
            "API_SECRET or --secret-file", EX_CONFIG,
        )]
    results: list[CheckResult] = []
    for destination in settings.destinations:
        results.extend(check_destination(destination, settings, make_client, clock))
    return results


def check_destination(
    destination: Destination, settings: Settings, make_client: MakeClient, clock: ClockSync | None = None
) -> list[CheckResult]:
    """One site: reachable, TLS valid, credentials accepted, role can create entries."""
    site = destination.name
    try:
        client = make_client(destination, settings)
    except ConfigError as exc:
        return [_fail("Nightscout configured", str(exc), exc.hint, EX_CONFIG, target=site)]
    try:
        answer = client.verify_auth()
    except UploadError as exc:
        return _upload_failure(exc, destination, settings, clock)
    finally:
        client.close()
    return [_ok("server reachable", "verifyauth answered", target=site), _tls_result(destination, settings),
            *_auth_results(answer, destination)]


def _upload_failure(
    exc: UploadError, destination: Destination, settings: Settings, clock: ClockSync | None
) -> list[CheckResult]:
    site = destination.name
    host = urlsplit(site).hostname or site
    if isinstance(exc, UploadRejectedError):
        if exc.status in (401, 403):
            fix = exc.hint or _credentials_fix(destination)
            return [_ok("server reachable", f"answered HTTP {exc.status}", target=site),
                    _tls_result(destination, settings),
                    _fail("credentials accepted", str(exc), fix, EX_NOPERM, target=site)]
        return [_fail("server reachable", str(exc), exc.hint or "check the Nightscout URL: open it in a browser",
                      EX_CONFIG, target=site)]
    tls = _cause(exc, ssl.SSLError)
    if tls is not None:
        reason = getattr(tls, "verify_message", None) or getattr(tls, "reason", None) or str(tls)
        fix = ("fix the site's certificate (renew it; it must name this host and carry its whole chain)"
               + (f", or check that ca_bundle {settings.ca_bundle} holds the CA that signed it" if settings.ca_bundle
                  else ", or for a self-hosted CA set ca_bundle = \"/path/to/ca.pem\" in the config file "
                  "(or BRIDGE_CA_BUNDLE)"))
        if clock is not None and not clock.ok:
            fix = ("first synchronise the host clock (see host clock): a wrong date alone makes every certificate "
                   "look invalid; then " + fix)
        return [_ok("server reachable", "a TLS handshake started", target=site),
                _fail("TLS certificate valid", f"the certificate of {host} is not accepted: {reason}", fix,
                      EX_TEMPFAIL, target=site)]
    if _cause(exc, socket.gaierror) is not None:
        return [_fail("server reachable", f"cannot resolve {host}: {exc}",
                      f"check the spelling of {site} and this machine's network and DNS (try: ping {host})",
                      EX_TEMPFAIL, target=site)]
    if exc.status is not None:
        return [_fail("server reachable", str(exc), exc.hint or "the site is down or overloaded: check its hosting, "
                      "then run doctor again", EX_TEMPFAIL, target=site)]
    return [_fail("server reachable", str(exc), exc.hint or f"check the network and that {site} opens in a browser",
                  EX_TEMPFAIL, target=site)]


def _cause(exc: BaseException, kind: type[BaseException]) -> BaseException | None:
    """The first exception of ``kind`` in the cause/context chain of ``exc``."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, kind):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _tls_result(destination: Destination, settings: Settings) -> CheckResult:
    site = destination.name
    parts = urlsplit(site)
    if parts.scheme == "https":
        via = f" (CA bundle {settings.ca_bundle})" if settings.ca_bundle else ""
        return _ok("TLS certificate valid", f"certificate verified{via}", target=site)
    if _is_loopback(parts.hostname or ""):
        return _ok("TLS certificate valid", "plain http to this machine: nothing leaves it", target=site)
    return _warn("TLS certificate valid", "plain http: the secret and the readings travel unencrypted",
                 "use the site's https:// address", target=site)


def _is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _credentials_fix(destination: Destination) -> str:
    if destination.token:
        return "copy the access token again from Nightscout's Admin Tools (tokens are per site)"
    return ("check that API_SECRET (or the secret file) holds exactly the site's API_SECRET "
            "(Nightscout secrets have at least 12 characters)")


def _auth_results(answer: dict[str, Any], destination: Destination) -> list[CheckResult]:
    """Read verifyauth's answer: were the credentials accepted, and may they create entries?"""
    site = destination.name
    message = answer.get("message")
    found = answer.get("rolefound") == "FOUND"
    if message == "OK":
        auth = _ok("credentials accepted", "verifyauth: OK" + (" (admin)" if answer.get("isAdmin") else ""),
                   target=site)
    elif message == "UNAUTHORIZED" and found:
        auth = _ok("credentials accepted", "verifyauth: the token's subject was found, but its role cannot read "
                   "everything", target=site)
    elif message == "UNAUTHORIZED":
        what = "access token" if destination.token else "API secret"
        return [_fail("credentials accepted", f"Nightscout did not accept the {what} (verifyauth: UNAUTHORIZED)",
                      _credentials_fix(destination), EX_NOPERM, target=site)]
    else:
        return [_warn("credentials accepted", f"unexpected verifyauth answer {message!r}: this server may not be "
                      "Nightscout, or too old to say", "run `bridge sync` once to see whether uploads are accepted",
                      target=site)]
    if answer.get("canWrite") is True:
        role = _ok("can upload entries", "the credentials may create entries"
                   + (" (admin)" if answer.get("isAdmin") else ""), target=site)
    else:
        reads = "may read but not" if answer.get("canRead") else "may not"
        role = _fail(
            "can upload entries", f"the credentials {reads} write (verifyauth canWrite=false)",
            "use the site's API_SECRET, or a token whose role includes api:entries:create, e.g. admin (no other "
            "default role grants it; Admin Tools > Subjects). verifyauth only reports *:*:write, so a custom role "
            "with just api:entries:create also shows false here: `bridge sync` tells for sure",
            EX_NOPERM, target=site,
        )
    return [auth, role]


def check_state_dir(settings: Settings, host: HostProbe, open_store: OpenStore,
                    now: Callable[[], datetime]) -> CheckResult:
    """The state directory must take new files; the outbox's backlog, when there is one."""
    name = "state directory"
    folder = settings.state_dir
    writable = host.dir_writable(folder)
    if not writable.ok:
        return _fail(name, writable.detail,
                     f"create it for this user: sudo install -d -m 0700 -o \"$USER\" {folder}; or pass --state-dir "
                     "(or set BRIDGE_STATE_DIR) to a writable place. Under systemd, StateDirectory= makes it",
                     EX_NOPERM)
    if not settings.store_path.exists():
        return _ok(name, f"{writable.detail}; no outbox yet (the first sync creates it)")
    try:
        with open_store(settings.store_path) as store:
            stats = store.stats()
    except StoreError as exc:
        return _fail(name, str(exc), exc.hint, exc.exit_code)
    parts = []
    behind = []
    for destination in settings.destinations:
        info = stats["destinations"].get(destination.name)
        if info is None:
            parts.append(f"{destination.name} not registered yet (its history is queued on the first sync)")
            continue
        pending, oldest = info["pending"], info["oldest_pending"]
        age = f" (oldest from {_duration(int((now() - oldest).total_seconds()))} ago)" if oldest else ""
        parts.append(f"{destination.name} {pending} pending{age}")
        if pending and oldest is not None and now() - oldest > BACKLOG_WARN_AGE:
            behind.append(destination.name)
    records = sum(stats["records"].values())
    detail = f"{writable.detail}; outbox holds {records} records" + (f"; backlog: {', '.join(parts)}" if parts else "")
    if behind:
        return _warn(name, detail, f"uploads to {', '.join(behind)} are behind: fix the server checks above, then "
                     "`bridge sync` (or the running daemon) sends them, oldest first")
    return _ok(name, detail)


def check_disk(folder: Path, host: HostProbe) -> CheckResult:
    """Free space where the outbox lives."""
    name = "disk space"
    free = host.disk_free_bytes(folder)
    if free is None:
        return _warn(name, f"could not measure the free space for {folder}")
    detail = f"{_size(free)} free for {folder}"
    fix = ("free some space (sudo journalctl --vacuum-size=50M, old files), or move --state-dir to a bigger disk")
    if free < DISK_FAIL_BYTES:
        return _fail(name, detail, fix, EX_IOERR)
    if free < DISK_WARN_BYTES:
        return _warn(name, detail, fix)
    return _ok(name, detail)


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} bytes"
    value = float(n)
    for unit in ("KB", "MB", "GB"):
        value /= 1024
        if value < 1024 or unit == "GB":
            break
    return f"{value:.1f} {unit}"


def _duration(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 2 * 3600:
        return f"{seconds // 60} min"
    if seconds < 2 * 86400:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} days"
