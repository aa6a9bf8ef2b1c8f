"""HTTPS and the plain-HTTP redirect listener, on real uvicorn servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect

from bridge.server.runner import Listen, build_servers, serve

from .conftest import ADMIN, AppFactory, entry

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI")


@dataclass(frozen=True)
class Running:
    """A live server pair."""

    https_port: int
    http_port: int
    tls: ssl.SSLContext


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, made with the openssl CLI."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True, timeout=30)
    return cert, key


def _bound_socket() -> socket.socket:
    """Return a socket bound to a free loopback port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@pytest.fixture
def running(make_app: AppFactory, certificate: tuple[Path, Path]) -> Iterator[Running]:
    """Serve the app over TLS with a redirect listener, in a background thread."""
    cert, key = certificate
    main_sock, redirect_sock = _bound_socket(), _bound_socket()
    https_port, http_port = main_sock.getsockname()[1], redirect_sock.getsockname()[1]
    main, redirect = build_servers(make_app(), Listen("127.0.0.1", https_port, cert, key, http_port),
                                   log_level="warning")
    assert redirect is not None
    thread = threading.Thread(target=asyncio.run, daemon=True, args=(
        serve(main, redirect, main_sockets=[main_sock], redirect_sockets=[redirect_sock]),))
    thread.start()
    deadline = time.monotonic() + 10
    while not (main.started and redirect.started):
        assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.02)
    try:
        yield Running(https_port, http_port, ssl.create_default_context(cafile=str(cert)))
    finally:
        main.should_exit = True
        thread.join(timeout=10)
        main_sock.close()
        redirect_sock.close()
        assert not thread.is_alive()


def test_https_serves_the_api(running: Running) -> None:
    with httpx.Client(base_url=f"https://127.0.0.1:{running.https_port}", verify=running.tls) as client:
        assert client.post("/api/v1/entries", json=[entry()], headers=ADMIN).status_code == 200
        assert [e["sgv"] for e in client.get("/api/v1/entries.json").json()] == [120]
        assert client.get("/").status_code == 200


def test_plain_http_on_tls_port_fails(running: Running) -> None:
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{running.https_port}/api/v1/status.json", timeout=5)


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_redirect_listener_redirects_get_and_head(running: Running, method: str) -> None:
    response = httpx.request(method, f"http://127.0.0.1:{running.http_port}/api/v1/entries.json?count=2",
                             timeout=5)
    assert response.status_code == 307
    assert response.headers["location"] == f"https://127.0.0.1:{running.https_port}/api/v1/entries.json?count=2"


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_redirect_listener_refuses_other_methods(running: Running, method: str) -> None:
    response = httpx.request(method, f"http://127.0.0.1:{running.http_port}/api/v1/entries",
                             json=[entry()], headers=ADMIN, timeout=5)
    assert response.status_code == 403
    assert "https://" in response.json()["description"]
    with httpx.Client(base_url=f"https://127.0.0.1:{running.https_port}", verify=running.tls) as client:
        assert client.get("/api/v1/entries.json").json() == []  # nothing was stored


def test_redirect_follows_to_a_working_https_page(running: Running) -> None:
    with httpx.Client(verify=running.tls, follow_redirects=True, timeout=5) as client:
        response = client.get(f"http://127.0.0.1:{running.http_port}/api/v1/status.json")
        assert response.status_code == 200 and response.json()["status"] == "ok"


def test_websocket_over_tls_receives_posted_entry(running: Running) -> None:
    with connect(f"wss://127.0.0.1:{running.https_port}/ws", ssl=running.tls, open_timeout=5) as ws:
        assert json.loads(ws.recv(timeout=5))["type"] == "hello"
        with httpx.Client(base_url=f"https://127.0.0.1:{running.https_port}", verify=running.tls) as client:
            assert client.post("/api/v1/entries", json=[entry(0, sgv=151)], headers=ADMIN).status_code == 200
        message = json.loads(ws.recv(timeout=5))
        assert message["entries"][0]["sgv"] == 151
