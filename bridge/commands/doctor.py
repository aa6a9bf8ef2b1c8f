"""`bridge doctor`: the pre-flight report. Layer: CLI (loaded lazily by bridge.cli).

Imports only ``bridge.app``, ``bridge.config`` and ``bridge.errors`` (STYLE.md §2). One line
per check (✓ / ! / ✗ on a terminal, ``ok`` / ``warn`` / ``FAIL`` when piped or when the
terminal cannot show those symbols), with an indented ``fix:`` line; or one JSON object.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from bridge.app.doctor import CheckResult, config_failure, exit_code_of, run_checks
from bridge.app.hostprobe import SystemHost
from bridge.config import load_settings
from bridge.errors import ConfigError

__all__ = ["doctor"]

_MARKS = {"ok": ("✓", "ok  "), "warn": ("!", "warn"), "fail": ("✗", "FAIL")}
_COLOURS = {"ok": "green", "warn": "yellow", "fail": "red"}


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              help="TOML config file (default: $XDG_CONFIG_HOME/dexcom-bridge/config.toml, "
              "then /etc/dexcom-bridge/config.toml).")
@click.option("--device", help="Receiver port or 'auto' (default). Env: BRIDGE_DEVICE.")
@click.option("--nightscout-url", "nightscout_urls", multiple=True, metavar="URL",
              help="Nightscout site; repeat for several. Env: NIGHTSCOUT_URL / BRIDGE_NIGHTSCOUT_URL.")
@click.option("--secret-file", type=click.Path(dir_okay=False),
              help="File holding the API secret (else API_SECRET / BRIDGE_API_SECRET, or systemd credentials).")
@click.option("--state-dir", type=click.Path(file_okay=False),
              help="Where the outbox lives (default: $XDG_STATE_HOME/dexcom-bridge). Env: BRIDGE_STATE_DIR.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
def doctor(config_path: Path | None, device: str | None, nightscout_urls: tuple[str, ...], secret_file: str | None,
           state_dir: str | None, as_json: bool) -> None:
    """Check everything uploads need and say how to fix what is wrong.

    Checks, in order: receiver found and readable (udev rule, dialout group), ModemManager,
    receiver answers and its clock, host clock synchronised, then for each Nightscout site:
    reachable, TLS certificate valid, credentials accepted (/api/v1/verifyauth) and allowed
    to create entries; finally the state directory with its backlog, and disk space.

    Exit 0 when nothing blocks uploads (warnings do not count); otherwise 78 for a
    configuration problem, 77 for a permission or credentials problem, 69 when no receiver
    is found, 74 for receiver or disk I/O, 75 when a server is unreachable or the clock is
    not synchronised.

    \b
    Examples:
      NIGHTSCOUT_URL=https://my-site.example API_SECRET=... bridge doctor
      bridge doctor --config /etc/dexcom-bridge/config.toml --json
    """
    flags = {"device": device, "nightscout_urls": list(nightscout_urls), "secret_file": secret_file,
             "state_dir": state_dir}
    try:
        settings = load_settings(flags, config_path=config_path)
    except ConfigError as exc:
        results = [config_failure(exc)]
    else:
        results = run_checks(settings, SystemHost())
    code = exit_code_of(results)
    if as_json:
        click.echo(json.dumps({"ok": code == 0, "exit_code": code, "checks": [r.to_dict() for r in results]}))
    else:
        _print_report(results, code)
    sys.exit(code)


def _fancy() -> bool:
    """Symbols and colour only on a terminal that can encode them."""
    stream = sys.stdout
    if not stream.isatty():
        return False
    try:
        "✓✗".encode(stream.encoding or "ascii")
    except (LookupError, UnicodeEncodeError):
        return False
    return True


def _print_report(results: list[CheckResult], code: int) -> None:
    fancy = _fancy()
    for result in results:
        mark = _MARKS[result.status][0 if fancy else 1]
        label = f"{result.name} ({result.target})" if result.target else result.name
        line = f"{mark} {label}: {result.detail}"
        click.echo(click.style(line, fg=_COLOURS[result.status]) if fancy else line)
        if result.fix:
            click.echo(f"    fix: {result.fix}")
    blocking = sum(r.blocks_upload for r in results)
    warnings = sum(r.status == "warn" for r in results)
    if blocking:
        click.echo(f"{blocking} problem{'s' if blocking > 1 else ''} block{'' if blocking > 1 else 's'} uploads "
                   f"(exit {code}).")
    else:
        click.echo("Nothing blocks uploads" + (f" ({warnings} warning{'s' if warnings > 1 else ''})." if warnings
                                               else "."))
