"""`QdrantEdgeConnector`: the embedded default, an in-process Qdrant Edge shard in a local folder.

The shard holds the SPLADE vectors as a named sparse vector (IDF modifier optional), an optional named
cosine dense vector, a second sparse vector with Qdrant Edge's built-in BM25 (with the IDF modifier) for the
lexical signal, and the payload. The index spec is stored as JSON in the shard folder, with the BM25 corpus
statistics (`bm25_stats`, rewritten after every write), so a reopened shard knows its fields and goes on
normalising by the same average length; an exclusive lock file keeps a second process (or connector) out.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
from collections.abc import Callable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

import qdrant_edge as qe

from spladebridge.atomic import write_text_atomic
from spladebridge.connectors.base import (
    Capabilities,
    ConnectorError,
    Hit,
    HybridRequest,
    IndexSpec,
    ItemOutcome,
    UnsupportedOperation,
)
from spladebridge.connectors.filters import FilterLike
from spladebridge.connectors.ids import PointId
from spladebridge.connectors.qdrant_base import (
    QdrantLikeConnector,
    ReadyPoint,
    bm25_encoder,
    hits_from_points,
    vector_name,
)
from spladebridge.connectors.qdrant_common import (
    BM25_STATS_KEY,
    SPARSE_IDF_WARNING,
    Bm25Stats,
    FusionPlan,
    bm25_vector_name,
    check_k,
    plan_fusion,
    spec_differences,
    spec_from_json,
    spec_to_json,
    translate_filter,
)
from spladebridge.encoder.sparse_vector import SparseVector

__all__ = ["LOCK_FILE", "SPEC_FILE", "QdrantEdgeConnector"]

log = logging.getLogger(__name__)

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


class QdrantEdgeConnector(QdrantLikeConnector):
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
        self._closed = False
        self._lock = _PathLock(self.path / LOCK_FILE)
        try:
            stored = self._read_spec()
            if stored is not None:
                self._shard = self._edge("load the shard", lambda: qe.EdgeShard.load(str(self.path)))
                self._set_spec(*stored)
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
        bm25_vector_name(spec)
        bm25_encoder(spec)  # the BM25 field name and options fail before anything is created
        if self.spec is not None and self._shard is not None:
            diffs = spec_differences(spec, self.spec)
            if diffs:
                raise ConnectorError(
                    f"Qdrant Edge shard {self.path} does not match the spec: " + "; ".join(diffs)
                )
            return
        config = self._edge_config(spec)
        if spec.sparse_idf:
            log.warning("%s", SPARSE_IDF_WARNING)
        stats: Bm25Stats | None = Bm25Stats()
        if any((self.path / marker).exists() for marker in _SHARD_MARKERS):
            # a shard without our spec file: load it with the config, which Edge checks for compatibility;
            # its BM25 statistics are counted from its documents when first needed
            self._shard = self._edge("load the shard", lambda: qe.EdgeShard.load(str(self.path), config))
            stats = None
        else:
            self._shard = self._edge("create the shard", lambda: qe.EdgeShard.create(str(self.path), config))
        self._write_spec(spec, stats)
        self._set_spec(spec, stats)

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

    # -- engine primitives (the shared reads, writes and searches are in QdrantLikeConnector) -----------

    def _store_points(self, ready: list[ReadyPoint], outcomes: list[ItemOutcome | None]) -> None:
        """One shard update; when it fails, each document once more on its own to find the bad ones. An
        in-process shard has no transient failures, so nothing is retried (the errors are not retryable)."""
        try:
            self._shard_update(qe.UpdateOperation.upsert_points([p for _, _, p in ready]))
            for offset, prepared, _ in ready:
                outcomes[offset] = ItemOutcome(prepared.doc_id, ok=True, status="upserted")
        except ConnectorError as exc:
            if len(ready) == 1:  # the batch's error is the document's: no second send
                offset, prepared, _ = ready[0]
                outcomes[offset] = ItemOutcome(prepared.doc_id, ok=False, status="error", error=str(exc))
                return
            for offset, prepared, point in ready:  # isolate the failing documents one by one
                try:
                    self._shard_update(qe.UpdateOperation.upsert_points([point]))
                    outcomes[offset] = ItemOutcome(prepared.doc_id, ok=True, status="upserted", attempts=2)
                except ConnectorError as item_exc:
                    outcomes[offset] = ItemOutcome(
                        prepared.doc_id, ok=False, status="error", error=str(item_exc), attempts=2
                    )

    def _make_point(self, point_id: PointId, vectors: dict[str, Any], payload: dict[str, Any]) -> Any:
        return qe.Point(point_id, vectors, payload)

    def _delete_points(self, point_ids: list[PointId], outcomes: list[ItemOutcome]) -> list[ItemOutcome]:
        valid: list[Any] = list(point_ids)
        try:
            self._shard_update(qe.UpdateOperation.delete_points(valid))
        except ConnectorError as exc:
            return [
                o if not o.ok else ItemOutcome(o.id, ok=False, status="error", error=str(exc), retryable=True)
                for o in outcomes
            ]
        return outcomes

    def _retrieve(self, point_ids: list[PointId]) -> list[Any]:
        shard = self._require_shard()
        records: list[Any] = self._edge("retrieve points", lambda: shard.retrieve(point_ids, True, True))
        return records

    def _retrieve_payloads(self, point_ids: list[PointId]) -> list[Any]:
        shard = self._require_shard()
        records: list[Any] = self._edge("retrieve points", lambda: shard.retrieve(point_ids, True, False))
        return records

    def _save_bm25_stats(self, stats: Bm25Stats) -> None:
        self._write_spec(self._require_spec(), stats)

    def _scroll(self, offset: Any, limit: int) -> tuple[list[Any], Any]:
        shard = self._require_shard()
        request = qe.ScrollRequest(offset=offset, limit=limit, with_payload=True, with_vector=True)
        records, next_offset = self._edge("scroll", lambda: shard.scroll(request))
        return list(records), next_offset

    def _count(self) -> int:
        shard = self._require_shard()
        return int(self._edge("count", lambda: shard.count(qe.CountRequest(exact=True))))

    def _record_vectors(self, record: Any) -> Mapping[str, Any]:
        vectors: Mapping[str, Any] = record.vector or {}
        return vectors

    def _to_engine_sparse(self, vector: SparseVector) -> Any:
        return qe.SparseVector(vector.indices.tolist(), vector.values.tolist())

    def _bm25_to_engine(self, embedding: Any) -> Any:
        return embedding

    # -- search ---------------------------------------------------------------------------------------

    def search_hybrid(self, request: HybridRequest) -> list[Hit]:
        """Fuse sparse, dense and BM25 server-side (prefetches + RRF or DBSF), as the hybrid module fuses."""
        spec = self._require_spec()
        self.refuse_unfusable(request.fusion, len(request.signals()))
        queries = self._signal_queries(request, spec)
        empty = [s for s, q in queries.items() if q is None]
        plan = plan_fusion(request, empty=empty)
        if not plan.signals:
            return []
        flt = _edge_filter(request.filter)
        leaves = [
            qe.Prefetch(
                limit=plan.candidates,
                query=qe.Query.Nearest(queries[s], using=vector_name(s, spec)),
                filter=flt,
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
        return hits_from_points(self._edge("query", lambda: shard.query(request)))

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
                "BM25 is Qdrant's BM25 embedder (Lucene's k1=0.9, b=0.4, stop words and the corpus's average "
                "length by default) in a sparse vector with the IDF modifier; queries weigh terms by count",
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

    def _read_spec(self) -> tuple[IndexSpec, Bm25Stats | None] | None:
        """The stored spec and BM25 statistics (None for a spec written before they were kept)."""
        path = self.path / SPEC_FILE
        if not path.exists():
            return None
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
            spec = spec_from_json(stored)
            raw_stats = stored.get(BM25_STATS_KEY)
            return spec, None if raw_stats is None else Bm25Stats.from_json(raw_stats)
        except (OSError, ValueError) as exc:
            raise ConnectorError(f"cannot read the index spec {path}: {exc}") from None

    def _write_spec(self, spec: IndexSpec, stats: Bm25Stats | None) -> None:
        facts = {} if stats is None or not spec.lexical else {BM25_STATS_KEY: stats.to_json()}
        stored = spec_to_json(spec, **facts)
        write_text_atomic(self.path / SPEC_FILE, json.dumps(stored, indent=2, sort_keys=True))

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


def _edge_fusion(plan: FusionPlan) -> Any:
    return qe.Fusion.Rrf(k=plan.qdrant_k) if plan.method == "rrf" else qe.Fusion.Dbsf()


def _weighted_formula(plan: FusionPlan) -> Any:
    ex = qe.Expression
    terms = [ex.Mult([ex.Constant(w), ex.Variable(f"$score[{i}]")]) for i, w in enumerate(plan.weights)]
    defaults = {f"$score[{i}]": 0.0 for i in range(len(plan.weights))}
    return qe.Formula(ex.Sum(terms), defaults=defaults)
