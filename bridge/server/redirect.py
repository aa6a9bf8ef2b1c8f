"""The plain-HTTP listener of ``--redirect-http``: GET and HEAD go to https, nothing else.

Layer: server (ASGI app). Stdlib only; never imports the core packages.

A classic force-HTTPS rewrite turns a redirected POST into a GET, silently dropping an upload.
Here only GET and HEAD are redirected (307); any other method gets 403 and a message to use
https, so an uploader sees the mistake.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = ["HttpsRedirect"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class HttpsRedirect:
    """ASGI app redirecting to the same host on ``https_port``."""

    def __init__(self, https_port: int, fallback_host: str) -> None:
        """Args: https_port: where TLS listens; fallback_host: used when there is no Host header."""
        self._https_port = https_port
        self._fallback_host = fallback_host

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer one HTTP request; other scope types (lifespan) are acknowledged."""
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        if scope["method"] in ("GET", "HEAD"):
            location = self.location(scope)
            await _respond(send, 307, {"status": 307, "message": "Use https", "location": location},
                           [(b"location", location.encode("latin-1", "replace"))])
        else:
            await _respond(send, 403, {
                "status": 403, "message": "Forbidden",
                "description": f"plain HTTP is not accepted for {scope['method']}: send it to {self.location(scope)}",
            }, [])

    def location(self, scope: Scope) -> str:
        """Return the https URL for the request in ``scope``."""
        host = self._fallback_host
        for name, value in scope.get("headers", []):
            if name == b"host":
                host = value.decode("latin-1")
                break
        host = _strip_port(host)
        port = "" if self._https_port == 443 else f":{self._https_port}"
        path = scope.get("raw_path") or scope["path"].encode()
        query = scope.get("query_string", b"")
        target = path.decode("latin-1") + ("?" + query.decode("latin-1") if query else "")
        return f"https://{host}{port}{target}"


def _strip_port(host: str) -> str:
    """Remove a port from a Host header value (IPv6 literals keep their brackets)."""
    if host.startswith("["):
        return host[: host.index("]") + 1] if "]" in host else host
    return host.rsplit(":", 1)[0] if ":" in host else host


async def _respond(send: Send, status: int, body: dict[str, Any], headers: list[tuple[bytes, bytes]]) -> None:
    """Send a small JSON response."""
    payload = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(payload)).encode()), *headers]})
    await send({"type": "http.response.body", "body": payload})
