"""`make bench`: run every benchmark in one go on this machine and write BENCHMARKS.md.

Each script prints its own Markdown section (heading, the command that reproduces it, the
machine, and a table with each goal and ratio); this script runs them one after another and
puts the sections together under a common header. Nothing is copied from an earlier run.

    python bench/run_all.py [--out BENCHMARKS.md] [--quick]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent

#: (script, arguments, arguments with --quick)
BENCHES = [
    ("bench_decode.py", [], ["--rounds", "3", "--copies", "100"]),
    ("bench_download.py", ["--days", "30", "--rounds", "3"], ["--days", "7", "--rounds", "1"]),
    ("bench_backfill.py", ["--days", "30", "--rounds", "3"], ["--days", "7", "--rounds", "1"]),
    ("bench_growth.py", ["--days", "1", "7", "30", "90"], ["--days", "1", "7"]),
    ("bench_server.py", [], ["--rounds", "1", "--seconds", "2", "--readings", "5"]),
    ("bench_daemon.py", [], ["--readings", "5", "--window", "30", "--days", "1"]),
]


def _machine() -> str:
    cpu = ""
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (f"{platform.machine()}, {os.cpu_count()} cores{', ' + cpu if cpu else ''}, {mem_gib:.0f} GiB, "
            f"{platform.system()} {platform.release()}, Python {platform.python_version()}")


def main() -> None:
    """Run the benches and write the file."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=HERE.parent / "BENCHMARKS.md")
    parser.add_argument("--quick", action="store_true", help="small sizes, for checking the scripts run")
    args = parser.parse_args()
    started = time.monotonic()
    sections = []
    for script, full, quick in BENCHES:
        path = HERE / script
        if not path.exists():
            sys.exit(f"{path} is missing")
        print(f"running {script} ...", file=sys.stderr, flush=True)
        done = subprocess.run([sys.executable, str(path), *(quick if args.quick else full)],
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            sys.exit(f"{script} failed ({done.returncode}):\n{done.stderr[-3000:]}")
        sections.append(done.stdout.strip())
    header = [
        "# Benchmarks",
        "",
        "Every figure below was measured in one run of `make bench` (`python bench/run_all.py`), on one machine,",
        "one benchmark after another; each section names the script and arguments that reproduce it. The",
        "machines are shared and noisy: scripts interleave what they compare and report medians and ratios.",
        "",
        f"Machine: {_machine()}. Run: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
        f"{(time.monotonic() - started) / 60:.1f} minutes{' (--quick sizes)' if args.quick else ''}.",
        "",
    ]
    args.out.write_text("\n".join(header) + "\n" + "\n\n".join(sections) + "\n", encoding="utf-8")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
