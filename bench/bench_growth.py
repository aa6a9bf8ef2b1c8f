"""How the receiver download and the first-run backfill grow with 1, 7, 30 and 90 days of history.

For each size: an emulated receiver (`bridge emulate`, latency on) read whole through
SerialLink + Receiver (wall time against the latency model's service time), then a first-run
`python -m bridge sync` into a fresh bundled server (wall time, and its ratio to the download),
the outbox's size on disk, and the records stored. One run, sizes in order.

    python bench/bench_growth.py [--days 1 7 30 90]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).resolve().parent


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, HERE / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def measure(days: float, tmp: Path) -> dict[str, float]:
    """One size: download and backfill, with the emulator as its own process."""
    download = _load("bench_download").download
    backfill = _load("bench_backfill").backfill_subprocess
    link = tmp / "dexcom"
    emulator = subprocess.Popen([sys.executable, "-m", "bridge", "emulate", "--days", f"{days:g}", "--interval",
                                 "3600", "--seed", "1", "--link", str(link)], stdout=subprocess.DEVNULL)
    try:
        while not link.exists():
            if emulator.poll() is not None:
                raise RuntimeError("the emulator did not start")
            time.sleep(0.05)
        wall, modelled, pages, records = download(str(link), 4)
        run = tmp / "backfill"
        run.mkdir()
        backfill_s, _ = backfill(link, run)
        outbox_mb = (run / "state" / "outbox.sqlite3").stat().st_size / 1e6
    finally:
        emulator.send_signal(signal.SIGTERM)
        emulator.wait(10)
    return {"days": days, "pages": pages, "records": records, "download": wall, "modelled": modelled,
            "backfill": backfill_s, "outbox_mb": outbox_mb}


def main() -> None:
    """Measure each size and print the section."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=float, nargs="+", default=[1, 7, 30, 90])
    args = parser.parse_args()
    rows = []
    for days in args.days:
        with tempfile.TemporaryDirectory() as tmp:
            rows.append(measure(days, Path(tmp)))
            print(f"{days:g} days measured", file=sys.stderr)
    print("## Growth with receiver history (bench/bench_growth.py)\n")
    print(f"`python bench/bench_growth.py --days {' '.join(f'{d:g}' for d in args.days)}` on "
          f"{platform.machine()}, {os.cpu_count()} cores: download with latency on (goal ≤ 1.15 × modelled) "
          "and first-run backfill into the bundled server (goal ≤ 1.3 × the download).\n")
    print("| days | pages | records | download s | modelled s | download / modelled | backfill s "
          "| backfill / download | outbox MB |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['days']:g} | {r['pages']:.0f} | {r['records']:.0f} | {r['download']:.2f} | {r['modelled']:.2f} "
              f"| {r['download'] / r['modelled']:.3f} | {r['backfill']:.2f} | {r['backfill'] / r['download']:.2f} "
              f"| {r['outbox_mb']:.1f} |")
    print()


if __name__ == "__main__":
    main()
