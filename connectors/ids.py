"""Document ids <-> Qdrant point ids: integers stay integers, strings become deterministic UUIDv5s.

Qdrant accepts only unsigned 64-bit integers or UUIDs as point ids. Users give strings or integers, so a
string is mapped through UUIDv5 in a fixed namespace (the same string always gives the same point, on every
machine), and the original id is kept in the payload (`ID_KEY`, `ID_TYPE_KEY`) so it round-trips exactly.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from spladebridge.connectors.base import DocId

__all__ = [
    "ID_KEY",
    "ID_TYPE_KEY",
    "NAMESPACE",
    "IdError",
    "PointId",
    "check_doc_id",
    "doc_id_from_payload",
    "id_payload",
    "point_key",
    "to_point_id",
]

#: Namespace of the UUIDv5 mapping. Never change it: stored collections depend on it.
NAMESPACE = uuid.UUID("6f1c3a52-5b8e-5d0e-9a57-2f3b9c1d7e40")
ID_KEY = "_sb_id"
ID_TYPE_KEY = "_sb_id_type"
_U64_MAX = 2**64 - 1

PointId = int | str


class IdError(ValueError):
    """A document id Qdrant cannot hold (wrong type, negative or too large integer, empty string)."""


def check_doc_id(doc_id: object) -> DocId:
    """Return `doc_id` when it is a valid document id, else raise `IdError` saying why."""
    if isinstance(doc_id, bool) or not isinstance(doc_id, int | str):
        raise IdError(f"document id must be a string or a non-negative integer, got {type(doc_id).__name__}")
    if isinstance(doc_id, int) and not 0 <= doc_id <= _U64_MAX:
        raise IdError(f"integer document id must be in [0, 2**64 - 1], got {doc_id}")
    if isinstance(doc_id, str) and not doc_id:
        raise IdError("string document id must not be empty")
    return doc_id


def to_point_id(doc_id: object) -> PointId:
    """The Qdrant point id of a document id: the integer itself, or the UUIDv5 of the string (as text)."""
    checked = check_doc_id(doc_id)
    if isinstance(checked, int):
        return checked
    return str(uuid.uuid5(NAMESPACE, checked))


def point_key(point_id: object) -> PointId:
    """Normalise a point id returned by an engine (int, `uuid.UUID` or UUID text) for dictionary lookups."""
    if isinstance(point_id, int) and not isinstance(point_id, bool):
        return point_id
    if isinstance(point_id, uuid.UUID):
        return str(point_id)
    if isinstance(point_id, str):
        return str(uuid.UUID(point_id))
    raise IdError(f"unexpected point id {point_id!r} of type {type(point_id).__name__}")


def id_payload(doc_id: DocId) -> dict[str, str]:
    """The payload entries that keep the original id (as text, so 64-bit integers survive JSON engines)."""
    return {ID_KEY: str(doc_id), ID_TYPE_KEY: "int" if isinstance(doc_id, int) else "str"}


def doc_id_from_payload(payload: Mapping[str, Any] | None, point_id: object) -> DocId:
    """The original document id of a stored point; falls back to the point id for foreign points."""
    if payload is not None and ID_KEY in payload:
        raw = payload[ID_KEY]
        if payload.get(ID_TYPE_KEY) == "int":
            return int(raw)
        return str(raw)
    key = point_key(point_id)
    return key
