"""Load benchmark of the bundled server: uploads, follower GETs and 50 live WebSocket clients.

Everything runs on loopback in separate processes: the server (``python -m bridge server``,
as a user runs it, access log on), one uploader posting 100-entry batches back to back, one
follower doing GETs at the same time (``/api/v1/entries.json?count=288`` and
``/api/v1/entries/current.json`` in turn), each on a keep-alive connection. That phase runs
``--rounds`` times for ``--seconds`` each; the table gives the median over the rounds of each
round's p50, p99 and throughput (the machine is shared and noisy).

Then ``--clients`` WebSocket clients connect to ``/ws`` in one process and the main process
posts ``--readings`` single readings ``--interval`` seconds apart: every client must receive
every reading (``clients x readings`` messages), and the delivery latency is the time from the
start of the POST to the receipt by a client, over all receipts (CLOCK_MONOTONIC, which is
system-wide on Linux, so comparable across processes).

    python bench/bench_server.py [--rounds 3] [--seconds 5] [--clients 50] [--readings 20]

It prints its section of BENCHMARKS.md; `make bench` (bench/run_all.py) writes the file.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import http.client
import json
import multiprocessing
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## Server load (bench/bench_server.py)"
SECRET = "bench-secret-0123456789"
API_SECRET_SHA1 = hashlib.sha1(SECRET.encode()).hexdigest()
MINUTE_MS = 60_000
DAY_MS = 24 * 60 * MINUTE_MS
GET_PATHS = ("/api/v1/entries.json?count=288", "/api/v1/entries/current.json")
WS_DEADLINE_S = 30.0


# ---------------------------------------------------------------- helpers

def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100), nearest rank; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def iso(ms: int) -> str:
    """Nightscout's dateString: ISO 8601 UTC with milliseconds."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d}Z"


def reading(date_ms: int, sgv: int) -> dict[str, Any]:
    """An sgv entry as the bridge uploads it."""
    return {"type": "sgv", "sgv": sgv, "direction": "Flat", "device": "dexcom-bridge", "date": date_ms,
            "dateString": iso(date_ms), "noise": 1, "filtered": sgv * 1000, "unfiltered": sgv * 1000, "rssi": 100}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def running_server(workdir: Path) -> Iterator[int]:
    """Run ``python -m bridge server`` on a free loopback port; yield the port."""
    port = _free_port()
    log_path = workdir / "server.log"
    env = {**os.environ, "API_SECRET": SECRET}
    env.pop("BRIDGE_API_SECRET", None)
    with log_path.open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "bridge", "server", "--host", "127.0.0.1", "--port", str(port),
                                 "--db", str(workdir / "ns.sqlite"), "--auth-fail-delay", "0"],
                                cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 20
            while True:
                with contextlib.suppress(OSError):
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/status.json", timeout=2):
                        break
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("the server did not start:\n" + log_path.read_text(errors="replace"))
                time.sleep(0.1)
            yield port
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


class Client:
    """One keep-alive HTTP/1.1 connection; returns (status, body, seconds)."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes, float]:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers.update({"Content-Type": "application/json", "api-secret": API_SECRET_SHA1})
        started = time.perf_counter()
        self.conn.request(method, path, body=body, headers=headers)
        response = self.conn.getresponse()
        data = response.read()
        return response.status, data, time.perf_counter() - started

    def close(self) -> None:
        self.conn.close()


# ---------------------------------------------------------------- HTTP phase (worker processes)

def uploader(port: int, start_at: float, seconds: float, batch: int, first_date_ms: int) -> dict[str, Any]:
    """POST ``batch``-entry arrays back to back from ``start_at`` for ``seconds``; new dates each time."""
    client = Client(port)
    latencies: list[float] = []
    date = first_date_ms
    stored = 0
    time.sleep(max(0.0, start_at - time.time()))
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        payloads = [reading(date + i * 1000, 60 + (date // 1000 + i) % 300) for i in range(batch)]
        date += batch * 1000
        status, body, elapsed = client.request("POST", "/api/v1/entries", json.dumps(payloads).encode())
        if status != 200:
            raise RuntimeError(f"POST answered {status}: {body[:200]!r}")
        stored += len(json.loads(body))
        latencies.append(elapsed)
    client.close()
    if stored != batch * len(latencies):
        raise RuntimeError(f"stored {stored} of {batch * len(latencies)} entries")
    return {"latencies": latencies, "seconds": seconds, "entries": stored}


def follower(port: int, start_at: float, seconds: float) -> dict[str, Any]:
    """GET the paths of GET_PATHS in turn from ``start_at`` for ``seconds``."""
    client = Client(port)
    latencies: dict[str, list[float]] = {path: [] for path in GET_PATHS}
    time.sleep(max(0.0, start_at - time.time()))
    end = time.perf_counter() + seconds
    i = 0
    while time.perf_counter() < end:
        path = GET_PATHS[i % len(GET_PATHS)]
        i += 1
        status, body, elapsed = client.request("GET", path)
        if status != 200 or not body.startswith(b"["):
            raise RuntimeError(f"GET {path} answered {status}: {body[:200]!r}")
        latencies[path].append(elapsed)
    client.close()
    return {"latencies": latencies, "seconds": seconds}


def http_round(port: int, seconds: float, batch: int, first_date_ms: int,
               pool: ProcessPoolExecutor) -> dict[str, float]:
    """One round of concurrent uploads and GETs; return its p50/p99 (ms) and rates."""
    start_at = time.time() + 0.5
    up = pool.submit(uploader, port, start_at, seconds, batch, first_date_ms)
    down = pool.submit(follower, port, start_at, seconds)
    posted, got = up.result(), down.result()
    entries_get, current_get = (got["latencies"][p] for p in GET_PATHS)
    all_gets = entries_get + current_get
    return {
        "post_p50": 1000 * percentile(posted["latencies"], 50), "post_p99": 1000 * percentile(posted["latencies"], 99),
        "post_per_s": len(posted["latencies"]) / seconds, "entries_per_s": posted["entries"] / seconds,
        "entries_p50": 1000 * percentile(entries_get, 50), "entries_p99": 1000 * percentile(entries_get, 99),
        "current_p50": 1000 * percentile(current_get, 50), "current_p99": 1000 * percentile(current_get, 99),
        "get_p50": 1000 * percentile(all_gets, 50), "get_p99": 1000 * percentile(all_gets, 99),
        "get_per_s": len(all_gets) / seconds, "batches": len(posted["latencies"]),
    }


# ---------------------------------------------------------------- WebSocket phase

def ws_clients(port: int, clients: int, readings: int, ready: Any) -> dict[str, Any]:
    """Connect ``clients`` sockets, set ``ready``, collect ``readings`` entries messages on each."""
    return asyncio.run(_ws_clients(port, clients, readings, ready))


async def _ws_clients(port: int, clients: int, readings: int, ready: Any) -> dict[str, Any]:
    from websockets.asyncio.client import connect

    receipts: list[tuple[int, int, int]] = []  # (client, date, monotonic ns)

    async def one(index: int, socket_: Any) -> None:
        got = 0
        while got < readings:
            message = json.loads(await socket_.recv())
            now = time.monotonic_ns()
            if message.get("type") == "entries":
                for entry in message["entries"]:
                    receipts.append((index, entry["date"], now))
                    got += 1

    sockets = [await connect(f"ws://127.0.0.1:{port}/ws", max_queue=None) for _ in range(clients)]
    try:
        for socket_ in sockets:
            hello = json.loads(await socket_.recv())
            if hello.get("type") != "hello":
                raise RuntimeError(f"no hello: {hello}")
        ready.set()
        tasks = [asyncio.create_task(one(i, s)) for i, s in enumerate(sockets)]
        _, pending = await asyncio.wait(tasks, timeout=WS_DEADLINE_S)
        for task in pending:
            task.cancel()
        for task in tasks:
            if task.done() and not task.cancelled() and task.exception():
                raise task.exception()  # type: ignore[misc]
    finally:
        await asyncio.gather(*(s.close() for s in sockets), return_exceptions=True)
    return {"receipts": receipts}


def ws_phase(port: int, clients: int, readings: int, interval: float, pool: ProcessPoolExecutor,
             manager: Any) -> dict[str, float]:
    """Post ``readings`` single readings while ``clients`` sockets listen; check every delivery."""
    ready = manager.Event()
    listening = pool.submit(ws_clients, port, clients, readings, ready)
    if not ready.wait(30):
        listening.result(timeout=5)  # raises the clients' error, if any
        raise RuntimeError("the WebSocket clients did not connect")
    client = Client(port)
    sent: dict[int, int] = {}
    post_latencies = []
    base = int(time.time() * 1000) - readings * 1000
    for k in range(readings):
        date = base + k * 1000
        sent[date] = time.monotonic_ns()
        status, body, elapsed = client.request("POST", "/api/v1/entries", json.dumps([reading(date, 100 + k)]).encode())
        if status != 200:
            raise RuntimeError(f"POST answered {status}: {body[:200]!r}")
        post_latencies.append(elapsed)
        time.sleep(interval)
    client.close()
    receipts = listening.result(timeout=WS_DEADLINE_S + 10)["receipts"]
    pairs = {(c, d) for c, d, _ in receipts if d in sent}
    delays = [(t - sent[d]) / 1e6 for _, d, t in receipts if d in sent]
    return {"expected": clients * readings, "delivered": len(pairs), "duplicates": len(receipts) - len(pairs),
            "p50": percentile(delays, 50), "p99": percentile(delays, 99), "max": max(delays, default=float("nan")),
            "post_p50": 1000 * percentile(post_latencies, 50)}


# ---------------------------------------------------------------- report

def machine() -> str:
    model = ""
    with contextlib.suppress(OSError):
        match = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.MULTILINE)
        model = f", {match.group(1).strip()}" if match else ""
    return (f"{platform.machine()}, {os.cpu_count()} cores{model}, Linux {platform.release()}, "
            f"Python {platform.python_version()}")


def report(args: argparse.Namespace, rounds: list[dict[str, float]], ws: dict[str, float], command: str) -> str:
    med = {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}
    lines = [
        SECTION,
        "",
        f"Machine: {machine()}; shared and noisy, so each figure is the median over {len(rounds)} rounds "
        f"of {args.seconds:g} s. Loopback, server = `python -m bridge server` (uvicorn, SQLite WAL, access log on).",
        "",
        f"Command: `{command}`",
        "",
        "| Load | p50 (ms) | p99 (ms) | Throughput |",
        "|---|---:|---:|---:|",
        f"| POST /api/v1/entries, {args.batch}-entry batches, back to back | {med['post_p50']:.1f} | "
        f"{med['post_p99']:.1f} | {med['post_per_s']:.1f} batches/s = {med['entries_per_s']:,.0f} entries/s |",
        f"| GET /api/v1/entries.json?count=288, concurrently | {med['entries_p50']:.1f} | {med['entries_p99']:.1f} | |",
        f"| GET /api/v1/entries/current.json, concurrently | {med['current_p50']:.1f} | {med['current_p99']:.1f} | |",
        f"| all GETs (one follower process, alternating) | {med['get_p50']:.1f} | {med['get_p99']:.1f} | "
        f"{med['get_per_s']:.0f} requests/s |",
        f"| WebSocket push, {args.clients} clients, POST start to receipt | {ws['p50']:.1f} | {ws['p99']:.1f} | "
        f"{ws['delivered']}/{ws['expected']} messages delivered |",
        "",
        f"WebSocket phase: {args.readings} single-reading POSTs {args.interval:g} s apart with {args.clients} live "
        f"clients; every client received every reading: {'yes' if ws['delivered'] == ws['expected'] else 'NO'} "
        f"({ws['delivered']} of {ws['expected']}, {ws['duplicates']} duplicates, slowest receipt {ws['max']:.1f} ms, "
        f"POST p50 {ws['post_p50']:.1f} ms with the fan-out). The latency includes the one client process "
        "reading all the sockets on one event loop, so it is an upper bound for a single follower.",
        "Per-round POST p50 (ms): " + ", ".join(f"{r['post_p50']:.1f}" for r in rounds)
        + "; GET p50 (ms): " + ", ".join(f"{r['get_p50']:.1f}" for r in rounds)
        + "; batches per round: " + ", ".join(str(int(r['batches'])) for r in rounds) + ".",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="HTTP load rounds (median reported)")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each HTTP round")
    parser.add_argument("--batch", type=int, default=100, help="entries per POST")
    parser.add_argument("--clients", type=int, default=50, help="live WebSocket clients")
    parser.add_argument("--readings", type=int, default=20, help="readings posted to the WebSocket clients")
    parser.add_argument("--interval", type=float, default=0.2, help="seconds between those readings")
    args = parser.parse_args()
    command = "python bench/bench_server.py " + " ".join(sys.argv[1:])
    ctx = multiprocessing.get_context("spawn")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bridge-bench-") as tmp, running_server(Path(tmp)) as port, \
            ProcessPoolExecutor(max_workers=2, mp_context=ctx) as pool, ctx.Manager() as manager:
        pool.submit(time.sleep, 0).result()  # start the workers before timing anything
        first_date = int(time.time() * 1000) - 3 * DAY_MS  # inside Nightscout's default 4-day window
        rounds = []
        for n in range(args.rounds):
            result = http_round(port, args.seconds, args.batch, first_date, pool)
            first_date += int(result["batches"]) * args.batch * 1000
            rounds.append(result)
            print(f"round {n + 1}: POST p50 {result['post_p50']:.1f} ms, {result['post_per_s']:.1f} batches/s; "
                  f"GET p50 {result['get_p50']:.1f} ms, {result['get_per_s']:.0f}/s", file=sys.stderr)
        ws = ws_phase(port, args.clients, args.readings, args.interval, pool, manager)
    section = report(args, rounds, ws, command)
    print(section)
    print(f"(bench took {time.monotonic() - started:.0f} s)", file=sys.stderr)
    if ws["delivered"] != ws["expected"]:
        raise SystemExit(f"only {ws['delivered']} of {ws['expected']} WebSocket messages arrived")


if __name__ == "__main__":
    main()
