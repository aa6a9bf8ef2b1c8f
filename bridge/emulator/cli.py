"""``bridge emulate``: serve an emulated Dexcom G4 receiver on a pseudo-terminal.

Layer: emulator CLI. The lead registers :data:`emulate` in the ``bridge`` click group; it
also runs on its own (``python -c "from bridge.emulator.cli import emulate; emulate()"``).
Prints the pty path (and the link) once the emulator answers, runs until SIGINT or SIGTERM,
then removes the link.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType

import click

__all__ = ["emulate"]


def _faults(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    from bridge.emulator.faults import FaultSpec

    try:
        FaultSpec.parse(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    return value


@click.command("emulate")
@click.option("--days", type=click.FloatRange(min=0), default=7, show_default=True, help="Days of history.")
@click.option(
    "--interval", "interval_s", type=click.FloatRange(min=1), default=300, show_default=True,
    help="Seconds between live readings (the history is every 300 s).",
)
@click.option("--calset-rev", type=click.Choice(["2", "3"]), default="2", show_default=True,
              help="CalSet revision: 2 = 148-byte records, 3 = 249-byte records.")
@click.option("--no-latency", is_flag=True, help="Answer at once instead of at a real receiver's pace.")
@click.option("--faults", callback=_faults, metavar="SPEC",
              help="Fault probabilities per reply, e.g. crc=0.02,header=0.01,record=0.01,truncate=0.01,"
                   "slow=0.01,nak=0.01,unplug=0.003.")
@click.option("--seed", type=int, help="Make history and faults repeatable.")
@click.option("--truth", "truth_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Keep a JSON file of every record the emulator holds.")
@click.option("--link", "link_path", type=click.Path(path_type=Path),
              help="Keep a symlink to the pty here (replaced if it exists, removed on exit).")
@click.option("--serial", help="Receiver serial number, e.g. SM12345678 (drawn when omitted).")
@click.option("--clock-offset", "clock_offset_s", type=int, default=0, show_default=True,
              help="Seconds the receiver's system clock is off from true UTC.")
def emulate(
    days: float, interval_s: float, calset_rev: str, no_latency: bool, faults: str | None, seed: int | None,
    truth_path: Path | None, link_path: Path | None, serial: str | None, clock_offset_s: int,
) -> None:
    """Serve an emulated Dexcom G4 receiver on a pseudo-terminal until interrupted.

    \b
    Examples:
      bridge emulate --days 30 --link /tmp/dexcom
      bridge emulate --interval 5 --faults crc=0.02,unplug=0.003 --seed 1 --truth truth.json --link /tmp/dexcom
    """
    from bridge.emulator.receiver import ReceiverEmulator

    stop = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    started = threading.Event()

    def _replugged(path: str) -> None:
        if started.is_set():
            click.echo(f"pty: {path}")

    previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    emulator = ReceiverEmulator(
        days=days, interval_s=interval_s, calset_rev=int(calset_rev), latency=not no_latency, faults=faults,
        seed=seed, truth_path=truth_path, link_path=link_path, serial=serial, clock_offset_s=clock_offset_s,
        on_port=_replugged,
    )
    try:
        path = emulator.start()
        counts = {kind: len(rows) for kind, rows in emulator.records.items()}
        click.echo(f"pty: {path}")
        if link_path is not None:
            click.echo(f"link: {link_path}")
        click.echo(
            f"receiver {emulator.serial}, transmitter {emulator.transmitter_id}, CalSet rev {calset_rev}, "
            f"latency {'off' if no_latency else 'on'}, faults {emulator.fault_spec}, "
            + ", ".join(f"{n} {kind}" for kind, n in counts.items())
        )
        started.set()
        while not stop.wait(0.2):
            pass
    finally:
        emulator.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    click.echo(f"stopped; {sum(emulator.faults_injected.values())} faults injected")
