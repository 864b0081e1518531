"""Rows of an encoded DataFrame -> `Document`s, with a clear reason for each row that cannot be one.

Shared by the executors (distributed writes) and the driver (engines only one process may open), so both
paths accept and reject exactly the same rows.
"""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from spladebridge.connectors.base import DocId, Document, IndexSpec
from spladebridge.connectors.documents import DocumentError, dense_values
from spladebridge.connectors.ids import IdError, check_doc_id
from spladebridge.encoder.sparse_vector import SparseVector, SparseVectorError
from spladebridge.spark.columns import DENSE, ENCODE_ERROR, SPARSE_INDICES, SPARSE_VALUES, VECTOR_COLUMNS

__all__ = ["RowLayout", "RowProblem", "content_id", "plain", "row_to_document"]


@dataclass(frozen=True, slots=True)
class RowLayout:
    """Which columns hold the id (None: derived from the content), the text, the metadata; the index spec."""

    spec: IndexSpec
    id_col: str | None
    text_cols: tuple[str, ...]
    metadata_cols: tuple[str, ...]


class RowProblem(ValueError):
    """A row that cannot be written; `stage` is `encode` (its encode_error) or `read` (a bad id or vector)."""

    def __init__(self, message: str, stage: str, doc_id: DocId | None) -> None:
        super().__init__(message)
        self.stage = stage
        self.doc_id = doc_id


def plain(value: Any) -> Any:
    """A JSON-ready Python value for an engine's payload (numpy, dates, decimals and nested rows included)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return [plain(v) for v in value.tolist()]
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, float) and value != value:  # NaN: pandas' missing value
        return None
    return value


def content_id(fields: Mapping[str, Any], metadata: Mapping[str, Any]) -> str:
    """A deterministic id from a row's content: the same row gives the same id on every attempt and machine."""
    canonical = json.dumps([fields, metadata], sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]


def row_to_document(row: Mapping[str, Any], layout: RowLayout, where: str) -> Document:
    """The document a row stands for, or `RowProblem` naming the row (`where`), the column and the reason."""
    fields = {c: row[c] for c in layout.text_cols if isinstance(row.get(c), str) and row[c]}
    metadata = {c: plain(row.get(c)) for c in layout.metadata_cols}
    doc_id: DocId | None = None
    if layout.id_col is None:
        doc_id = content_id(fields, metadata)
    else:
        raw = plain(row.get(layout.id_col))
        if raw is None:
            raise RowProblem(f"{where}: id column {layout.id_col!r} is null", "read", None)
        try:
            doc_id = check_doc_id(raw)
        except IdError as exc:
            raise RowProblem(f"{where}: column {layout.id_col!r}: {exc}", "read", None) from None
    error = row.get(ENCODE_ERROR)
    if error:
        raise RowProblem(f"{where}: {error}", "encode", doc_id)
    indices, values = row.get(SPARSE_INDICES), row.get(SPARSE_VALUES)
    if indices is None or values is None:
        raise RowProblem(
            f"{where}: no SPLADE vector ({SPARSE_INDICES} / {SPARSE_VALUES} are null)", "read", doc_id
        )
    dense = row.get(DENSE) if layout.spec.dense_field is not None else None
    if layout.spec.dense_field is not None and dense is None:
        raise RowProblem(f"{where}: no dense vector (column {DENSE!r} is null)", "read", doc_id)
    doc = Document(doc_id, fields, metadata)
    try:
        doc.sparse = SparseVector(np.asarray(indices), np.asarray(values, dtype=np.float32))
        if dense is not None:
            doc.dense = np.asarray(dense_values(dense, layout.spec, where), dtype=np.float32)
    except DocumentError as exc:  # its message already starts with `where`
        raise RowProblem(str(exc), "read", doc_id) from None
    except (SparseVectorError, TypeError, ValueError) as exc:
        raise RowProblem(f"{where}: {exc}", "read", doc_id) from None
    return doc


def metadata_columns(columns: Sequence[str], id_col: str | None, text_cols: Sequence[str]) -> tuple[str, ...]:
    """Every column that is neither the id, a text column nor one `encode()` added: kept as metadata."""
    skip = {*VECTOR_COLUMNS, *text_cols, *([id_col] if id_col else [])}
    return tuple(c for c in columns if c not in skip)
