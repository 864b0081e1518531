"""`QdrantConnector`: a Qdrant collection through `qdrant_client.QdrantClient` (a server, or local mode).

The collection holds the SPLADE vectors as a named sparse vector (IDF modifier and on-disk index optional),
an optional named cosine dense vector, a BM25 sparse vector (Qdrant Edge's embedder, which produces the same
token ids as Qdrant's server-side BM25, with the IDF modifier) and the payload. The index spec is stored in
the collection's metadata, with the BM25 corpus statistics (`bm25_stats`, rewritten after every write), so a
later connector reads both back. The statistics assume one writer at a time: connectors writing the same
collection at once each count their own writes, and the last one to store wins. Writes are batched,
`wait=True`, and retried under the connector's `RetryPolicy` on transient errors (connection failures, 408,
429, 5xx): a document is sent at most `retry.max_retries + 1` times, isolation of a permanent error included.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from spladebridge.connectors.base import (
    Capabilities,
    ConnectorError,
    Hit,
    HybridRequest,
    IndexSpec,
    ItemOutcome,
    ServerFusion,
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
from spladebridge.connectors.retry import RetryPolicy
from spladebridge.connectors.versions import parse_version
from spladebridge.encoder.sparse_vector import SparseVector

__all__ = ["METADATA_KEY", "QdrantConnector", "is_transient"]

log = logging.getLogger(__name__)

METADATA_KEY = "spladebridge"
T = TypeVar("T")
_TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})
#: First server versions with: DBSF, formula queries (weighted fusion), RRF with a configurable k.
_DBSF, _FORMULA, _RRF_K = (1, 11), (1, 14), (1, 16)


def is_transient(exc: BaseException) -> bool:
    """True for errors a retry may cure: lost connections, timeouts, HTTP 408/429/5xx, gRPC UNAVAILABLE."""
    if isinstance(exc, ResponseHandlingException | ConnectionError | TimeoutError):
        return True
    if isinstance(exc, UnexpectedResponse):
        return exc.status_code in _TRANSIENT_STATUS
    code = getattr(exc, "code", None)
    if callable(code):  # grpc.RpcError
        try:
            name = getattr(code(), "name", "")
        except Exception:
            return False
        return name in ("UNAVAILABLE", "RESOURCE_EXHAUSTED", "DEADLINE_EXCEEDED", "ABORTED")
    return False


class _ClientFilterBuilder:
    """Builds `qdrant_client.models` conditions for `translate_filter`."""

    def match_value(self, key: str, value: str | int | bool) -> Any:
        return models.FieldCondition(key=key, match=models.MatchValue(value=value))

    def match_any(self, key: str, values: list[str] | list[int]) -> Any:
        return models.FieldCondition(key=key, match=models.MatchAny(any=values))

    def range(self, key: str, bounds: dict[str, float]) -> Any:
        return models.FieldCondition(key=key, range=models.Range(**bounds))

    def any_of(self, conditions: list[Any]) -> Any:
        return models.Filter(should=conditions)


def _client_filter(value: FilterLike) -> models.Filter | None:
    translated = translate_filter(value, _ClientFilterBuilder())
    return None if translated is None else models.Filter(must=translated.must)


class QdrantConnector(QdrantLikeConnector):
    """One Qdrant collection (named `spec.name`, or `collection`) through a `QdrantClient`.

    `QdrantClient(url=...)` talks to a server; `QdrantClient(":memory:")` or `QdrantClient(path=...)` run
    local mode (brute force, for tests and small collections). `close()` closes the client unless
    `close_client=False`. Dense vectors use cosine distance and come back L2-normalised. `retry` is the
    write retry policy (default `RetryPolicy()`); `max_retries` and `backoff_s` are its older spelling and,
    when given, replace its `max_retries` and `initial_backoff`.
    """

    def __init__(
        self,
        client: QdrantClient,
        spec: IndexSpec | None = None,
        *,
        collection: str | None = None,
        batch_size: int = 256,
        retry: RetryPolicy | None = None,
        max_retries: int | None = None,
        backoff_s: float | None = None,
        close_client: bool = True,
    ) -> None:
        if not isinstance(client, QdrantClient):
            raise TypeError(
                f"QdrantConnector needs a qdrant_client.QdrantClient, got {type(client).__name__}"
            )
        check_k(batch_size, "batch_size")
        policy = retry or RetryPolicy()
        if max_retries is not None:
            policy = dataclasses.replace(policy, max_retries=max_retries)
        if backoff_s is not None:
            policy = dataclasses.replace(policy, initial_backoff=backoff_s)
        self.client = client
        self.collection = collection or (spec.name if spec is not None else None)
        if self.collection is None:
            raise ValueError("give a spec or a collection name")
        self.batch_size = batch_size
        self.retry = policy
        self._close_client = close_client
        self._closed = False
        self._version: tuple[int, ...] | None = None
        self._version_text: str | None = None
        stored = self._read_spec()
        if stored is not None:
            self._set_spec(*stored)
        if spec is not None:
            self.ensure_index(spec)

    # -- lifecycle ------------------------------------------------------------------------------------

    def ensure_index(self, spec: IndexSpec) -> None:
        """Create the collection for `spec`, or check that the existing one matches (else ConnectorError)."""
        self._check_open()
        bm25_vector_name(spec)
        bm25_encoder(spec)  # the BM25 field name and options fail before anything is created
        name = self._name()
        if self.spec is None:
            stored = self._read_spec()
            if stored is not None:
                self._set_spec(*stored)
        if self.spec is not None:
            diffs = spec_differences(spec, self.spec)
            if diffs:
                raise ConnectorError(
                    f"Qdrant collection {name!r} does not match the spec: " + "; ".join(diffs)
                )
            return
        if self._call("check the collection", lambda: self.client.collection_exists(name)):
            self._adopt(spec)
            return
        on_disk = bool(spec.options.get("on_disk", False))
        sparse = {
            spec.sparse_field: models.SparseVectorParams(
                index=models.SparseIndexParams(on_disk=on_disk),
                modifier=models.Modifier.IDF if spec.sparse_idf else None,
            )
        }
        if spec.lexical:
            sparse[bm25_vector_name(spec)] = models.SparseVectorParams(
                index=models.SparseIndexParams(on_disk=on_disk), modifier=models.Modifier.IDF
            )
        dense: dict[str, models.VectorParams] = {}
        if spec.dense_field is not None and spec.dense_dim is not None:
            dense[spec.dense_field] = models.VectorParams(
                size=spec.dense_dim, distance=models.Distance.COSINE, on_disk=on_disk or None
            )
        if spec.sparse_idf:
            log.warning("%s", SPARSE_IDF_WARNING)
        self._call(
            "create the collection",
            lambda: self.client.create_collection(
                name,
                vectors_config=dense,
                sparse_vectors_config=sparse,
                metadata={METADATA_KEY: self._stored_form(spec, Bm25Stats())},
            ),
        )
        self._set_spec(spec, Bm25Stats())

    def _adopt(self, spec: IndexSpec) -> None:
        """Use a collection spladebridge did not create, when its vectors fit `spec`."""
        name = self._name()
        info = self._call("read the collection", lambda: self.client.get_collection(name))
        params = info.config.params
        sparse_names = set((params.sparse_vectors or {}).keys())
        vectors = params.vectors if isinstance(params.vectors, dict) else {}
        missing = [n for n in (spec.sparse_field,) if n not in sparse_names]
        if spec.lexical and bm25_vector_name(spec) not in sparse_names:
            missing.append(bm25_vector_name(spec))
        if spec.dense_field is not None:
            dense = vectors.get(spec.dense_field)
            if dense is None or dense.size != spec.dense_dim:
                missing.append(f"{spec.dense_field} (dense, size {spec.dense_dim})")
        if missing:
            raise ConnectorError(f"Qdrant collection {name!r} exists without the vectors {missing}")
        self._set_spec(spec)

    def flush(self) -> None:
        """Writes use wait=True, so they are already durable and searchable."""

    def close(self) -> None:
        """Close the client (unless `close_client=False`). Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self._close_client:
            self.client.close()

    # -- engine primitives (the shared reads, writes and searches are in QdrantLikeConnector) -----------

    def _store_points(self, ready: list[ReadyPoint], outcomes: list[ItemOutcome | None]) -> None:
        points = [p for _, _, p in ready]
        attempts, error = self._write(lambda: self._upsert_points(points), self.retry)
        if error is None:
            for offset, prepared, _ in ready:
                outcomes[offset] = ItemOutcome(prepared.doc_id, ok=True, status="upserted", attempts=attempts)
            return
        left = self.retry.attempts - attempts
        if is_transient(error) or len(ready) == 1 or left < 1:
            # One point, or no send left to isolate with: the batch's error is each document's. A permanent
            # error met on the last attempt stays retryable: a later run isolates it with a fresh budget.
            retryable = is_transient(error) or (len(ready) > 1 and left < 1)
            for offset, prepared, _ in ready:
                outcomes[offset] = ItemOutcome(
                    prepared.doc_id, ok=False, status="error", error=_describe(error), retryable=retryable,
                    attempts=attempts,
                )  # fmt: skip
            return
        isolate = self.retry.with_attempts(left)  # a permanent error: find its documents, one by one
        for offset, prepared, point in ready:
            more, item_error = self._write(functools.partial(self._upsert_points, [point]), isolate)
            outcomes[offset] = ItemOutcome(
                prepared.doc_id,
                ok=item_error is None,
                status="upserted" if item_error is None else "error",
                error=None if item_error is None else _describe(item_error),
                retryable=item_error is not None and is_transient(item_error),
                attempts=attempts + more,
            )

    def _upsert_points(self, points: list[models.PointStruct]) -> None:
        self.client.upsert(self._name(), points=points, wait=True)

    def _make_point(
        self, point_id: PointId, vectors: dict[str, Any], payload: dict[str, Any]
    ) -> models.PointStruct:
        return models.PointStruct(id=point_id, vector=vectors, payload=payload)

    def _write(self, call: Callable[[], object], policy: RetryPolicy) -> tuple[int, BaseException | None]:
        """Run a write under `policy`, retrying transient errors; (sends made, last error or None)."""
        attempts = 0

        def once() -> None:
            nonlocal attempts
            attempts += 1
            call()

        try:
            policy.call(once, retry_if=is_transient)
        except Exception as exc:
            return attempts, exc
        return attempts, None

    def _delete_points(self, point_ids: list[PointId], outcomes: list[ItemOutcome]) -> list[ItemOutcome]:
        """Delete with wait=True, retried; every valid id reports the attempts."""
        valid: list[models.ExtendedPointId] = list(point_ids)
        selector = models.PointIdsList(points=valid)
        attempts, error = self._write(
            lambda: self.client.delete(self._name(), points_selector=selector, wait=True), self.retry
        )
        return [
            o
            if not o.ok
            else ItemOutcome(
                o.id,
                ok=error is None,
                status="deleted" if error is None else "error",
                error=None if error is None else _describe(error),
                retryable=error is not None and is_transient(error),
                attempts=attempts,
            )
            for o in outcomes
        ]

    def _retrieve(self, point_ids: list[PointId]) -> list[Any]:
        ids: list[models.ExtendedPointId] = list(point_ids)
        return self._call(
            "retrieve points",
            lambda: self.client.retrieve(self._name(), ids=ids, with_payload=True, with_vectors=True),
        )

    def _retrieve_payloads(self, point_ids: list[PointId]) -> list[Any]:
        ids: list[models.ExtendedPointId] = list(point_ids)
        return self._call(
            "retrieve points",
            lambda: self.client.retrieve(self._name(), ids=ids, with_payload=True, with_vectors=False),
        )

    def _save_bm25_stats(self, stats: Bm25Stats) -> None:
        """Rewrite the stored spec with `stats` (collection metadata merges by top-level key)."""
        stored = self._stored_form(self._require_spec(), stats)
        name = self._name()
        self._call(
            "store the BM25 statistics",
            lambda: self.client.update_collection(name, metadata={METADATA_KEY: stored}),
        )

    @staticmethod
    def _stored_form(spec: IndexSpec, stats: Bm25Stats) -> dict[str, Any]:
        return spec_to_json(spec, **({BM25_STATS_KEY: stats.to_json()} if spec.lexical else {}))

    def _scroll(self, offset: Any, limit: int) -> tuple[list[Any], Any]:
        name = self._name()
        records, next_offset = self._call(
            "scroll",
            lambda: self.client.scroll(
                name, limit=limit, offset=offset, with_payload=True, with_vectors=True
            ),
        )
        return list(records), next_offset

    def _count(self) -> int:
        self._require_spec()
        return int(self._call("count", lambda: self.client.count(self._name(), exact=True)).count)

    def _record_vectors(self, record: Any) -> Mapping[str, Any]:
        return record.vector if isinstance(record.vector, dict) else {}

    def _to_engine_sparse(self, vector: SparseVector) -> models.SparseVector:
        return models.SparseVector(indices=vector.indices.tolist(), values=vector.values.tolist())

    def _bm25_to_engine(self, embedding: Any) -> models.SparseVector:
        return models.SparseVector(indices=embedding.indices, values=embedding.values)

    def _nearest(self, query: Any, using: str, k: int, filter: FilterLike) -> list[Hit]:
        return self._query(query=query, using=using, limit=k, filter=filter)

    # -- search ---------------------------------------------------------------------------------------

    def search_hybrid(self, request: HybridRequest) -> list[Hit]:
        """Fuse sparse, dense and BM25 server-side (prefetches + RRF or DBSF), as the hybrid module fuses."""
        spec = self._require_spec()
        self.refuse_unfusable(request.fusion, len(request.signals()))
        queries = self._signal_queries(request, spec)
        plan = plan_fusion(request, empty=[s for s, q in queries.items() if q is None])
        self._check_fusion_support(plan)
        if not plan.signals:
            return []
        flt = _client_filter(request.filter)
        leaves = [
            models.Prefetch(query=queries[s], using=vector_name(s, spec), limit=plan.candidates, filter=flt)
            for s in plan.signals
        ]
        if plan.native:
            return self._query(
                prefetch=leaves, query=_client_fusion(plan), limit=plan.limit, filter=request.filter
            )
        wrapped = [
            models.Prefetch(prefetch=[leaf], query=_client_fusion(plan), limit=plan.candidates)
            for leaf in leaves
        ]
        return self._query(
            prefetch=wrapped, query=_weighted_formula(plan), limit=plan.limit, filter=request.filter
        )

    def server_fusion_problem(self, fusion: ServerFusion, sub_queries: int = 2) -> str | None:
        """Why this server cannot run `fusion` exactly (None when it can): the version's fusion methods and
        formula queries first, then the rules every engine shares."""
        caps = self.capabilities()
        if fusion.method not in caps.server_fusion:
            return f"Qdrant {caps.version} cannot run {fusion.method!r} with the hybrid module's semantics"
        weighted = fusion.weights is not None and any(w != 1.0 for w in fusion.weights)
        if weighted and not caps.weighted_fusion:
            return f"Qdrant {caps.version} has no formula queries for weighted fusion"
        return super().server_fusion_problem(fusion, sub_queries)

    def _check_fusion_support(self, plan: FusionPlan) -> None:
        caps = self.capabilities()
        if plan.method not in caps.server_fusion:
            raise UnsupportedOperation(
                f"Qdrant {caps.version} cannot run {plan.method!r} with the hybrid module's semantics; "
                "fuse client-side with spladebridge.hybrid"
            )
        if not plan.native and not caps.weighted_fusion:
            raise UnsupportedOperation(f"Qdrant {caps.version} has no formula queries for weighted fusion")

    def _query(self, *, limit: int, filter: FilterLike, **kwargs: Any) -> list[Hit]:
        name = self._name()
        flt = _client_filter(filter)
        response = self._call(
            "query",
            lambda: self.client.query_points(
                name, limit=limit, query_filter=flt, with_payload=True, **kwargs
            ),
        )
        return hits_from_points(response.points)

    # -- capabilities ---------------------------------------------------------------------------------

    def server_version(self) -> tuple[int, ...] | None:
        """The Qdrant version the client talks to (the client's own in local mode), None if unknown."""
        if self._version is None and self._version_text is None:
            try:
                self._version_text = str(self.client.info().version)
            except Exception:
                self._version_text = ""
            try:
                self._version = parse_version(self._version_text)
            except ValueError:  # empty or unreadable: capabilities then assume a current Qdrant
                self._version = None
        return self._version

    def capabilities(self) -> Capabilities:
        """Found from the server version: RRF with k needs 1.16, weights (formulas) 1.14, DBSF 1.11."""
        version = self.server_version()
        known = version is not None
        fusion = {
            name
            for name, first in (("rrf", _RRF_K), ("dbsf", _DBSF))
            if not known or (version is not None and version >= first)
        }
        notes = [
            "RRF runs as RrfQuery(k=rank_constant+1): Qdrant counts positions from 0",
            "weighted RRF/DBSF run as a formula over single-signal fusions (Qdrant's own weighted RRF "
            "is a different function)",
            "BM25 uses Qdrant Edge's embedder (Qdrant's BM25 token ids; Lucene's k1=0.9, b=0.4, stop "
            "words and the corpus's average length by default) in a sparse vector with IDF; queries weigh "
            "terms by count",
        ]
        if not known:
            notes.append("server version unknown: assuming a current Qdrant")
        if "rrf" not in fusion:
            notes.append("server older than 1.16 has no RRF k: fuse RRF client-side")
        spec = self.spec
        return Capabilities(
            engine="qdrant",
            version=self._version_text or None,
            sparse=True,
            dense=spec is None or spec.dense_field is not None,
            lexical=spec is None or spec.lexical,
            sparse_field_types=("sparse_vector",),
            server_fusion=frozenset(fusion),
            weighted_fusion=not known or (version is not None and version >= _FORMULA),
            notes=tuple(notes),
        )

    # -- internals ------------------------------------------------------------------------------------

    def _name(self) -> str:
        assert self.collection is not None
        return self.collection

    def _read_spec(self) -> tuple[IndexSpec, Bm25Stats | None] | None:
        """The stored spec and BM25 statistics (None for a spec written before they were kept)."""
        name = self._name()
        if not self._call("check the collection", lambda: self.client.collection_exists(name)):
            return None
        info = self._call("read the collection", lambda: self.client.get_collection(name))
        stored = (info.config.metadata or {}).get(METADATA_KEY)
        if stored is None:
            return None
        try:
            raw_stats = stored.get(BM25_STATS_KEY) if isinstance(stored, dict) else None
            return spec_from_json(stored), None if raw_stats is None else Bm25Stats.from_json(raw_stats)
        except ValueError as exc:
            raise ConnectorError(f"collection {name!r} has an unreadable spladebridge spec: {exc}") from None

    def _check_open(self) -> None:
        if self._closed:
            raise ConnectorError(f"the connector for collection {self.collection!r} is closed")

    def _require_spec(self) -> IndexSpec:
        self._check_open()
        if self.spec is None:
            raise ConnectorError(f"no collection {self.collection!r} yet: call ensure_index(spec) first")
        return self.spec

    def _call(self, what: str, call: Callable[[], T]) -> T:
        try:
            return call()
        except (ConnectorError, UnsupportedOperation):
            raise
        except Exception as exc:
            raise ConnectorError(f"Qdrant could not {what} on {self.collection!r}: {_describe(exc)}") from exc


def _client_fusion(plan: FusionPlan) -> models.Query:
    if plan.method == "rrf":
        return models.RrfQuery(rrf=models.Rrf(k=plan.qdrant_k))
    return models.FusionQuery(fusion=models.Fusion.DBSF)


def _weighted_formula(plan: FusionPlan) -> models.FormulaQuery:
    terms: list[models.Expression] = [
        models.MultExpression(mult=[w, f"$score[{i}]"]) for i, w in enumerate(plan.weights)
    ]
    defaults: dict[str, Any] = {f"$score[{i}]": 0.0 for i in range(len(plan.weights))}
    return models.FormulaQuery(formula=models.SumExpression(sum=terms), defaults=defaults)


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text[:300]}" if text else type(exc).__name__
