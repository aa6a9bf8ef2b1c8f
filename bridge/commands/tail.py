"""`bridge tail`: live glucose readings in the terminal. Layer: CLI (loaded lazily by bridge.cli).

Imports only ``bridge.app``, ``bridge.config`` and ``bridge.errors`` (STYLE.md §2). Lines are
echoed with click's own TTY detection: coloured on a terminal, plain text when piped.
"""

from __future__ import annotations

import time
from contextlib import closing
from pathlib import Path

import click

from bridge.app.sync import utc_now
from bridge.app.tail import Units, choose_source, tail as tail_readings
from bridge.config import load_settings

__all__ = ["tail"]


@click.command()
@click.option("--device", metavar="PATH|auto",
              help="Follow the receiver at this port ('auto': search USB). Default: the store when the "
              "daemon keeps one in the state directory, else the receiver.")
@click.option("--nightscout-url", metavar="URL",
              help="Follow a Nightscout site's new sgv entries (secret: API_SECRET or --secret-file).")
@click.option("--state-dir", type=click.Path(file_okay=False),
              help="Where the daemon's store lives (default: $XDG_STATE_HOME/dexcom-bridge). Env: BRIDGE_STATE_DIR.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              help="TOML config file (as `bridge sync`).")
@click.option("--secret-file", type=click.Path(dir_okay=False),
              help="File holding the Nightscout API secret (else API_SECRET / BRIDGE_API_SECRET).")
@click.option("--allow-insecure-http", is_flag=True, default=None,
              help="Allow plain http:// to a site that is not on this machine.")
@click.option("--units", type=click.Choice(["mgdl", "mmol"]), default="mgdl", show_default=True,
              envvar="BRIDGE_UNITS", help="mg/dL, or mmol/L (mg/dL / 18, one decimal). Env: BRIDGE_UNITS.")
@click.option("--count", type=click.IntRange(min=0), default=12, show_default=True, metavar="N",
              help="Recent readings shown first.")
@click.option("--once", is_flag=True, help="Print the recent readings and exit instead of following.")
@click.option("--poll", "poll_s", type=click.FloatRange(min=0.1), metavar="SECONDS",
              help="Seconds between polls (default: receiver 15, store 5, Nightscout 30).")
def tail(device: str | None, nightscout_url: str | None, state_dir: str | None, config_path: Path | None,
         secret_file: str | None, allow_insecure_http: bool | None, units: Units, count: int, once: bool,
         poll_s: float | None) -> None:
    """Show glucose readings as they arrive: time, value, arrow, delta, age, 3-hour sparkline.

    Special values are shown as their meaning (?NC sensor not calibrated, ...), never as a
    number. Colours mark low (< 70 mg/dL, red), high (> 180, yellow) and in range (green)
    on a terminal; piped output is plain text.

    \b
    Examples:
      bridge tail                                   the daemon's store, or the receiver
      bridge tail --device /dev/dexcom --units mmol
      API_SECRET=... bridge tail --nightscout-url https://my-site.example
      bridge tail --once --count 3 | tail -n 1
    """
    if device and nightscout_url:
        raise click.UsageError("give --device or --nightscout-url, not both")
    settings = load_settings({"device": device, "state_dir": state_dir, "secret_file": secret_file,
                              "nightscout_urls": [nightscout_url] if nightscout_url else None,
                              "allow_insecure_http": allow_insecure_http}, config_path=config_path)
    source = choose_source(settings, device=device, nightscout_url=nightscout_url)
    if not once:
        where = {"receiver": settings.device, "store": settings.store_path, "nightscout": nightscout_url}[source]
        click.echo(f"following the {source} ({where}); Ctrl-C stops", err=True)
    shown = 0
    with closing(tail_readings(settings, source, count=count, follow=not once, sleep=time.sleep, now=utc_now,
                               units=units, poll_s=poll_s)) as lines:
        for line in lines:
            click.echo(line, color=None)
            shown += 1
    if not shown and count:
        click.echo(f"no readings in the {source}", err=True)
