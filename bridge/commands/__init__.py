"""Subcommands of `bridge` that live in their own modules. Layer: cli; `bridge.cli` loads them lazily."""

from __future__ import annotations

__all__: list[str] = []
