"""`bridge demo`: the whole pipeline on embedded defaults, without hardware. Layer: CLI (lazy).

An emulated receiver (a few days of history, a reading every few seconds), the bundled
Nightscout-compatible server on loopback, and the daemon between them, logging what it does;
the live page's URL is printed. Ctrl-C (or the end of --duration) stops all three cleanly.
Loaded only when invoked, so the core never imports the emulator or the server.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import click

from bridge.app.daemon import Daemon
from bridge.app.hostprobe import SystemHost
from bridge.config import Destination, Settings

__all__ = ["demo"]

log = logging.getLogger("bridge.demo")


def _port(preferred: int) -> int:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", preferred))
        except OSError:
            sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_server(tmp: Path, port: int, secret: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "API_SECRET": secret}  # the secret goes by environment, never argv
    server = subprocess.Popen(
        [sys.executable, "-m", "bridge", "server", "--host", "127.0.0.1", "--port", str(port),
         "--db", str(tmp / "nightscout.sqlite")],
        env=env, stdout=subprocess.DEVNULL, stderr=(tmp / "server.log").open("wb"),
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/status.json", timeout=2):
                return server
        except OSError:
            if server.poll() is not None:
                break
            time.sleep(0.2)
    server.terminate()
    raise click.ClickException(f"the bundled server did not start: {(tmp / 'server.log').read_text()[-2000:]}")


@click.command()
@click.option("--days", type=click.FloatRange(min=0.1), default=2, show_default=True,
              help="History the emulated receiver holds.")
@click.option("--interval", type=click.FloatRange(min=1), default=5, show_default=True,
              help="Seconds between live readings (a real receiver: 300).")
@click.option("--port", type=int, default=1337, show_default=True, help="Port of the bundled server (loopback).")
@click.option("--duration", type=click.FloatRange(min=0), default=90, show_default=True,
              help="Seconds to run (0: until Ctrl-C).")
def demo(days: float, interval: float, port: int, duration: float) -> None:
    """Emulated receiver -> daemon -> bundled server, with the live page: what `make demo` runs.

    \b
    Example:
      bridge demo --interval 5 --duration 0     (until Ctrl-C)
    """
    from bridge.emulator import ReceiverEmulator  # lazy: a product feature outside the core

    secret = secrets.token_urlsafe(18)
    with tempfile.TemporaryDirectory(prefix="dexcom-bridge-demo-") as tmp_name:
        tmp = Path(tmp_name)
        port = _port(port)
        server = _start_server(tmp, port, secret)
        url = f"http://127.0.0.1:{port}"
        settings = Settings(device=str(tmp / "dexcom"), state_dir=tmp / "state",
                            destinations=(Destination(url, secret),))
        daemon = Daemon(settings, host=SystemHost(), max_sleep_s=interval)
        signal.signal(signal.SIGINT, lambda *_: daemon.stop())
        signal.signal(signal.SIGTERM, lambda *_: daemon.stop())
        if duration:
            threading.Timer(duration, daemon.stop).start()
        try:
            with ReceiverEmulator(days=days, interval_s=interval, link_path=tmp / "dexcom", seed=1) as emulator:
                click.echo(f"emulated receiver {emulator.serial} on {tmp / 'dexcom'} "
                           f"({days:g} days of history, a reading every {interval:g} s)")
                click.echo(f"bundled Nightscout server: {url}   <- open the live page in a browser")
                click.echo(f"running the daemon {'until Ctrl-C' if not duration else f'for {duration:g} s'}...")
                logging.getLogger().setLevel(logging.INFO)
                daemon.run()
        finally:
            server.terminate()
            server.wait(10)
        state = daemon.state
        click.echo(f"done: newest reading {state.newest_reading_utc}, queue {sum(state.backlog.values())}, "
                   f"{state.receiver_commands} receiver commands in {state.cycles} cycles")
