"""One document layout for the Lucene engines (Elasticsearch, OpenSearch) and for migrated indices.

`_source` layout: text fields and metadata at the top level (so a migrated BM25 index keeps its documents as
they were, and filters address a key by its name), the sparse vector as `{feature name: weight}` under
`spec.sparse_field` (weights Lucene rejects, below 2^-126, dropped and counted; an empty vector left out),
the dense vector as a list under `spec.dense_field`, and, in indices spladebridge created, `sb_meta`
(mapped `enabled: false`) with the original id, so integer and string ids round-trip exactly, and the names
of the text fields. Documents without `sb_meta` (a migrated index, or written by another tool) are read with
`_id` as their id and the spec's text fields as their text; a text field holding a list of strings is read
as the strings joined by newlines, its original list kept in `metadata` under the same key so that writing
the document back restores it. `_id` is the id as a string (so `5` and `"5"` name the same document).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from spladebridge.connectors.base import DocId, Document, IndexSpec
from spladebridge.connectors.documents import DocumentError, dense_values
from spladebridge.connectors.lucene import clean_document_vector
from spladebridge.connectors.lucene_queries import FeatureNameError, FeatureNamer
from spladebridge.encoder.sparse_vector import SparseVector

__all__ = [
    "MAX_ID_BYTES",
    "META_FIELD",
    "DocumentError",
    "Layout",
    "PreparedSource",
    "document_from_source",
    "document_source",
    "lucene_id",
    "vector_fields",
]

#: Source key holding the original id and the names of the text fields (mapped `enabled: false`).
META_FIELD = "sb_meta"
#: Names the engines keep for their own metadata fields; a document cannot hold a field of that name.
ENGINE_METADATA_FIELDS = frozenset(
    {
        "_id",
        "_index",
        "_source",
        "_routing",
        "_type",
        "_version",
        "_seq_no",
        "_primary_term",
        "_field_names",
        "_ignored",
        "_ignored_source",
        "_tier",
        "_doc_count",
        "_data_stream_timestamp",
        "_nested_path",
        "_feature",
        "_size",
        "_meta",
        "_all",
    }
)
MAX_ID_BYTES = 512


@dataclass(frozen=True, slots=True)
class Layout:
    """How one index stores documents: the spec, feature names, whether `sb_meta` is written, and the
    engine's small differences (`sparse_scale` multiplies stored weights; `check_sparse` / `check_dense`
    refuse vectors the field cannot hold, with the reason)."""

    spec: IndexSpec
    namer: FeatureNamer
    stamp: bool = True
    #: Read ids and text-field names from `sb_meta` where a document has it (False: `_id` and the spec's
    #: text fields, as a migration reads a source index whatever wrote it).
    trust_meta: bool = True
    sparse_scale: float = 1.0
    check_sparse: Callable[[SparseVector], str | None] | None = None
    check_dense: Callable[[NDArray[np.float32]], str | None] | None = None

    def reserved(self) -> set[str]:
        spec = self.spec
        return {spec.sparse_field, META_FIELD} | ({spec.dense_field} if spec.dense_field else set())


@dataclass(frozen=True, slots=True)
class PreparedSource:
    """A checked document: its `_id`, its `_source`, and how many sparse weights had to be dropped."""

    id: str
    source: dict[str, Any]
    dropped: int = 0


def lucene_id(doc_id: object, where: str) -> str:
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
        raise DocumentError(f"{where}: id is longer than the engine's {MAX_ID_BYTES}-byte _id limit")
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


def _where(doc: Document, pos: int) -> str:
    shown = repr(doc.id) if len(repr(doc.id)) <= 80 else repr(doc.id)[:77] + "..."
    return f"document {pos} (id {shown})"


def vector_fields(doc: Document, pos: int, layout: Layout) -> tuple[dict[str, Any], int]:
    """The vector fields of document `pos` (`{sparse: {name: weight}}`, left out when empty, and `{dense:
    [...]}`) and how many sparse weights were dropped; DocumentError says what and where."""
    spec = layout.spec
    where = _where(doc, pos)
    out: dict[str, Any] = {}
    dropped = 0
    if doc.sparse is not None:
        if not isinstance(doc.sparse, SparseVector):
            raise DocumentError(
                f"{where}: field {spec.sparse_field!r} needs a SparseVector, got {type(doc.sparse).__name__}"
            )
        vector = doc.sparse.scale(layout.sparse_scale) if layout.sparse_scale != 1.0 else doc.sparse
        cleaned = clean_document_vector(vector)
        problem = layout.check_sparse(cleaned.vector) if layout.check_sparse is not None else None
        if problem is not None:
            raise DocumentError(f"{where}: field {spec.sparse_field!r}: {problem}")
        try:
            features = layout.namer.to_features(cleaned.vector)
        except FeatureNameError as exc:
            raise DocumentError(f"{where}: field {spec.sparse_field!r}: {exc}") from None
        if features:
            out[spec.sparse_field] = features
        dropped = cleaned.dropped
    if doc.dense is not None:
        values = dense_values(doc.dense, spec, where)
        problem = (
            layout.check_dense(np.asarray(values, dtype=np.float32))
            if layout.check_dense is not None
            else None
        )
        if problem is not None:
            raise DocumentError(f"{where}: field {spec.dense_field!r}: {problem}")
        assert spec.dense_field is not None  # checked by dense_values
        out[spec.dense_field] = values
    return out, dropped


def document_source(doc: object, pos: int, layout: Layout) -> PreparedSource:
    """Check document `pos` and build its `_source`; `DocumentError` says what and where.

    A document to store needs a sparse vector (it may be empty); the text fields must be strings. A metadata
    key may repeat a text field's name only with that field's original list of strings (see the module doc)."""
    if not isinstance(doc, Document):
        raise DocumentError(f"item {pos}: expected a Document, got {type(doc).__name__}")
    spec = layout.spec
    where = _where(doc, pos)
    doc_id = lucene_id(doc.id, where)
    if not isinstance(doc.sparse, SparseVector):
        got = "nothing" if doc.sparse is None else type(doc.sparse).__name__
        raise DocumentError(f"{where}: field {spec.sparse_field!r} needs a SparseVector, got {got}")
    reserved = layout.reserved()
    source: dict[str, Any] = {}
    for kind, values in (("text field", doc.fields), ("metadata key", doc.metadata)):
        if not isinstance(values, Mapping):
            raise DocumentError(f"{where}: {kind}s must be a dict, got {type(values).__name__}")
        for key, value in values.items():
            if not isinstance(key, str) or not key or key in reserved or key in ENGINE_METADATA_FIELDS:
                raise DocumentError(f"{where}: {kind} {key!r} is empty, reserved or an engine metadata field")
            if kind == "text field" and not isinstance(value, str):
                raise DocumentError(
                    f"{where}: text field {key!r} must be a string, got {type(value).__name__}"
                )
            if key in source and not _is_original_of(value, source[key]):
                raise DocumentError(f"{where}: {kind} {key!r} is also a text field name")
            source[key] = _plain(value, f"{where}: {kind} {key!r}")
    vectors, dropped = vector_fields(doc, pos, layout)
    source.update(vectors)
    if layout.stamp:
        source[META_FIELD] = {"id": doc.id, "fields": list(doc.fields)}
    return PreparedSource(doc_id, source, dropped)


def _is_original_of(value: object, text: object) -> bool:
    """Whether metadata `value` is the list of strings a text field `text` was read from."""
    return isinstance(value, list) and all(isinstance(v, str) for v in value) and "\n".join(value) == text


def _text_value(value: object) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return "\n".join(value)
    return None


def document_from_source(
    fallback_id: DocId, source: Mapping[str, Any] | None, layout: Layout, *, vectors: bool = True
) -> Document:
    """The Document a `_source` holds (see the module doc for documents without `sb_meta`); `vectors=False`
    leaves the vector fields out (a search hit, a source read to be encoded)."""
    spec = layout.spec
    data = dict(source or {})
    meta = data.pop(META_FIELD, None) or {}
    if not layout.trust_meta or not isinstance(meta, Mapping):
        meta = {}
    doc_id = meta.get("id", fallback_id)
    sparse_raw = data.pop(spec.sparse_field, None)
    dense_raw = data.pop(spec.dense_field, None) if spec.dense_field else None
    fields: dict[str, str] = {}
    metadata: dict[str, Any] = {}
    if "fields" in meta:
        names = set(meta["fields"])
        for key, value in data.items():
            (fields if key in names else metadata)[key] = value
    else:
        for key, value in data.items():
            text = _text_value(value) if key in spec.text_fields else None
            if text is None:
                metadata[key] = value
                continue
            fields[key] = text
            if not isinstance(value, str):
                metadata[key] = value
    sparse: SparseVector | None = None
    dense: NDArray[np.float32] | None = None
    if vectors:
        sparse = SparseVector.empty()
        if isinstance(sparse_raw, Mapping):
            sparse = layout.namer.from_features(sparse_raw)
            if layout.sparse_scale != 1.0 and sparse.nnz:
                sparse = sparse.scale(1.0 / layout.sparse_scale)
        if isinstance(dense_raw, list):
            dense = np.asarray(dense_raw, dtype=np.float32)
    return Document(id=doc_id, fields=fields, metadata=metadata, sparse=sparse, dense=dense)
