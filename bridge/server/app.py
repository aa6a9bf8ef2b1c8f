"""The Starlette application factory of the bundled Nightscout-compatible server.

Layer: server (composition). Imports starlette; never imports the core packages, and the core
never imports this package.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles

from bridge.server.api import devicestatus, status, treatments, verifyauth
from bridge.server.auth import Authenticator, FailureDelay
from bridge.server.db import Database
from bridge.server.endpoint import ServerContext, error_response, wall_clock_ms
from bridge.server.entries import entries_collection, entries_spec
from bridge.server.live import LiveHub, live_socket
from bridge.server.settings import ServerSettings

__all__ = ["STATIC_DIR", "create_app"]

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
_READ_WRITE = ["GET", "POST"]


def create_app(settings: ServerSettings, *, clock_ms: Callable[[], int] | None = None) -> Starlette:
    """Build the app: API v1, the live page at ``/`` and its WebSocket at ``/ws``.

    Args:
        settings: the server settings; the database is opened here.
        clock_ms: the wall clock in epoch milliseconds (tests pass a fixed one).

    Raises:
        StorageError: the database cannot be opened.
    """
    db = Database(settings.db_path)
    auth = Authenticator(settings.api_secret, settings.default_role, db.find_token_role,
                         FailureDelay(settings.auth_fail_delay_s))
    ctx = ServerContext(settings=settings, db=db, auth=auth, hub=LiveHub(), clock_ms=clock_ms or wall_clock_ms)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        db.close()

    routes = [
        Route("/", _index, methods=["GET"]),
        Route("/api/v1/entries", entries_collection, methods=_READ_WRITE),
        Route("/api/v1/entries/", entries_collection, methods=_READ_WRITE),
        Route("/api/v1/entries.{fmt}", entries_collection, methods=_READ_WRITE),
        Route("/api/v1/entries/{spec}", entries_spec, methods=_READ_WRITE),
        Route("/api/v1/devicestatus", devicestatus, methods=_READ_WRITE),
        Route("/api/v1/devicestatus/", devicestatus, methods=_READ_WRITE),
        Route("/api/v1/devicestatus.{fmt}", devicestatus, methods=_READ_WRITE),
        Route("/api/v1/treatments", treatments, methods=[*_READ_WRITE, "PUT"]),
        Route("/api/v1/treatments/", treatments, methods=[*_READ_WRITE, "PUT"]),
        Route("/api/v1/treatments.{fmt}", treatments, methods=[*_READ_WRITE, "PUT"]),
        Route("/api/v1/status", status, methods=["GET"]),
        Route("/api/v1/status.json", status, methods=["GET"]),
        Route("/api/v1/verifyauth", verifyauth, methods=["GET"]),
        WebSocketRoute("/ws", live_socket),
        Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static"),
    ]
    app = Starlette(routes=routes, lifespan=lifespan,
                    exception_handlers={HTTPException: _http_error, Exception: _unexpected_error})
    app.state.ctx = ctx
    return app


async def _index(request: Request) -> Response:
    """Serve the live page; it loads without credentials and asks for data itself."""
    return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})


async def _http_error(request: Request, exc: Exception) -> Response:
    """Answer routing errors (404, 405) with a JSON body."""
    status_code = exc.status_code if isinstance(exc, HTTPException) else 400
    headers = exc.headers if isinstance(exc, HTTPException) else None
    response = error_response(status_code, str(exc.detail) if isinstance(exc, HTTPException) else str(exc))
    if headers:
        response.headers.update(headers)
    return response


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    """Last resort: log the bug and answer JSON instead of an HTML trace."""
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal error; nothing was stored")
