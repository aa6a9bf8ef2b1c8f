"""Live updates: a fan-out hub and the WebSocket endpoint the live page listens on.

Layer: server (HTTP adapter). Imports starlette; never imports the core packages.

Every stored entry is published to each connected socket as
``{"type": "entries", "entries": [...]}``. A socket is authorised like a GET (``?token=`` or
``?secret=``); without read permission it receives ``{"type": "error", "status": 401}`` and is
closed with code 4401, so the page can ask for a token instead of falling back to polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

__all__ = ["CLOSE_UNAUTHORIZED", "LiveHub", "live_socket"]

log = logging.getLogger(__name__)

CLOSE_UNAUTHORIZED = 4401  # application close code: 4000 + HTTP 401
QUEUE_SIZE = 256  # messages buffered per client before a slow client is dropped


class LiveHub:
    """Fan messages out to subscribers; each has its own bounded queue."""

    def __init__(self) -> None:
        """Start with no subscribers."""
        self._queues: set[asyncio.Queue[dict[str, Any] | None]] = set()

    @property
    def subscriber_count(self) -> int:
        """Number of connected sockets."""
        return len(self._queues)

    def subscribe(self) -> asyncio.Queue[dict[str, Any] | None]:
        """Return a new queue that receives every published message (None: you were dropped)."""
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(QUEUE_SIZE)
        self._queues.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any] | None]) -> None:
        """Stop delivering to ``queue``."""
        self._queues.discard(queue)

    def publish(self, message: dict[str, Any]) -> None:
        """Queue ``message`` for every subscriber; drop subscribers whose queue is full."""
        for queue in list(self._queues):
            try:
                queue.put_nowait(message)
            except asyncio.QueueFull:
                log.warning("live: dropping a client that is %d messages behind", QUEUE_SIZE)
                self._queues.discard(queue)
                while not queue.empty():
                    queue.get_nowait()
                queue.put_nowait(None)


async def live_socket(websocket: WebSocket) -> None:
    """Serve one live-page socket: authorise, say hello, then forward published messages."""
    ctx = websocket.app.state.ctx
    params = websocket.query_params
    address = websocket.client.host if websocket.client else "unknown"
    result = await ctx.auth.authenticate(address, [params.get("secret", "")], [params.get("token", "")])
    await websocket.accept()
    if not result.can("read"):
        await websocket.send_json({"type": "error", "status": 401, "message": "Unauthorized"})
        await websocket.close(CLOSE_UNAUTHORIZED)
        return
    hub: LiveHub = ctx.hub
    queue = hub.subscribe()
    receiver = asyncio.create_task(_drain(websocket))
    try:
        await websocket.send_json({"type": "hello", "transport": "websocket"})
        while True:
            getter = asyncio.create_task(queue.get())
            done, _ = await asyncio.wait({getter, receiver}, return_when=asyncio.FIRST_COMPLETED)
            if receiver in done:
                getter.cancel()
                break
            message = getter.result()
            if message is None:
                await websocket.close(1013)  # try again later: the client fell too far behind
                break
            await websocket.send_json(message)
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass  # the client went away mid-send
    finally:
        hub.unsubscribe(queue)
        receiver.cancel()
        with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError):
            await receiver


async def _drain(websocket: WebSocket) -> None:
    """Read and ignore client messages until the socket closes."""
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
