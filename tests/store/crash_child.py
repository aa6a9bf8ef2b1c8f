"""The process test_crash.py kills: adds chunks of records and marks some sent, forever.

Usage: ``python crash_child.py DB START_CHUNK OFFSET_S``. Prints ``ready``, then after each
committed call ``committed N`` / ``sent ID,ID,…`` / ``failed ID,…``, flushed at once, so the
parent knows what was committed before the kill.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bridge.records import EGVRecord, Record, SensorRecord, UserEventRecord
from bridge.store import Outbox

SERIAL = "SM12345678"
CHUNK_READINGS = 100
BASE_S = 470_000_000
DEXCOM_EPOCH = datetime(2009, 1, 1, tzinfo=UTC)
NOW = datetime(2024, 6, 1, tzinfo=UTC)


def chunk(n: int) -> list[Record]:
    """Chunk n's records: the same on every call, as a re-read of the receiver gives."""
    out: list[Record] = []
    for i in range(CHUNK_READINGS):
        t = BASE_S + (n * CHUNK_READINGS + i) * 300
        out.append(SensorRecord(t - 1, t - 3601, 150_000 + i, 149_000 + i, -60))
        out.append(EGVRecord(t, t - 3600, 40 + (t // 300) % 300, False, 4, 1))
    t = BASE_S + n * CHUNK_READINGS * 300 + 7
    out.append(UserEventRecord(t, t - 3600, 1, 0, t - 3600, n % 200))
    return out


def main() -> None:
    db, start, offset_s = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])

    def utc_of(s: int) -> datetime:
        return DEXCOM_EPOCH + timedelta(seconds=s + offset_s)

    box = Outbox.open(db)
    print("ready", flush=True)
    n = start
    while True:
        box.add(SERIAL, chunk(n), utc_of, destinations=["a", "b"])
        print(f"committed {n}", flush=True)
        due = box.due("a", limit=150, now=NOW)
        if due:
            box.mark_sent("a", [p.id for p in due], NOW)
            print("sent " + ",".join(str(p.id) for p in due), flush=True)
        due = box.due("b", limit=20, now=NOW)
        if due:
            box.mark_failed("b", [p.id for p in due], "HTTP 503", NOW, now=NOW)
            print("failed " + ",".join(str(p.id) for p in due), flush=True)
        n += 1


if __name__ == "__main__":
    main()
