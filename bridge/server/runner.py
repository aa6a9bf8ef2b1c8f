"""Run the app on uvicorn: TLS, the optional plain-HTTP redirect listener, clean shutdown.

Layer: server (process adapter). Imports uvicorn; never imports the core packages.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import socket
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

from bridge.server.redirect import HttpsRedirect

__all__ = ["Listen", "RedactCredentials", "build_servers", "run", "serve"]

_CREDENTIAL_RE = re.compile(r"((?:^|[?&])(?:token|secret)=)[^&\s]*", re.IGNORECASE)


class RedactCredentials(logging.Filter):
    """Hide ``?token=`` and ``?secret=`` values in uvicorn's log lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite string arguments of the record; never drop it."""
        if isinstance(record.args, tuple):
            record.args = tuple(_CREDENTIAL_RE.sub(r"\1***", a) if isinstance(a, str) else a for a in record.args)
        return True


@dataclass(frozen=True)
class Listen:
    """Where and how to listen.

    Attributes:
        host: bind address.
        port: the main (HTTPS when certfile is set) port.
        certfile: PEM certificate chain; None serves plain HTTP.
        keyfile: PEM private key for ``certfile``.
        redirect_http_port: also listen here for plain HTTP that redirects to https.
    """

    host: str
    port: int
    certfile: Path | None = None
    keyfile: Path | None = None
    redirect_http_port: int | None = None


class _SecondaryServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to the main one."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        """Install no signal handlers: the main server's shutdown stops this one."""
        yield


def build_servers(app: Any, listen: Listen, *, log_level: str = "info") -> tuple[uvicorn.Server, uvicorn.Server | None]:
    """Return the main server and, with ``redirect_http_port``, the redirect server."""
    for name in ("uvicorn.access", "uvicorn.error"):  # the latter logs WebSocket paths
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactCredentials) for f in logger.filters):
            logger.addFilter(RedactCredentials())
    tls: dict[str, Any] = {}
    if listen.certfile is not None:
        tls = {"ssl_certfile": str(listen.certfile),
               "ssl_keyfile": str(listen.keyfile) if listen.keyfile else None}
    main = uvicorn.Server(uvicorn.Config(app, host=listen.host, port=listen.port, log_level=log_level,
                                         proxy_headers=False, server_header=False, **tls))
    redirect = None
    if listen.redirect_http_port is not None:
        redirect = _SecondaryServer(uvicorn.Config(
            HttpsRedirect(listen.port, listen.host), host=listen.host, port=listen.redirect_http_port,
            log_level=log_level, lifespan="off", proxy_headers=False, server_header=False))
    return main, redirect


async def serve(main: uvicorn.Server, redirect: uvicorn.Server | None, *,
                main_sockets: Sequence[socket.socket] | None = None,
                redirect_sockets: Sequence[socket.socket] | None = None) -> None:
    """Serve until the main server stops (SIGINT/SIGTERM or ``should_exit``), then stop both."""
    side = None
    if redirect is not None:
        side = asyncio.create_task(redirect.serve(sockets=list(redirect_sockets) if redirect_sockets else None))
    try:
        await main.serve(sockets=list(main_sockets) if main_sockets else None)
    finally:
        if redirect is not None and side is not None:
            redirect.should_exit = True
            await side


def run(app: Any, listen: Listen) -> None:
    """Serve ``app`` as configured until interrupted (blocking)."""
    main, redirect = build_servers(app, listen)
    asyncio.run(serve(main, redirect))
