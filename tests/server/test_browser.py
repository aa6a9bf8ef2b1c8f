"""The live page in real headless Chromium (Debian's chromium and chromium-driver, via selenium).

The server is the real one, ``python -m bridge server`` in a subprocess on loopback. Three tests:
the page shows a posted reading; it shows the next POST without a reload over the WebSocket;
and, behind a proxy that strips the ``Upgrade`` header (as some reverse proxies do), it falls
back to polling, says so, and still shows the next POST. Waits are generous upper bounds, never
timing assertions.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from nsserver import Server

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WAIT_S = 20.0  # upper bound for anything the page must do; typically well under a second
MINUTE_MS = 60_000


def _require_chromium() -> None:
    """Fail (not skip): the browser tests are part of the suite."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if missing:
        pytest.fail(f"{', '.join(missing)} not found: the browser tests need Debian's chromium and "
                    "chromium-driver, which .ci/run installs (apt-get install chromium chromium-driver)",
                    pytrace=False)


class UpgradeStrippingProxy:
    """A loopback HTTP proxy that drops ``Upgrade`` (and hop-by-hop ``Connection``) request headers.

    This is what a reverse proxy without WebSocket support does: the browser's handshake reaches
    the server as a plain GET /ws, which is not a WebSocket, so the page must poll. Every
    connection carries one request (``Connection: close`` is added), so parsing the request head
    is all the proxy has to do.
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.stripped_upgrades = 0
        self.requests: list[str] = []
        threading.Thread(target=self._accept, name="proxy-accept", daemon=True).start()

    def close(self) -> None:
        self.listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(client,), name="proxy-conn", daemon=True).start()

    def _handle(self, client: socket.socket) -> None:
        with contextlib.suppress(OSError), client, \
                socket.create_connection(("127.0.0.1", self.upstream_port), timeout=30) as upstream:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = client.recv(65536)
                if not chunk:
                    return
                head += chunk
            head, rest = head.split(b"\r\n\r\n", 1)
            request_line, *headers = head.split(b"\r\n")
            kept = [request_line]
            for line in headers:
                name = line.split(b":", 1)[0].strip().lower()
                if name == b"upgrade":
                    self.stripped_upgrades += 1
                if name not in (b"upgrade", b"connection", b"keep-alive"):
                    kept.append(line)
            kept.append(b"Connection: close")
            self.requests.append(request_line.decode("latin-1"))
            upstream.sendall(b"\r\n".join(kept) + b"\r\n\r\n" + rest)
            to_upstream = threading.Thread(target=_pipe, args=(client, upstream), daemon=True)
            to_upstream.start()
            _pipe(upstream, client)  # the server closes after its response


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while chunk := source.recv(65536):
            sink.sendall(chunk)
        sink.shutdown(socket.SHUT_WR)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    _require_chromium()
    running = Server(tmp_path_factory.mktemp("browser-server"))
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    _require_chromium()
    os.environ["SE_OFFLINE"] = "true"  # never let Selenium Manager try to download anything
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                 "--no-first-run", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--window-size=800,900",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(WAIT_S)
    try:
        yield driver
    finally:
        driver.quit()


def _reading(sgv: int, minutes_ago: float = 0, direction: str = "Flat") -> dict[str, Any]:
    return {"type": "sgv", "sgv": sgv, "direction": direction, "device": "browser-test",
            "date": int(time.time() * 1000 - minutes_ago * MINUTE_MS)}


def _wait_text(driver: Any, element_id: str, expected: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def has_text(d: Any) -> bool:
        return bool(d.find_element(By.ID, element_id).text == expected)

    try:
        WebDriverWait(driver, WAIT_S).until(has_text)
    except Exception as exc:
        actual = driver.find_element(By.ID, element_id).text
        raise AssertionError(f"#{element_id} shows {actual!r}, not {expected!r}, after {WAIT_S} s; "
                             f"transport: {_transport(driver)!r}") from exc


def _transport(driver: Any) -> str:
    from selenium.webdriver.common.by import By

    return str(driver.find_element(By.ID, "transport").get_attribute("data-transport") or "")


def _wait_transport(driver: Any, kind: str) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        WebDriverWait(driver, WAIT_S).until(lambda d: _transport(d) == kind)
    except Exception as exc:
        raise AssertionError(f"transport is {_transport(driver)!r}, not {kind!r}, after {WAIT_S} s") from exc


def _mark_page(driver: Any) -> None:
    """Tag the loaded document; the tag survives only if the page is never reloaded."""
    driver.execute_script("window.__noReload = 'still-here';")


def _page_was_not_reloaded(driver: Any) -> bool:
    return bool(driver.execute_script("return window.__noReload;") == "still-here")


def test_page_shows_posted_reading(server: Server, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    server.post_entries([_reading(118, minutes_ago=7), _reading(123, minutes_ago=2, direction="FortyFiveUp")])
    browser.get(server.base + "/")
    _wait_text(browser, "reading", "123")
    assert browser.find_element(By.ID, "arrow").text == "\u2197"
    assert browser.find_element(By.ID, "delta").text == "+5 mg/dl"
    assert browser.find_element(By.ID, "age").text in ("2 min ago", "3 min ago")
    assert "in-range" in (browser.find_element(By.ID, "current").get_attribute("class") or "")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#chart circle.dot")) >= 2
    assert len(browser.find_elements(By.CSS_SELECTOR, "#chart rect.band")) == 1  # the target range


def test_next_post_arrives_over_websocket_without_reload(server: Server, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    server.post_entries([_reading(126)])
    browser.get(server.base + "/")
    _wait_transport(browser, "websocket")
    _wait_text(browser, "reading", "126")
    assert "WebSocket" in browser.find_element(By.ID, "transport").text
    _mark_page(browser)

    server.post_entries([_reading(131, direction="SingleUp")])
    _wait_text(browser, "reading", "131")
    assert browser.find_element(By.ID, "arrow").text == "\u2191"
    assert _page_was_not_reloaded(browser)
    assert _transport(browser) == "websocket"  # no polling happened: the push did it


def test_next_post_arrives_by_polling_when_websockets_are_blocked(server: Server, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    proxy = UpgradeStrippingProxy(server.port)
    try:
        server.post_entries([_reading(104)])
        browser.get(f"http://127.0.0.1:{proxy.port}/?poll=1")  # poll every second instead of 10
        _wait_transport(browser, "polling")
        assert "polling" in browser.find_element(By.ID, "transport").text
        _wait_text(browser, "reading", "104")
        _mark_page(browser)

        server.post_entries([_reading(97, direction="FortyFiveDown")])
        _wait_text(browser, "reading", "97")
        assert browser.find_element(By.ID, "arrow").text == "\u2198"
        assert _page_was_not_reloaded(browser)
        assert _transport(browser) == "polling"
        assert proxy.stripped_upgrades >= 1, proxy.requests  # the page did try a WebSocket
        assert any(r.startswith("GET /api/v1/entries/sgv.json") for r in proxy.requests)
    finally:
        proxy.close()
