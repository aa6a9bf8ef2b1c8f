"""The bundled Nightscout-compatible server (``bridge server``): Starlette over SQLite.

Layer: server (a product feature beside the core). It imports only the stdlib, starlette,
uvicorn and its own modules; the core packages never import it. Importing this package does
not import starlette: ``create_app`` is loaded on first use, so ``bridge --help`` works
without the ``server`` extra.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bridge.server.settings import ServerSettings

if TYPE_CHECKING:
    from bridge.server.app import create_app

__all__ = ["ServerSettings", "create_app"]


def __getattr__(name: str) -> Any:
    """Load ``create_app`` lazily (it needs the ``server`` extra)."""
    if name == "create_app":
        from bridge.server.app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
