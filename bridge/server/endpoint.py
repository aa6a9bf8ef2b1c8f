"""Steps every API endpoint shares: the server context, auth, body reading, error bodies.

Layer: server (HTTP adapter). Imports starlette; never imports the core packages.

Error bodies follow Nightscout's shape, ``{"status", "message", "description"}``, with a
``field`` key when one field is to blame.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from bridge.server.auth import UNAUTHORIZED_BODY, Authenticator, AuthResult
from bridge.server.bodies import BodyError, read_json_body
from bridge.server.db import Database, StorageError
from bridge.server.documents import InvalidDocumentError
from bridge.server.live import LiveHub
from bridge.server.queries import InvalidQueryError
from bridge.server.settings import ServerSettings

__all__ = [
    "EndpointError",
    "ServerContext",
    "authorize",
    "context_of",
    "error_response",
    "handle_errors",
    "read_body",
    "wall_clock_ms",
]

T = TypeVar("T")
_REASONS = {400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed",
            413: "Payload Too Large", 415: "Unsupported Media Type", 500: "Internal Server Error",
            503: "Service Unavailable"}


def wall_clock_ms() -> int:
    """Return the current time in epoch milliseconds."""
    return time.time_ns() // 1_000_000


@dataclass(frozen=True)
class ServerContext:
    """What endpoints share, kept on ``app.state.ctx``."""

    settings: ServerSettings
    db: Database
    auth: Authenticator
    hub: LiveHub
    clock_ms: Callable[[], int]

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a blocking storage call in a worker thread."""
        return await run_in_threadpool(fn, *args)


class EndpointError(Exception):
    """Stop handling a request and answer ``response``."""

    def __init__(self, response: Response) -> None:
        """Keep the response to send."""
        super().__init__(response.status_code)
        self.response = response


def context_of(request: Request) -> ServerContext:
    """Return the app's ServerContext."""
    ctx: ServerContext = request.app.state.ctx
    return ctx


def error_response(status: int, description: str, *, field: str | None = None) -> JSONResponse:
    """Return a Nightscout-shaped JSON error."""
    body: dict[str, Any] = {"status": status, "message": _REASONS.get(status, "Error"), "description": description}
    if field is not None:
        body["field"] = field
    return JSONResponse(body, status_code=status)


async def authorize(request: Request, *verbs: str, body: object = None) -> AuthResult:
    """Authenticate ``request`` and require ``verbs``.

    Raises:
        EndpointError: 401 with Nightscout's body.
    """
    ctx = context_of(request)
    secrets = [request.headers.get("api-secret", ""), request.query_params.get("secret", "")]
    tokens = [request.query_params.get("token", "")]
    first = body[0] if isinstance(body, list) and body else body
    if isinstance(first, dict):
        secrets.append(first["secret"] if isinstance(first.get("secret"), str) else "")
        tokens.append(first["token"] if isinstance(first.get("token"), str) else "")
    address = request.client.host if request.client else "unknown"
    result = await ctx.auth.authenticate(address, secrets, tokens)
    if not all(result.can(verb) for verb in verbs):
        raise EndpointError(JSONResponse(UNAUTHORIZED_BODY, status_code=401))
    return result


async def read_body(request: Request) -> Any:
    """Read the JSON body within the configured limit.

    Raises:
        EndpointError: 400, 413 or 415.
    """
    try:
        return await read_json_body(request, context_of(request).settings.max_body_bytes)
    except BodyError as exc:
        raise EndpointError(error_response(exc.status, exc.description)) from None


def handle_errors(handler: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
    """Wrap an endpoint so expected failures become JSON 4xx/503 answers."""
    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except EndpointError as exc:
            return exc.response
        except InvalidDocumentError as exc:
            return error_response(400, str(exc), field=exc.field)
        except InvalidQueryError as exc:
            return error_response(400, str(exc))
        except StorageError as exc:
            return error_response(503, f"storage unavailable: {exc}")

    wrapped.__name__ = handler.__name__
    wrapped.__doc__ = handler.__doc__
    return wrapped
