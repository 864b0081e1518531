"""`Document` <-> Elasticsearch `_id` + `_source`, checked item by item so a bad document fails alone.

Source layout: text fields and metadata at the top level, the sparse vector as `{feature name: weight}`
under `spec.sparse_field` (weights Lucene rejects, below 2^-126, dropped and counted), the dense vector as a
list under `spec.dense_field`, and `sb_meta` (mapped `enabled: false`) with the original id, so integer and
string ids round-trip exactly, and the names of the text fields. `_id` is the id as a string (so `5` and
`"5"` name the same Elasticsearch document).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from spladebridge.connectors.base import DocId, Document, IndexSpec
from spladebridge.connectors.documents import DocumentError, dense_values
from spladebridge.connectors.es_bodies import META_FIELD
from spladebridge.connectors.lucene import clean_document_vector
from spladebridge.connectors.lucene_queries import FeatureNameError, FeatureNamer
from spladebridge.encoder.sparse_vector import SparseVector

__all__ = [
    "MAX_ID_BYTES",
    "DocumentError",
    "PreparedSource",
    "dense_values",
    "document_from_source",
    "document_source",
    "es_id",
]

MAX_ID_BYTES = 512


@dataclass(frozen=True, slots=True)
class PreparedSource:
    """A checked document: its `_id`, its `_source`, and how many sparse weights had to be dropped."""

    es_id: str
    source: dict[str, Any]
    dropped: int = 0


def es_id(doc_id: object, where: str) -> str:
    """The `_id` of a document id (a non-empty string of at most 512 bytes, or an integer >= 0)."""
    if isinstance(doc_id, bool) or not isinstance(doc_id, int | str):
        raise DocumentError(
            f"{where}: id must be a string or a non-negative integer, got {type(doc_id).__name__}"
        )
    if isinstance(doc_id, int):
        if doc_id < 0:
            raise DocumentError(f"{where}: integer id must be >= 0, got {doc_id}")
        return str(doc_id)
    if not doc_id:
        raise DocumentError(f"{where}: id must not be empty")
    if len(doc_id.encode("utf-8")) > MAX_ID_BYTES:
        raise DocumentError(f"{where}: id is longer than Elasticsearch's {MAX_ID_BYTES}-byte _id limit")
    return doc_id


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def _plain(value: Any, where: str) -> Any:
    """`value` as plain JSON data (numpy scalars and arrays converted); NaN/inf and objects refused, because
    one unparsable document would otherwise fail its whole bulk request."""
    if isinstance(value, str | bool | int) or value is None:
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise DocumentError(f"{where} is not finite: {value!r}")
        return value
    try:
        return json.loads(json.dumps(value, allow_nan=False, default=_json_default))
    except (TypeError, ValueError) as exc:
        raise DocumentError(f"{where} is not JSON data: {exc}") from None


def document_source(doc: object, pos: int, spec: IndexSpec, namer: FeatureNamer) -> PreparedSource:
    """Check document `pos` against `spec` and build its `_source`; `DocumentError` says what and where."""
    if not isinstance(doc, Document):
        raise DocumentError(f"item {pos}: expected a Document, got {type(doc).__name__}")
    shown = repr(doc.id) if len(repr(doc.id)) <= 80 else repr(doc.id)[:77] + "..."
    where = f"document {pos} (id {shown})"
    doc_es_id = es_id(doc.id, where)
    if not isinstance(doc.sparse, SparseVector):
        got = "nothing" if doc.sparse is None else type(doc.sparse).__name__
        raise DocumentError(f"{where}: field {spec.sparse_field!r} needs a SparseVector, got {got}")
    cleaned = clean_document_vector(doc.sparse)
    try:
        features = namer.to_features(cleaned.vector)
    except FeatureNameError as exc:
        raise DocumentError(f"{where}: field {spec.sparse_field!r}: {exc}") from None
    reserved = {spec.sparse_field, META_FIELD} | ({spec.dense_field} if spec.dense_field else set())
    source: dict[str, Any] = {}
    for kind, values in (("text field", doc.fields), ("metadata key", doc.metadata)):
        if not isinstance(values, Mapping):
            raise DocumentError(f"{where}: {kind}s must be a dict, got {type(values).__name__}")
        for key, value in values.items():
            if not isinstance(key, str) or not key or key in reserved or key.startswith("_"):
                raise DocumentError(f"{where}: {kind} {key!r} is empty, starts with '_' or is reserved")
            if key in source:
                raise DocumentError(f"{where}: {kind} {key!r} is also a text field name")
            if kind == "text field" and not isinstance(value, str):
                raise DocumentError(
                    f"{where}: text field {key!r} must be a string, got {type(value).__name__}"
                )
            source[key] = _plain(value, f"{where}: {kind} {key!r}")
    if features:
        source[spec.sparse_field] = features
    if doc.dense is not None:
        dense = dense_values(doc.dense, spec, where)
        assert spec.dense_field is not None  # checked by dense_values
        source[spec.dense_field] = dense
    source[META_FIELD] = {"id": doc.id, "fields": list(doc.fields)}
    return PreparedSource(doc_es_id, source, cleaned.dropped)


def document_from_source(
    fallback_id: DocId, source: Mapping[str, Any] | None, spec: IndexSpec, namer: FeatureNamer
) -> Document:
    """Rebuild the Document a `_source` was written from (text fields and metadata split by `sb_meta`).
    A source without `sb_meta` (written by something else, e.g. a migrated BM25 index) keeps `fallback_id`
    and takes the spec's text fields as its text fields."""
    data = dict(source or {})
    meta = data.pop(META_FIELD, None) or {}
    doc_id = meta.get("id", fallback_id)
    text_names = set(meta["fields"]) if "fields" in meta else set(spec.text_fields)
    sparse_raw = data.pop(spec.sparse_field, None)
    dense_raw = data.pop(spec.dense_field, None) if spec.dense_field else None
    sparse = namer.from_features(sparse_raw) if sparse_raw is not None else SparseVector.empty()
    dense = np.asarray(dense_raw, dtype=np.float32) if dense_raw is not None else None
    fields = {k: v for k, v in data.items() if k in text_names}
    metadata = {k: v for k, v in data.items() if k not in text_names}
    return Document(id=doc_id, fields=fields, metadata=metadata, sparse=sparse, dense=dense)
