"""Every probe of the host behind one seam: clock sync, udev, groups, ModemManager, disk.

Layer: app. Imports the standard library only (never pyserial, httpx, the store or the
receiver code). `bridge doctor` and the daemon take a :class:`HostProbe`; :class:`SystemHost`
is the real one, and tests pass fakes (the Protocol needs no inheritance), so every failing
case can be tested on any machine.

No probe raises: a missing tool, a timeout or an unreadable file is "no evidence", and each
answer says what it was based on. External commands run with a short timeout
(:data:`COMMAND_TIMEOUT_S`) and ``LC_ALL=C``.

The clock rule (issue 5): "not synchronised" needs evidence, either a time-sync service that
is active but reports no sync (``timedatectl``'s ``NTPSynchronized=no`` while ``NTP=yes``, or
systemd-timesyncd active without ``/run/systemd/timesync/synchronized``), or a year before
:data:`MIN_PLAUSIBLE_YEAR`. A machine without such a service (a container, CI) counts as
synchronised.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

__all__ = [
    "COMMAND_TIMEOUT_S",
    "DEXCOM_USB_ID",
    "MIN_PLAUSIBLE_YEAR",
    "TIMESYNC_FLAG",
    "TIME_SYNC_UNITS",
    "UDEV_RULE_DIRS",
    "ClockSync",
    "CommandResult",
    "DirStatus",
    "GroupStatus",
    "HostProbe",
    "PortAccess",
    "SystemHost",
    "UdevRule",
    "run_command",
]

COMMAND_TIMEOUT_S = 3.0  # per external command (timedatectl, systemctl): a hung bus is "no evidence"
MIN_PLAUSIBLE_YEAR = 2024  # a host clock before this has not been set (the Pi has no RTC)
TIMESYNC_FLAG = "run/systemd/timesync/synchronized"  # touched by systemd-timesyncd on sync (relative to root)
TIME_SYNC_UNITS = ("systemd-timesyncd", "chrony", "chronyd", "ntp", "ntpd", "ntpsec", "openntpd")
UDEV_RULE_DIRS = ("etc/udev/rules.d", "usr/lib/udev/rules.d", "lib/udev/rules.d")  # override order
DEXCOM_USB_ID = "22a3"  # the vendor id a rule for the receiver mentions
MM_IGNORE = "ID_MM_DEVICE_IGNORE"
MODEMMANAGER = "ModemManager"
_RULE_READ_LIMIT = 64 * 1024  # bytes of a rules file read (they are small)


@dataclass(frozen=True, slots=True)
class CommandResult:
    """What an external command printed and how it ended."""

    returncode: int
    stdout: str


Runner = Callable[[Sequence[str]], CommandResult | None]  # runs a command; None: no evidence


def run_command(argv: Sequence[str], timeout_s: float = COMMAND_TIMEOUT_S) -> CommandResult | None:
    """Run a command with a timeout; None when it is missing, hangs or cannot start.

    Never raises. stdout is stripped; stderr is dropped.
    """
    try:
        proc = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=timeout_s, check=False,
            env={**os.environ, "LC_ALL": "C", "SYSTEMD_PAGER": "", "SYSTEMD_COLORS": "0"},
        )
    except (OSError, subprocess.SubprocessError, ValueError, UnicodeDecodeError):
        return None
    return CommandResult(proc.returncode, proc.stdout.strip())


@dataclass(frozen=True, slots=True)
class ClockSync:
    """Whether the host clock may be trusted, and why.

    Attributes:
        ok: False only on evidence that it is not synchronised.
        evidence: what the answer is based on, for the user.
    """

    ok: bool
    evidence: str


@dataclass(frozen=True, slots=True)
class UdevRule:
    """An installed udev rule that mentions the receiver's vendor id."""

    path: Path
    ignores_modemmanager: bool  # it sets ID_MM_DEVICE_IGNORE


@dataclass(frozen=True, slots=True)
class GroupStatus:
    """This user's membership of one group.

    Attributes:
        name: the group.
        exists: the group exists on this machine.
        active: this process has it now (``os.getgroups``), so it can use it.
        listed: the group database lists the user (a fresh login would have it).
        superuser: this process runs as root, which needs no group to open a port.
    """

    name: str
    exists: bool
    active: bool
    listed: bool
    superuser: bool = False


@dataclass(frozen=True, slots=True)
class PortAccess:
    """What this process may do with a device node."""

    path: str
    exists: bool
    readable: bool
    writable: bool
    group: str | None = None  # owner group name of the node
    mode: int | None = None  # permission bits, e.g. 0o660

    @property
    def usable(self) -> bool:
        """Readable and writable: the receiver can be opened."""
        return self.exists and self.readable and self.writable


@dataclass(frozen=True, slots=True)
class DirStatus:
    """Whether files can be created in a directory.

    Attributes:
        ok: a file can be created there (or the directory can be created).
        exists: the directory exists now.
        detail: what was found, for the user.
    """

    ok: bool
    exists: bool
    detail: str


class HostProbe(Protocol):
    """Everything the bridge asks of the host. Tests pass fakes; :class:`SystemHost` is real."""

    def clock_synchronized(self) -> ClockSync:
        """Whether the host clock is synchronised (see the module docstring for the rule)."""
        ...

    def udev_rule(self) -> UdevRule | None:
        """The installed udev rule for the receiver (vendor 22a3), or None."""
        ...

    def group(self, name: str) -> GroupStatus:
        """This user's membership of group ``name`` (``dialout``)."""
        ...

    def port_access(self, path: str) -> PortAccess:
        """Whether this process may read and write the device node ``path``."""
        ...

    def modemmanager_running(self) -> bool:
        """True when ModemManager runs (it probes ttyACM ports unless told to ignore them)."""
        ...

    def disk_free_bytes(self, path: Path) -> int | None:
        """Free bytes for unprivileged users on the filesystem holding ``path``; None if unknown."""
        ...

    def dir_writable(self, path: Path) -> DirStatus:
        """Whether files can be created in ``path`` (or ``path`` can be created)."""
        ...


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _properties(text: str) -> dict[str, str]:
    """``Key=value`` lines (``timedatectl show``) as a dict."""
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            out[key.strip()] = value.strip()
    return out


class SystemHost:
    """The real host: files under ``root``, commands through ``run``, time from ``now``.

    Args:
        root: where ``/run``, ``/etc``, ``/usr/lib``, ``/lib`` and ``/proc`` are looked up
            (tests pass a temporary directory).
        run: runs an external command (:func:`run_command`; tests pass a fake).
        now: the host's UTC time.
    """

    def __init__(
        self,
        *,
        root: Path = Path("/"),
        run: Runner = run_command,
        now: Callable[[], datetime] = _utc_now,
    ) -> None:
        self._root = root
        self._run = run
        self._now = now

    def __repr__(self) -> str:
        return f"SystemHost(root={str(self._root)!r})"

    # -- clock ------------------------------------------------------------------------------

    def clock_synchronized(self) -> ClockSync:
        """Apply the clock rule of issue 5 (module docstring)."""
        now = self._now()
        if now.year < MIN_PLAUSIBLE_YEAR:
            return ClockSync(False, f"the host clock says {now:%Y-%m-%d}, before {MIN_PLAUSIBLE_YEAR}: it was never "
                             "set")
        if self._exists(TIMESYNC_FLAG):
            return ClockSync(True, f"systemd-timesyncd has synchronised (/{TIMESYNC_FLAG} exists)")
        props = self._timedatectl()
        active = self._active_time_units()
        if props.get("NTPSynchronized") == "yes":
            return ClockSync(True, "timedatectl reports NTPSynchronized=yes")
        if props.get("NTPSynchronized") == "no":
            if props.get("NTP") == "yes" or active:
                what = ", ".join(active) if active else "the time-sync service"
                return ClockSync(False, f"{what} is active but timedatectl reports NTPSynchronized=no")
            return ClockSync(True, "no time-sync service is active (timedatectl NTP=no): counted as synchronised")
        if "systemd-timesyncd" in active:
            return ClockSync(
                False, f"systemd-timesyncd is active but has not synchronised yet (no /{TIMESYNC_FLAG})"
            )
        if active:
            return ClockSync(True, f"{', '.join(active)} is active; its sync state is unknown: counted as synchronised")
        return ClockSync(True, "no time-sync service found (a container or CI): counted as synchronised")

    def _timedatectl(self) -> dict[str, str]:
        result = self._run(["timedatectl", "show", "-p", "NTPSynchronized", "-p", "NTP"])
        if result is None or result.returncode != 0:
            return {}
        return _properties(result.stdout)

    def _active_time_units(self) -> list[str]:
        """The time-sync units systemd says are active (empty without systemd)."""
        result = self._run(["systemctl", "is-active", *TIME_SYNC_UNITS])
        if result is None:
            return []
        states = result.stdout.splitlines()
        if len(states) != len(TIME_SYNC_UNITS):  # no systemd: an error text, not one state per unit
            return []
        return [unit for unit, state in zip(TIME_SYNC_UNITS, states, strict=True) if state.strip() == "active"]

    # -- udev, groups, ports ----------------------------------------------------------------

    def udev_rule(self) -> UdevRule | None:
        """The first rules file (``/etc`` before ``/usr/lib`` before ``/lib``) naming 22a3."""
        seen: set[str] = set()
        for folder in UDEV_RULE_DIRS:
            directory = self._root / folder
            try:
                names = sorted(p.name for p in directory.iterdir() if p.name.endswith(".rules"))
            except OSError:
                continue
            for name in names:
                if name in seen:  # a file of the same name earlier in the order overrides it
                    continue
                seen.add(name)
                text = self._read_text(directory / name)
                if text is not None and DEXCOM_USB_ID in text.lower():
                    return UdevRule(directory / name, MM_IGNORE in text)
        return None

    def group(self, name: str) -> GroupStatus:
        """Membership of ``name`` by gid (this process) and by the group database (next login)."""
        superuser = os.geteuid() == 0
        try:
            entry = grp.getgrnam(name)
        except KeyError:
            return GroupStatus(name, exists=False, active=False, listed=False, superuser=superuser)
        try:
            active = entry.gr_gid in os.getgroups() or entry.gr_gid == os.getegid()
        except OSError:
            active = False
        try:
            user = pwd.getpwuid(os.geteuid())
            listed = user.pw_name in entry.gr_mem or user.pw_gid == entry.gr_gid
        except KeyError:
            listed = active
        return GroupStatus(name, exists=True, active=active, listed=listed or active, superuser=superuser)

    def port_access(self, path: str) -> PortAccess:
        """``os.access`` read and write, plus the node's group and mode."""
        try:
            info = os.stat(path)
        except OSError:
            return PortAccess(path, exists=False, readable=False, writable=False)
        try:
            group: str | None = grp.getgrgid(info.st_gid).gr_name
        except KeyError:
            group = str(info.st_gid)
        return PortAccess(
            path, exists=True, readable=os.access(path, os.R_OK), writable=os.access(path, os.W_OK),
            group=group, mode=stat.S_IMODE(info.st_mode),
        )

    # -- ModemManager -----------------------------------------------------------------------

    def modemmanager_running(self) -> bool:
        """A ModemManager process in /proc, or systemd calling its unit active."""
        proc = self._root / "proc"
        try:
            pids = [p for p in proc.iterdir() if p.name.isdigit()]
        except OSError:
            pids = []
        for pid in pids:
            comm = self._read_text(pid / "comm")
            if comm is not None and comm.strip() == MODEMMANAGER:
                return True
        result = self._run(["systemctl", "is-active", MODEMMANAGER])  # /proc may hide others' processes
        return result is not None and result.stdout.strip() == "active"

    # -- disk -------------------------------------------------------------------------------

    def disk_free_bytes(self, path: Path) -> int | None:
        """``shutil.disk_usage`` of ``path`` or, when it does not exist yet, its nearest parent."""
        target = _nearest_existing(path)
        if target is None:
            return None
        try:
            return shutil.disk_usage(target).free
        except OSError:
            return None

    def dir_writable(self, path: Path) -> DirStatus:
        """Create and delete a temporary file in ``path``; if it is missing, check its parent."""
        if path.is_dir():
            try:
                with tempfile.NamedTemporaryFile(dir=path, prefix=".doctor-", delete=True):
                    pass
            except OSError as exc:
                return DirStatus(False, True, f"{path} exists but a file cannot be created in it: "
                                 f"{exc.strerror or exc}")
            return DirStatus(True, True, f"{path} is writable")
        if path.exists():
            return DirStatus(False, True, f"{path} exists but is not a directory")
        parent = _nearest_existing(path)
        if parent is not None and os.access(parent, os.W_OK | os.X_OK):
            return DirStatus(True, False, f"{path} does not exist yet; it will be created in {parent}")
        return DirStatus(False, False, f"{path} does not exist and {parent or 'its parent'} is not writable")

    # -- helpers ----------------------------------------------------------------------------

    def _exists(self, relative: str) -> bool:
        try:
            return (self._root / relative).exists()
        except OSError:
            return False

    @staticmethod
    def _read_text(path: Path) -> str | None:
        try:
            with path.open("rb") as fh:
                return fh.read(_RULE_READ_LIMIT).decode("utf-8", "replace")
        except OSError:
            return None


def _nearest_existing(path: Path) -> Path | None:
    """``path`` or its closest ancestor that exists."""
    for candidate in (path, *path.parents):
        try:
            if candidate.exists():
                return candidate
        except OSError:
            continue
    return None
