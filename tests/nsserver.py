"""A real `bridge server` subprocess on loopback, for the browser and end-to-end tests."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

SECRET = "browser-test-secret"
WAIT_S = 20.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """A ``bridge server`` subprocess on loopback with a temporary database.

    It can be stopped (gracefully or killed) and started again on the same port and database, as
    an outage and a recovery look to a client. The log accumulates across starts.
    """

    def __init__(self, tmp: Path, *extra: str, start: bool = True) -> None:
        tmp.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.db = tmp / "ns.sqlite"
        self.log = tmp / "server.log"
        self.extra = extra
        self.admin = {"api-secret": sha1(SECRET)}
        self.proc: subprocess.Popen[bytes] | None = None
        if start:
            self.start()

    @property
    def up(self) -> bool:
        """True while the process runs."""
        return self.proc is not None and self.proc.poll() is None

    def restart(self) -> None:
        """Stop it (if running) and start it again on the same port and database."""
        self.stop()
        self.start()

    def start(self) -> None:
        """Start the process and wait until it answers."""
        env = {**os.environ, "API_SECRET": SECRET}
        env.pop("BRIDGE_API_SECRET", None)
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bridge", "server", "--host", "127.0.0.1", "--port", str(self.port),
                 "--db", str(self.db), "--auth-fail-delay", "0", *self.extra],
                env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + WAIT_S
        while True:
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(self.base + "/api/v1/status.json", timeout=2) as response:
                    if response.status == 200:
                        return
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"the server did not start:\n{self.log.read_text(errors='replace')[-3000:]}",
                            pytrace=False)
            time.sleep(0.1)

    def post_entries(self, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        request = urllib.request.Request(self.base + "/api/v1/entries", data=json.dumps(entries).encode(),
                                         headers={**self.admin, "Content-Type": "application/json"},
                                         method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
            stored: list[dict[str, Any]] = json.loads(response.read())
            return stored

    def stop(self, *, crash: bool = False) -> None:
        """Stop the process: SIGTERM (or SIGKILL with ``crash``); idempotent."""
        if self.proc is not None and self.proc.poll() is None:
            if crash:
                self.proc.kill()
            else:
                self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


def sha1(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()




def get_json(base: str, path: str, params: dict[str, str] | None = None, secret: str = SECRET) -> Any:
    """GET a JSON document from the server with the admin secret."""
    query = "?" + urllib.parse.urlencode(params) if params else ""
    request = urllib.request.Request(base + path + query, headers={"api-secret": sha1(secret)})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())
