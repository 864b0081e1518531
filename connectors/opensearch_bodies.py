"""OpenSearch's own options and query clauses as pure functions: SEISMIC and k-NN parameters, the sparse
(`neural_sparse` / `rank_feature`) and `knn` clauses. Everything both Lucene engines share (document layout,
index body, BM25, filters) lives in the `lucene_*` modules.

Kept apart from the connector so that contract tests and callers can build and inspect every body without a
server. What each body means (exact dot product, the (0, 64] query-weight cap, SEISMIC's integer token ids
and byte quantisation, k-NN filters) is described in `spladebridge.connectors.opensearch`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from spladebridge.connectors.base import IndexSpec, UnsupportedOperation
from spladebridge.connectors.bulk import BulkConfig
from spladebridge.connectors.documents import DocumentError
from spladebridge.connectors.lucene import (
    DEFAULT_MAX_CLAUSES,
    MAX_LINEAR_WEIGHT,
    clean_query_vector,
)
from spladebridge.connectors.lucene_connector import SparseQuery, filtered
from spladebridge.connectors.lucene_queries import (
    FeatureNamer,
    rank_features_query,
)
from spladebridge.encoder.sparse_vector import SparseVector

__all__ = [
    "MAX_KNN_K",
    "SEISMIC_MAX_TOKEN_ID",
    "DocumentError",
    "KnnParams",
    "OpenSearchOptions",
    "SeismicIndexParams",
    "SeismicQueryParams",
    "SpaceType",
    "SparseFieldType",
    "knn_clause",
    "seismic_problem",
    "sparse_clause",
    "suggest_sparse_scale",
]

#: SEISMIC folds token ids modulo 32768 into shorts; ids must stay below this to avoid collisions.
SEISMIC_MAX_TOKEN_ID = 32768
#: The `knn` query's `k` must lie in [1, 10000].
MAX_KNN_K = 10_000

SparseFieldType = Literal["rank_features", "sparse_vector"]
SpaceType = Literal["innerproduct", "cosinesimil", "l2"]


# -- options ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SeismicIndexParams:
    """`method.parameters` of a SEISMIC `sparse_vector` field (None = OpenSearch's default)."""

    n_postings: int | None = None
    cluster_ratio: float | None = None
    summary_prune_ratio: float | None = None
    approximate_threshold: int | None = None
    quantization_ceiling_search: float = 16.0
    quantization_ceiling_ingest: float = 3.0
    engine: Literal["lucene", "native"] | None = None

    def __post_init__(self) -> None:
        for name in ("quantization_ceiling_search", "quantization_ceiling_ingest"):
            value = getattr(self, name)
            if not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be a positive finite number, got {value!r}")
        if self.cluster_ratio is not None and not 0 < self.cluster_ratio < 1:
            raise ValueError(f"cluster_ratio must be in (0, 1), got {self.cluster_ratio!r}")
        if self.summary_prune_ratio is not None and not 0 < self.summary_prune_ratio <= 1:
            raise ValueError(f"summary_prune_ratio must be in (0, 1], got {self.summary_prune_ratio!r}")
        if self.n_postings is not None and self.n_postings <= 0:
            raise ValueError(f"n_postings must be > 0, got {self.n_postings!r}")
        if self.approximate_threshold is not None and self.approximate_threshold < 0:
            raise ValueError(f"approximate_threshold must be >= 0, got {self.approximate_threshold!r}")

    def to_method(self) -> dict[str, Any]:
        params: dict[str, Any] = {
            "quantization_ceiling_search": self.quantization_ceiling_search,
            "quantization_ceiling_ingest": self.quantization_ceiling_ingest,
        }
        for name in ("n_postings", "cluster_ratio", "summary_prune_ratio", "approximate_threshold"):
            value = getattr(self, name)
            if value is not None:
                params[name] = value
        method: dict[str, Any] = {"name": "seismic", "parameters": params}
        if self.engine is not None:
            method["engine"] = self.engine
        return method


@dataclass(frozen=True, slots=True)
class SeismicQueryParams:
    """`method_parameters` of a `neural_sparse` query on a SEISMIC field: recall/latency knobs.

    `k` is raised to the number of hits asked for; `top_n` is how many query tokens (largest first) probe
    the posting lists; `heap_factor` > 1 explores more clusters (higher recall, slower).
    """

    k: int | None = None
    top_n: int | None = None
    heap_factor: float | None = None

    def __post_init__(self) -> None:
        if self.k is not None and self.k < 1:
            raise ValueError(f"k must be >= 1, got {self.k!r}")
        if self.top_n is not None and self.top_n < 1:
            raise ValueError(f"top_n must be >= 1, got {self.top_n!r}")
        if self.heap_factor is not None and (not math.isfinite(self.heap_factor) or self.heap_factor <= 0):
            raise ValueError(f"heap_factor must be a positive number, got {self.heap_factor!r}")

    def to_dict(self, k: int) -> dict[str, Any]:
        out: dict[str, Any] = {"k": max(k, self.k or 0)}
        if self.top_n is not None:
            out["top_n"] = self.top_n
        if self.heap_factor is not None:
            out["heap_factor"] = self.heap_factor
        return out


@dataclass(frozen=True, slots=True)
class KnnParams:
    """The `knn_vector` method: HNSW on Lucene (default) or faiss, its space type and graph parameters.

    Lucene's HNSW is pure Java and runs on every node; faiss needs the k-NN plugin's native library, which some
    distributions (and the plugin zip on Maven Central) lack: a faiss segment there closes the index's writer.
    """

    space_type: SpaceType = "innerproduct"
    engine: Literal["faiss", "lucene"] = "lucene"
    m: int = 16
    ef_construction: int = 128
    ef_search: int | None = None

    def __post_init__(self) -> None:
        if self.space_type not in ("innerproduct", "cosinesimil", "l2"):
            raise ValueError(f"space_type must be innerproduct, cosinesimil or l2, got {self.space_type!r}")
        if self.engine not in ("faiss", "lucene"):
            raise ValueError(f"engine must be faiss or lucene, got {self.engine!r}")
        if self.m < 2 or self.ef_construction < 2:
            raise ValueError("HNSW m and ef_construction must be >= 2")
        if self.ef_search is not None and (self.ef_search < 1 or self.engine != "faiss"):
            raise ValueError("ef_search is an index parameter of the faiss engine and must be >= 1")

    def to_method(self) -> dict[str, Any]:
        """The mapping's `method` object."""
        params: dict[str, Any] = {"m": self.m, "ef_construction": self.ef_construction}
        if self.ef_search is not None:
            params["ef_search"] = self.ef_search
        return {"name": "hnsw", "engine": self.engine, "space_type": self.space_type, "parameters": params}


@dataclass(frozen=True, slots=True)
class OpenSearchOptions:
    """Engine-specific choices. `sparse_scale` multiplies document weights before indexing (use it with
    `sparse_vector` to fit weights under the quantisation ceiling; scores are scaled back)."""

    sparse_type: SparseFieldType = "rank_features"
    seismic: SeismicIndexParams = field(default_factory=SeismicIndexParams)
    seismic_query: SeismicQueryParams = field(default_factory=SeismicQueryParams)
    knn: KnnParams = field(default_factory=KnnParams)
    vocab: Sequence[str] | None = None
    sparse_scale: float = 1.0
    max_query_terms: int = DEFAULT_MAX_CLAUSES
    #: k-NN candidates: the `knn` query's `k` is `max(k * factor, min)` (<= 10,000), `size` the hits wanted.
    num_candidates_factor: float = 50.0
    min_num_candidates: int = 500
    shards: int = 1
    replicas: int | None = None
    bulk: BulkConfig = field(default_factory=BulkConfig)
    scan_keep_alive: str = "2m"

    def __post_init__(self) -> None:
        if self.sparse_type not in ("rank_features", "sparse_vector"):
            raise ValueError(f"sparse_type must be rank_features or sparse_vector, got {self.sparse_type!r}")
        if not math.isfinite(self.sparse_scale) or self.sparse_scale <= 0:
            raise ValueError(f"sparse_scale must be a positive finite number, got {self.sparse_scale!r}")
        if self.max_query_terms < 1:
            raise ValueError(f"max_query_terms must be >= 1, got {self.max_query_terms!r}")
        if self.shards < 1:
            raise ValueError(f"shards must be >= 1, got {self.shards!r}")
        if (
            self.sparse_type == "sparse_vector"
            and self.vocab is not None
            and len(self.vocab) > SEISMIC_MAX_TOKEN_ID
        ):
            raise ValueError(
                f"the vocabulary has {len(self.vocab)} tokens, but OpenSearch's sparse_vector (SEISMIC) "
                "folds "
                f"token ids modulo {SEISMIC_MAX_TOKEN_ID}, so ids >= {SEISMIC_MAX_TOKEN_ID} would collide; "
                "use sparse_type='rank_features' for this model"
            )


def suggest_sparse_scale(vectors: Iterable[SparseVector], ceiling: float, headroom: float = 1.25) -> float:
    """A `sparse_scale` that keeps the largest weight seen, times `headroom`, at or below `ceiling`.

    Byte quantisation spends its 256 levels on [0, ceiling], so the scale never exceeds 1: weights are only
    shrunk to fit, never stretched.
    """
    top = max((v.max_weight() for v in vectors), default=0.0)
    if top <= 0:
        return 1.0
    return min(1.0, ceiling / (top * headroom))


# -- bodies (pure functions) ------------------------------------------------------------------------------


def seismic_problem(vector: SparseVector, options: OpenSearchOptions) -> str | None:
    """Why a SEISMIC `sparse_vector` field cannot hold this (scaled, cleaned) document vector, or None:
    token ids fold modulo 32768, and weights above `quantization_ceiling_ingest` would be clipped."""
    if vector.nnz and int(vector.indices[-1]) >= SEISMIC_MAX_TOKEN_ID:
        return (
            f"token id {int(vector.indices[-1])} is >= {SEISMIC_MAX_TOKEN_ID}; sparse_vector (SEISMIC) folds "
            "larger ids onto smaller ones"
        )
    ceiling = options.seismic.quantization_ceiling_ingest
    if vector.max_weight() > ceiling:
        return (
            f"largest sparse weight {vector.max_weight():.4g} (after sparse_scale {options.sparse_scale:g}) "
            f"exceeds the SEISMIC quantization ceiling {ceiling:g} and would be clipped; lower sparse_scale "
            "(see suggest_sparse_scale) or create the index with a higher quantization_ceiling_ingest"
        )
    return None


def sparse_clause(
    vector: SparseVector,
    spec: IndexSpec,
    options: OpenSearchOptions,
    namer: FeatureNamer,
    *,
    k: int,
    filters: Sequence[Mapping[str, Any]] = (),
    neural: bool = True,
) -> SparseQuery:
    """`neural_sparse` (or, with `neural=False`, `rank_feature` linear clauses) for an exact dot product.

    The query keeps its `max_query_terms` largest weights (one boolean clause each) and is rescaled so
    that its largest weight fits what the engine takes: 64 for `neural_sparse` on rank_features (Lucene's
    linear feature query), the SEISMIC search ceiling on `sparse_vector`. `query` is None for an empty query.
    """
    clauses = [dict(c) for c in filters]
    if options.sparse_type == "sparse_vector":
        if not neural:
            raise UnsupportedOperation("a sparse_vector (SEISMIC) field needs the neural-search plugin")
        if vector.nnz and int(vector.indices[-1]) >= SEISMIC_MAX_TOKEN_ID:
            raise ValueError(
                f"query token id {int(vector.indices[-1])} is >= {SEISMIC_MAX_TOKEN_ID} (SEISMIC limit)"
            )
        max_weight: float | None = options.seismic.quantization_ceiling_search
    else:
        max_weight = MAX_LINEAR_WEIGHT if neural else None
    cleaned = clean_query_vector(vector, max_terms=options.max_query_terms, max_weight=max_weight)
    total_scale = cleaned.scale * options.sparse_scale
    if cleaned.vector.nnz == 0:
        return SparseQuery(None, total_scale, cleaned.truncated_terms)
    tokens = namer.to_features(cleaned.vector)
    if neural:
        body: dict[str, Any] = {"query_tokens": tokens}
        if options.sparse_type == "sparse_vector":
            params = options.seismic_query.to_dict(k)
            if clauses:
                params["filter"] = {"bool": {"filter": clauses}}
            body["method_parameters"] = params
            return SparseQuery(
                {"neural_sparse": {spec.sparse_field: body}},
                total_scale,
                cleaned.truncated_terms,
                cleaned.vector,
            )
        query: dict[str, Any] = {"neural_sparse": {spec.sparse_field: body}}
    else:
        query = rank_features_query(spec.sparse_field, tokens)
    return SparseQuery(filtered(query, clauses), total_scale, cleaned.truncated_terms, cleaned.vector)


def knn_clause(
    vector: NDArray[np.float32], spec: IndexSpec, *, k: int, filters: Sequence[Mapping[str, Any]] = ()
) -> dict[str, Any]:
    """The `knn` query for `vector` (filter applied inside the k-NN search, so k results still come back)."""
    if spec.dense_field is None:
        raise UnsupportedOperation(f"index {spec.name!r} has no dense field")
    arr = np.asarray(vector, dtype=np.float32)
    if arr.shape != (spec.dense_dim,):
        raise ValueError(f"query vector has shape {arr.shape}, the index expects ({spec.dense_dim},)")
    if not np.isfinite(arr).all():
        raise ValueError("query vector has non-finite values")
    if not 1 <= k <= MAX_KNN_K:
        raise ValueError(f"knn k must be in [1, {MAX_KNN_K}], got {k}")
    body: dict[str, Any] = {"vector": arr.tolist(), "k": k}
    if filters:
        body["filter"] = {"bool": {"filter": [dict(c) for c in filters]}}
    return {"knn": {spec.dense_field: body}}
