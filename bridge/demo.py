"""`bridge demo`: the whole job on embedded defaults, without hardware. Layer: CLI (lazy).

Starts a receiver emulator on a pseudo-terminal, identifies it like `bridge info`, prints the
last hour of readings, then follows new readings live. Loaded only when invoked, so the core
never imports the emulator.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import click

from bridge.app import dump_records, open_receiver, receiver_info

__all__ = ["demo"]

ARROWS = {1: "⇈", 2: "↑", 3: "↗", 4: "→", 5: "↘", 6: "↓", 7: "⇊"}


def format_reading(row: dict[str, Any]) -> str:
    """One EGV dump row as a human line: time, value or special name, arrow, direction."""
    if row["special"]:
        value = f"{row['special']} (no reading)"
    else:
        value = f"{row['glucose']:>3} mg/dL {ARROWS.get(row['trend'], ' ')} {row['direction'] or ''}"
    return f"{row['utc']}  {value}{'  [display only]' if row['display_only'] else ''}"


@click.command()
@click.option("--days", type=click.FloatRange(min=0.1), default=1, show_default=True,
              help="History the emulated receiver holds.")
@click.option("--interval", type=click.FloatRange(min=1), default=5, show_default=True,
              help="Seconds between live readings (a real receiver: 300).")
@click.option("--duration", type=click.FloatRange(min=0), default=30, show_default=True,
              help="Seconds to follow live readings (0: until Ctrl-C).")
def demo(days: float, interval: float, duration: float) -> None:
    """Run an emulated receiver and read it live: what `make demo` shows.

    \b
    Example:
      bridge demo --interval 5 --duration 30
    """
    from bridge.emulator import ReceiverEmulator  # lazy: a product feature outside the core

    with tempfile.TemporaryDirectory(prefix="dexcom-bridge-demo-") as tmp:
        link = Path(tmp) / "dexcom"
        with ReceiverEmulator(days=days, interval_s=interval, link_path=link, seed=1), open_receiver(str(link)) as rx:
            info = receiver_info(rx).to_dict()
            click.echo(f"receiver {info['serial_number']} on {link}: firmware {info['firmware_version']}, "
                       f"transmitter {info['transmitter_id']}, battery {info['battery_percent']}%")
            report = dump_records(rx, "egv", last=12)
            click.echo("last 12 readings:")
            for row in report.rows:
                click.echo("  " + format_reading(row))
            cursor = report.rows[-1]["system_seconds"] if report.rows else None
            click.echo(f"following new readings (one every {interval:g} s) for {duration:g} s; Ctrl-C stops")
            end = time.monotonic() + (duration or float("inf"))
            while time.monotonic() < end:
                time.sleep(min(1.0, interval / 2))
                for row in dump_records(rx, "egv", since_system=cursor).rows:
                    click.echo("  " + format_reading(row))
                    cursor = row["system_seconds"]
