"""API v1 entries endpoints: POST/GET ``/api/v1/entries``, ``/entries/{spec}``, ``current``.

Layer: server (HTTP endpoints). Imports starlette; never imports the core packages.

Formats as Nightscout: ``.json`` (or ``Accept: application/json``) gives JSON, ``.tsv``,
``.txt`` and an extension-less request from curl give tab-separated text, ``.csv`` commas.
"""

from __future__ import annotations

import json
import re
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from bridge.server.documents import InvalidDocumentError, NormalisedDoc, normalise_entry, split_body
from bridge.server.endpoint import (
    authorize,
    context_of,
    error_response,
    handle_errors,
    read_body,
)
from bridge.server.queries import ENTRY_FIELDS, QuerySpec, parse_query

__all__ = ["entries_collection", "entries_spec", "post_entries_docs"]

ENTRY_QUERY = QuerySpec(fields=ENTRY_FIELDS, date_field="date", default_count=10)
TEXT_FORMATS = ("tsv", "txt", "csv")
_SPEC_RE = re.compile(r"^(?P<name>[A-Za-z][\w-]{0,40}|[0-9a-fA-F]{24})(?:\.(?P<fmt>json|tsv|txt|csv))?\Z")


@handle_errors
async def entries_collection(request: Request) -> Response:
    """``/api/v1/entries``, ``/entries/`` and ``/entries.<fmt>``: list or store entries."""
    fmt = request.path_params.get("fmt")
    if fmt is not None and fmt not in ("json", *TEXT_FORMATS):
        return error_response(404, f"unknown format {fmt[:20]!r}")
    if request.method == "POST":
        return await _post(request, store=True)
    return await _list(request, fmt, type_filter=None)


@handle_errors
async def entries_spec(request: Request) -> Response:
    """``/api/v1/entries/{spec}``: ``current``, ``preview`` (POST), a type, or one ``_id``."""
    match = _SPEC_RE.match(request.path_params["spec"])
    if match is None:
        return error_response(404, "no such entries resource")
    name, fmt = match.group("name"), match.group("fmt")
    if request.method == "POST":
        if name != "preview":
            return error_response(405, "POST to /api/v1/entries or /api/v1/entries/preview")
        return await _post(request, store=False)
    if name == "preview":
        return error_response(405, "preview takes a POST")
    if len(name) == 24 and re.fullmatch(r"[0-9a-fA-F]{24}", name):
        await authorize(request, "read")
        doc = await context_of(request).run(context_of(request).db.get_entry, name)
        return _render(request, [] if doc is None else [doc], fmt)
    if name == "current":
        return await _list(request, fmt, type_filter=None, count=1)
    return await _list(request, fmt, type_filter=name)


async def post_entries_docs(request: Request, body: Any) -> list[NormalisedDoc]:
    """Split and normalise a posted entries body.

    Raises:
        InvalidDocumentError: the body or one of its entries is invalid (located by index).
    """
    now_ms = context_of(request).clock_ms()
    docs = split_body(body, single_needs="date")
    normalised = []
    for index, raw in enumerate(docs):
        try:
            normalised.append(normalise_entry(raw, now_ms))
        except InvalidDocumentError as exc:
            raise (exc.at(index) if isinstance(body, list) else exc) from None
    return normalised


async def _post(request: Request, *, store: bool) -> Response:
    """Store (or, for preview, only normalise) posted entries; one transaction per request."""
    ctx = context_of(request)
    body = await read_body(request)
    await authorize(request, "read", "create", body=body)
    normalised = await post_entries_docs(request, body)
    if not store:
        return JSONResponse([item.doc for item in normalised])
    written = await ctx.run(ctx.db.upsert_entries, normalised, ctx.clock_ms())
    if written.stored:
        ctx.hub.publish({"type": "entries", "entries": written.stored})
    return JSONResponse(written.echoed)


async def _list(request: Request, fmt: str | None, *, type_filter: str | None, count: int | None = None) -> Response:
    """Answer an entries query, newest first."""
    ctx = context_of(request)
    await authorize(request, "read")
    params = [(k, v) for k, v in request.query_params.multi_items() if not (count and k == "count")]
    if type_filter is not None:
        params = [(k, v) for k, v in params if not k.startswith("find[type]")]
        params.append(("find[type]", type_filter))
    if count is not None:
        params.append(("count", str(count)))
    query = parse_query(params, ENTRY_QUERY, ctx.clock_ms())
    docs = await ctx.run(ctx.db.find, "entries", query)
    return _render(request, docs, fmt)


def _render(request: Request, docs: list[dict[str, Any]], fmt: str | None) -> Response:
    """Render entries as JSON or Nightscout's separated text."""
    if fmt is None:
        fmt = "json" if "application/json" in request.headers.get("accept", "") else "tsv"
    if fmt == "json":
        return JSONResponse(docs)
    sep = "," if fmt == "csv" else "\t"
    lines = [sep.join(_text_fields(doc)) for doc in docs]
    return PlainTextResponse("".join(line + "\n" for line in lines),
                             media_type="text/csv" if fmt == "csv" else "text/tab-separated-values")


def _text_fields(doc: dict[str, Any]) -> list[str]:
    """Return ``"dateString" date sgv "direction" "device"`` as Nightscout prints them."""
    def quoted(key: str) -> str:
        value = doc.get(key)
        return json.dumps(value, ensure_ascii=False) if value is not None else '""'

    def plain(key: str) -> str:
        value = doc.get(key)
        return "" if value is None else json.dumps(value, ensure_ascii=False)

    return [quoted("dateString"), plain("date"), plain("sgv"), quoted("direction"), quoted("device")]

