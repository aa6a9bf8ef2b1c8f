"""A fault-injecting HTTP proxy on loopback, in front of the bundled server, for the chaos test.

Per request, with seeded probabilities, it answers 500, 502, 503, or 429 with a ``Retry-After``
of 1 or 2 s itself instead of forwarding; otherwise it forwards the request (head and body) to
the server and relays the response (head and body) back. :meth:`FaultProxy.burst` answers every
request with one status for a while, as a hosted site in maintenance or a rate limiter does.
While the server is down it answers 502 Bad Gateway, as nginx or Caddy would. Every connection
carries one request: ``Connection: close`` goes upstream and back, so parsing the request head
and its ``Content-Length`` is all the proxy has to do.
"""

from __future__ import annotations

import contextlib
import json
import random
import socket
import threading
import time
from collections import Counter
from collections.abc import Mapping

REASONS = {429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}
IO_TIMEOUT_S = 30.0  # per socket operation; a stuck peer ends the connection, never the test
_HOP_BY_HOP = (b"connection", b"keep-alive", b"proxy-connection", b"te", b"upgrade")


class FaultProxy:
    """Loopback proxy to ``127.0.0.1:upstream_port`` that injects 5xx and 429 answers.

    Args:
        upstream_port: the server's port.
        rates: status -> probability per request (their sum at most 1); 429 carries Retry-After.
        seed: seeds the draws (the order of requests still depends on timing).

    Attributes:
        counts: what the proxy did, by key: ``"500"``, ``"502"``, ``"503"``, ``"429"`` (injected,
            bursts included), ``"forwarded"``, ``"upstream down"`` (502 because the server was
            not listening), ``"bursts"``.
    """

    def __init__(self, upstream_port: int, *, rates: Mapping[int, float], seed: int) -> None:
        if sum(rates.values()) > 1.0 or any(s not in REASONS for s in rates):
            raise ValueError(f"bad rates {dict(rates)}")
        self.upstream_port = upstream_port
        self.rates = dict(rates)
        self.enabled = True  # False: forward everything (the drain at the end of the test)
        self.counts: Counter[str] = Counter()
        self._rng = random.Random(f"{seed}:proxy")
        self._lock = threading.Lock()
        self._burst_status = 0
        self._burst_until = 0.0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.base = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self._accept, name="chaos-proxy-accept", daemon=True).start()

    def burst(self, status: int, seconds: float) -> None:
        """Answer every request with ``status`` for the next ``seconds``."""
        with self._lock:
            self._burst_status, self._burst_until = status, time.monotonic() + seconds
            self.counts["bursts"] += 1

    def stop_faults(self) -> None:
        """Forward everything from now on."""
        with self._lock:
            self.enabled = False
            self._burst_until = 0.0

    def injected(self) -> dict[str, int]:
        """Injected answers by status (bursts included), without the forwarding counts."""
        with self._lock:
            return {k: v for k, v in sorted(self.counts.items()) if k.isdigit()}

    def close(self) -> None:
        self.listener.close()

    # -- serving ------------------------------------------------------------------------------

    def _draw(self) -> bytes | None:
        """The injected answer for one request (counted), or None to forward it."""
        with self._lock:
            status = None
            if not self.enabled:
                return None
            if time.monotonic() < self._burst_until:
                status = self._burst_status
            else:
                roll = self._rng.random()
                for candidate, p in sorted(self.rates.items()):
                    roll -= p
                    if roll < 0:
                        status = candidate
                        break
            if status is None:
                return None
            self.counts[str(status)] += 1
            return _response(status, retry_after=self._rng.randint(1, 2) if status == 429 else None)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(client,), name="chaos-proxy-conn", daemon=True).start()

    def _handle(self, client: socket.socket) -> None:
        with contextlib.suppress(OSError), client:
            client.settimeout(IO_TIMEOUT_S)
            request = _read_request(client)
            if request is None:
                return
            head, body = request
            injected = self._draw()
            if injected is not None:
                client.sendall(injected)
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=IO_TIMEOUT_S)
            except OSError:
                with self._lock:
                    self.counts["upstream down"] += 1
                client.sendall(_response(502, message="upstream not listening"))
                return
            with upstream:
                upstream.sendall(head + body)
                while chunk := upstream.recv(65536):
                    client.sendall(chunk)
                with self._lock:
                    self.counts["forwarded"] += 1
            client.shutdown(socket.SHUT_WR)


def _read_request(client: socket.socket) -> tuple[bytes, bytes] | None:
    """One request: its head rewritten with ``Connection: close``, and its whole body."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = client.recv(65536)
        if not chunk:
            return None
        data += chunk
    raw_head, body = data.split(b"\r\n\r\n", 1)
    request_line, *lines = raw_head.split(b"\r\n")
    kept = [request_line]
    length, chunked = 0, False
    for line in lines:
        name, _, value = line.partition(b":")
        key = name.strip().lower()
        if key == b"content-length":
            length = int(value.strip())
        elif key == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
        if key not in _HOP_BY_HOP:
            kept.append(line)
    kept.append(b"Connection: close")
    if chunked:  # the body ends with the zero-length chunk (no trailers from our clients)
        while not body.endswith(b"0\r\n\r\n"):
            chunk = client.recv(65536)
            if not chunk:
                return None
            body += chunk
    else:
        while len(body) < length:
            chunk = client.recv(65536)
            if not chunk:
                return None
            body += chunk
    return b"\r\n".join(kept) + b"\r\n\r\n", body


def _response(status: int, *, retry_after: int | None = None, message: str = "injected by the chaos proxy") -> bytes:
    body = json.dumps({"status": status, "message": message}).encode()
    head = [f"HTTP/1.1 {status} {REASONS[status]}", "Content-Type: application/json",
            f"Content-Length: {len(body)}", "Connection: close"]
    if retry_after is not None:
        head.append(f"Retry-After: {retry_after}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body
