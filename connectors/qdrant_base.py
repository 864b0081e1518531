"""`QdrantLikeConnector`: what `QdrantConnector` (qdrant-client) and `QdrantEdgeConnector` (Qdrant Edge) do
the same way, written once over a few engine primitives.

The base class holds the public reads, searches and writes (id checks, batching, invalid-document
isolation, paging, record-to-`Document` and point-to-`Hit` conversion). A subclass supplies the engine
calls: retrieve records by point id, scroll a page, count, run a nearest query, convert sparse vectors,
build a point, write a batch of points and delete points, plus its own spec checks and error messages.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import qdrant_edge as qe
from numpy.typing import NDArray

from spladebridge.connectors.base import (
    Connector,
    DocId,
    Document,
    Hit,
    HybridRequest,
    IndexSpec,
    ItemOutcome,
    Signal,
    WriteReport,
)
from spladebridge.connectors.filters import FilterLike
from spladebridge.connectors.ids import IdError, PointId, doc_id_from_payload, point_key, to_point_id
from spladebridge.connectors.qdrant_common import (
    DocumentError,
    PreparedDocument,
    bm25_config_kwargs,
    bm25_vector_name,
    check_k,
    check_query_dense,
    document_from_payload,
    hit_fields,
    prepare_document,
)
from spladebridge.encoder.sparse_vector import SparseVector

__all__ = [
    "QdrantLikeConnector",
    "ReadyPoint",
    "hits_from_points",
    "raw_id",
    "sparse_from_engine",
    "vector_name",
]

#: A document that passed the checks: its place in the batch, the checked document and the engine point.
ReadyPoint = tuple[int, PreparedDocument, Any]


class QdrantLikeConnector(Connector):
    """The shared part of the Qdrant connectors; subclasses implement the engine primitives below."""

    batch_size: int
    _bm25: Any = None
    _closed: bool = False

    # -- engine primitives ----------------------------------------------------------------------------

    @abstractmethod
    def _require_spec(self) -> IndexSpec:
        """The spec, after checking the connector is open and the index exists (ConnectorError if not)."""

    @abstractmethod
    def _retrieve(self, point_ids: list[PointId]) -> Iterable[Any]:
        """The stored records (with payload and vectors) of these point ids; absent ids are left out."""

    @abstractmethod
    def _scroll(self, offset: Any, limit: int) -> tuple[list[Any], Any]:
        """One page of records (with payload and vectors) from `offset`, and the next offset (None at the end)."""

    @abstractmethod
    def _count(self) -> int:
        """Number of stored points (exact), after the engine's own readiness check."""

    @abstractmethod
    def _nearest(self, query: Any, using: str, k: int, filter: FilterLike) -> list[Hit]:
        """Top-k of the engine query `query` against the vector `using`, under `filter`."""

    @abstractmethod
    def _record_vectors(self, record: Any) -> Mapping[str, Any]:
        """The named vectors of a stored record (empty when it has none)."""

    @abstractmethod
    def _to_engine_sparse(self, vector: SparseVector) -> Any:
        """`vector` as the engine's sparse vector type."""

    @abstractmethod
    def _bm25_to_engine(self, embedding: Any) -> Any:
        """A Qdrant Edge BM25 embedding as the engine's sparse vector type."""

    @abstractmethod
    def _bm25_query(self, text: str, spec: IndexSpec) -> Any:
        """The engine BM25 query for `text` (None when it has no token); raises if the index is not lexical."""

    @abstractmethod
    def _make_point(self, point_id: PointId, vectors: dict[str, Any], payload: dict[str, Any]) -> Any:
        """The engine's point object."""

    @abstractmethod
    def _store_points(self, ready: list[ReadyPoint], outcomes: list[ItemOutcome | None]) -> None:
        """Write the checked points of a batch, filling `outcomes[offset]` for each of them."""

    @abstractmethod
    def _delete_points(self, point_ids: list[PointId], outcomes: list[ItemOutcome]) -> list[ItemOutcome]:
        """Delete these point ids; `outcomes` as they should be reported afterwards."""

    # -- writes ---------------------------------------------------------------------------------------

    def upsert(self, documents: Iterable[Document]) -> WriteReport:
        """Insert or replace documents in batches; invalid documents fail alone (non-retryable)."""
        spec = self._require_spec()
        report = WriteReport()
        batch: list[object] = []
        start = 0
        for doc in documents:
            batch.append(doc)
            if len(batch) >= self.batch_size:
                report.extend(self._upsert_batch(batch, start, spec))
                start += len(batch)
                batch = []
        if batch:
            report.extend(self._upsert_batch(batch, start, spec))
        return report

    def _upsert_batch(self, batch: Sequence[object], start: int, spec: IndexSpec) -> WriteReport:
        outcomes: list[ItemOutcome | None] = [None] * len(batch)
        ready: list[ReadyPoint] = []
        for offset, doc in enumerate(batch):
            try:
                prepared = prepare_document(doc, start + offset, spec)
            except DocumentError as exc:
                outcomes[offset] = ItemOutcome(raw_id(doc), ok=False, status="invalid", error=str(exc))
                continue
            ready.append((offset, prepared, self._point(prepared, spec)))
        if ready:
            self._store_points(ready, outcomes)
        return WriteReport([o for o in outcomes if o is not None])

    def _point(self, doc: PreparedDocument, spec: IndexSpec) -> Any:
        vectors: dict[str, Any] = {spec.sparse_field: self._to_engine_sparse(doc.sparse)}
        if doc.dense is not None and spec.dense_field is not None:
            vectors[spec.dense_field] = doc.dense
        if spec.lexical and doc.text:
            vectors[bm25_vector_name(spec)] = self._bm25_to_engine(self._bm25.embed_document(doc.text))
        return self._make_point(doc.point_id, vectors, doc.payload)

    def delete(self, ids: Iterable[DocId]) -> WriteReport:
        """Delete by id; absent ids succeed, invalid ids fail alone."""
        self._require_spec()
        outcomes: list[ItemOutcome] = []
        valid: list[PointId] = []
        for i, doc_id in enumerate(ids):
            try:
                valid.append(to_point_id(doc_id))
                outcomes.append(ItemOutcome(doc_id, ok=True, status="deleted"))
            except IdError as exc:
                outcomes.append(
                    ItemOutcome(raw_id(doc_id), ok=False, status="invalid", error=f"id {i}: {exc}")
                )
        if valid:
            outcomes = self._delete_points(valid, outcomes)
        return WriteReport(outcomes)

    # -- reads ----------------------------------------------------------------------------------------

    def get(self, ids: Sequence[DocId]) -> list[Document | None]:
        """Documents by id, in the order asked, with vectors; None where absent."""
        spec = self._require_spec()
        point_ids = []
        for i, doc_id in enumerate(ids):
            try:
                point_ids.append(to_point_id(doc_id))
            except IdError as exc:
                raise IdError(f"id {i}: {exc}") from None
        if not point_ids:
            return []
        unique = list(dict.fromkeys(point_ids))
        records = self._retrieve(unique)
        found = {point_key(r.id): self._document(r, spec) for r in records}
        return [found.get(pid) for pid in point_ids]

    def scan(self, batch_size: int = 500) -> Iterator[Document]:
        """Every stored document with its payload and vectors, page by page (in point-id order)."""
        check_k(batch_size, "batch_size")
        spec = self._require_spec()
        offset: Any = None
        while True:
            records, offset = self._scroll(offset, batch_size)
            for record in records:
                yield self._document(record, spec)
            if offset is None or not records:
                return

    def count(self) -> int:
        """Number of stored documents (exact)."""
        return self._count()

    def _document(self, record: Any, spec: IndexSpec) -> Document:
        vectors = self._record_vectors(record)
        dense: NDArray[np.float32] | None = None
        if spec.dense_field is not None and vectors.get(spec.dense_field) is not None:
            dense = np.asarray(vectors[spec.dense_field], dtype=np.float32)
        sparse = sparse_from_engine(vectors.get(spec.sparse_field))
        return document_from_payload(record.payload, record.id, sparse, dense)

    # -- search ---------------------------------------------------------------------------------------

    def search_sparse(self, vector: SparseVector, k: int, filter: FilterLike = None) -> list[Hit]:
        """Top-k by sparse dot product (IDF-weighted when the index was created with `sparse_idf`)."""
        spec = self._require_spec()
        check_k(k)
        if not isinstance(vector, SparseVector):
            raise TypeError(f"search_sparse needs a SparseVector, got {type(vector).__name__}")
        if not vector:
            return []
        return self._nearest(self._to_engine_sparse(vector), spec.sparse_field, k, filter)

    def search_dense(self, vector: NDArray[np.float32], k: int, filter: FilterLike = None) -> list[Hit]:
        """Top-k by cosine similarity."""
        spec = self._require_spec()
        check_k(k)
        values = check_query_dense(vector, spec)
        assert spec.dense_field is not None
        return self._nearest(values, spec.dense_field, k, filter)

    def search_text(self, text: str, k: int, filter: FilterLike = None) -> list[Hit]:
        """Top-k by BM25 (Qdrant's BM25 token ids and formula, IDF modifier) over the text fields."""
        spec = self._require_spec()
        check_k(k)
        query = self._bm25_query(text, spec)
        if query is None:
            return []
        return self._nearest(query, bm25_vector_name(spec), k, filter)

    def _signal_queries(self, request: HybridRequest, spec: IndexSpec) -> dict[Signal, Any]:
        """The engine query of each signal a hybrid request names (None where the query is empty)."""
        queries: dict[Signal, Any] = {}
        if request.sparse is not None:
            queries["sparse"] = self._to_engine_sparse(request.sparse) if request.sparse else None
        if request.dense is not None:
            queries["dense"] = check_query_dense(request.dense, spec)
        if request.text is not None:
            queries["bm25"] = self._bm25_query(request.text, spec)
        return queries

    # -- internals ------------------------------------------------------------------------------------

    def _set_spec(self, spec: IndexSpec) -> None:
        self.spec = spec
        self._bm25 = qe.Bm25(qe.Bm25Config(**bm25_config_kwargs(spec))) if spec.lexical else None


def sparse_from_engine(vector: Any) -> SparseVector:
    """A stored sparse vector (either engine's type: `.indices`, `.values`) as a `SparseVector`."""
    if vector is None:
        return SparseVector.empty()
    return SparseVector(
        np.asarray(vector.indices, dtype=np.int64), np.asarray(vector.values, dtype=np.float32)
    )


def hits_from_points(points: Iterable[Any]) -> list[Hit]:
    """Scored points (`.id`, `.score`, `.payload`), best first, as ranked `Hit`s."""
    return [
        Hit(
            id=doc_id_from_payload(p.payload, p.id),
            score=float(p.score),
            rank=rank,
            fields=hit_fields(p.payload),
        )
        for rank, p in enumerate(points, start=1)
    ]


def vector_name(signal: Signal, spec: IndexSpec) -> str:
    """The named vector that holds `signal`."""
    if signal == "sparse":
        return spec.sparse_field
    if signal == "dense":
        assert spec.dense_field is not None
        return spec.dense_field
    return bm25_vector_name(spec)


def raw_id(value: object) -> DocId:
    """An id to report for an invalid item (its own id when readable, else its repr)."""
    doc_id = value.id if isinstance(value, Document) else value
    if isinstance(doc_id, str | int) and not isinstance(doc_id, bool):
        return doc_id
    return repr(doc_id)
