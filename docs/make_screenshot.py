"""Regenerate the screenshots of the live page: docs/live-page.png and docs/live-page-phone.png.

Starts ``bridge server`` on loopback with a throw-away database, posts a plausible day of
readings (288 sgv entries, one every 5 minutes: a night, three meals, an afternoon low) through
the API as an uploader would, opens the page in headless Chromium (Debian's ``chromium`` and
``chromium-driver``) at a desktop and a phone size, waits for the WebSocket to be live, and
saves the two images. Nothing leaves the machine.

    .venv/bin/python docs/make_screenshot.py [--out-dir docs] [--hours 24] [--light]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SECRET = "screenshot-secret-0123"
MINUTE_MS = 60_000
DESKTOP = {"width": 1100, "height": 760, "deviceScaleFactor": 1, "mobile": False}
PHONE = {"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": True}

# (hour of day, height in mg/dl, width in hours): meals and the dawn rise, on a baseline.
BUMPS = [(6.5, 30, 1.0), (8.6, 85, 0.9), (13.2, 60, 1.0), (19.6, 95, 1.1)]
DIPS = [(3.0, 25, 1.3), (16.4, 45, 0.7)]


def glucose_at(hour_of_day: float) -> float:
    """A smooth, plausible day of a person with diabetes: mg/dl at a local hour of day."""
    value = 112.0
    for centre, height, width in BUMPS:
        for shift in (-24, 0, 24):  # wrap around midnight
            value += height * math.exp(-(((hour_of_day - centre - shift) / width) ** 2))
    for centre, depth, width in DIPS:
        for shift in (-24, 0, 24):
            value -= depth * math.exp(-(((hour_of_day - centre - shift) / width) ** 2))
    return value


def direction(rate_per_min: float) -> str:
    """Dexcom's trend arrow for a rate of change in mg/dl per minute."""
    for limit, name in ((3, "DoubleUp"), (2, "SingleUp"), (1, "FortyFiveUp"), (-1, "Flat"),
                        (-2, "FortyFiveDown"), (-3, "SingleDown")):
        if rate_per_min > limit:
            return name
    return "DoubleDown"


def a_day_of_readings(now_ms: int, count: int = 288) -> list[dict[str, Any]]:
    """``count`` sgv entries 5 minutes apart, the newest one minute old, oldest first."""
    rng = random.Random(2013)
    entries: list[dict[str, Any]] = []
    noise = 0.0
    for i in range(count):
        date = now_ms - MINUTE_MS - (count - 1 - i) * 5 * MINUTE_MS
        local = time.localtime(date / 1000)
        hour = local.tm_hour + local.tm_min / 60 + local.tm_sec / 3600
        noise = 0.7 * noise + rng.gauss(0, 2.0)
        sgv = max(40, min(400, round(glucose_at(hour) + noise)))
        rate = (glucose_at(hour) - glucose_at(hour - 0.25)) / 15
        entries.append({"type": "sgv", "sgv": sgv, "direction": direction(rate), "device": "dexcom-bridge",
                        "date": date, "dateString": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(date / 1000))
                        + f".{date % 1000:03d}Z", "noise": 1, "filtered": sgv * 1000, "unfiltered": sgv * 1000,
                        "rssi": 100})
    return entries


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def running_server(workdir: Path) -> Iterator[str]:
    """Run ``python -m bridge server`` on a free loopback port; yield its base URL."""
    port = _free_port()
    log = (workdir / "server.log").open("wb")
    env = {**os.environ, "API_SECRET": SECRET}
    env.pop("BRIDGE_API_SECRET", None)
    proc = subprocess.Popen([sys.executable, "-m", "bridge", "server", "--host", "127.0.0.1", "--port", str(port),
                             "--db", str(workdir / "ns.sqlite")],
                            cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(base + "/api/v1/status.json", timeout=2):
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the server did not start:\n" + (workdir / "server.log").read_text(errors="replace"))
            time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def post(base: str, entries: list[dict[str, Any]]) -> None:
    """Upload ``entries`` as an uploader does: SHA-1 of the secret in the api-secret header."""
    request = urllib.request.Request(
        base + "/api/v1/entries", data=json.dumps(entries).encode(), method="POST",
        headers={"Content-Type": "application/json", "api-secret": hashlib.sha1(SECRET.encode()).hexdigest()})
    with urllib.request.urlopen(request, timeout=30) as response:
        stored = json.loads(response.read())
    if len(stored) != len(entries):
        raise SystemExit(f"stored {len(stored)} of {len(entries)} entries")


def chromium(profile: Path) -> Any:
    """Headless Chromium through the system chromedriver (Selenium Manager never runs)."""
    os.environ["SE_OFFLINE"] = "true"
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
        raise SystemExit("needs Debian's chromium and chromium-driver (.ci/run installs them)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                 "--no-first-run", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--hide-scrollbars", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)


def capture(driver: Any, base: str, metrics: dict[str, Any], hours: int, expected: str, dark: bool, out: Path) -> None:
    """Load the page at ``metrics``, wait until it is live, choose ``hours`` and save a PNG."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
    driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {
        "features": [{"name": "prefers-color-scheme", "value": "dark" if dark else "light"}]})
    driver.get(base + "/")
    wait = WebDriverWait(driver, 20)
    wait.until(lambda d: d.find_element(By.ID, "transport").get_attribute("data-transport") == "websocket")
    wait.until(lambda d: d.find_element(By.ID, "reading").text == expected)
    driver.find_element(By.CSS_SELECTOR, f'.ranges button[data-hours="{hours}"]').click()
    bottom = "return Math.ceil(document.querySelector('main').getBoundingClientRect().bottom);"
    height = int(driver.execute_script(bottom))
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {**metrics, "height": height})  # crop to the page
    time.sleep(0.3)  # let the layout settle after a resize
    out.write_bytes(driver.get_screenshot_as_png())
    print(f"wrote {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")


def main() -> None:
    """Serve a day of readings and save the desktop and phone screenshots."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, default=ROOT / "docs")
    parser.add_argument("--hours", type=int, choices=(3, 6, 12, 24), default=24, help="chart range shown")
    parser.add_argument("--light", action="store_true", help="light colour scheme instead of dark")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bridge-screenshot-") as tmp, running_server(Path(tmp)) as base:
        readings = a_day_of_readings(int(time.time() * 1000))
        post(base, readings)
        driver = chromium(Path(tmp) / "profile")
        try:
            expected = str(readings[-1]["sgv"])
            capture(driver, base, DESKTOP, args.hours, expected, not args.light, args.out_dir / "live-page.png")
            capture(driver, base, PHONE, args.hours, expected, not args.light, args.out_dir / "live-page-phone.png")
        finally:
            driver.quit()


if __name__ == "__main__":
    main()
