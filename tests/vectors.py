"""Loader for the shared golden vectors (``../shared/vectors`` seen from the repository root).

The vectors are other projects' data: they are read in place, never copied into this
repository, and never regenerated with our own encoder. ``BRIDGE_VECTORS_DIR`` overrides the
directory. When it is missing every test that needs a vector FAILS with a message saying
where it looked; nothing is skipped.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

__all__ = [
    "ENV_VAR",
    "REPO_ROOT",
    "MissingVector",
    "cases",
    "load",
    "unhex",
    "vectors_dir",
]

ENV_VAR = "BRIDGE_VECTORS_DIR"
REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DIR = REPO_ROOT.parent / "shared" / "vectors"


def _configured_dir() -> Path:
    return Path(os.environ.get(ENV_VAR) or DEFAULT_DIR)


def _missing_message(path: Path) -> str:
    return (
        f"golden vectors not found at {path} (expected ../shared/vectors beside the repository, "
        f"or set {ENV_VAR} to the directory holding crc16.json, capture_dexcom_studio_g4_2013.json, ...)"
    )


def vectors_dir() -> Path:
    """The vectors directory; fails the calling test when it does not exist."""
    path = _configured_dir()
    if not path.is_dir():
        pytest.fail(_missing_message(path), pytrace=False)
    return path


@functools.cache
def _read(path: Path) -> Any:
    with path.open(encoding="utf-8") as fh:
        return json.load(fh)


def load(name: str) -> Any:
    """The parsed JSON of one vector file (cached); fails the test when it is missing."""
    path = vectors_dir() / name
    if not path.is_file():
        pytest.fail(f"vector file {name} missing from {path.parent}", pytrace=False)
    return _read(path)


def unhex(text: str) -> bytes:
    """Bytes of a vector hex string."""
    return bytes.fromhex(text)


class MissingVector(Mapping[str, Any]):
    """Stands in for a vector at collection time when the files are missing.

    Any use of it fails the test with a clear message, so a missing directory shows up
    as failures, not as skipped or silently absent tests.
    """

    def __init__(self, message: str) -> None:
        self.message = message

    def _fail(self) -> Any:
        pytest.fail(self.message, pytrace=False)

    def __getitem__(self, key: str) -> Any:
        return self._fail()

    def __iter__(self) -> Iterator[str]:
        return self._fail()

    def __len__(self) -> int:
        return self._fail()


def cases(name: str, key: str | None = "vectors", *, ids: Any = None, where: Any = None) -> list[Any]:
    """``pytest.param`` objects for every item of ``load(name)[key]`` (for parametrize).

    Args:
        name: vector file name.
        key: the list inside the file; None when the file itself is the list.
        ids: a function item -> test id (default: the index).
        where: a predicate selecting items.
    """
    path = _configured_dir() / name
    if not path.is_file():
        return [pytest.param(MissingVector(_missing_message(path.parent)), id=f"{name}-missing")]
    data = _read(path)
    items = data if key is None else data[key]
    out = []
    for i, item in enumerate(items):
        if where is not None and not where(item):
            continue
        out.append(pytest.param(item, id=str(ids(item) if ids else i)))
    return out
