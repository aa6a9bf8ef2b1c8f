"""The `bridge` command line. Layer: top; wires settings to app use cases and prints.

Errors are translated once, in :func:`run`, into sysexits codes (FIELD_NOTES.md (c)).
`emulate`, `server` and `demo` load their packages lazily, so the core never imports them.
"""

from __future__ import annotations

import csv
import importlib
import json
import logging
import os
import signal
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from bridge import __version__
from bridge.app import dump_records, open_receiver, receiver_info
from bridge.app.daemon import Daemon
from bridge.app.health import read_health
from bridge.app.hostprobe import SystemHost
from bridge.app.sync import SyncReport, open_store, sync_once
from bridge.app.systemd import JournalFormatter, Notifier, RateLimitFilter, watchdog_interval_s
from bridge.config import Settings, load_settings
from bridge.dexcom import DUMP_KINDS, FIELDS
from bridge.errors import EX_IOERR, EX_SOFTWARE, BridgeError

__all__ = ["cli", "run"]

log = logging.getLogger("bridge")

_LAZY = {  # name: (module, attribute, one-line help shown without importing the module)
    "emulate": ("bridge.emulator.cli", "emulate", "Run a receiver emulator on a pseudo-terminal."),
    "server": ("bridge.server.cli", "server", "Run the bundled Nightscout-compatible server."),
    "demo": ("bridge.demo", "demo", "Emulator -> daemon -> bundled server, with the live page (`make demo`)."),
    "tail": ("bridge.commands.tail", "tail", "Show glucose readings live (receiver, store or a Nightscout site)."),
    "doctor": ("bridge.commands.doctor", "doctor", "Check everything uploads need, and say how to fix what fails."),
}


class _LazyGroup(click.Group):
    """A group whose heavy subcommands are imported only when invoked."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *_LAZY])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in _LAZY:
            module, attr, _ = _LAZY[cmd_name]
            command: click.Command = getattr(importlib.import_module(module), attr)
            return command
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, _LAZY[name][2]) if name in _LAZY else (name, self.commands[name].get_short_help_str(60))
                for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def _configure_logging(verbose: int, trace: bool, *, daemon: bool = False) -> None:
    """Log to stderr; journald priority prefixes under systemd; identical errors rate-limited."""
    level = logging.DEBUG if verbose > 1 else logging.INFO if verbose or daemon else logging.WARNING
    handler = logging.StreamHandler(sys.stderr)
    if os.environ.get("JOURNAL_STREAM"):
        handler.setFormatter(JournalFormatter("%(name)s: %(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"
                                               if daemon else "%(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RateLimitFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("httpx").setLevel(max(level, logging.WARNING))
    if trace:
        logging.getLogger("bridge.wire").setLevel(logging.DEBUG)
        logging.getLogger().setLevel(min(level, logging.DEBUG))


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="bridge")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.option("--trace", is_flag=True, help="Log every frame on the wire as hex (logger bridge.wire).")
@click.pass_context
def cli(ctx: click.Context, verbose: int, trace: bool) -> None:
    """Dexcom G4 receiver to Nightscout bridge.

    \b
    Examples:
      bridge info                      identify the receiver on USB
      bridge dump --type egv --last 12 the last hour of glucose as JSON lines
      bridge emulate --days 7 --link /tmp/dexcom   a receiver without hardware
    """
    _configure_logging(verbose, trace, daemon=ctx.invoked_subcommand == "run")


device_option = click.option(
    "--device",
    envvar="BRIDGE_DEVICE",
    default="auto",
    show_default=True,
    help="Receiver port: a path (/dev/ttyACM0, /dev/dexcom, a pty) or 'auto' to search USB "
    "for VID:PID 22a3:0047. Env: BRIDGE_DEVICE.",
)


@cli.command()
@device_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
def info(device: str, as_json: bool) -> None:
    """Identify the receiver: serial, firmware, transmitter, battery, clocks, record counts.

    \b
    Example:
      bridge info --device /dev/dexcom
    """
    with open_receiver(device) as receiver:
        report = receiver_info(receiver).to_dict()
    if as_json:
        click.echo(json.dumps(report))
        return
    counts = report.pop("record_counts")
    for key, value in report.items():
        click.echo(f"{key.replace('_', ' '):<24}{'-' if value is None else value}")
    skew = report["clock_skew_seconds"]
    if abs(skew) > 300:
        click.echo(f"{'':<24}(the receiver's system clock is {abs(skew) / 3600:.1f} h "
                   f"{'behind' if skew > 0 else 'ahead of'} the host's; readings are still timed "
                   "correctly through the clock anchor)")
    click.echo("record counts")
    for name, count in counts.items():
        click.echo(f"  {name:<26}{'unreadable' if count is None else count}")


def _parse_since(_ctx: click.Context, _param: click.Parameter, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not ISO 8601 (e.g. 2026-11-25T08:00:00Z)") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


@cli.command()
@device_option
@click.option("--type", "kind", type=click.Choice(list(DUMP_KINDS)), required=True, help="Record type to print.")
@click.option("--format", "fmt", type=click.Choice(["json", "csv"]), default="json", show_default=True)
@click.option(
    "--since",
    callback=_parse_since,
    metavar="ISO8601",
    help="Only records after this time (UTC unless it has an offset).",
)
@click.option("--last", type=click.IntRange(min=0), metavar="N", help="Only the newest N records.")
def dump(device: str, kind: str, fmt: str, since: datetime | None, last: int | None) -> None:
    """Print the receiver's records of one type, oldest first.

    JSON is one object per line. Exit 0 when every page was read, 74 (after printing all
    that could be read) when pages had to be skipped.

    \b
    Examples:
      bridge dump --type egv --last 12
      bridge dump --type meter --since 2026-11-24T00:00:00Z --format csv
    """
    with open_receiver(device) as receiver:
        report = dump_records(receiver, kind, since=since, last=last)
    _print_rows(report.rows, FIELDS[kind], fmt)
    if report.skipped_pages:
        click.echo(
            f"Warning: {len(report.skipped_pages)} page(s) could not be read whole "
            f"({report.bad_records} damaged records): {report.skipped_pages}. Run dump again to retry.",
            err=True,
        )
        sys.exit(EX_IOERR)


def _print_rows(rows: list[dict[str, Any]], fields: list[str], fmt: str) -> None:
    columns = [*fields[:3], "utc", *fields[3:]]
    if fmt == "json":
        for row in rows:
            click.echo(json.dumps({c: row[c] for c in columns}))
        return
    writer = csv.DictWriter(sys.stdout, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: json.dumps(v) if isinstance(v, list) else v for c, v in row.items()})


def settings_options(command: Callable[..., None]) -> Callable[..., None]:
    """The options every uploading command shares (sync, run, config)."""
    for option in reversed([
        click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
                      help="TOML config file (default: $XDG_CONFIG_HOME/dexcom-bridge/config.toml, "
                      "then /etc/dexcom-bridge/config.toml)."),
        click.option("--device", help="Receiver port or 'auto' (default). Env: BRIDGE_DEVICE."),
        click.option("--nightscout-url", "nightscout_urls", multiple=True, metavar="URL",
                     help="Nightscout site; repeat for several. Env: NIGHTSCOUT_URL / BRIDGE_NIGHTSCOUT_URL."),
        click.option("--secret-file", type=click.Path(dir_okay=False),
                     help="File holding the API secret (else API_SECRET / BRIDGE_API_SECRET, or systemd credentials)."),
        click.option("--state-dir", type=click.Path(file_okay=False),
                     help="Where the outbox lives (default: $XDG_STATE_HOME/dexcom-bridge). Env: BRIDGE_STATE_DIR."),
        click.option("--device-name", help="Nightscout `device` field (default: dexcom-bridge://SERIAL)."),
        click.option("--special-values", type=click.Choice(["codes", "skip"]),
                     help="Upload special glucose values as Nightscout error codes (default) or skip them."),
        click.option("--allow-insecure-http", is_flag=True, default=None,
                     help="Allow plain http:// to hosts other than this machine (the secret then travels in clear)."),
    ]):
        command = option(command)
    return command


def _settings(config_path: Path | None, **flags: object) -> Settings:
    return load_settings(flags, config_path=config_path)


def _print_sync(report: SyncReport) -> None:
    read = report.read
    if read is not None:
        clock = read.clock
        skew = f", receiver clock {clock.skew_s:+d} s from the host's" if clock and abs(clock.skew_s) > 60 else ""
        kinds = ", ".join(f"{n} {k}" for k, n in read.read.items() if n)
        click.echo(f"receiver {read.serial}: read {kinds or 'nothing new'}; stored {read.stored} new{skew}")
        for kind, pages in read.skipped_pages.items():
            click.echo(f"warning: {kind} pages {pages} could not be read whole; the next sync reads them again",
                       err=True)
    elif report.receiver_error is not None:
        click.echo(f"receiver: {report.receiver_error}", err=True)
        if report.receiver_error.hint:
            click.echo(f"Hint: {report.receiver_error.hint}", err=True)
    for audit in report.audits:
        click.echo(f"{audit.name}: audit found {audit.missing} of {audit.checked} sent entries missing"
                   f"{'; re-sent' if audit.missing else ''}")
    for d in report.destinations:
        state = "up to date" if not d.pending else f"{d.pending} pending"
        click.echo(f"{d.name}: uploaded {d.uploaded}, {state}")
        if d.error:
            click.echo(f"  {'refused' if d.refused else 'error'}: {d.error}", err=True)
            if d.hint:
                click.echo(f"  Hint: {d.hint}", err=True)


@cli.command()
@settings_options
@click.option("--audit", "audit_hours", type=click.FloatRange(min=0, min_open=True), metavar="HOURS",
              help="First ask each site which entries of the last HOURS it holds; re-send what it lost.")
def sync(config_path: Path | None, audit_hours: float | None, **flags: object) -> None:
    """Read the receiver once, store what is new, upload everything pending, exit.

    Exit 0 when every Nightscout is up to date (also when nothing was new), 77 when a site
    refused the credentials, 69 when no receiver was found, 75 when data is still pending,
    74 when receiver pages could not be read.

    \b
    Example:
      NIGHTSCOUT_URL=https://my-site.example API_SECRET=... bridge sync
    """
    settings = _settings(config_path, **flags)
    if sys.stderr.isatty():
        with click.progressbar(length=1, label="first read of the receiver", file=sys.stderr) as bar:
            base = [0]  # pages of the partitions already read

            def progress(kind: str, done: int, total: int) -> None:
                if done == 1:
                    base[0] = bar.pos
                bar.length = base[0] + total
                bar.update(base[0] + done - bar.pos)

            report = sync_once(settings, progress=progress, audit_hours=audit_hours)
    else:
        def progress_lines(kind: str, done: int, total: int) -> None:
            if done == total or done % 50 == 0:
                click.echo(f"first read of the receiver: {kind} {done}/{total} pages", err=True)

        report = sync_once(settings, progress=progress_lines, audit_hours=audit_hours)
    _print_sync(report)
    sys.exit(report.exit_code)


@cli.command("run")
@settings_options
@click.option("--assume-clock-ok", is_flag=True, help="Trust the host clock even without evidence it is synchronised.")
def run_command(config_path: Path | None, assume_clock_ok: bool, **flags: object) -> None:
    """Run the bridge as a daemon: read each new reading and upload it within seconds.

    Keeps running through unplugs, network outages and an unsynchronised clock, and says why
    data is not flowing (`bridge status`, the log, Nightscout's devicestatus). SIGTERM stops
    it cleanly, SIGHUP reloads the configuration. Under systemd it uses Type=notify and the
    watchdog.

    \b
    Example:
      NIGHTSCOUT_URL=https://my-site.example API_SECRET=... bridge run --device /dev/dexcom
    """
    settings = _settings(config_path, **flags)
    if not settings.destinations:
        raise click.UsageError("no Nightscout site configured: pass --nightscout-url or set NIGHTSCOUT_URL")
    notifier = Notifier()
    daemon = Daemon(settings, host=SystemHost(), assume_clock_ok=assume_clock_ok,
                    reload=lambda: _settings(config_path, **flags), notify=notifier.send,
                    watchdog_s=watchdog_interval_s())
    signal.signal(signal.SIGTERM, lambda *_: daemon.stop())
    signal.signal(signal.SIGINT, lambda *_: daemon.stop())
    signal.signal(signal.SIGHUP, lambda *_: daemon.request_reload())
    sys.exit(daemon.run())


@cli.command()
@settings_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def status(config_path: Path | None, as_json: bool, **flags: object) -> None:
    """Show what the bridge last did: reads, uploads per site, backlog, clock, last error.

    Reads the store, so it works while `bridge run` owns the receiver.

    \b
    Example:
      bridge status --json
    """
    settings = _settings(config_path, **flags)
    with open_store(settings) as outbox:
        health = read_health(outbox) or {}
        stats = outbox.stats()
    destinations = {name: {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in d.items()}
                    for name, d in stats["destinations"].items()}
    report = {"daemon": health, "destinations": destinations, "records": stats["records"],
              "store": str(settings.store_path)}
    if as_json:
        click.echo(json.dumps(report, default=str))
        return
    if not health:
        click.echo("bridge run has not run with this state directory yet")
    else:
        click.echo(f"daemon      {'running' if health.get('running') else 'stopped'} since {health.get('started_at')}"
                   f" (pid {health.get('pid')})")
        click.echo(f"receiver    {health.get('receiver')} {health.get('serial') or ''}".rstrip())
        click.echo(f"newest      {health.get('newest_reading_utc') or '-'}; "
                   f"last read {health.get('last_read_at') or '-'}")
        clock = "ok" if health.get("clock_ok") else f"NOT synchronised ({health.get('held', 0)} readings held)"
        click.echo(f"host clock  {clock}; anchor {health.get('anchor_offset_s')} s, "
                   f"drift {health.get('drift_s')} s")
        if health.get("stale_reason"):
            click.echo(f"attention   {health['stale_reason']}")
        if health.get("last_error"):
            click.echo(f"last error  {health['last_error']} at {health.get('last_error_at')}")
        for name, why in (health.get("refused") or {}).items():
            click.echo(f"refused     {name}: {why} (uploads to it stopped; fix the secret, then reload)")
        outages = health.get("outages") or []
        if outages:
            click.echo("outages     (newest last)")
        for outage in outages[-10:]:
            click.echo(f"  {outage['since']} -> {outage['until'] or 'now'}  {outage['kind']}: {outage['reason']}")
    for name, d in destinations.items():
        click.echo(f"{name}: {d['sent']} sent, {d['pending']} pending, last upload {d['last_sent_at'] or '-'}"
                   + (f", last error: {d['last_error']}" if d["last_error"] else ""))


@cli.command("config")
@settings_options
@click.option("--show", is_flag=True, required=True, help="Print the effective settings, secrets redacted.")
def config_command(config_path: Path | None, show: bool, **flags: object) -> None:
    """Print the effective settings (flags > environment > config file > defaults).

    \b
    Example:
      bridge config --show --config /etc/dexcom-bridge/config.toml
    """
    click.echo(json.dumps(_settings(config_path, **flags).redacted(), indent=2))


def run() -> None:
    """Console-script entry point: run the CLI and map errors to exit codes."""
    try:
        cli.main(prog_name="bridge", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except BridgeError as exc:
        click.echo(f"Error: {exc}", err=True)
        if exc.hint:
            click.echo(f"Hint: {exc.hint}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception:  # noqa: BLE001 - last resort: say so, exit 70 so systemd restarts
        log.exception("unexpected error")
        sys.exit(EX_SOFTWARE)
