"""First-run backfill of a 30-day emulated receiver into the bundled server, against the download alone.

One emulator process (`bridge emulate --days 30 --interval 3600 --seed 1`, latency on) serves
every run. Each round, interleaved:

* download: every page of every partition read through SerialLink + Receiver (4-page reads),
  `download()` from bench/bench_download.py;
* backfill: `python -m bridge sync` as a subprocess, timed from spawn to exit, with a fresh
  state directory and a fresh `bridge server` (its own process and SQLite db; started before
  the clock starts);
* requests: the same backfill in-process through `bridge.app.sync.sync_once` (fresh state,
  fresh server), with `make_client` wrapped to keep the clients and sum their
  `requests_made` (retries and devicestatus included).

The goal is backfill / download <= 1.3 (medians); and <= 12 HTTP requests per 1,000 readings
uploaded. `--profile FILE` also writes a cProfile of one in-process backfill and prints where
its time goes.

    python bench/bench_backfill.py [--days 30] [--rounds 3] [--profile FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import importlib.util
import os
import platform
import pstats
import re
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

from bridge.app import sync as sync_module
from bridge.config import load_settings

GOAL_RATIO = 1.3
GOAL_REQUESTS = 12.0
SECRET = "bench-backfill-secret"
HERE = Path(__file__).resolve().parent
SECTION = "## Backfill and upload (bench/bench_backfill.py)"


def _bench_download() -> Any:
    spec = importlib.util.spec_from_file_location("bench_download", HERE / "bench_download.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env(**extra: str) -> dict[str, str]:
    env = {**os.environ, **extra}
    for name in ("BRIDGE_API_SECRET", "BRIDGE_NIGHTSCOUT_URL", "NS_URL"):
        env.pop(name, None)
    return env


@contextlib.contextmanager
def server(tmp: Path) -> Iterator[str]:
    """A fresh `bridge server` (own SQLite db) on loopback; yields its base URL."""
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log = (tmp / "server.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "bridge", "server", "--host", "127.0.0.1", "--port", str(port),
         "--db", str(tmp / "ns.sqlite"), "--auth-fail-delay", "0"],
        env=_env(API_SECRET=SECRET), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(base + "/api/v1/status.json", timeout=2) as response:
                    if response.status == 200:
                        break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start: {(tmp / 'server.log').read_text(errors='replace')}")
            time.sleep(0.05)
        yield base
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def backfill_subprocess(link: Path, tmp: Path) -> tuple[float, str]:
    """`python -m bridge sync` into a fresh server with a fresh state dir; (wall s, stdout)."""
    with server(tmp) as base:
        env = _env(BRIDGE_DEVICE=str(link), BRIDGE_STATE_DIR=str(tmp / "state"), NIGHTSCOUT_URL=base,
                   API_SECRET=SECRET)
        started = time.perf_counter()
        result = subprocess.run([sys.executable, "-m", "bridge", "sync"], env=env, capture_output=True, text=True,
                                timeout=600)
        wall = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"bridge sync exited {result.returncode}:\n{result.stdout}{result.stderr}")
    return wall, result.stdout


def backfill_in_process(link: Path, tmp: Path, profile: Path | None = None) -> dict[str, Any]:
    """The backfill through `sync_once`, counting the clients' requests; optionally profiled."""
    clients: list[Any] = []
    original = sync_module.make_client

    def keep(destination: Any, settings: Any) -> Any:
        client = original(destination, settings)
        clients.append(client)
        return client

    with server(tmp) as base:
        settings = load_settings({"device": str(link), "state_dir": str(tmp / "state"), "nightscout_urls": [base]},
                                 env=_env(API_SECRET=SECRET))
        sync_module.make_client = keep
        profiler = cProfile.Profile() if profile is not None else None
        try:
            started = time.perf_counter()
            if profiler is not None:
                profiler.enable()
            report = sync_module.sync_once(settings)
            if profiler is not None:
                profiler.disable()
            wall = time.perf_counter() - started
        finally:
            sync_module.make_client = original
        log = (tmp / "server.log").read_text(errors="replace")
    if report.exit_code != 0:
        raise RuntimeError(f"sync_once: exit {report.exit_code}: {report}")
    if profiler is not None and profile is not None:
        profiler.dump_stats(profile)
    assert report.read is not None
    return {
        "wall": wall,
        "requests": sum(c.requests_made for c in clients),
        "posts": {path: len(re.findall(rf'"POST {re.escape(path)}[^ ]* HTTP', log))
                  for path in ("/api/v1/entries", "/api/v1/treatments", "/api/v1/devicestatus")},
        "readings": report.read.read.get("egv", 0),
        "uploaded": sum(d.uploaded for d in report.destinations),
        "read": dict(report.read.read),
    }


def _server_counts(tmp: Path) -> tuple[int, int, int]:
    """(sgv entries, all entries, treatments) the server of an in-process run holds."""
    conn = sqlite3.connect(tmp / "ns.sqlite")
    try:
        return (int(conn.execute("SELECT count(*) FROM entries WHERE type = 'sgv'").fetchone()[0]),
                int(conn.execute("SELECT count(*) FROM entries").fetchone()[0]),
                int(conn.execute("SELECT count(*) FROM treatments").fetchone()[0]))
    finally:
        conn.close()


def profile_summary(path: Path, wall: float) -> list[str]:
    """Where one in-process backfill spends its time, by the functions that matter."""
    stats = pstats.Stats(str(path))
    cumulative: dict[str, float] = {}
    for (filename, _line, name), (_cc, _nc, _tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        key = f"{Path(filename).parent.name}/{Path(filename).name}:{name}"
        cumulative[key] = max(cumulative.get(key, 0.0), ct)
    wanted = [
        ("read_into_store (receiver + store)", "app/reading.py:read_into_store"),
        ("  Receiver.iter_pages (serial I/O + decode)", "dexcom/receiver.py:iter_pages"),
        ("  Outbox.add (store writes)", "store/outbox.py:add"),
        ("upload_destination (map + HTTP + mark_sent)", "app/upload.py:upload_destination"),
        ("  _documents (mapping, sensor pairing)", "app/upload.py:_documents"),
        ("    Outbox.sensor_near", "store/outbox.py:sensor_near"),
        ("  Outbox.due", "store/outbox.py:due"),
        ("  NightscoutClient._request (HTTP)", "nightscout/client.py:_request"),
        ("  Outbox.mark_sent", "store/outbox.py:mark_sent"),
        ("post_status (devicestatus)", "app/sync.py:post_status"),
        ("Outbox.prune", "store/outbox.py:prune"),
    ]
    lines = [f"| part | seconds | share of {wall:.2f} s |", "|---|---:|---:|"]
    for label, key in wanted:
        seconds = cumulative.get(key)
        if seconds is not None:
            lines.append(f"| {label} | {seconds:.2f} | {seconds / wall:.0%} |")
    return lines


def machine() -> str:
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = ", " + line.split(":", 1)[1].strip()
                break
    return f"{platform.machine()}, {os.cpu_count()} cores{cpu}, Python {platform.python_version()}"


def main() -> None:
    """Start the emulator, run the rounds, print (and optionally write) the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=float, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", type=Path, help="also profile one in-process backfill into this file")
    args = parser.parse_args()
    download = _bench_download().download
    downloads: list[float] = []
    backfills: list[float] = []
    counted: list[dict[str, Any]] = []
    modelled = 0.0
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        link = tmp / "dexcom"
        emulator = subprocess.Popen(
            [sys.executable, "-m", "bridge", "emulate", "--days", f"{args.days:g}", "--interval", "3600",
             "--seed", "1", "--link", str(link)],
            stdout=subprocess.DEVNULL, env=_env())
        try:
            deadline = time.monotonic() + 60
            while not link.exists():
                if emulator.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the emulator did not start")
                time.sleep(0.05)
            sync_stdout = ""
            for n in range(args.rounds):
                wall, modelled, _pages, _records = download(str(link), 4)
                downloads.append(wall)
                run = tmp / f"sub{n}"
                run.mkdir()
                wall, sync_stdout = backfill_subprocess(link, run)
                backfills.append(wall)
                run = tmp / f"inproc{n}"
                run.mkdir()
                result = backfill_in_process(link, run)
                result["sgv"], result["entries"], result["treatments"] = _server_counts(run)
                counted.append(result)
                print(f"# round {n + 1}: download {downloads[-1]:.2f} s, backfill {backfills[-1]:.2f} s, "
                      f"in-process {result['wall']:.2f} s, {result['requests']} requests", file=sys.stderr)
            profile_lines: list[str] = []
            if args.profile is not None:
                run = tmp / "profile"
                run.mkdir()
                result = backfill_in_process(link, run, profile=args.profile)
                profile_lines = profile_summary(args.profile, result["wall"])
        finally:
            emulator.send_signal(signal.SIGTERM)
            emulator.wait(10)

    download_s = statistics.median(downloads)
    backfill_s = statistics.median(backfills)
    inproc_walls = [r["wall"] for r in counted]
    inproc_s = statistics.median(inproc_walls)
    ratio = backfill_s / download_s
    last = counted[-1]
    per_1000 = last["requests"] / (last["sgv"] / 1000)
    command = f"python bench/bench_backfill.py --days {args.days:g} --rounds {args.rounds}"
    read = ", ".join(f"{n:,} {k}" for k, n in last["read"].items())
    lines = [
        SECTION,
        "",
        f"`{command}`: first-run backfill of a {args.days:g}-day emulated receiver (`bridge emulate --days "
        f"{args.days:g} --interval 3600 --seed 1`, latency on, one emulator process for every run) into the "
        "bundled server (`bridge server`, its own process, fresh SQLite db each run) with a fresh state "
        "directory each run, against the download alone (every page of every partition, 4-page reads, "
        "`download()` of bench/bench_download.py). The backfill is `python -m bridge sync` timed from spawn "
        "to exit (interpreter start included); the requests come from the same backfill run in-process "
        "through `bridge.app.sync.sync_once`, summing the clients' `requests_made`. "
        f"{args.rounds} round(s), interleaved; medians.",
        "",
        f"Machine: {machine()}; measured {date.today().isoformat()}. Read per backfill: {read}.",
        "",
        "| measure | median | goal | ratio to goal |",
        "|---|---:|---:|---:|",
        f"| receiver download alone (s) | {download_s:.2f} | (scale; modelled {modelled:.2f}) | |",
        f"| end-to-end backfill, `python -m bridge sync` (s) | {backfill_s:.2f} | | |",
        f"| backfill / download | {ratio:.3f} | <= {GOAL_RATIO} | {ratio / GOAL_RATIO:.2f} |",
        f"| in-process backfill, `sync_once` (s) | {inproc_s:.2f} | (scale) | |",
        f"| HTTP requests per 1,000 readings uploaded | {per_1000:.1f} | <= {GOAL_REQUESTS:g} | "
        f"{per_1000 / GOAL_REQUESTS:.2f} |",
        "",
        f"Requests of one backfill: {last['requests']} for {last['sgv']:,} readings ({last['uploaded']:,} "
        f"documents acknowledged: sgv, mbg, cal, treatments); POSTs in the server's access log: "
        + ", ".join(f"{path} {n}" for path, n in last["posts"].items()) + ".",
        f"Per round: download {', '.join(f'{w:.2f}' for w in downloads)} s; backfill "
        f"{', '.join(f'{w:.2f}' for w in backfills)} s; in-process {', '.join(f'{w:.2f}' for w in inproc_walls)} s.",
    ]
    minimum = -(-last["entries"] // 100) + -(-last["treatments"] // 100) + last["posts"]["/api/v1/devicestatus"]
    lines.append(
        f"With every batch full (100) the same upload would take {minimum} requests "
        f"({minimum / (last['sgv'] / 1000):.1f} per 1,000 readings) for its {last['entries']:,} entries and "
        f"{last['treatments']} treatments: the uploader takes the outbox 1,000 rows at a time "
        "(`bridge.app.upload.DUE_CHUNK`) and posts each chunk's entries and treatments separately, so each "
        "chunk ends in a partial entries batch and a small treatments POST.")
    if profile_lines:
        lines += ["", "Where one in-process backfill spends its time (cProfile, cumulative; the profiler "
                  "slows the Python parts):", "", *profile_lines]
    text = "\n".join(lines) + "\n"
    print(text)


if __name__ == "__main__":
    main()
