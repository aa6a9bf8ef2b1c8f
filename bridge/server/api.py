"""API v1 endpoints besides entries: devicestatus, treatments, status.json, verifyauth.

Layer: server (HTTP endpoints). Imports starlette; never imports the core packages.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from bridge.server.auth import verifyauth_message
from bridge.server.documents import (
    InvalidDocumentError,
    NormalisedDoc,
    normalise_devicestatus,
    normalise_treatment,
    split_body,
)
from bridge.server.endpoint import authorize, context_of, error_response, handle_errors, read_body
from bridge.server.queries import DEVICESTATUS_FIELDS, TREATMENT_FIELDS, QuerySpec, parse_query
from bridge.server.timeparse import format_utc_ms

__all__ = ["NIGHTSCOUT_VERSION", "devicestatus", "status", "treatments", "verifyauth"]

NIGHTSCOUT_VERSION = "15.0.7"  # the Nightscout release whose v1 semantics this server follows
DEVICESTATUS_QUERY = QuerySpec(fields=DEVICESTATUS_FIELDS, date_field="created_at", default_count=10)
TREATMENT_QUERY = QuerySpec(fields=TREATMENT_FIELDS, date_field="created_at", default_count=100,
                            default_count_with_find=1000)


@handle_errors
async def devicestatus(request: Request) -> Response:
    """``/api/v1/devicestatus``: GET newest first (10), POST stores every document (no dedup)."""
    return await _collection(request, "devicestatus", DEVICESTATUS_QUERY, normalise_devicestatus)


@handle_errors
async def treatments(request: Request) -> Response:
    """``/api/v1/treatments``: GET newest first (100), POST/PUT replace on created_at+eventType."""
    return await _collection(request, "treatments", TREATMENT_QUERY, normalise_treatment)


@handle_errors
async def status(request: Request) -> Response:
    """``/api/v1/status.json``: server status, as Nightscout's (needs read permission)."""
    ctx = context_of(request)
    await authorize(request, "read")
    now_ms = ctx.clock_ms()
    settings = ctx.settings
    return JSONResponse({
        "status": "ok",
        "name": "nightscout",
        "version": NIGHTSCOUT_VERSION,
        "serverTime": format_utc_ms(now_ms),
        "serverTimeEpoch": now_ms,
        "apiEnabled": True,
        "careportalEnabled": False,
        "boluscalcEnabled": False,
        "settings": {
            "units": "mg/dl",
            "timeFormat": 24,
            "customTitle": "dexcom-bridge",
            "theme": "default",
            "authDefaultRoles": settings.default_role,
            "enable": [],
            "thresholds": {"bgHigh": 260, "bgTargetTop": settings.bg_target_top,
                           "bgTargetBottom": settings.bg_target_bottom, "bgLow": 55},
        },
        "extendedSettings": {},
        "authorized": None,
        "runtimeState": "loaded",
        "implementation": {"name": "dexcom-bridge", "version": _bridge_version()},
    })


@handle_errors
async def verifyauth(request: Request) -> Response:
    """``/api/v1/verifyauth``: always 200; says what the presented credentials allow."""
    ctx = context_of(request)
    params = request.query_params
    address = request.client.host if request.client else "unknown"
    result = await ctx.auth.authenticate(
        address, [request.headers.get("api-secret", ""), params.get("secret", "")], [params.get("token", "")])
    return JSONResponse({"status": 200, "message": verifyauth_message(result)})


async def _collection(request: Request, table: str, spec: QuerySpec,
                      normalise: Callable[[dict[str, Any], int], NormalisedDoc]) -> Response:
    """GET a query or POST/PUT documents of ``table`` in one transaction."""
    ctx = context_of(request)
    fmt = request.path_params.get("fmt")
    if fmt not in (None, "json"):
        return error_response(404, f"unknown format {str(fmt)[:20]!r}")
    if request.method == "GET" or request.method == "HEAD":
        await authorize(request, "read")
        query = parse_query(request.query_params.multi_items(), spec, ctx.clock_ms())
        return JSONResponse(await ctx.run(ctx.db.find, table, query))
    body = await read_body(request)
    await authorize(request, "read", "create", body=body)
    now_ms = ctx.clock_ms()
    docs = split_body(body, single_needs=None)
    normalised = []
    for index, raw in enumerate(docs):
        try:
            normalised.append(normalise(raw, now_ms))
        except InvalidDocumentError as exc:
            raise (exc.at(index) if isinstance(body, list) else exc) from None
    write = ctx.db.insert_devicestatus if table == "devicestatus" else ctx.db.upsert_treatments
    written = await ctx.run(write, normalised, now_ms)
    return JSONResponse(written.echoed)


def _bridge_version() -> str:
    """Return the installed dexcom-bridge version."""
    try:
        return importlib.metadata.version("dexcom-bridge")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"
