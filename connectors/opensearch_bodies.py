"""OpenSearch request bodies as pure functions: index mappings, documents, and the query clauses.

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

from spladebridge.connectors.base import DocId, Document, IndexSpec, UnsupportedOperation
from spladebridge.connectors.bulk import BulkConfig
from spladebridge.connectors.documents import DocumentError
from spladebridge.connectors.filters import FilterLike
from spladebridge.connectors.lucene import (
    DEFAULT_MAX_CLAUSES,
    MAX_LINEAR_WEIGHT,
    clean_document_vector,
    clean_query_vector,
)
from spladebridge.connectors.lucene_queries import (
    FeatureNameError,
    FeatureNamer,
    bm25_query,
    rank_features_query,
)
from spladebridge.connectors.lucene_queries import filter_clauses as lucene_filter_clauses
from spladebridge.encoder.sparse_vector import SparseVector

__all__ = [
    "ID_FIELD",
    "MAX_KNN_K",
    "METADATA_FIELD",
    "SEISMIC_MAX_TOKEN_ID",
    "DocumentError",
    "KnnParams",
    "OpenSearchOptions",
    "SeismicIndexParams",
    "SeismicQueryParams",
    "SpaceType",
    "SparseClause",
    "SparseFieldType",
    "build_document",
    "build_index_body",
    "filter_clauses",
    "knn_clause",
    "knn_score_to_similarity",
    "opensearch_id",
    "read_document",
    "sparse_clause",
    "suggest_sparse_scale",
    "text_clause",
]

#: Source field holding the caller's id as given (so int ids come back as ints); mapped `keyword`.
ID_FIELD = "sb_id"
#: Object holding `Document.metadata`; filters address its keys.
METADATA_FIELD = "metadata"
#: SEISMIC folds token ids modulo 32768 into shorts; ids must stay below this to avoid collisions.
SEISMIC_MAX_TOKEN_ID = 32768
#: The `knn` query's `k` must lie in [1, 10000].
MAX_KNN_K = 10_000
_MAX_ID_BYTES = 512
_KEYWORD_IGNORE_ABOVE = 8191  # keyword terms are capped at 32766 bytes; 8191 characters always fit

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


def build_index_body(spec: IndexSpec, options: OpenSearchOptions) -> dict[str, Any]:
    """Settings and mappings for `spec`: sparse field, optional knn_vector, text fields, id and metadata."""
    index_settings: dict[str, Any] = {"number_of_shards": options.shards}
    if options.replicas is not None:
        index_settings["number_of_replicas"] = options.replicas
    properties: dict[str, Any] = {ID_FIELD: {"type": "keyword"}}
    for name in spec.text_fields:
        keyword = {"type": "keyword", "ignore_above": _KEYWORD_IGNORE_ABOVE}
        properties[name] = {"type": "text", "fields": {"keyword": keyword}}
    if options.sparse_type == "sparse_vector":
        index_settings["sparse"] = True
        properties[spec.sparse_field] = {"type": "sparse_vector", "method": options.seismic.to_method()}
    else:
        properties[spec.sparse_field] = {"type": "rank_features"}
    if spec.dense_field is not None:
        index_settings["knn"] = True
        properties[spec.dense_field] = {
            "type": "knn_vector",
            "dimension": spec.dense_dim,
            "method": options.knn.to_method(),
        }
    properties[METADATA_FIELD] = {"type": "object", "dynamic": True}
    mappings: dict[str, Any] = {
        "dynamic_templates": [
            {
                "metadata_strings": {
                    "path_match": f"{METADATA_FIELD}.*",
                    "match_mapping_type": "string",
                    "mapping": {"type": "keyword"},
                }
            }
        ],
        "properties": properties,
    }
    return {"settings": {"index": index_settings}, "mappings": mappings}


def opensearch_id(doc_id: object) -> str:
    """The `_id` for a caller's id: integers as decimal strings; DocumentError for ids OpenSearch rejects."""
    if isinstance(doc_id, bool) or not isinstance(doc_id, str | int):
        raise DocumentError(f"id must be a string or a non-negative integer, got {type(doc_id).__name__}")
    if isinstance(doc_id, int):
        if doc_id < 0:
            raise DocumentError(f"integer id must be >= 0, got {doc_id}")
        return str(doc_id)
    if not doc_id:
        raise DocumentError("id must not be empty")
    if len(doc_id.encode("utf-8")) > _MAX_ID_BYTES:
        raise DocumentError(f"id is longer than OpenSearch's {_MAX_ID_BYTES}-byte limit")
    return doc_id


def _sparse_features(
    vector: SparseVector, options: OpenSearchOptions, namer: FeatureNamer
) -> dict[str, float]:
    if options.sparse_scale != 1.0:
        vector = vector.scale(options.sparse_scale)
    cleaned = clean_document_vector(vector).vector
    if options.sparse_type == "sparse_vector":
        if cleaned.nnz and int(cleaned.indices[-1]) >= SEISMIC_MAX_TOKEN_ID:
            raise DocumentError(
                f"token id {int(cleaned.indices[-1])} is >= {SEISMIC_MAX_TOKEN_ID}; sparse_vector (SEISMIC) "
                "folds larger ids onto smaller ones"
            )
        ceiling = options.seismic.quantization_ceiling_ingest
        if cleaned.max_weight() > ceiling:
            raise DocumentError(
                f"largest sparse weight {cleaned.max_weight():.4g} (after sparse_scale "
                f"{options.sparse_scale:g}) exceeds the SEISMIC quantization ceiling {ceiling:g} and would "
                "be clipped; lower sparse_scale "
                "(see suggest_sparse_scale) or create the index with a higher quantization_ceiling_ingest"
            )
    try:
        return namer.to_features(cleaned)
    except FeatureNameError as exc:
        raise DocumentError(str(exc)) from None


def build_document(
    doc: Document, spec: IndexSpec, options: OpenSearchOptions, namer: FeatureNamer
) -> dict[str, Any]:
    """The `_source` for `doc`; raises DocumentError naming the field that cannot be written."""
    opensearch_id(doc.id)
    source: dict[str, Any] = {ID_FIELD: doc.id}
    reserved = {
        ID_FIELD,
        METADATA_FIELD,
        spec.sparse_field,
        *([spec.dense_field] if spec.dense_field else []),
    }
    for name, text in doc.fields.items():
        if name in reserved:
            raise DocumentError(f"field {name!r} clashes with a field the connector uses")
        if not isinstance(text, str):
            raise DocumentError(f"field {name!r} must be a string, got {type(text).__name__}")
        source[name] = text
    if doc.metadata:
        if not isinstance(doc.metadata, Mapping):
            raise DocumentError(f"metadata must be a mapping, got {type(doc.metadata).__name__}")
        for key in doc.metadata:
            if not isinstance(key, str) or not key or "." in key:
                raise DocumentError(f"metadata key {key!r} must be a non-empty string without dots")
        source[METADATA_FIELD] = dict(doc.metadata)
    if doc.sparse is not None:
        if not isinstance(doc.sparse, SparseVector):
            raise DocumentError(f"sparse must be a SparseVector, got {type(doc.sparse).__name__}")
        source[spec.sparse_field] = _sparse_features(doc.sparse, options, namer)
    if doc.dense is not None:
        if spec.dense_field is None:
            raise DocumentError("the index has no dense field, but the document carries a dense vector")
        dense = np.asarray(doc.dense)
        if dense.shape != (spec.dense_dim,):
            raise DocumentError(
                f"dense vector has shape {dense.shape}, the index expects ({spec.dense_dim},)"
            )
        if not np.isfinite(dense).all():
            raise DocumentError(
                "dense vector has a non-finite value at position "
                f"{int(np.flatnonzero(~np.isfinite(dense))[0])}"
            )
        if options.knn.space_type == "cosinesimil" and not np.any(dense):
            raise DocumentError("an all-zero dense vector has no cosine similarity (space_type cosinesimil)")
        source[spec.dense_field] = dense.astype(np.float32).tolist()
    return source


def read_document(
    source: Mapping[str, Any],
    spec: IndexSpec,
    options: OpenSearchOptions,
    namer: FeatureNamer,
    fallback_id: str,
) -> Document:
    """A `Document` back from its `_source` (sparse weights divided by `sparse_scale` again)."""
    doc_id: DocId = source.get(ID_FIELD, fallback_id)
    fields = {n: source[n] for n in spec.text_fields if isinstance(source.get(n), str)}
    extra = set(source) - {ID_FIELD, METADATA_FIELD, spec.sparse_field, spec.dense_field, *spec.text_fields}
    for name in sorted(extra):
        if isinstance(source[name], str):
            fields[name] = source[name]
    metadata = dict(source.get(METADATA_FIELD) or {})
    sparse = None
    raw_sparse = source.get(spec.sparse_field)
    if isinstance(raw_sparse, Mapping):
        sparse = namer.from_features(raw_sparse)
        if options.sparse_scale != 1.0 and sparse.nnz:
            sparse = sparse.scale(1.0 / options.sparse_scale)
    dense = None
    if spec.dense_field is not None and source.get(spec.dense_field) is not None:
        dense = np.asarray(source[spec.dense_field], dtype=np.float32)
    return Document(id=doc_id, fields=fields, metadata=metadata, sparse=sparse, dense=dense)


def filter_clauses(value: FilterLike, spec: IndexSpec | None = None) -> list[dict[str, Any]]:
    """The engine-neutral filter as `term` / `terms` / `range` clauses (builder shared with Elasticsearch).

    A filter on a text field of `spec` matches its exact value through the `.keyword` sub-field (as on
    Elasticsearch); any other field name is a metadata key, stored under `metadata.*`.
    """
    text_fields = frozenset(spec.text_fields) if spec is not None else frozenset()

    def path(name: str) -> str:
        return f"{name}.keyword" if name in text_fields else f"{METADATA_FIELD}.{name}"

    return lucene_filter_clauses(value, path)


def _with_filter(query: dict[str, Any], clauses: list[dict[str, Any]]) -> dict[str, Any]:
    if not clauses:
        return query
    return {"bool": {"must": [query], "filter": clauses}}


@dataclass(frozen=True, slots=True)
class SparseClause:
    """A sparse query clause and the factor its scores must be divided by to give the dot product."""

    query: dict[str, Any] | None
    scale: float
    truncated_terms: int = 0


def sparse_clause(
    vector: SparseVector,
    spec: IndexSpec,
    options: OpenSearchOptions,
    namer: FeatureNamer,
    *,
    k: int,
    filter: FilterLike = None,
    neural: bool = True,
) -> SparseClause:
    """`neural_sparse` (or, with `neural=False`, `rank_feature` linear clauses) for an exact dot product.

    The query keeps its `max_query_terms` largest weights (one boolean clause each) and is rescaled so
    that its largest weight fits what the engine takes: 64 for `neural_sparse` on rank_features (Lucene's
    linear feature query), the SEISMIC search ceiling on `sparse_vector`. `query` is None for an empty query.
    """
    clauses = filter_clauses(filter, spec)
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
        return SparseClause(None, total_scale, cleaned.truncated_terms)
    tokens = namer.to_features(cleaned.vector)
    if neural:
        body: dict[str, Any] = {"query_tokens": tokens}
        if options.sparse_type == "sparse_vector":
            params = options.seismic_query.to_dict(k)
            if clauses:
                params["filter"] = {"bool": {"filter": clauses}}
            body["method_parameters"] = params
            return SparseClause(
                {"neural_sparse": {spec.sparse_field: body}}, total_scale, cleaned.truncated_terms
            )
        query: dict[str, Any] = {"neural_sparse": {spec.sparse_field: body}}
    else:
        query = rank_features_query(spec.sparse_field, tokens)
    return SparseClause(_with_filter(query, clauses), total_scale, cleaned.truncated_terms)


def knn_clause(
    vector: NDArray[np.float32], spec: IndexSpec, *, k: int, filter: FilterLike = None
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
    clauses = filter_clauses(filter, spec)
    if clauses:
        body["filter"] = {"bool": {"filter": clauses}}
    return {"knn": {spec.dense_field: body}}


def text_clause(text: str, spec: IndexSpec, *, filter: FilterLike = None) -> dict[str, Any]:
    """BM25 over the text fields: `match` for one field, `multi_match` for several."""
    if not isinstance(text, str):
        raise ValueError(f"query text must be a string, got {type(text).__name__}")
    return _with_filter(bm25_query(text, spec.text_fields), filter_clauses(filter, spec))


def knn_score_to_similarity(score: float, space_type: SpaceType) -> float:
    """OpenSearch's k-NN score back to the raw similarity: innerproduct (ip + 1 or 1 / (1 - ip)),
    cosinesimil ((1 + cos) / 2); for l2 the score 1 / (1 + d^2) is returned as -d^2."""
    if space_type == "innerproduct":
        return score - 1.0 if score >= 1.0 else 1.0 - 1.0 / score
    if space_type == "cosinesimil":
        return 2.0 * score - 1.0
    return -(1.0 / score - 1.0)
