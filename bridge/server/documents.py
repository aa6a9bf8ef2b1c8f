"""Validation and Nightscout normalisation of posted entries, treatments and device statuses.

Layer: server (pure). Stdlib only, no I/O; never imports starlette, sqlite3 or the core packages.

Each ``normalise_*`` function takes one decoded JSON document and returns the document as it
will be stored and echoed, or raises :class:`InvalidDocumentError` naming the offending field.
Nightscout stores almost anything; this server is strict where Nightscout is silently lossy
(a ``date`` in seconds, an unparseable ``dateString``, a type that cannot be queried).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from bridge.server.timeparse import MAX_DATE_MS, MIN_DATE_MS, ParsedTime, format_utc_ms, parse_iso

__all__ = [
    "InvalidDocumentError",
    "NormalisedDoc",
    "normalise_devicestatus",
    "normalise_entry",
    "normalise_treatment",
    "split_body",
]

OBJECT_ID_RE = re.compile(r"^[0-9a-fA-F]{24}\Z")
# Treatment fields Nightscout coerces with Number() and drops when empty or zero.
TREATMENT_NUMBER_FIELDS = (
    "glucose", "carbs", "insulin", "duration", "percent", "absolute",
    "preBolus", "targetTop", "targetBottom", "protein", "fat",
)
MAX_GLUCOSE_MGDL = 10_000  # far above any meter; keeps stored numbers sane
# Body fields that carry credentials: used for auth, never stored (as Nightscout).
CREDENTIAL_FIELDS = ("secret", "token")

Doc = dict[str, Any]


class InvalidDocumentError(ValueError):
    """A posted document that cannot be stored as it is.

    Attributes:
        field: the offending field, with the element index for arrays (``[3].date``).
    """

    def __init__(self, field: str, message: str) -> None:
        """Keep the field name apart so the 400 body can name it."""
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message

    def at(self, index: int) -> InvalidDocumentError:
        """Return the same error located at array element ``index``."""
        return InvalidDocumentError(f"[{index}].{self.field}", self.message)


@dataclass(frozen=True)
class NormalisedDoc:
    """A document ready for storage.

    Attributes:
        doc: the fields to store and echo, without ``_id``.
        object_id: a client-chosen 24-hex ``_id`` (lower-cased), else None.
        epoch_ms: the document's instant (``date`` for entries, ``created_at`` otherwise).
    """

    doc: Doc
    object_id: str | None
    epoch_ms: int


def split_body(body: object, *, single_needs: str | None) -> list[Doc]:
    """Turn a decoded body into a list of documents, removing credential fields.

    Args:
        body: the decoded JSON body.
        single_needs: a key a single object must have (Nightscout treats an entries object
            without ``date`` as nothing); None accepts any single object.

    Raises:
        InvalidDocumentError: neither an object nor an array of objects.
    """
    if isinstance(body, dict):
        if single_needs is not None and single_needs not in body:
            raise InvalidDocumentError(single_needs, "a single object must have this field")
        docs = [body]
    elif isinstance(body, list):
        docs = body
    else:
        raise InvalidDocumentError("body", "must be a JSON object or an array of objects")
    for index, doc in enumerate(docs):
        if not isinstance(doc, dict):
            raise InvalidDocumentError(f"[{index}]", "must be a JSON object")
    if docs:
        for key in CREDENTIAL_FIELDS:
            docs[0].pop(key, None)
    return docs


def normalise_entry(raw: Doc, now_ms: int) -> NormalisedDoc:
    """Normalise an entry as Nightscout's ``entries.create`` does, strictly.

    ``sysTime`` and ``utcOffset`` come from ``dateString`` when present, else from ``date``;
    a present ``dateString`` is rewritten to the UTC string. A missing ``date`` is filled in
    from ``dateString`` (Nightscout would store an entry that no date query finds).

    Raises:
        InvalidDocumentError: a bad ``date``, ``dateString``, ``type``, ``device``, number or ``_id``.
    """
    del now_ms  # entries never take the upload time: neither date nor dateString is an error
    doc = dict(raw)
    object_id = _take_object_id(doc)
    for key in ("type", "device", "direction"):
        if doc.get(key) is not None and not isinstance(doc[key], str):
            raise InvalidDocumentError(key, "must be a string")
    for key in ("sgv", "mbg"):
        if key in doc and doc[key] is not None:
            if not _is_number(doc[key]):
                raise InvalidDocumentError(key, "must be a number (mg/dl)")
            if not 0 <= doc[key] <= MAX_GLUCOSE_MGDL:
                raise InvalidDocumentError(key, f"out of range 0..{MAX_GLUCOSE_MGDL} mg/dl")
    date_ms = _entry_date(doc)
    when: ParsedTime | None = None
    if doc.get("dateString"):
        text = doc["dateString"]
        if not isinstance(text, str):
            raise InvalidDocumentError("dateString", "must be an ISO-8601 string")
        when = parse_iso(text)
        if when is None or when.epoch_ms < MIN_DATE_MS:
            raise InvalidDocumentError("dateString", f"cannot parse {text[:40]!r} as an ISO-8601 date")
    elif date_ms is not None:
        when = ParsedTime(epoch_ms=date_ms, utc_offset_min=0)
    if when is None:
        raise InvalidDocumentError("date", "required: epoch milliseconds (or a dateString)")
    doc["utcOffset"] = when.utc_offset_min
    doc["sysTime"] = when.iso_utc
    if doc.get("dateString"):
        doc["dateString"] = doc["sysTime"]
    if date_ms is None:
        doc["date"] = date_ms = when.epoch_ms
    return NormalisedDoc(doc=doc, object_id=object_id, epoch_ms=date_ms)


def normalise_devicestatus(raw: Doc, now_ms: int) -> NormalisedDoc:
    """Normalise a device status: ``created_at`` to UTC ISO plus ``utcOffset``, now if absent.

    Raises:
        InvalidDocumentError: a bad ``_id`` (Nightscout: ``Invalid _id format``) or ``created_at``.
    """
    doc = dict(raw)
    if "_id" in doc and not (isinstance(doc["_id"], str) and OBJECT_ID_RE.match(doc["_id"])):
        raise InvalidDocumentError("_id", "Invalid _id format")
    object_id = doc.pop("_id").lower() if "_id" in doc else None
    if doc.get("device") is not None and not isinstance(doc["device"], str):
        raise InvalidDocumentError("device", "must be a string")
    when = _created_at(doc, "created_at", now_ms)
    return NormalisedDoc(doc=doc, object_id=object_id, epoch_ms=when.epoch_ms)


def normalise_treatment(raw: Doc, now_ms: int) -> NormalisedDoc:
    """Normalise a treatment: ``eventTime`` wins over ``created_at``; numbers coerced.

    Raises:
        InvalidDocumentError: a bad ``created_at``/``eventTime``, ``eventType`` or number field.
    """
    doc = dict(raw)
    object_id = _take_object_id(doc)
    if doc.get("eventType") is not None and not isinstance(doc["eventType"], str):
        raise InvalidDocumentError("eventType", "must be a string")
    if doc.get("identifier") is not None and not isinstance(doc["identifier"], str):
        raise InvalidDocumentError("identifier", "must be a string")
    source = "created_at"
    if doc.get("eventTime"):
        doc["created_at"] = doc.pop("eventTime")
        source = "eventTime"
    when = _created_at(doc, source, now_ms)
    for key in TREATMENT_NUMBER_FIELDS:
        if key in doc:
            value = _coerce_number(key, doc[key])
            if value:
                doc[key] = value
            else:
                del doc[key]
    return NormalisedDoc(doc=doc, object_id=object_id, epoch_ms=when.epoch_ms)


def _take_object_id(doc: Doc) -> str | None:
    """Pop ``_id``: a 24-hex string is kept as the id, another string becomes ``identifier``."""
    if "_id" not in doc:
        return None
    value = doc.pop("_id")
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidDocumentError("_id", "must be a 24-hex string")
    if OBJECT_ID_RE.match(value):
        return value.lower()
    if not doc.get("identifier"):
        doc["identifier"] = value  # Nightscout's UUID_HANDLING
    return None


def _entry_date(doc: Doc) -> int | None:
    """Check ``date``: an integral JSON number of epoch milliseconds, or absent/null."""
    value = doc.get("date")
    if value is None:
        return None
    if not _is_number(value):
        raise InvalidDocumentError("date", "must be a number of epoch milliseconds")
    if isinstance(value, float):
        if not value.is_integer():
            raise InvalidDocumentError("date", "must be whole epoch milliseconds")
        value = int(value)
        doc["date"] = value
    if value < MIN_DATE_MS:
        hint = " (this looks like seconds)" if value > 100_000_000 else ""
        raise InvalidDocumentError("date", f"must be epoch milliseconds{hint}, got {value}")
    if value > MAX_DATE_MS:
        raise InvalidDocumentError("date", f"too large for epoch milliseconds, got {value}")
    return int(value)


def _created_at(doc: Doc, source: str, now_ms: int) -> ParsedTime:
    """Parse ``created_at`` into UTC ISO with ``utcOffset``; a missing one is now."""
    value = doc.get("created_at")
    if value is None or value == "":
        when = ParsedTime(epoch_ms=now_ms, utc_offset_min=0)
    elif isinstance(value, str):
        parsed = parse_iso(value)
        if parsed is None:
            raise InvalidDocumentError(source, f"cannot parse {value[:40]!r} as an ISO-8601 date")
        when = parsed
    else:
        raise InvalidDocumentError(source, "must be an ISO-8601 string")
    doc["created_at"] = format_utc_ms(when.epoch_ms)
    doc["utcOffset"] = when.utc_offset_min
    return when


def _coerce_number(key: str, value: object) -> int | float | None:
    """Coerce a treatment number as Number() does; empty and zero become None."""
    if value is None or value == "":
        return None
    if _is_number(value):
        return value  # type: ignore[return-value]
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            raise InvalidDocumentError(key, f"must be a number, got {value[:20]!r}") from None
        if number != number or number in (float("inf"), float("-inf")):
            raise InvalidDocumentError(key, "must be a finite number")
        return int(number) if number.is_integer() else number
    raise InvalidDocumentError(key, "must be a number")


def _is_number(value: object) -> bool:
    """True for JSON numbers (bool is not one)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)
