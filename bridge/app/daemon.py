"""`bridge run`: the daemon that keeps every Nightscout current, for months, unattended.

Layer: app. One loop, one receiver session, one client per destination. The cadence is
learned from the data: the next reading is due one interval (the median spacing of recent
EGV records) after the newest; shortly before that the loop polls the newest EGV page every
few seconds until the new record appears, then reads everything new, uploads, and sleeps.
An unplugged receiver, a dead network and an unsynchronised host clock are normal states:
the loop keeps running, keeps what it has, and says why data is not flowing.
"""

from __future__ import annotations

import logging
import statistics
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from bridge.app.health import DEFAULT_INTERVAL_S, HEALTH_KEY, DaemonState, read_health
from bridge.app.hostprobe import ClockSync
from bridge.app.reading import ReadReport, ReceiverSession, read_into_store
from bridge.app.sync import make_client, open_store, post_status, utc_now
from bridge.app.upload import upload_destination
from bridge.config import Settings
from bridge.dexcom import Receiver, SerialLink, format_utc, resolve_device
from bridge.dexcom.discovery import reset_usb_receiver
from bridge.errors import (
    EX_OK,
    EX_SOFTWARE,
    ReceiverDisconnectedError,
    ReceiverError,
    ReceiverNotFoundError,
    UploadError,
    UploadUnavailableError,
)
from bridge.nightscout.client import NightscoutClient
from bridge.records import EGVRecord, RecordType
from bridge.store import Outbox, held_count

__all__ = ["Daemon"]

log = logging.getLogger(__name__)

POLL_S = 3.0  # poll the newest EGV page this often while a reading is due
LEAD_S = 2.0  # start polling this long before the reading is due
RECONNECT_POLL_S = 5.0  # look for an absent receiver this often
MAX_SLEEP_S = 120.0  # check the newest page at least this often, even when no reading is due
STALE_INTERVALS = 3  # no new reading for this many intervals: say why
CLOCK_RECHECK_S = 10.0  # while the host clock is not trusted, look again this often
REOPEN_AFTER, USB_RESET_AFTER, EXIT_AFTER = 1, 3, 6  # consecutive failed cycles with a receiver present


class ClockProbe(Protocol):
    """What the daemon asks of the host (``bridge.app.hostprobe.SystemHost`` in production)."""

    def clock_synchronized(self) -> ClockSync: ...


class Daemon:
    """The long-running loop behind `bridge run`.

    Args:
        settings: the resolved settings (reloaded by :meth:`request_reload`).
        host: the host probe (clock synchronisation).
        assume_clock_ok: trust the host clock without evidence (``--assume-clock-ok``).
        reload: builds fresh settings on SIGHUP.
        notify: sd_notify sender (``Notifier.send``).
        watchdog_s: ping systemd's watchdog at least this often (None: no watchdog).
        now: host UTC clock; monotonic: the timer clock; usb_reset: the last-resort USB reset.
        max_sleep_s: the longest sleep between two looks at the receiver (a cadence that changed
            is learned within this time).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        host: ClockProbe,
        assume_clock_ok: bool = False,
        reload: Callable[[], Settings] | None = None,
        notify: Callable[..., None] = lambda **_: None,
        watchdog_s: float | None = None,
        now: Callable[[], datetime] = utc_now,
        monotonic: Callable[[], float] = time.monotonic,
        usb_reset: Callable[[], bool] = reset_usb_receiver,
        max_sleep_s: float = MAX_SLEEP_S,
    ) -> None:
        self.settings = settings
        self.host = host
        self.assume_clock_ok = assume_clock_ok
        self._reload = reload
        self._notify = notify
        self._watchdog_s = watchdog_s
        self._now = now
        self._monotonic = monotonic
        self._usb_reset = usb_reset
        self._max_sleep_s = max_sleep_s
        self.stop_event = threading.Event()  # set: finish the current step and exit
        self._wake = threading.Event()  # ends a wait early (stop or reload)
        self._reload_requested = threading.Event()
        self.state = DaemonState()
        self.session: ReceiverSession | None = None
        self._opened_at = 0.0  # monotonic time of the session's clock reading
        self._opened_clock_ok = True  # the host clock was trusted when the session's clocks were read
        self._polling_since: int | None = None  # EGV cursor while waiting for the next reading
        self._receiver_error = ""  # the receiver's own last error (the outage reason), apart from uploads
        self._clients: dict[str, NightscoutClient] = {}
        self.exit_code = EX_OK

    # -- control --------------------------------------------------------------------------

    def stop(self) -> None:
        """Finish the current step and exit (SIGTERM); an upload's retry waits end at once."""
        self.stop_event.set()
        self._wake.set()

    def request_reload(self) -> None:
        """Reload the configuration before the next cycle (SIGHUP)."""
        self._reload_requested.set()
        self._wake.set()

    def _http_sleep(self, seconds: float) -> None:
        """The Nightscout clients' retry wait: cut short, with an error, when stopping."""
        if self.stop_event.wait(seconds):
            raise UploadUnavailableError("the bridge is stopping; the upload is kept for the next start")

    def run(self, *, max_cycles: int | None = None) -> int:
        """Run until stopped (or ``max_cycles`` in tests); returns the exit code."""
        self._connect_clients()
        with open_store(self.settings) as outbox:
            if (previous := read_health(outbox)) is not None:
                self.state.resume_from(previous)
            first = True
            while max_cycles is None or self.state.cycles < max_cycles:
                if self._reload_requested.is_set():
                    self._apply_reload(outbox)
                if self.stop_event.is_set():
                    break
                wait_s = self._cycle(outbox)
                if first:
                    self._notify(READY="1", STATUS=self._status_line())
                    first = False
                if self.exit_code != EX_OK:
                    break
                self._wait(wait_s)
            self.state.running = False
            self._save(outbox)
        self._close()
        self._notify(STOPPING="1")
        return self.exit_code

    def _apply_reload(self, outbox: Outbox) -> None:
        self._reload_requested.clear()
        self._wake.clear()
        self.state.refused.clear()  # new credentials may be good: try every site again
        if self._reload is None:
            return
        self._notify(RELOADING="1")
        self.settings = self._reload()
        for destination in self.settings.destinations:
            outbox.add_destination(destination.name)
        self._close_clients()
        self._connect_clients()
        log.info("configuration reloaded: %d destination(s)", len(self.settings.destinations))
        self._notify(READY="1")

    def _wait(self, seconds: float) -> None:
        step = self._watchdog_s or seconds
        end = self._monotonic() + seconds
        while (left := end - self._monotonic()) > 0 and not self._wake.is_set():
            self._wake.wait(min(left, step))
            if self._watchdog_s:
                self._notify(WATCHDOG="1")

    # -- one cycle ------------------------------------------------------------------------

    def _cycle(self, outbox: Outbox) -> float:
        """One step: read if due, upload, report. Returns how long to wait before the next."""
        self.state.cycles += 1
        clock = self.host.clock_synchronized()
        clock_ok = self.assume_clock_ok or clock.ok
        if clock_ok != self.state.clock_ok or clock.evidence != self.state.clock_evidence:
            (log.info if clock_ok else log.warning)("host clock %s: %s", "trusted" if clock_ok else
                                                   "NOT synchronised, holding readings", clock.evidence)
        self.state.clock_ok, self.state.clock_evidence = clock_ok, clock.evidence
        self.state.track("clock", None if clock_ok else f"host clock not synchronised: {clock.evidence}", self._now())
        wait_s = RECONNECT_POLL_S
        report: ReadReport | None = None
        if self.session is not None or self._connect():
            try:
                report = self._read(outbox, clock_ok)
                self.state.failures = 0
                wait_s = self._next_wait(outbox)
            except (ReceiverNotFoundError, ReceiverDisconnectedError) as exc:
                self._disconnected(str(exc))
            except ReceiverError as exc:
                self._failed(exc)
        uploaded = self._upload(outbox) if clock_ok else 0
        if not clock_ok:
            wait_s = min(wait_s, CLOCK_RECHECK_S)
        self.state.track("receiver", None if self.state.receiver == "connected" else
                         f"receiver {self.state.receiver}" + (f": {self._receiver_error}"
                                                              if self.state.receiver != "disconnected" else ""),
                         self._now())
        self._report(outbox, report)
        if report is not None or uploaded:
            new = report.read.get("egv", 0) if report is not None else 0
            log.info("read %d new sgv%s, uploaded %d, queue %d, next look in %s", new,
                     f" @ {self.state.newest_reading_utc}" if new else "", uploaded,
                     sum(self.state.backlog.values()), _duration(wait_s))
        return wait_s

    def _connect(self) -> bool:
        device = self.settings.device
        try:
            url = resolve_device(device)
            link = SerialLink(url, resolve=(lambda: resolve_device("auto")) if device == "auto" else None)
            link.open()
        except ReceiverError as exc:
            self._note_receiver_state(exc)
            return False
        try:
            receiver = Receiver(link, reconnect_wait_s=0, now=self._now)
            self.session = ReceiverSession.open(receiver)
        except (ReceiverNotFoundError, ReceiverDisconnectedError) as exc:
            link.close()  # unplugged while being opened: absent, not failing
            self._disconnected(str(exc))
            return False
        except ReceiverError as exc:
            link.close()
            self._failed(exc)
            return False
        self._opened_at = self._monotonic()
        self._opened_clock_ok = self.state.clock_ok  # were the clocks read at open taken on a trusted host clock?
        self._polling_since = None
        self.state.receiver, self.state.serial = "connected", self.session.serial
        log.info("receiver %s connected on %s", self.session.serial, link.url)
        return True

    def _note_receiver_state(self, exc: ReceiverError) -> None:
        state = {69: "disconnected", 75: "busy", 77: "no permission"}.get(exc.exit_code, "failing")
        if state != self.state.receiver:
            (log.info if state == "disconnected" else log.error)("receiver %s: %s", state, exc)
        self.state.receiver = state
        if state != "disconnected":
            self._receiver_error = f"{exc}" + (f" ({exc.hint})" if exc.hint else "")
            self._error(f"receiver: {self._receiver_error}")

    def _read(self, outbox: Outbox, clock_ok: bool) -> ReadReport | None:
        """Poll for the due reading, or read everything new once it is there."""
        assert self.session is not None
        receiver = self.session.receiver
        before = receiver.counters.commands
        try:
            if clock_ok and self.session.anchor is None and not self._opened_clock_ok:
                # the host clock was not trusted when the clocks were read at open (it may have
                # jumped since): measure the anchor from a fresh reading, never from the stale one
                self.session.ensure_anchor(outbox, fresh_clock=True)
                self._opened_at, self._opened_clock_ok = self._monotonic(), True
            if self._polling_since is not None:
                poll = receiver.read_records(RecordType.EGV_DATA, since_system=self._polling_since)
                if not poll.records:
                    return None
            names = [d.name for d in self.settings.destinations]
            report = read_into_store(self.session, outbox, names, clock_ok=clock_ok)
        finally:
            self.state.receiver_commands += receiver.counters.commands - before
        now = format_utc(self._now())
        self.state.last_read_at = now
        if report.read.get("egv"):
            self.state.last_new_reading_at = now
        if self.session.anchor is not None:
            self.state.anchor_offset_s = self.session.anchor.offset_s
            self.state.drift_s = self.session.drift_s
        return report

    def _recent_egv(self, outbox: Outbox) -> list[EGVRecord]:
        assert self.session is not None
        cursor = outbox.cursor(self.session.serial, "egv")
        if cursor is None:
            return []
        items = outbox.records(self.session.serial, "egv", newer_than=cursor - 3 * 3600)
        return [i.record for i in items if isinstance(i.record, EGVRecord) and not i.record.display_only]

    def _next_wait(self, outbox: Outbox) -> float:
        """Seconds until the next poll: shortly before the next reading is due, then every POLL_S."""
        assert self.session is not None
        session = self.session
        cursor = outbox.cursor(session.serial, "egv")
        recent = self._recent_egv(outbox)
        spacings = [b.system_seconds - a.system_seconds for a, b in zip(recent, recent[1:], strict=False)]
        interval = float(statistics.median(spacings[-5:])) if spacings else DEFAULT_INTERVAL_S
        interval = min(max(interval, 1.0), 3600.0)
        self.state.interval_s = interval
        if cursor is None:
            self._polling_since = None
            return min(interval, RECONNECT_POLL_S * 6)
        if recent and session.anchor is not None:
            self.state.newest_reading_utc = format_utc(session.anchor.to_utc(recent[-1].system_seconds))
        self._polling_since = cursor
        receiver_now = session.clock.system_seconds + (self._monotonic() - self._opened_at)
        newest = recent[-1].system_seconds if recent else cursor
        due = newest + interval
        while due + interval / 2 < receiver_now:  # missed readings (sensor out of range): aim at the next
            due += interval
        poll = min(POLL_S, max(interval / 3, 0.5))
        self._stale(receiver_now - newest, interval)
        wait = poll if receiver_now >= due - LEAD_S else due - LEAD_S - receiver_now
        return min(max(wait, 0.2), self._max_sleep_s)

    def _stale(self, age_s: float, interval: float) -> None:
        reason = None
        if age_s > STALE_INTERVALS * interval:
            age = f"{age_s / 60:.0f} min" if age_s >= 120 else f"{age_s:.0f} s"
            reason = f"receiver not recording: no new reading for {age} (sensor, transmitter range?)"
        if reason != self.state.stale_reason and reason:
            log.warning(reason)
        self.state.stale_reason = reason

    def _disconnected(self, why: str) -> None:
        log.warning("receiver disconnected: %s", why)
        self._close_session()
        self.state.receiver = "disconnected"
        self.state.stale_reason = "receiver disconnected"

    def _failed(self, exc: ReceiverError) -> None:
        """A receiver that is present but failing: reopen, then USB reset, then exit for a restart."""
        self.state.failures += 1
        self.state.receiver = "failing"
        self._receiver_error = str(exc)
        self._error(f"receiver: {exc}")
        n = self.state.failures
        log.error("receiver failing (%d in a row): %s", n, exc)
        self._close_session()
        if n == USB_RESET_AFTER:
            log.warning("resetting the receiver over USB: %s", "done" if self._usb_reset() else "not possible")
        if n >= EXIT_AFTER:
            log.error("receiver still failing after %d attempts; exiting so the service restarts", n)
            self.exit_code = EX_SOFTWARE

    def _upload(self, outbox: Outbox) -> int:
        uploaded = 0
        for destination in self.settings.destinations:
            client = self._clients.get(destination.name)
            if client is None or destination.name in self.state.refused:
                self.state.backlog[destination.name] = outbox.backlog(destination.name)
                continue
            result = upload_destination(outbox, client, destination.name, now=self._now,
                                        device=self.settings.device_name, special=self.settings.special_values)
            self.state.backlog[destination.name] = result.pending
            self.state.track(f"upload {destination.name}", result.error, self._now())
            if result.refused:
                self.state.refused[destination.name] = result.error or "credentials refused"
                log.error("%s refused the credentials: uploads to it stop until the configuration is reloaded "
                          "(SIGHUP) or the service restarts; its data stays queued. %s", destination.name,
                          result.hint or "")
            uploaded += result.uploaded
            if result.uploaded:
                self.state.last_upload_at = format_utc(self._now())
            if result.error:
                self._error(f"{destination.name}: {result.error}")
                if result.pending:
                    self.state.stale_reason = self.state.stale_reason or f"upload failing: {result.error}"
        return uploaded

    def _report(self, outbox: Outbox, report: ReadReport | None) -> None:
        self.state.held = held_count(outbox)
        if not self.state.clock_ok:
            self.state.stale_reason = f"host clock not synchronised ({self.state.clock_evidence}); " \
                f"{self.state.held} readings held"
        elif self.state.receiver == "disconnected":
            self.state.stale_reason = "receiver disconnected"
        self._save(outbox)
        self._notify(STATUS=self._status_line())
        if self.session is not None and self.state.clock_ok:
            health: dict[str, object] = {"receiver": self.state.receiver, "stale": self.state.stale_reason,
                      "backlog": sum(self.state.backlog.values()), "last_error": self.state.last_error}
            failing = {o["kind"] for o in self.state.outages if o["until"] is None}
            for destination in self.settings.destinations:
                client = self._clients.get(destination.name)
                if client is None or destination.name in self.state.refused or f"upload {destination.name}" in failing:
                    continue  # a site that just failed is not asked again (with retries) in this cycle
                try:
                    post_status(outbox, client, destination.name, serial=self.session.serial, battery=None,
                                health=health, device=self.settings.device_name, now=self._now())
                except UploadError as exc:
                    log.debug("devicestatus to %s not posted: %s", destination.name, exc)

    def _status_line(self) -> str:
        s = self.state
        parts = [f"receiver {s.receiver}", f"newest {s.newest_reading_utc or '-'}",
                 f"queue {sum(s.backlog.values())}"]
        if s.stale_reason:
            parts.append(s.stale_reason)
        return "; ".join(parts)

    def _error(self, message: str) -> None:
        self.state.last_error, self.state.last_error_at = message, format_utc(self._now())

    def _save(self, outbox: Outbox) -> None:
        outbox.set_meta(HEALTH_KEY, self.state.to_json())

    # -- resources ------------------------------------------------------------------------

    def _connect_clients(self) -> None:
        for destination in self.settings.destinations:
            self._clients[destination.name] = make_client(destination, self.settings, sleep=self._http_sleep)

    def _close_clients(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()

    def _close_session(self) -> None:
        if self.session is not None:
            self.session.receiver.link.close()
            self.session = None
        self._polling_since = None

    def _close(self) -> None:
        self._close_session()
        self._close_clients()


def _duration(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}m{rest:02d}s" if minutes else f"{seconds:.1f}s"
