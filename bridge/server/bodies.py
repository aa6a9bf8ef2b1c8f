"""Read and decode request bodies strictly: JSON only, size-limited, never a 500.

Layer: server (HTTP adapter). Imports starlette; never imports the core packages.

Nightscout answers a POST without a JSON content type with an empty 200 and stores nothing;
here it is a 415. Bodies may be gzip- or deflate-encoded (xDrip+ gzips); the limit applies
to the decoded size, so a small compressed bomb is still a 413.
"""

from __future__ import annotations

import json
import zlib
from typing import Any

from starlette.requests import Request

__all__ = ["MAX_JSON_DEPTH", "BodyError", "decode_json", "read_json_body"]

MAX_JSON_DEPTH = 64  # nesting deeper than this is refused; real documents use 3 or 4 levels
_READ_CHUNK = 65_536


class BodyError(Exception):
    """A request body the server refuses.

    Attributes:
        status: the HTTP status to answer (400, 413 or 415).
        description: a message for the client.
    """

    def __init__(self, status: int, description: str) -> None:
        """Keep the status with the message."""
        super().__init__(description)
        self.status = status
        self.description = description


async def read_json_body(request: Request, max_bytes: int) -> Any:
    """Return the decoded JSON body of ``request``.

    Raises:
        BodyError: 415 for a non-JSON content type or unknown encoding, 413 when the body
            (decoded) exceeds ``max_bytes``, 400 for anything that is not strict JSON.
    """
    content_type = request.headers.get("content-type", "")
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        raise BodyError(415, "Content-Type must be application/json")
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("identity", "gzip", "x-gzip", "deflate"):
        raise BodyError(415, f"unsupported Content-Encoding {encoding[:20]!r}")
    raw = await _read_limited(request, max_bytes if encoding == "identity" else max_bytes * 4)
    if encoding != "identity":
        raw = _decompress(raw, encoding, max_bytes)
    return decode_json(raw)


def decode_json(raw: bytes) -> Any:
    """Decode strict JSON: UTF-8, no NaN/Infinity, bounded nesting, encodable strings.

    Raises:
        BodyError: 400 naming what is wrong.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BodyError(400, "body is not valid UTF-8") from None
    try:
        value = json.loads(text, parse_constant=_reject_constant, parse_float=_parse_float)
    except RecursionError:
        raise BodyError(400, f"JSON nested deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError as exc:  # JSONDecodeError, too many digits, NaN, Infinity
        raise BodyError(400, f"malformed JSON: {exc}") from None
    _check_tree(value)
    return value


async def _read_limited(request: Request, max_bytes: int) -> bytes:
    """Read the raw body, failing as soon as it exceeds ``max_bytes``."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > max_bytes:
                raise BodyError(413, f"body larger than {max_bytes} bytes")
        except ValueError:
            raise BodyError(400, "invalid Content-Length") from None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise BodyError(413, f"body larger than {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _decompress(raw: bytes, encoding: str, max_bytes: int) -> bytes:
    """Inflate a gzip or deflate body, stopping past ``max_bytes``."""
    wbits = zlib.MAX_WBITS | 32 if encoding != "deflate" else zlib.MAX_WBITS
    decoder = zlib.decompressobj(wbits)
    try:
        out = decoder.decompress(raw, max_bytes + 1)
        if len(out) > max_bytes or decoder.unconsumed_tail:
            raise BodyError(413, f"decoded body larger than {max_bytes} bytes")
        out += decoder.flush()
    except zlib.error:
        raise BodyError(400, f"body is not valid {encoding} data") from None
    if len(out) > max_bytes:
        raise BodyError(413, f"decoded body larger than {max_bytes} bytes")
    return out


def _check_tree(value: Any) -> None:
    """Refuse deep nesting, ``$``-prefixed keys and strings that are not valid Unicode."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, str):
            _check_text(node)
        elif isinstance(node, (dict, list)):
            if depth > MAX_JSON_DEPTH:
                raise BodyError(400, f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
            if isinstance(node, dict):
                for key, item in node.items():
                    _check_text(key)
                    if key.startswith("$"):
                        raise BodyError(400, f"field names must not start with '$': {key[:40]!r}")
                    stack.append((item, depth + 1))
            else:
                stack.extend((item, depth + 1) for item in node)


def _check_text(text: str) -> None:
    """Refuse lone surrogates (a JSON escape such as backslash-ud800): they cannot be stored as UTF-8."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise BodyError(400, "JSON string contains an invalid Unicode escape") from None


def _reject_constant(name: str) -> float:
    """Refuse NaN and Infinity, which are not JSON."""
    raise ValueError(f"{name} is not valid JSON")


def _parse_float(text: str) -> float:
    """Parse a JSON number, refusing ones that overflow to infinity."""
    number = float(text)
    if number in (float("inf"), float("-inf")):
        raise ValueError(f"number out of range: {text[:20]}")
    return number
