"""Records to stored text and back, and the identity that keys a record in the store.

Layer: store, pure. Imports ``bridge.records``, ``bridge.errors`` and the standard library only;
never ``bridge.dexcom``, ``bridge.nightscout`` nor ``sqlite3``.

A record is stored as its kind (``EGVRecord.KIND`` …) next to a compact JSON object holding
every dataclass field by name. The encoding is driven by the field annotations, so it is
lossless for every type the records use:

- ``int``, ``bool``, ``str``: JSON as is; ``float``: JSON's shortest repr, exact for doubles,
  with ``NaN``/``Infinity`` kept (Python's JSON reads them back);
- ``bytes``: lower-case hex;
- ``tuple[float, ...]``: a list; ``tuple[<dataclass>, ...]`` (calibration subrecords): a list
  of objects encoded the same way.

A field missing from the text takes the dataclass default (so a field added later with a
default still reads old rows); an unknown field is refused, never dropped.

:func:`record_key` is the part of the store's unique key after (serial, kind, system time): a
short text made only of raw receiver values, so it does not change when the JSON layout does.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import typing
from collections.abc import Callable
from typing import get_args, get_origin

from bridge.errors import StoreError
from bridge.records import (
    CalibrationRecord,
    EGVRecord,
    InsertionRecord,
    MeterRecord,
    OpaqueRecord,
    Record,
    SensorRecord,
    UserEventRecord,
    UserSettingsRecord,
    XMLRecord,
)

__all__ = ["KINDS", "RECORD_CLASSES", "decode_record", "encode_record", "record_key"]

_Encode = Callable[[object], object]
_Decode = Callable[[object], object]

#: Every record class the store keeps, by its KIND.
RECORD_CLASSES: dict[str, type[Record]] = {
    cls.KIND: cls
    for cls in (
        EGVRecord,
        SensorRecord,
        MeterRecord,
        InsertionRecord,
        CalibrationRecord,
        UserEventRecord,
        UserSettingsRecord,
        XMLRecord,
        OpaqueRecord,
    )
}
KINDS: frozenset[str] = frozenset(RECORD_CLASSES)


def _as_int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an integer, got {value!r}")
    return value


def _as_bool(value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"expected a boolean, got {value!r}")
    return value


def _as_float(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected a number, got {value!r}")
    return float(value)


def _as_str(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {value!r}")
    return value


def _bytes_to_text(value: object) -> object:
    if not isinstance(value, bytes | bytearray):
        raise TypeError(f"expected bytes, got {value!r}")
    return bytes(value).hex()


def _text_to_bytes(value: object) -> object:
    return bytes.fromhex(_as_str(value))


def _codec_for(hint: object) -> tuple[_Encode, _Decode]:
    """The (encode, decode) pair for one field annotation."""
    simple: dict[object, tuple[_Encode, _Decode]] = {
        int: (_as_int, _as_int),
        bool: (_as_bool, _as_bool),
        float: (_as_float, _as_float),
        str: (_as_str, _as_str),
        bytes: (_bytes_to_text, _text_to_bytes),
    }
    if hint in simple:
        return simple[hint]
    args = get_args(hint)
    if get_origin(hint) is tuple and len(args) == 2 and args[1] is Ellipsis:
        item_encode, item_decode = _codec_for(args[0])

        def encode_items(value: object) -> object:
            if not isinstance(value, tuple):
                raise TypeError(f"expected a tuple, got {value!r}")
            return [item_encode(item) for item in value]

        def decode_items(value: object) -> object:
            if not isinstance(value, list):
                raise TypeError(f"expected a list, got {value!r}")
            return tuple(item_decode(item) for item in value)

        return encode_items, decode_items
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        fields = _field_codecs(hint)
        return (lambda value: _encode_fields(value, fields)), (lambda value: _decode_fields(hint, value, fields))
    raise TypeError(f"the store cannot encode a field of type {hint!r}")


_FieldCodecs = dict[str, tuple[_Encode, _Decode]]


def _field_codecs(cls: type) -> _FieldCodecs:
    hints = typing.get_type_hints(cls)
    return {f.name: _codec_for(hints[f.name]) for f in dataclasses.fields(cls)}


def _encode_fields(value: object, fields: _FieldCodecs) -> dict[str, object]:
    return {name: encode(getattr(value, name)) for name, (encode, _) in fields.items()}


def _decode_fields(cls: type, value: object, fields: _FieldCodecs) -> object:
    if not isinstance(value, dict):
        raise TypeError(f"expected an object, got {value!r}")
    unknown = set(value) - set(fields)
    if unknown:
        raise TypeError(f"unknown fields {sorted(unknown)} for {cls.__name__}")
    kwargs = {name: fields[name][1](raw) for name, raw in value.items()}
    return cls(**kwargs)


# Built once at import: a record field with a type the codec cannot keep fails here, in tests.
_CODECS: dict[str, _FieldCodecs] = {kind: _field_codecs(cls) for kind, cls in RECORD_CLASSES.items()}


def encode_record(record: Record) -> str:
    """Encode a record as compact JSON (its kind is stored beside it, not inside).

    Args:
        record: any record from :mod:`bridge.records`.

    Returns:
        The JSON text; :func:`decode_record` gives back an equal record.

    Raises:
        StoreError: the record is not a known record type or holds a value of the wrong type.
    """
    fields = _CODECS.get(getattr(record, "KIND", ""))
    if fields is None or type(record) is not RECORD_CLASSES[record.KIND]:
        raise StoreError(f"cannot store a {type(record).__name__}", hint="this is a bug: please report it")
    try:
        return json.dumps(_encode_fields(record, fields), separators=(",", ":"), sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise StoreError(f"cannot store {record!r}: {exc}", hint="this is a bug: please report it") from exc


def decode_record(kind: str, text: str) -> Record:
    """Decode what :func:`encode_record` wrote.

    Args:
        kind: the record's KIND as stored beside the text.
        text: the JSON text.

    Returns:
        The record, equal to the one encoded.

    Raises:
        StoreError: unknown kind or text that does not decode to that kind.
    """
    fields = _CODECS.get(kind)
    if fields is None:
        raise StoreError(
            f"the store holds a record of unknown kind {kind!r}",
            hint="the database was written by another version of dexcom-bridge",
        )
    try:
        record = _decode_fields(RECORD_CLASSES[kind], json.loads(text), fields)
    except (TypeError, ValueError) as exc:
        raise StoreError(
            f"a stored {kind} record cannot be read: {exc}",
            hint="the database is damaged or was written by another version of dexcom-bridge",
        ) from exc
    return typing.cast(Record, record)


def _float_key(value: float) -> str:
    return "nan" if math.isnan(value) else repr(value)


def record_key(record: Record) -> str:
    """What tells apart two records of one kind with the same receiver system time.

    Built only from raw receiver values, so it is stable across versions of the JSON layout:
    EGV: display-only flag and raw glucose (display-only duplicates share the time of the
    reading they recompute); meter: meter time and value; insertion: insertion time and state;
    calibration: slope, intercept, scale; event: type, subtype, event time and value; sensor:
    unfiltered and filtered; settings, XML, opaque: the record type and a digest of the content.

    Args:
        record: any record from :mod:`bridge.records`.

    Returns:
        A short text; equal records give equal keys.
    """
    match record:
        case EGVRecord():
            return f"{int(record.display_only)}:{record.glucose}"
        case SensorRecord():
            return f"{record.unfiltered}:{record.filtered}"
        case MeterRecord():
            return f"{record.meter_seconds}:{record.meter_glucose}"
        case InsertionRecord():
            return f"{record.insertion_seconds}:{record.state}"
        case CalibrationRecord():
            return ":".join(_float_key(v) for v in (record.slope, record.intercept, record.scale))
        case UserEventRecord():
            return f"{record.event_type}:{record.event_subtype}:{record.event_seconds}:{record.value}"
        case XMLRecord():
            return f"{record.record_type}:{_digest(record.xml.encode())}"
        case OpaqueRecord():
            return f"{record.record_type}:{_digest(record.body)}"
        case _:
            return _digest(encode_record(record).encode())


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]
