"""`bridge run` for the chaos test: the real Daemon, with a host clock the test controls.

Run as a subprocess: ``python daemon_child.py CLOCK_FLAG``. While the file ``CLOCK_FLAG``
exists the host probe answers "not synchronised" (as systemd-timesyncd does before its first
sync); once the test removes it, "synchronised". Everything else is as `bridge run` does it:
settings from the environment (``BRIDGE_DEVICE``, ``BRIDGE_STATE_DIR``, ``NIGHTSCOUT_URL``,
``API_SECRET``), log lines with times on stderr at INFO, SIGTERM and SIGINT stop after the
current step (exit 0), SIGHUP reloads the settings, a BridgeError exits with its sysexits code
and anything else with 70, as ``bridge.cli.run`` does.
"""

from __future__ import annotations

import logging
import signal
import sys
from pathlib import Path

from bridge.app.daemon import Daemon
from bridge.app.hostprobe import ClockSync
from bridge.config import load_settings
from bridge.errors import EX_SOFTWARE, EX_USAGE, BridgeError

log = logging.getLogger("chaos.daemon_child")


class FlagClock:
    """The host probe: the clock is not synchronised while ``flag`` exists."""

    def __init__(self, flag: Path) -> None:
        self.flag = flag

    def clock_synchronized(self) -> ClockSync:
        if self.flag.exists():
            return ClockSync(False, f"chaos test: {self.flag.name} present (time service active, not synchronised)")
        return ClockSync(True, "chaos test: time service synchronised")


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: daemon_child.py CLOCK_FLAG", file=sys.stderr)
        return EX_USAGE
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    logging.getLogger("httpx").setLevel(logging.WARNING)
    settings = load_settings()
    daemon = Daemon(settings, host=FlagClock(Path(argv[0])), reload=load_settings)
    signal.signal(signal.SIGTERM, lambda *_: daemon.stop())
    signal.signal(signal.SIGINT, lambda *_: daemon.stop())
    signal.signal(signal.SIGHUP, lambda *_: daemon.request_reload())
    return daemon.run()


if __name__ == "__main__":
    try:
        code = main(sys.argv[1:])
    except BridgeError as exc:
        print(f"Error: {exc}" + (f"\nHint: {exc.hint}" if exc.hint else ""), file=sys.stderr)
        code = exc.exit_code
    except Exception:  # noqa: BLE001 - as bridge.cli.run: say so, exit 70 so the supervisor restarts
        log.exception("unexpected error")
        code = EX_SOFTWARE
    sys.exit(code)
