"""Decode throughput of EGV pages with every CRC checked, beside a bare loop for scale.

Input: the real EGV pages of the 2013 capture (../shared/vectors, or BRIDGE_VECTORS_DIR),
repeated. Both decoders run interleaved, several rounds each, in one process; the medians
and their ratio are printed as a Markdown table row.

    python bench/bench_decode.py [--rounds 7] [--copies 400]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import struct
import time
from pathlib import Path

from bridge.dexcom.crc import C_EXTENSION, crc16_xmodem
from bridge.dexcom.pages import PAGE_HEADER_LEN, decode_page

VECTORS = Path(os.environ.get("BRIDGE_VECTORS_DIR") or Path(__file__).resolve().parents[2] / "shared" / "vectors")
GOAL_RECORDS_PER_S = 200_000
_EGV = struct.Struct("<IIHBH")


def egv_pages() -> list[bytes]:
    """The real EGV pages of the 2013 capture."""
    data = json.loads((VECTORS / "pages_dexcom_studio_g4_2013.json").read_text())
    return [bytes.fromhex(p["hex"]) for p in data["pages"] if p["record_type"] == 4]


def project_decode(pages: list[bytes]) -> int:
    """Our decoder: header CRC, type/page checks, every record CRC, frozen dataclasses."""
    return sum(len(decode_page(page).records) for page in pages)


def bare_loop(pages: list[bytes]) -> int:
    """The floor: header CRC, iter_unpack of the records and their CRCs, no objects."""
    n = 0
    for page in pages:
        if crc16_xmodem(page[: PAGE_HEADER_LEN - 2]) != int.from_bytes(page[26:28], "little"):
            raise ValueError("header CRC")
        count = int.from_bytes(page[4:8], "little")
        data = page[PAGE_HEADER_LEN : PAGE_HEADER_LEN + count * _EGV.size]
        for i, fields in enumerate(_EGV.iter_unpack(data)):
            start = i * _EGV.size
            if crc16_xmodem(data[start : start + _EGV.size - 2]) != fields[4]:
                raise ValueError("record CRC")
            n += 1
    return n


def main() -> None:
    """Run both decoders interleaved and print the medians."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--copies", type=int, default=400)
    args = parser.parse_args()
    pages = egv_pages() * args.copies
    rates: dict[str, list[float]] = {"project": [], "bare": []}
    for _ in range(args.rounds):
        for name, fn in (("project", project_decode), ("bare", bare_loop)):
            started = time.perf_counter()
            n = fn(pages)
            rates[name].append(n / (time.perf_counter() - started))
    project = statistics.median(rates["project"])
    bare = statistics.median(rates["bare"])
    print("## Record decoding (bench/bench_decode.py)\n")
    print(f"`python bench/bench_decode.py --rounds {args.rounds} --copies {args.copies}` on {platform.machine()}, "
          f"{os.cpu_count()} cores, Python {platform.python_version()}: the real EGV pages of the 2013 capture, "
          f"repeated ({len(pages)} pages, {n} records), decoded with the header CRC and every record CRC checked "
          "into frozen dataclasses, beside a bare `struct.iter_unpack` + CRC loop over the same bytes; interleaved, "
          f"medians of {args.rounds} rounds; crcmod's C extension in use: {C_EXTENSION}.\n")
    print("| measure | median | goal | ratio to goal |")
    print("|---|---|---|---|")
    print(f"| EGV decode, every CRC checked (records/s) | {project:,.0f} | >= {GOAL_RECORDS_PER_S:,} "
          f"| {project / GOAL_RECORDS_PER_S:.2f} |")
    print(f"| bare struct.iter_unpack + CRC loop (records/s) | {bare:,.0f} | (scale) "
          f"| project/bare = {project / bare:.2f} |")


if __name__ == "__main__":
    main()
