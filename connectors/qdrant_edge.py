"""`QdrantEdgeConnector`: the embedded default, an in-process Qdrant Edge shard in a local folder.

The shard holds the SPLADE vectors as a named sparse vector (IDF modifier optional), an optional named
cosine dense vector, a second sparse vector with Qdrant Edge's built-in BM25 (with the IDF modifier) for the
lexical signal, and the payload. The index spec is stored as JSON in the shard folder so a reopened shard
knows its fields, and an exclusive lock file keeps a second process (or a second connector) out.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import qdrant_edge as qe
from numpy.typing import NDArray

from spladebridge.atomic import write_text_atomic
from spladebridge.connectors.base import (
    Capabilities,
    Connector,
    ConnectorError,
    DocId,
    Document,
    Hit,
    HybridRequest,
    IndexSpec,
    ItemOutcome,
    Signal,
    UnsupportedOperation,
    WriteReport,
)
from spladebridge.connectors.filters import FilterLike
from spladebridge.connectors.ids import IdError, PointId, doc_id_from_payload, point_key, to_point_id
from spladebridge.connectors.qdrant_common import (
    DocumentError,
    FusionPlan,
    PreparedDocument,
    bm25_config_kwargs,
    bm25_vector_name,
    check_k,
    check_query_dense,
    document_from_payload,
    hit_fields,
    plan_fusion,
    prepare_document,
    spec_differences,
    spec_from_json,
    spec_to_json,
    translate_filter,
)
from spladebridge.encoder.sparse_vector import SparseVector

__all__ = ["LOCK_FILE", "SPEC_FILE", "QdrantEdgeConnector"]

SPEC_FILE = "spladebridge-index.json"
LOCK_FILE = "spladebridge.lock"
_SHARD_MARKERS = ("edge_config.json", "segments")
T = TypeVar("T")


class _PathLock:
    """An exclusive, non-blocking `flock` on a file; a second holder (any process) gets a ConnectorError."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise ConnectorError(
                f"Qdrant Edge shard {path.parent} is already open (lock {path.name} held by pid {holder}); "
                "close the other connector or process first"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


class _EdgeFilterBuilder:
    """Builds `qdrant_edge` conditions for `translate_filter`."""

    def match_value(self, key: str, value: str | int | bool) -> Any:
        if isinstance(value, bool):
            # qdrant-edge-py stores MatchValue(True) as the integer 1: it would match the integers 1 / 0 and
            # never a boolean payload. A clear error beats silently wrong results.
            raise UnsupportedOperation(
                f"filter on {key!r}: Qdrant Edge cannot match a boolean value (qdrant-edge-py turns it into "
                "the integer 0/1); store the flag as a string or an integer and filter on that"
            )
        return qe.FieldCondition(key, match=qe.MatchValue(value))

    def match_any(self, key: str, values: list[str] | list[int]) -> Any:
        return qe.FieldCondition(key, match=qe.MatchAny(values))

    def range(self, key: str, bounds: dict[str, float]) -> Any:
        return qe.FieldCondition(key, range=qe.RangeFloat(**bounds))

    def any_of(self, conditions: list[Any]) -> Any:
        return qe.Filter(should=conditions)


def _edge_filter(value: FilterLike) -> Any:
    translated = translate_filter(value, _EdgeFilterBuilder())
    return None if translated is None else qe.Filter(must=translated.must)


def _to_edge_sparse(vector: SparseVector) -> Any:
    return qe.SparseVector(vector.indices.tolist(), vector.values.tolist())


def _from_edge_sparse(vector: Any) -> SparseVector:
    if vector is None:
        return SparseVector.empty()
    return SparseVector(
        np.asarray(vector.indices, dtype=np.int64), np.asarray(vector.values, dtype=np.float32)
    )


class QdrantEdgeConnector(Connector):
    """One Qdrant Edge shard in the folder `path` (created by `ensure_index`, loaded when it exists).

    `spec`: when the shard exists its stored spec is read back (and `spec`, if given, must be compatible);
    otherwise the shard is created for `spec`. Use as a context manager or call `close()`.
    Dense vectors use cosine distance, so Qdrant stores (and `scan`/`get` return) them L2-normalised.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        spec: IndexSpec | None = None,
        *,
        batch_size: int = 256,
        max_search_threads: int | None = None,
    ) -> None:
        check_k(batch_size, "batch_size")
        self.path = Path(path)
        self.batch_size = batch_size
        self._max_search_threads = max_search_threads
        self._shard: Any = None
        self._bm25: Any = None
        self._closed = False
        self._lock = _PathLock(self.path / LOCK_FILE)
        try:
            stored = self._read_spec()
            if stored is not None:
                self._shard = self._edge("load the shard", lambda: qe.EdgeShard.load(str(self.path)))
                self._set_spec(stored)
                if spec is not None:
                    self.ensure_index(spec)
            elif spec is not None:
                self.ensure_index(spec)
        except BaseException:
            self.close()
            raise

    # -- lifecycle ------------------------------------------------------------------------------------

    def ensure_index(self, spec: IndexSpec) -> None:
        """Create the shard for `spec`, or check that the existing one matches it (ConnectorError if not)."""
        self._check_open()
        bm25_vector_name(spec)  # validates the name early
        if self.spec is not None and self._shard is not None:
            diffs = spec_differences(spec, self.spec)
            if diffs:
                raise ConnectorError(
                    f"Qdrant Edge shard {self.path} does not match the spec: " + "; ".join(diffs)
                )
            return
        config = self._edge_config(spec)
        if any((self.path / marker).exists() for marker in _SHARD_MARKERS):
            # a shard without our spec file: load it with the config, which Edge checks for compatibility
            self._shard = self._edge("load the shard", lambda: qe.EdgeShard.load(str(self.path), config))
        else:
            self._shard = self._edge("create the shard", lambda: qe.EdgeShard.create(str(self.path), config))
        self._write_spec(spec)
        self._set_spec(spec)

    def flush(self) -> None:
        """Write pending changes to disk."""
        self._edge("flush", self._require_shard().flush)

    def optimize(self) -> bool:
        """Run the segment optimizers (merge, index) in-process; call after bulk loads. True if any ran."""
        return bool(self._edge("optimize", self._require_shard().optimize))

    def close(self) -> None:
        """Flush, close the shard and release the lock. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        shard, self._shard = self._shard, None
        try:
            if shard is not None:
                with contextlib.suppress(Exception):
                    shard.flush()
                shard.close()
        finally:
            self._lock.release()

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
        ready: list[tuple[int, PreparedDocument, Any]] = []
        for offset, doc in enumerate(batch):
            try:
                prepared = prepare_document(doc, start + offset, spec)
            except DocumentError as exc:
                outcomes[offset] = ItemOutcome(_raw_id(doc), ok=False, status="invalid", error=str(exc))
                continue
            ready.append((offset, prepared, self._point(prepared, spec)))
        if ready:
            try:
                self._shard_update(qe.UpdateOperation.upsert_points([p for _, _, p in ready]))
                for offset, prepared, _ in ready:
                    outcomes[offset] = ItemOutcome(prepared.doc_id, ok=True, status="upserted")
            except ConnectorError:
                for offset, prepared, point in ready:  # isolate the failing documents one by one
                    try:
                        self._shard_update(qe.UpdateOperation.upsert_points([point]))
                        outcomes[offset] = ItemOutcome(
                            prepared.doc_id, ok=True, status="upserted", attempts=2
                        )
                    except ConnectorError as exc:
                        outcomes[offset] = ItemOutcome(
                            prepared.doc_id, ok=False, status="error", error=str(exc), attempts=2
                        )
        return WriteReport([o for o in outcomes if o is not None])

    def _point(self, doc: PreparedDocument, spec: IndexSpec) -> Any:
        vectors: dict[str, Any] = {spec.sparse_field: _to_edge_sparse(doc.sparse)}
        if doc.dense is not None and spec.dense_field is not None:
            vectors[spec.dense_field] = doc.dense
        if spec.lexical and doc.text:
            vectors[bm25_vector_name(spec)] = self._bm25.embed_document(doc.text)
        return qe.Point(doc.point_id, vectors, doc.payload)

    def delete(self, ids: Iterable[DocId]) -> WriteReport:
        """Delete by id; absent ids succeed, invalid ids fail alone."""
        self._require_spec()
        outcomes: list[ItemOutcome] = []
        valid: list[Any] = []
        for i, doc_id in enumerate(ids):
            try:
                valid.append(to_point_id(doc_id))
                outcomes.append(ItemOutcome(doc_id, ok=True, status="deleted"))
            except IdError as exc:
                outcomes.append(
                    ItemOutcome(_raw_id(doc_id), ok=False, status="invalid", error=f"id {i}: {exc}")
                )
        if valid:
            try:
                self._shard_update(qe.UpdateOperation.delete_points(valid))
            except ConnectorError as exc:
                outcomes = [
                    o
                    if not o.ok
                    else ItemOutcome(o.id, ok=False, status="error", error=str(exc), retryable=True)
                    for o in outcomes
                ]
        return WriteReport(outcomes)

    # -- reads ----------------------------------------------------------------------------------------

    def get(self, ids: Sequence[DocId]) -> list[Document | None]:
        """Documents by id, in the order asked, with vectors; None where absent."""
        spec = self._require_spec()
        point_ids = [_point_id_at(i, doc_id) for i, doc_id in enumerate(ids)]
        if not point_ids:
            return []
        shard = self._require_shard()
        unique = list(dict.fromkeys(point_ids))
        records = self._edge("retrieve points", lambda: shard.retrieve(unique, True, True))
        found = {point_key(r.id): self._document(r, spec) for r in records}
        return [found.get(pid) for pid in point_ids]

    def scan(self, batch_size: int = 500) -> Iterator[Document]:
        """Every stored document with its payload and vectors, in point-id order."""
        check_k(batch_size, "batch_size")
        spec = self._require_spec()
        offset: Any = None
        while True:
            records, offset = self._scroll(offset, batch_size)
            for record in records:
                yield self._document(record, spec)
            if offset is None or not records:
                return

    def _scroll(self, offset: Any, limit: int) -> tuple[list[Any], Any]:
        shard = self._require_shard()
        request = qe.ScrollRequest(offset=offset, limit=limit, with_payload=True, with_vector=True)
        records, next_offset = self._edge("scroll", lambda: shard.scroll(request))
        return list(records), next_offset

    def count(self) -> int:
        """Number of stored documents (exact)."""
        shard = self._require_shard()
        return int(self._edge("count", lambda: shard.count(qe.CountRequest(exact=True))))

    def _document(self, record: Any, spec: IndexSpec) -> Document:
        vectors = record.vector or {}
        dense: NDArray[np.float32] | None = None
        if spec.dense_field is not None and vectors.get(spec.dense_field) is not None:
            dense = np.asarray(vectors[spec.dense_field], dtype=np.float32)
        sparse = _from_edge_sparse(vectors.get(spec.sparse_field))
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
        return self._nearest(_to_edge_sparse(vector), spec.sparse_field, k, filter)

    def search_dense(self, vector: NDArray[np.float32], k: int, filter: FilterLike = None) -> list[Hit]:
        """Top-k by cosine similarity."""
        spec = self._require_spec()
        check_k(k)
        values = check_query_dense(vector, spec)
        assert spec.dense_field is not None
        return self._nearest(values, spec.dense_field, k, filter)

    def search_text(self, text: str, k: int, filter: FilterLike = None) -> list[Hit]:
        """Top-k by BM25 (Qdrant Edge's built-in embedder, IDF modifier) over the text fields."""
        spec = self._require_spec()
        check_k(k)
        if not spec.lexical:
            raise UnsupportedOperation(f"index {spec.name!r} was created with lexical=False")
        query = self._bm25.embed_query(text)
        if not query.indices:
            return []
        return self._nearest(query, bm25_vector_name(spec), k, filter)

    def search_hybrid(self, request: HybridRequest) -> list[Hit]:
        """Fuse sparse, dense and BM25 server-side (prefetches + RRF or DBSF), as the hybrid module fuses."""
        spec = self._require_spec()
        queries = self._signal_queries(request, spec)
        empty = [s for s, q in queries.items() if q is None]
        plan = plan_fusion(request, empty=empty)
        if not plan.signals:
            return []
        flt = _edge_filter(request.filter)
        leaves = [
            qe.Prefetch(
                limit=plan.candidates, query=qe.Query.Nearest(queries[s], using=_using(s, spec)), filter=flt
            )
            for s in plan.signals
        ]
        if plan.native:
            req = qe.QueryRequest(
                limit=plan.limit, prefetches=leaves, query=_edge_fusion(plan), filter=flt, with_payload=True
            )
        else:
            wrapped = [
                qe.Prefetch(limit=plan.candidates, prefetches=[leaf], query=_edge_fusion(plan))
                for leaf in leaves
            ]
            req = qe.QueryRequest(
                limit=plan.limit,
                prefetches=wrapped,
                query=_weighted_formula(plan),
                filter=flt,
                with_payload=True,
            )
        return self._hits(req)

    def _signal_queries(self, request: HybridRequest, spec: IndexSpec) -> dict[Signal, Any]:
        queries: dict[Signal, Any] = {}
        if request.sparse is not None:
            queries["sparse"] = _to_edge_sparse(request.sparse) if request.sparse else None
        if request.dense is not None:
            queries["dense"] = check_query_dense(request.dense, spec)
        if request.text is not None:
            if not spec.lexical:
                raise UnsupportedOperation(f"index {spec.name!r} was created with lexical=False")
            bm25 = self._bm25.embed_query(request.text)
            queries["bm25"] = bm25 if bm25.indices else None
        return queries

    def _nearest(self, query: Any, using: str, k: int, filter: FilterLike) -> list[Hit]:
        request = qe.QueryRequest(
            limit=k,
            query=qe.Query.Nearest(query, using=using),
            filter=_edge_filter(filter),
            with_payload=True,
        )
        return self._hits(request)

    def _hits(self, request: Any) -> list[Hit]:
        shard = self._require_shard()
        points = self._edge("query", lambda: shard.query(request))
        return [
            Hit(
                id=doc_id_from_payload(p.payload, p.id),
                score=float(p.score),
                rank=rank,
                fields=hit_fields(p.payload),
            )
            for rank, p in enumerate(points, start=1)
        ]

    # -- capabilities ---------------------------------------------------------------------------------

    def capabilities(self) -> Capabilities:
        """Sparse (+IDF), dense (cosine), BM25 when the spec asks for it, RRF and DBSF fused in-process."""
        spec = self.spec
        try:
            version: str | None = metadata.version("qdrant-edge-py")
        except metadata.PackageNotFoundError:
            version = None
        return Capabilities(
            engine="qdrant-edge",
            version=version,
            sparse=True,
            dense=spec is None or spec.dense_field is not None,
            lexical=spec is None or spec.lexical,
            sparse_field_types=("sparse_vector",),
            server_fusion=frozenset({"rrf", "dbsf"}),
            weighted_fusion=True,
            notes=(
                "RRF runs as Fusion.Rrf(k=rank_constant+1): Qdrant counts positions from 0",
                "weighted RRF/DBSF run as a formula over single-signal fusions (Qdrant's own weighted RRF "
                "is a different function)",
                "BM25 is Qdrant Edge's built-in embedder stored as a sparse vector with the IDF modifier",
                "dense vectors are cosine and come back L2-normalised",
            ),
        )

    # -- internals ------------------------------------------------------------------------------------

    def _edge_config(self, spec: IndexSpec) -> Any:
        sparse_vectors = {
            spec.sparse_field: qe.EdgeSparseVectorParams(
                modifier=qe.Modifier.Idf if spec.sparse_idf else None
            )
        }
        if spec.lexical:
            sparse_vectors[bm25_vector_name(spec)] = qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)
        vectors = None
        if spec.dense_field is not None and spec.dense_dim is not None:
            vectors = {
                spec.dense_field: qe.EdgeVectorParams(size=spec.dense_dim, distance=qe.Distance.Cosine)
            }
        return qe.EdgeConfig(
            vectors=vectors, sparse_vectors=sparse_vectors, max_search_threads=self._max_search_threads
        )

    def _set_spec(self, spec: IndexSpec) -> None:
        self.spec = spec
        self._bm25 = qe.Bm25(qe.Bm25Config(**bm25_config_kwargs(spec))) if spec.lexical else None

    def _read_spec(self) -> IndexSpec | None:
        path = self.path / SPEC_FILE
        if not path.exists():
            return None
        try:
            return spec_from_json(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError) as exc:
            raise ConnectorError(f"cannot read the index spec {path}: {exc}") from None

    def _write_spec(self, spec: IndexSpec) -> None:
        write_text_atomic(self.path / SPEC_FILE, json.dumps(spec_to_json(spec), indent=2, sort_keys=True))

    def _check_open(self) -> None:
        if self._closed:
            raise ConnectorError(f"the connector for {self.path} is closed")

    def _require_shard(self) -> Any:
        self._check_open()
        if self._shard is None:
            raise ConnectorError(f"no Qdrant Edge shard at {self.path} yet: call ensure_index(spec) first")
        return self._shard

    def _require_spec(self) -> IndexSpec:
        self._require_shard()
        assert self.spec is not None
        return self.spec

    def _shard_update(self, operation: Any) -> None:
        shard = self._require_shard()
        self._edge("update", lambda: shard.update(operation))

    def _edge(self, what: str, call: Callable[[], T]) -> T:
        try:
            return call()
        except ConnectorError:
            raise
        except Exception as exc:  # qdrant_edge raises bare Exception for engine errors
            raise ConnectorError(f"Qdrant Edge could not {what} at {self.path}: {exc}") from exc


def _using(signal: Signal, spec: IndexSpec) -> str:
    if signal == "sparse":
        return spec.sparse_field
    if signal == "dense":
        assert spec.dense_field is not None
        return spec.dense_field
    return bm25_vector_name(spec)


def _edge_fusion(plan: FusionPlan) -> Any:
    return qe.Fusion.Rrf(k=plan.qdrant_k) if plan.method == "rrf" else qe.Fusion.Dbsf()


def _weighted_formula(plan: FusionPlan) -> Any:
    ex = qe.Expression
    terms = [ex.Mult([ex.Constant(w), ex.Variable(f"$score[{i}]")]) for i, w in enumerate(plan.weights)]
    defaults = {f"$score[{i}]": 0.0 for i in range(len(plan.weights))}
    return qe.Formula(ex.Sum(terms), defaults=defaults)


def _point_id_at(index: int, doc_id: object) -> PointId:
    try:
        return to_point_id(doc_id)
    except IdError as exc:
        raise IdError(f"id {index}: {exc}") from None


def _raw_id(value: object) -> DocId:
    """An id to report for an invalid item (its own id when readable, else its repr)."""
    doc_id = value.id if isinstance(value, Document) else value
    if isinstance(doc_id, str | int) and not isinstance(doc_id, bool):
        return doc_id
    return repr(doc_id)
