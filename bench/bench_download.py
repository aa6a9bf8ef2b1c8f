"""Full download of a 30-day emulated receiver with latency on, against its modelled service time.

The emulator runs as its own process (`bridge emulate`, latency on, no faults) on a pty; this
process reads every page of every partition through SerialLink + Receiver, once with 4-page
reads and once with 1-page reads, interleaved over several rounds. The modelled service time
is what the emulator's latency model (from the real capture, PROTOCOL.md §2.4) charges for
exactly the commands sent; the ratio wall / modelled is the overhead the bridge adds.

    python bench/bench_download.py [--days 30] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bridge.dexcom import Receiver, SerialLink
from bridge.dexcom.framing import FrameDecoder
from bridge.emulator import LatencyModel
from bridge.records import RecordType

GOAL_RATIO = 1.15


class MeteredLink(SerialLink):
    """A SerialLink that charges each request the emulator's modelled service time."""

    model = LatencyModel()

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.modelled_s = 0.0
        self.pages = 0

    def write(self, data: bytes) -> None:
        decoder = FrameDecoder()
        decoder.feed(data)
        frame = decoder.next_frame()
        assert frame is not None
        pages = frame.payload[-1] if frame.command == 0x11 else 0
        self.pages += pages
        self.modelled_s += self.model.service_time(frame.command, pages)
        super().write(data)


def download(path: str, pages_per_read: int) -> tuple[float, float, int, int]:
    """Read every partition; return (wall s, modelled s, pages, records)."""
    link = MeteredLink(path)
    link.open()
    receiver = Receiver(link, max_pages_per_read=pages_per_read)
    records = 0
    started = time.perf_counter()
    for record_type in RecordType:
        result = receiver.read_records(record_type)
        assert result.complete, (record_type, result.skipped_pages)
        records += len(result.records)
    wall = time.perf_counter() - started
    link.close()
    return wall, link.modelled_s, link.pages, records


def main() -> None:
    """Start the emulator, download interleaved, print the medians."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--days", type=float, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        link = Path(tmp) / "dexcom"
        emulator = subprocess.Popen(
            [sys.executable, "-m", "bridge", "emulate", "--days", str(args.days), "--interval", "3600",
             "--seed", "1", "--link", str(link)],
            stdout=subprocess.DEVNULL,
        )
        try:
            while not link.exists():
                time.sleep(0.05)
            runs: dict[int, list[tuple[float, float, int, int]]] = {4: [], 1: []}
            for _ in range(args.rounds):
                for n in (4, 1):
                    runs[n].append(download(str(link), n))
        finally:
            emulator.send_signal(signal.SIGTERM)
            emulator.wait(10)
    print("## Receiver download (bench/bench_download.py)\n")
    print(f"`python bench/bench_download.py --days {args.days:g} --rounds {args.rounds}` on {platform.machine()}, "
          f"{os.cpu_count()} cores, Python {platform.python_version()}: a {args.days:g}-day emulated receiver "
          "(`bridge emulate`, latency on: 6 ms per command + 9 ms per page, 150 ms per XML reply, from the real "
          "capture) read whole, every page of every partition, through SerialLink + Receiver; 4-page and 1-page "
          f"reads interleaved over {args.rounds} rounds, medians. \"Modelled\" is what the latency model charges "
          "for exactly the commands sent; the ratio is the bridge's own overhead.\n")
    print("| pages per read | pages | records | wall s (median) | modelled s | ratio | goal |")
    print("|---|---|---|---|---|---|---|")
    for n in (4, 1):
        wall = statistics.median(r[0] for r in runs[n])
        modelled, pages, records = runs[n][0][1], runs[n][0][2], runs[n][0][3]
        goal = f"<= {GOAL_RATIO}" if n == 4 else "(scale)"
        print(f"| {n} | {pages} | {records} | {wall:.2f} | {modelled:.2f} | {wall / modelled:.3f} | {goal} |")
    w4 = statistics.median(r[0] for r in runs[4])
    w1 = statistics.median(r[0] for r in runs[1])
    print(f"\n1-page reads take {w1 / w4:.2f}x as long as 4-page reads: multi-page reads are what meets the goal.\n")


if __name__ == "__main__":
    main()
