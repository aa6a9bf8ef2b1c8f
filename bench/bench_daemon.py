"""Latency and footprint of `bridge run`: emulated receiver -> daemon -> bundled server.

Three rigs run side by side on loopback, each its own ``bridge server`` (SQLite), ``bridge
emulate`` (latency on: the receiver's modelled service times) and ``bridge run`` process:

* latency: the emulator records a reading every ``--interval`` s (10 s by default: from 9 s up
  the daemon polls every 3 s while a reading is due, exactly as at the real 300 s cadence, so the
  figure is not flattered by the faster polling of a shorter interval). Once the daemon has
  learned the cadence and its queue is empty, the bench polls the server's database (read-only,
  every 0.1 s) for new sgv rows: the latency of a reading is the host time the row is first
  seen minus its recording instant ``DEXCOM_EPOCH + system_seconds`` (the emulator runs with
  ``--clock-offset 0``, so receiver system time is host UTC; the row's ``date`` minus the
  daemon's anchor gives ``system_seconds``). Receiver commands come from the daemon's own count
  (``receiver_commands`` in ``bridge status --json``) over the same window.
* footprint: two emulators at the real 300 s cadence with 7 days of history, one daemon as
  `bridge run` runs in this environment and one with ``trio`` unimportable (what a Pi install
  without the test extras has: selenium pulls trio into the test venv and httpcore imports it
  when present). After the backfill and a settle time, CPU (utime + stime from
  ``/proc/PID/stat``) and receiver commands are measured over ``--window`` s of steady running
  and scaled to an hour and a minute; peak RSS is ``VmHWM`` from ``/proc/PID/status`` at the end
  (it includes the 7-day backfill at start-up).
* where the memory goes: a fresh interpreter imports what `bridge run` imports, group by group,
  and prints ``VmRSS`` after each (with and without trio).

    python bench/bench_daemon.py [--readings 30] [--interval 10] [--window 300] [--days 7]

It prints its section of BENCHMARKS.md; `make bench` (bench/run_all.py) writes the file.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## Daemon latency and footprint (bench/bench_daemon.py)"
SECRET = "bench-daemon-secret-0123456789"
DEXCOM_EPOCH_UNIX = 1230768000  # 2009-01-01T00:00:00Z
CLK_TCK = os.sysconf("SC_CLK_TCK")
DB_POLL_S = 0.1
SETTLE_S = 15.0  # after the backfill, before the footprint window
START_TIMEOUT_S = 30.0
WARM_TIMEOUT_S = 240.0
RSS_GOAL_MB = 40.0
LATENCY_GOAL_S = 10.0
COMMANDS_GOAL_PER_MIN = 5.0  # "a few per minute", read as at most 5
# `bridge run` without trio importable (as installed on a Pi without the test extras)
NO_TRIO = "import sys; sys.modules['trio'] = None; from bridge.cli import run; run()"

IMPORT_GROUPS: list[tuple[str, list[str]]] = [
    ("stdlib: json, logging, datetime, statistics, subprocess", ["json", "logging", "datetime", "statistics",
                                                                "subprocess", "threading"]),
    ("sqlite3", ["sqlite3"]),
    ("ssl", ["ssl"]),
    ("click", ["click"]),
    ("pyserial, pyusb", ["serial", "serial.tools.list_ports", "usb.core"]),
    ("tenacity", ["tenacity"]),
    ("httpcore (with trio when importable)", ["httpcore"]),
    ("httpx (h11, anyio, idna, certifi)", ["httpx"]),
    ("bridge.dexcom, bridge.records, bridge.store", ["bridge.records", "bridge.dexcom", "bridge.store"]),
    ("bridge.nightscout, bridge.config", ["bridge.nightscout", "bridge.nightscout.client", "bridge.config"]),
    ("bridge.app (audit, sync, upload, hostprobe, daemon)", ["bridge.app.audit", "bridge.app.sync",
                                                              "bridge.app.daemon"]),
    ("bridge.cli", ["bridge.cli"]),
]
IMPORT_SCRIPT = r"""
import importlib, json, re, sys
if sys.argv[1] == "no-trio":
    sys.modules["trio"] = None
def rss():
    return int(re.search(r"VmRSS:\s+(\d+)", open("/proc/self/status").read()).group(1)) / 1024
rows = [("interpreter", rss())]
for label, modules in json.loads(sys.argv[2]):
    for m in modules:
        importlib.import_module(m)
    rows.append((label, rss()))
import httpx
client = httpx.Client()  # what NightscoutClient builds: an SSL context with certifi's CA bundle
rows.append(("httpx.Client() (SSL context, CA bundle)", rss()))
print(json.dumps({"rows": rows, "modules": len(sys.modules)}))
"""


# ---------------------------------------------------------------- helpers

def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100), nearest rank."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def machine() -> str:
    model = ""
    with contextlib.suppress(OSError):
        match = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.MULTILINE)
        model = f", {match.group(1).strip()}" if match else ""
    return (f"{platform.machine()}, {os.cpu_count()} cores{model}, Linux {platform.release()}, "
            f"Python {platform.python_version()}")


def proc_cpu_s(pid: int) -> float:
    """utime + stime of a process, seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14 and 15 of proc(5)


def proc_sched_s(pid: int) -> float:
    """Time on a CPU of every thread of a process, seconds (``/proc/PID/task/*/schedstat``, ns resolution)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            total += int((task / "schedstat").read_text().split()[0])
    return total / 1e9


def proc_mem_mb(pid: int) -> dict[str, float]:
    text = Path(f"/proc/{pid}/status").read_text()
    return {key: int(re.search(rf"^{key}:\s+(\d+) kB", text, re.MULTILINE).group(1)) / 1024  # type: ignore[union-attr]
            for key in ("VmHWM", "VmRSS")}


def read_only(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)


class Rig:
    """One ``bridge server``, one ``bridge emulate`` and one ``bridge run``, in their own directory."""

    def __init__(self, tmp: Path, name: str, *, interval_s: float, days: float, seed: int,
                 no_trio: bool = False, latency: bool = True) -> None:
        self.dir = tmp / name
        self.dir.mkdir()
        self.name, self.interval_s, self.days, self.seed, self.no_trio = name, interval_s, days, seed, no_trio
        self.latency = latency
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.db = self.dir / "ns.sqlite"
        self.store = self.dir / "state" / "outbox.sqlite3"
        self.link = self.dir / "dexcom"
        self.env = {**os.environ, "API_SECRET": SECRET, "BRIDGE_DEVICE": str(self.link),
                    "BRIDGE_STATE_DIR": str(self.dir / "state"), "NIGHTSCOUT_URL": self.url}
        for key in ("BRIDGE_API_SECRET", "JOURNAL_STREAM", "NOTIFY_SOCKET", "WATCHDOG_USEC"):
            self.env.pop(key, None)
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._store_conn: sqlite3.Connection | None = None

    def _spawn(self, role: str, argv: list[str]) -> subprocess.Popen[bytes]:
        with (self.dir / f"{role}.log").open("ab") as log:
            proc = subprocess.Popen(argv, env=self.env, stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, cwd=self.dir)
        self.procs[role] = proc
        return proc

    def start_server(self) -> None:
        self._spawn("server", [sys.executable, "-m", "bridge", "server", "--host", "127.0.0.1",
                               "--port", str(self.port), "--db", str(self.db), "--auth-fail-delay", "0"])

    def start_emulator(self) -> None:
        self._spawn("emulator", [sys.executable, "-m", "bridge", "emulate", "--days", str(self.days),
                                 "--interval", str(self.interval_s), "--link", str(self.link),
                                 "--seed", str(self.seed), "--clock-offset", "0",
                                 *([] if self.latency else ["--no-latency"])])

    def start_daemon(self) -> None:
        head = [sys.executable, "-c", NO_TRIO] if self.no_trio else [sys.executable, "-m", "bridge"]
        self._spawn("daemon", [*head, "run", "--assume-clock-ok"])
        self.daemon_started = time.monotonic()

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            server_up = False
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(self.url + "/api/v1/status.json", timeout=2) as response:
                    server_up = response.status == 200
            if server_up and self.link.exists():
                return
            for role, proc in self.procs.items():
                if proc.poll() is not None:
                    raise SystemExit(f"{self.name}: {role} exited {proc.returncode}; see {self.dir}/{role}.log")
            time.sleep(0.2)
        raise SystemExit(f"{self.name}: server or emulator not ready after {START_TIMEOUT_S:g} s")

    @property
    def pid(self) -> int:
        return self.procs["daemon"].pid

    def health(self) -> dict[str, Any]:
        """The daemon's saved state (what `bridge status --json` prints as ``daemon``)."""
        if self._store_conn is None:
            if not self.store.exists():
                return {}
            self._store_conn = read_only(self.store)
        with contextlib.suppress(sqlite3.Error):
            row = self._store_conn.execute("SELECT value FROM meta WHERE key = 'health'").fetchone()
            return {} if row is None else dict(json.loads(row[0]))
        return {}

    def status(self) -> dict[str, Any]:
        done = subprocess.run([sys.executable, "-m", "bridge", "status", "--json"], env=self.env,
                              capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise SystemExit(f"{self.name}: bridge status failed: {done.stderr}")
        return dict(json.loads(done.stdout))

    def check_alive(self) -> None:
        proc = self.procs.get("daemon")
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"{self.name}: the daemon exited {proc.returncode}; see {self.dir}/daemon.log")

    def stop(self) -> int | None:
        """Stop all three (SIGTERM); returns the daemon's exit code."""
        if self._store_conn is not None:
            self._store_conn.close()
        code = None
        for role in ("daemon", "emulator", "server"):
            proc = self.procs.get(role)
            if proc is None:
                continue
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if role == "daemon":
                code = proc.returncode
        return code


# ---------------------------------------------------------------- phases

class LatencyProbe:
    """Watches the latency rig: warm-up, then one latency per reading recorded after the start."""

    def __init__(self, rig: Rig, readings: int) -> None:
        self.rig, self.readings = rig, readings
        self.latencies: list[float] = []
        self.start: dict[str, Any] | None = None
        self.end: dict[str, Any] | None = None
        self._conn: sqlite3.Connection | None = None
        self._rowid = 0

    @property
    def done(self) -> bool:
        return self.end is not None

    def step(self) -> None:
        rig = self.rig
        if "daemon" not in rig.procs or self.done:
            return
        rig.check_alive()
        if self.start is None:
            health = rig.health()
            warm = (health.get("interval_s") == rig.interval_s and health.get("newest_reading_utc")
                    and not any(health.get("backlog", {}).values()) and health.get("anchor_offset_s") is not None)
            if not warm:
                if time.monotonic() - rig.daemon_started > WARM_TIMEOUT_S:
                    raise SystemExit(f"latency rig not warm after {WARM_TIMEOUT_S:g} s: {health}")
                return
            self._conn = read_only(rig.db)
            self._rowid = self._conn.execute("SELECT coalesce(max(rowid), 0) FROM entries").fetchone()[0]
            self.start = {"t": time.time(), "mono": time.monotonic(), "cpu": proc_cpu_s(rig.pid),
                          "commands": health["receiver_commands"], "cycles": health["cycles"],
                          "anchor": health["anchor_offset_s"]}
            return
        assert self._conn is not None
        seen = time.time()
        rows = self._conn.execute("SELECT rowid, date FROM entries WHERE type = 'sgv' AND rowid > ? ORDER BY rowid",
                                  (self._rowid,)).fetchall()
        for rowid, date in rows:
            self._rowid = rowid
            recorded = date / 1000 - self.start["anchor"]  # DEXCOM_EPOCH + system_seconds
            if recorded >= self.start["t"] and len(self.latencies) < self.readings:
                self.latencies.append(seen - recorded)
        if len(self.latencies) >= self.readings:
            health = rig.health()
            self.end = {"t": time.time(), "mono": time.monotonic(), "cpu": proc_cpu_s(rig.pid),
                        "commands": health["receiver_commands"], "cycles": health["cycles"],
                        "mem": proc_mem_mb(rig.pid)}


class FootprintProbe:
    """Watches a real-cadence rig: backfill, settle, then a window of steady running."""

    def __init__(self, rig: Rig, window_s: float) -> None:
        self.rig, self.window_s = rig, window_s
        self.ready_at: float | None = None
        self.backfill_s: float | None = None
        self.start: dict[str, Any] | None = None
        self.end: dict[str, Any] | None = None

    @property
    def done(self) -> bool:
        return self.end is not None

    def _sample(self) -> dict[str, Any]:
        health = self.rig.health()
        return {"mono": time.monotonic(), "cpu": proc_cpu_s(self.rig.pid), "sched": proc_sched_s(self.rig.pid),
                "commands": health["receiver_commands"],
                "cycles": health["cycles"], "mem": proc_mem_mb(self.rig.pid)}

    def step(self) -> None:
        rig = self.rig
        if "daemon" not in rig.procs or self.done:
            return
        rig.check_alive()
        now = time.monotonic()
        if self.ready_at is None:
            health = rig.health()
            if health.get("newest_reading_utc") and health.get("backlog") and not any(health["backlog"].values()):
                self.ready_at = now
                self.backfill_s = now - rig.daemon_started
            return
        if self.start is None:
            if now - self.ready_at >= SETTLE_S:
                self.start = self._sample()
            return
        if now - self.start["mono"] >= self.window_s:
            self.end = self._sample()


def backfill_sweep(tmp: Path, days_list: list[float]) -> list[dict[str, float]]:
    """Peak RSS right after a first-run backfill of ``days`` of history (emulator without latency)."""
    rows = []
    for days in days_list:
        rigs = [Rig(tmp, f"sweep-{days:g}-{variant}", interval_s=300, days=days, seed=41, no_trio=variant == "lean",
                    latency=False) for variant in ("plain", "lean")]
        try:
            for rig in rigs:
                rig.start_server()
                rig.start_emulator()
            for rig in rigs:
                rig.wait_ready()
                rig.start_daemon()
            pending = list(rigs)
            peaks: dict[str, float] = {}
            deadline = time.monotonic() + WARM_TIMEOUT_S
            while pending and time.monotonic() < deadline:
                for rig in list(pending):
                    rig.check_alive()
                    health = rig.health()
                    if health.get("newest_reading_utc") and health.get("backlog") \
                            and not any(health["backlog"].values()):
                        time.sleep(2)  # the cycle's devicestatus and state save
                        peaks[rig.name.rsplit("-", 1)[1]] = proc_mem_mb(rig.pid)["VmHWM"]
                        pending.remove(rig)
                time.sleep(0.2)
            if pending:
                raise SystemExit(f"backfill of {days:g} days not done after {WARM_TIMEOUT_S:g} s")
        finally:
            for rig in rigs:
                rig.stop()
        rows.append({"days": days, "plain": peaks["plain"], "lean": peaks["lean"]})
    return rows


def import_breakdown(no_trio: bool) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-c", IMPORT_SCRIPT, "no-trio" if no_trio else "as-is",
                           json.dumps(IMPORT_GROUPS)], capture_output=True, text=True, timeout=120, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"import breakdown failed: {done.stderr}")
    return dict(json.loads(done.stdout))


# ---------------------------------------------------------------- report

def report(args: argparse.Namespace, latency: LatencyProbe, plain: FootprintProbe, lean: FootprintProbe,
           imports: dict[str, dict[str, Any]], exits: dict[str, int | None], command: str, took_s: float,
           sweep: list[dict[str, float]]) -> str:
    lat = latency.latencies
    ls, le = latency.start, latency.end
    assert ls is not None and le is not None
    a_minutes = (le["mono"] - ls["mono"]) / 60
    a_commands = le["commands"] - ls["commands"]
    a_cpu = le["cpu"] - ls["cpu"]

    def window(probe: FootprintProbe) -> dict[str, float]:
        s, e = probe.start, probe.end
        assert s is not None and e is not None
        seconds = e["mono"] - s["mono"]
        return {"seconds": seconds, "cpu_per_h": (e["cpu"] - s["cpu"]) * 3600 / seconds,
                "sched_per_h": (e["sched"] - s["sched"]) * 3600 / seconds,
                "commands_per_min": (e["commands"] - s["commands"]) * 60 / seconds,
                "cycles": e["cycles"] - s["cycles"], "hwm": e["mem"]["VmHWM"], "rss": e["mem"]["VmRSS"],
                "rss_start": s["mem"]["VmRSS"], "backfill_s": probe.backfill_s or 0.0}

    p, n = window(plain), window(lean)
    p95 = percentile(lat, 95)
    lines = [
        SECTION,
        "",
        f"Machine: {machine()}; shared and noisy. Measured {time.strftime('%Y-%m-%d', time.gmtime())}, "
        f"{took_s / 60:.1f} min in all.",
        "",
        f"Command: `{command}`",
        "",
        "Three rigs side by side on loopback, each `bridge server` + `bridge emulate` (latency on, "
        "`--clock-offset 0`) + `bridge run --assume-clock-ok`:",
        f"latency: emulator every {args.interval:g} s (from 9 s up the daemon polls every 3 s while a reading is "
        f"due, as at the real 300 s cadence), {len(lat)} readings once the daemon had learned the cadence; "
        f"footprint: emulators at the real 300 s cadence with {args.days:g} days of history, measured over "
        f"{p['seconds']:.0f} s of steady running after the backfill ({p['backfill_s']:.0f} s from start to an "
        f"empty queue) and {SETTLE_S:g} s settle time, one daemon as "
        f"`bridge run` runs here and one with trio unimportable (a Pi install: only the test extras bring trio, "
        f"through selenium, and httpcore imports it whenever it is installed).",
        "",
        "| measure | value | goal | ratio to goal |",
        "|---|---:|---:|---:|",
        f"| latency recording -> server, p50 ({len(lat)} readings at {args.interval:g} s) | "
        f"{percentile(lat, 50):.2f} s | | |",
        f"| latency recording -> server, p95 | {p95:.2f} s | <= {LATENCY_GOAL_S:g} s | {p95 / LATENCY_GOAL_S:.2f} |",
        f"| latency recording -> server, max | {max(lat):.2f} s | | |",
        f"| receiver commands per reading at {args.interval:g} s | {a_commands / len(lat):.1f} | (scale) | |",
        f"| receiver commands per minute at {args.interval:g} s | {a_commands / a_minutes:.1f} | (scale) | |",
        f"| receiver commands per minute at 300 s (measured over {p['seconds']:.0f} s) | "
        f"{p['commands_per_min']:.1f} | a few (<= {COMMANDS_GOAL_PER_MIN:g}) | "
        f"{p['commands_per_min'] / COMMANDS_GOAL_PER_MIN:.2f} |",
        f"| peak RSS (VmHWM) of `bridge run`, this venv (trio present) | {p['hwm']:.1f} MB | <= {RSS_GOAL_MB:g} MB | "
        f"{p['hwm'] / RSS_GOAL_MB:.2f} |",
        f"| steady RSS (VmRSS) at the end, this venv | {p['rss']:.1f} MB | | |",
        f"| peak RSS (VmHWM), runtime dependencies only (no trio) | {n['hwm']:.1f} MB | <= {RSS_GOAL_MB:g} MB | "
        f"{n['hwm'] / RSS_GOAL_MB:.2f} |",
        f"| steady RSS (VmRSS) at the end, runtime dependencies only | {n['rss']:.1f} MB | | |",
        f"| CPU per hour at 300 s, this venv (utime+stime over {p['seconds']:.0f} s, x{3600 / p['seconds']:.0f}) | "
        f"{p['cpu_per_h']:.1f} s/h = {p['cpu_per_h'] / 36:.3f} % of a core | (none set) | |",
        f"| CPU per hour at 300 s, this venv (schedstat, ns resolution) | {p['sched_per_h']:.1f} s/h | (none set) | |",
        f"| CPU per hour at 300 s, runtime dependencies only (utime+stime) | {n['cpu_per_h']:.1f} s/h | "
        "(none set) | |",
        f"| CPU per reading at {args.interval:g} s (for scale) | {1000 * a_cpu / len(lat):.0f} ms | | |",
        "",
        f"Latency method: the bench polls the server's SQLite database read-only every {DB_POLL_S:g} s and takes "
        "the first time a reading's row is seen, minus the reading's recording instant `DEXCOM_EPOCH + "
        "system_seconds` (recovered from the row's `date` and the daemon's anchor, "
        f"{ls['anchor']:+d} s here). Receiver times are whole seconds: a real receiver's reading was "
        "recorded somewhere in [S, S + 1 s), so these figures carry ±0.5 s around their midpoint (they are "
        "measured from S, an upper bound); the emulator adds its record within 0.05 s after S and the "
        f"poll adds up to {DB_POLL_S:g} s. Latencies (s): "
        + ", ".join(f"{v:.1f}" for v in sorted(lat)) + ".",
        "",
        f"Receiver commands: the daemon's own count; at {args.interval:g} s one reading costs "
        f"{a_commands / len(lat):.1f} commands (polls of the newest EGV page while it is due, then a read of every "
        f"partition: sensor, EGV, meter, calibration, insertion, event, settings). At 300 s the window holds "
        f"one reading, the polls around it and the 120 s look-ins ({p['cycles']} cycles in "
        f"{p['seconds']:.0f} s), so the per-minute figure is measured, not scaled.",
        "",
        f"Daemon exit codes on SIGTERM: {', '.join(f'{k} {v}' for k, v in exits.items())}.",
        "",
    ]
    lines += memory_section(imports, p, n)
    if sweep:
        lines += [
            "",
            "Peak RSS after the first-run backfill, by history size (emulator without latency; the backfill "
            "commits in chunks, so the peak levels off):",
            "",
            "| history | peak RSS, this venv (MB) | ratio to 40 MB | peak RSS, no trio (MB) | ratio to 40 MB |",
            "|---|---:|---:|---:|---:|",
        ]
        lines += [f"| {row['days']:g} days | {row['plain']:.1f} | {row['plain'] / RSS_GOAL_MB:.2f} | "
                  f"{row['lean']:.1f} | {row['lean'] / RSS_GOAL_MB:.2f} |" for row in sweep]
    return "\n".join(lines)


def memory_section(imports: dict[str, dict[str, Any]], p: dict[str, float], n: dict[str, float]) -> list[str]:
    """Where the memory goes: RSS after each import group, as installed and without trio."""
    plain, lean = imports["as-is"], imports["no-trio"]
    lines = [
        "Where the memory goes: a fresh interpreter importing what `bridge run` imports, group by group "
        "(RSS after each group, and the increase it caused):",
        "",
        "| import | RSS, this venv (MB) | + | RSS, no trio (MB) | + |",
        "|---|---:|---:|---:|---:|",
    ]
    prev_p = prev_n = 0.0
    for (label, rss_p), (_, rss_n) in zip(plain["rows"], lean["rows"], strict=True):
        lines.append(f"| {label} | {rss_p:.1f} | {rss_p - prev_p:+.1f} | {rss_n:.1f} | {rss_n - prev_n:+.1f} |")
        prev_p, prev_n = rss_p, rss_n
    lines.append(f"| running daemon: the rest (sqlite caches, records, heap) | {p['hwm']:.1f} | "
                 f"{p['hwm'] - prev_p:+.1f} | {n['hwm']:.1f} | {n['hwm'] - prev_n:+.1f} |")
    lines += [
        "",
        f"Modules loaded: {plain['modules']} (this venv), {lean['modules']} (no trio).",
    ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readings", type=int, default=30, help="readings timed in the latency phase")
    parser.add_argument("--interval", type=float, default=10.0, help="emulator interval of the latency phase, s")
    parser.add_argument("--window", type=float, default=300.0, help="steady footprint window at 300 s cadence, s")
    parser.add_argument("--days", type=float, default=7.0, help="history of the footprint emulators, days")
    parser.add_argument("--sweep", default="1,30,90", help="history sizes (days) for the backfill peak RSS; '' skips")
    args = parser.parse_args()
    command = "python bench/bench_daemon.py " + " ".join(sys.argv[1:])
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bridge-bench-daemon-") as tmp_name:
        tmp = Path(tmp_name)
        rigs = {
            "plain": Rig(tmp, "plain", interval_s=300, days=args.days, seed=31),
            "no-trio": Rig(tmp, "no-trio", interval_s=300, days=args.days, seed=32, no_trio=True),
            "latency": Rig(tmp, "latency", interval_s=args.interval, days=1, seed=33),
        }
        exits: dict[str, int | None] = {}
        try:
            for rig in rigs.values():
                rig.start_server()
                rig.start_emulator()
            for rig in rigs.values():
                rig.wait_ready()
            emulator_up = time.monotonic()
            rigs["plain"].start_daemon()
            rigs["no-trio"].start_daemon()
            latency = LatencyProbe(rigs["latency"], args.readings)
            plain = FootprintProbe(rigs["plain"], args.window)
            lean = FootprintProbe(rigs["no-trio"], args.window)
            # five live spacings before the first read: the cadence is learned at once
            latency_daemon_at = emulator_up + 5.5 * args.interval
            print(f"# rigs up; latency daemon starts in {latency_daemon_at - time.monotonic():.0f} s; "
                  f"expect about {(5.5 * args.interval + args.readings * args.interval + 30) / 60:.1f} min",
                  file=sys.stderr)
            while not (latency.done and plain.done and lean.done):
                if "daemon" not in rigs["latency"].procs and time.monotonic() >= latency_daemon_at:
                    rigs["latency"].start_daemon()
                for probe in (latency, plain, lean):
                    probe.step()
                time.sleep(DB_POLL_S)
            status = {name: rig.status() for name, rig in rigs.items()}
        finally:
            for name, rig in rigs.items():
                exits[name] = rig.stop()
        for name, st in status.items():
            daemon = st["daemon"]
            print(f"# {name}: cycles {daemon['cycles']}, receiver commands {daemon['receiver_commands']}, "
                  f"interval {daemon['interval_s']}, anchor {daemon['anchor_offset_s']}, backlog {daemon['backlog']}, "
                  f"last error {daemon['last_error']}", file=sys.stderr)
        sweep = backfill_sweep(tmp, [float(d) for d in args.sweep.split(",") if d.strip()])
    imports = {"as-is": import_breakdown(False), "no-trio": import_breakdown(True)}
    section = report(args, latency, plain, lean, imports, exits, command, time.monotonic() - began, sweep)
    print(section)


if __name__ == "__main__":
    main()
