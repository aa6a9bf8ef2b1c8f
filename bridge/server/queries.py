"""Translate Nightscout ``find[...]`` query strings into checked, typed conditions.

Layer: server (pure). Stdlib only, no I/O; never imports starlette, sqlite3 or the core packages.

Nightscout passes the query string to MongoDB almost as it is; here only the comparison
operators ``$gte``, ``$gt``, ``$lte``, ``$lt`` and plain equality are accepted, on a fixed set of
fields per collection; anything else is a :class:`InvalidQueryError` (400). Without a filter on
the date field (or ``dateString`` for entries), only the last 4 days are searched, as Nightscout.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

from bridge.server.timeparse import MAX_DATE_MS, format_utc_ms, parse_iso

__all__ = [
    "DEFAULT_WINDOW_MS",
    "DEVICESTATUS_FIELDS",
    "ENTRY_FIELDS",
    "MAX_COUNT",
    "TREATMENT_FIELDS",
    "Condition",
    "FieldKind",
    "InvalidQueryError",
    "Query",
    "QuerySpec",
    "parse_query",
]

DEFAULT_WINDOW_MS = 4 * 86_400_000  # Nightscout's deltaAgo: TWO_DAYS * 2
MAX_COUNT = 100_000
OPERATORS = ("$eq", "$gte", "$gt", "$lte", "$lt")
_FIND_RE = re.compile(r"^find\[([^\[\]]+)\](?:\[([^\[\]]+)\])?\Z")
_INT_RE = re.compile(r"^-?\d{1,18}\Z")


class FieldKind(Enum):
    """How a query value is converted before comparison."""

    EPOCH_MS = "epoch_ms"  # entries' date: integer ms, or an ISO string converted to ms
    NUMBER = "number"  # sgv: Nightscout's parseInt
    ISO = "iso"  # created_at: normalised to a UTC ISO string
    TEXT = "text"  # compared as stored


ENTRY_FIELDS = {
    "date": FieldKind.EPOCH_MS,
    "dateString": FieldKind.TEXT,
    "sgv": FieldKind.NUMBER,
    "type": FieldKind.TEXT,
    "device": FieldKind.TEXT,
}
DEVICESTATUS_FIELDS = {"created_at": FieldKind.ISO, "device": FieldKind.TEXT}
TREATMENT_FIELDS = {
    "created_at": FieldKind.ISO,
    "eventType": FieldKind.TEXT,
    "enteredBy": FieldKind.TEXT,
}


class InvalidQueryError(ValueError):
    """A query string this server refuses (400), naming the parameter."""


@dataclass(frozen=True)
class Condition:
    """One comparison: ``field op value``."""

    field: str
    op: str
    value: int | float | str


@dataclass(frozen=True)
class Query:
    """A checked query: all conditions must hold; newest first, at most ``count``."""

    conditions: tuple[Condition, ...]
    count: int


@dataclass(frozen=True)
class QuerySpec:
    """What a collection accepts.

    Attributes:
        fields: queryable fields and their kinds.
        date_field: the field of the implicit 4-day window.
        default_count: ``count`` when none is given.
        default_count_with_find: ``count`` when none is given but a filter is (treatments: 1000).
    """

    fields: dict[str, FieldKind]
    date_field: str
    default_count: int
    default_count_with_find: int | None = None


def parse_query(params: Iterable[tuple[str, str]], spec: QuerySpec, now_ms: int) -> Query:
    """Parse ``count`` and ``find[field][$op]=value`` parameters; other parameters are ignored.

    Raises:
        InvalidQueryError: an unknown field or operator, a bad value or count.
    """
    conditions: list[Condition] = []
    seen: set[tuple[str, str]] = set()
    count: int | None = None
    for key, raw in params:
        if key == "count":
            count = _parse_count(raw)
            continue
        if not key.startswith("find"):
            continue
        match = _FIND_RE.match(key)
        if match is None:
            raise InvalidQueryError(f"{key[:60]}: not of the form find[field] or find[field][$op]")
        field, op = match.group(1), match.group(2) or "$eq"
        if field not in spec.fields:
            allowed = ", ".join(spec.fields)
            raise InvalidQueryError(f"{key[:60]}: cannot query on {field[:30]!r} (allowed: {allowed})")
        if op not in OPERATORS[1:] and not (op == "$eq" and match.group(2) is None):
            raise InvalidQueryError(f"{key[:60]}: operator {op[:20]!r} not allowed (only $gte, $gt, $lte, $lt)")
        if (field, op) in seen:
            raise InvalidQueryError(f"{key[:60]}: given more than once")
        seen.add((field, op))
        conditions.append(Condition(field, op, _convert(key, raw, spec.fields[field])))
    fields_used = {c.field for c in conditions}
    if spec.date_field not in fields_used and "dateString" not in fields_used:
        since = now_ms - DEFAULT_WINDOW_MS
        bound: int | str = since
        if spec.fields[spec.date_field] is FieldKind.ISO:
            bound = format_utc_ms(max(since, 0))
        conditions.append(Condition(spec.date_field, "$gte", bound))
    if count is None:
        with_find = spec.default_count_with_find
        count = with_find if with_find is not None and seen else spec.default_count
    return Query(conditions=tuple(conditions), count=count)


def _parse_count(raw: str) -> int:
    """Parse ``count``: a whole number from 1 to MAX_COUNT."""
    text = raw.strip()
    if not _INT_RE.match(text) or not 1 <= int(text) <= MAX_COUNT:
        raise InvalidQueryError(f"count: must be a whole number from 1 to {MAX_COUNT}")
    return int(text)


def _convert(key: str, raw: str, kind: FieldKind) -> int | float | str:
    """Convert a query value for comparison with the stored column."""
    if kind is FieldKind.TEXT:
        return raw
    text = raw.strip()
    if kind is FieldKind.NUMBER:
        try:
            number = float(text)
        except ValueError:
            raise InvalidQueryError(f"{key[:60]}: {raw[:30]!r} is not a number") from None
        if number != number or abs(number) > 1e15:
            raise InvalidQueryError(f"{key[:60]}: {raw[:30]!r} is out of range")
        return int(number) if number.is_integer() else number
    if _INT_RE.match(text):
        ms = int(text)
        if kind is FieldKind.EPOCH_MS:
            return ms
        if 0 <= ms <= MAX_DATE_MS:
            return format_utc_ms(ms)
        raise InvalidQueryError(f"{key[:60]}: {raw[:30]!r} is out of range")
    parsed = parse_iso(text) or parse_iso(raw.replace(" ", "+"))  # clients that do not escape '+'
    if parsed is None:
        raise InvalidQueryError(f"{key[:60]}: cannot parse {raw[:40]!r} as an ISO-8601 date")
    return parsed.epoch_ms if kind is FieldKind.EPOCH_MS else parsed.iso_utc
