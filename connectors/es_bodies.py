"""Elasticsearch's own request pieces as pure functions: version and module features, the vector field
mappings, the `sparse_vector` query, kNN sections, `rrf` and `linear` retrievers. No client here, so contract
tests can validate every body against the official OpenAPI spec. What both Lucene engines share lives in the
`lucene_*` modules.

Version facts (see shared/research/engines.md §1): `sparse_vector` fields 8.11+, the `sparse_vector` query
8.15+, field-level `index_options.prune` 8.19 / 9.1+ (pruning on by default for new indices there, so the
mapping sets `prune: false` unless pruning is asked for), `rrf` retriever GA 8.16, `linear` retriever
8.18 / 9.0, `l2_norm` normaliser 8.19 / 9.1, per-retriever RRF weights 9.2, vectors left out of `_source`
by default from 9.2 (`index.mapping.exclude_source_vectors`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

from spladebridge.connectors.base import Signal
from spladebridge.connectors.versions import parse_version

__all__ = [
    "DEFAULT_DENSE_INDEX_OPTIONS",
    "EsNode",
    "EsVersion",
    "SparseFieldType",
    "dense_mapping",
    "knn_section",
    "linear_retriever",
    "rrf_retriever",
    "sparse_mapping",
    "sparse_vector_query",
]

SparseFieldType: TypeAlias = Literal["sparse_vector", "rank_features"]

#: `dense_vector` index options when the spec names none: float HNSW, no quantisation. Left to itself the
#: server quantises (int8_hnsw from 8.14, bbq_hnsw on 9.x for dims >= 384), which measured recall@10 of
#: 0.51 (8.19, int8_hnsw) and 0.33 (9.5, bbq_hnsw) at num_candidates 20 on 20,000 random 384-d vectors.
#: `options={"dense_index_options": None}` keeps the server's default; any other mapping is sent as is.
DEFAULT_DENSE_INDEX_OPTIONS: Mapping[str, Any] = {"type": "hnsw", "m": 32, "ef_construction": 200}


@dataclass(frozen=True, slots=True, order=True)
class EsVersion:
    """A server version with the features this connector depends on. Serverless counts as the newest."""

    major: int
    minor: int
    patch: int = 0
    serverless: bool = False

    @classmethod
    def parse(cls, number: str, build_flavor: str | None = None) -> EsVersion:
        try:
            major, minor, patch = parse_version(number)
        except ValueError:
            raise ValueError(f"cannot read an Elasticsearch version from {number!r}") from None
        return cls(major, minor, patch, serverless=build_flavor == "serverless")

    @classmethod
    def from_info(cls, info: Mapping[str, Any]) -> EsVersion:
        version = info.get("version") or {}
        if version.get("distribution") == "opensearch":
            raise ValueError("this cluster is OpenSearch, not Elasticsearch; use the OpenSearch connector")
        return cls.parse(str(version.get("number", "")), version.get("build_flavor"))

    def at_least(self, major: int, minor: int) -> bool:
        return self.serverless or (self.major, self.minor) >= (major, minor)

    def _at_least_8x_or_9x(self, minor8: int, minor9: int) -> bool:
        if self.serverless or self.major > 9:
            return True
        if self.major == 9:
            return self.minor >= minor9
        return self.major == 8 and self.minor >= minor8

    @property
    def sparse_vector_field(self) -> bool:
        return self.at_least(8, 11)

    @property
    def sparse_vector_query(self) -> bool:
        return self.at_least(8, 15)

    @property
    def sparse_index_options(self) -> bool:
        return self._at_least_8x_or_9x(19, 1)

    @property
    def exclude_source_vectors(self) -> bool:
        return self.at_least(9, 2)

    @property
    def rrf_retriever(self) -> bool:
        return self.at_least(8, 16)

    @property
    def linear_retriever(self) -> bool:
        return self._at_least_8x_or_9x(18, 0)

    @property
    def l2_norm(self) -> bool:
        return self._at_least_8x_or_9x(19, 1)

    @property
    def weighted_rrf(self) -> bool:
        return self.at_least(9, 2)

    def default_sparse_type(self) -> SparseFieldType:
        """`sparse_vector` where its query exists (8.15+), else `rank_features`."""
        return "sparse_vector" if self.sparse_vector_query else "rank_features"

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}" + (" (serverless)" if self.serverless else "")


#: Module / plugin names that features outside the server core come from.
ANALYSIS_COMMON = "analysis-common"  # the language analyzers (english, ...)
MAPPER_EXTRAS = "mapper-extras"  # rank_features fields and rank_feature queries
RANK_RRF = "rank-rrf"  # rrf and linear retrievers (x-pack, also licence-gated)
XPACK_CORE = "x-pack-core"  # the sparse_vector query


@dataclass(frozen=True, slots=True)
class EsNode:
    """The connected node: its version and the modules and plugins it loaded (`components`; None when the
    node would not say, e.g. without the `monitor` privilege: then the default distribution is assumed).

    A trimmed distribution (the integ-test zip, a custom build) lacks modules that the default one has:
    `rank_features` needs mapper-extras, the `rrf` / `linear` retrievers need rank-rrf, the `sparse_vector`
    query needs x-pack-core. Serverless has everything."""

    version: EsVersion
    components: frozenset[str] | None = None

    @classmethod
    def from_nodes_info(cls, body: Mapping[str, Any]) -> EsNode:
        """From `GET /_nodes/_local` (with `version`, `build_flavor`, `modules.name`, `plugins.name`)."""
        nodes = body.get("nodes") if isinstance(body, Mapping) else None
        if not isinstance(nodes, Mapping) or not nodes:
            raise ValueError("GET /_nodes/_local returned no node")
        node = next(iter(nodes.values()))
        version = EsVersion.parse(str(node.get("version", "")), node.get("build_flavor"))
        names = {
            str(item["name"])
            for key in ("modules", "plugins")
            for item in node.get(key) or ()
            if isinstance(item, Mapping) and "name" in item
        }
        return cls(version, frozenset(names) if "modules" in node else None)

    def has(self, component: str) -> bool:
        """Whether the node loaded `component` (assumed yes when unknown, and on serverless)."""
        return self.version.serverless or self.components is None or component in self.components

    @property
    def rank_features(self) -> bool:
        return self.has(MAPPER_EXTRAS)

    @property
    def retrievers(self) -> bool:
        """The rrf / linear retrievers' module (the version and licence are checked separately)."""
        return self.has(RANK_RRF)

    @property
    def sparse_vector_query(self) -> bool:
        return self.version.sparse_vector_query and self.has(XPACK_CORE)

    def sparse_field_types(self) -> tuple[SparseFieldType, ...]:
        """The sparse field types this node can both map and query, preferred first."""
        types: list[SparseFieldType] = []
        if self.sparse_vector_query:
            types.append("sparse_vector")
        if self.rank_features:
            types.append("rank_features")
        return tuple(types)

    def lacks(self, component: str, what: str) -> str:
        """The message for a feature whose module this node did not load."""
        return (
            f"{what} needs the {component} module, which this Elasticsearch {self.version} node does not "
            f"have (modules and plugins: {', '.join(sorted(self.components or ())) or 'none'})"
        )


# -- mappings -----------------------------------------------------------------------------------------


def sparse_mapping(
    sparse_type: SparseFieldType,
    version: EsVersion,
    *,
    prune: bool = False,
    pruning_config: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The sparse field. On versions with field-level pruning (on by default there) it is turned off,
    unless `prune=True`, so that queries score the exact dot product."""
    if sparse_type == "rank_features":
        return {"type": "rank_features"}
    if sparse_type != "sparse_vector":
        raise ValueError(f"sparse field type must be 'sparse_vector' or 'rank_features', got {sparse_type!r}")
    if not version.sparse_vector_field:
        raise ValueError(f"sparse_vector fields need Elasticsearch 8.11+, this cluster is {version}")
    mapping: dict[str, Any] = {"type": "sparse_vector"}
    if version.sparse_index_options:
        options: dict[str, Any] = {"prune": prune}
        if prune and pruning_config:
            options["pruning_config"] = dict(pruning_config)
        mapping["index_options"] = options
    elif prune:
        raise ValueError(f"field-level pruning needs Elasticsearch 8.19 / 9.1+, this cluster is {version}")
    return mapping


def dense_mapping(
    dims: int, similarity: str = "cosine", index_options: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """A `dense_vector` field indexed for kNN (`dims` <= 4096)."""
    if not 0 < dims <= 4096:
        raise ValueError(f"dense_vector dims must be in 1..4096, got {dims}")
    if similarity not in ("cosine", "dot_product", "l2_norm", "max_inner_product"):
        raise ValueError(
            f"dense similarity must be cosine, dot_product, l2_norm or max_inner_product, got {similarity!r}"
        )
    mapping: dict[str, Any] = {"type": "dense_vector", "dims": dims, "index": True, "similarity": similarity}
    if index_options:
        mapping["index_options"] = dict(index_options)
    return mapping


# -- queries ------------------------------------------------------------------------------------------


def sparse_vector_query(
    field: str,
    features: Mapping[str, float],
    *,
    prune: bool = False,
    pruning_config: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The `sparse_vector` query with a client-side `query_vector`: an exact dot product when `prune` is
    false (sent explicitly: field-level pruning defaults would apply otherwise)."""
    body: dict[str, Any] = {"field": field, "query_vector": dict(features), "prune": prune}
    if prune and pruning_config:
        body["pruning_config"] = dict(pruning_config)
    return {"sparse_vector": body}


def knn_section(
    field: str,
    vector: Sequence[float],
    k: int,
    num_candidates: int,
    filters: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """A kNN search (top-level `knn` or `knn` retriever): `k` nearest of `num_candidates` per shard."""
    section: dict[str, Any] = {
        "field": field,
        "query_vector": list(vector),
        "k": k,
        "num_candidates": num_candidates,
    }
    if filters:
        section["filter"] = list(filters)
    return section


# -- retrievers ---------------------------------------------------------------------------------------


def signal_retriever(signal: Signal, query_or_knn: Mapping[str, Any]) -> dict[str, Any]:
    """A sub-retriever: `knn` for the dense signal, `standard` (a query) for sparse and BM25."""
    if signal == "dense":
        return {"knn": dict(query_or_knn)}
    return {"standard": {"query": dict(query_or_knn)}}


def rrf_retriever(
    retrievers: Sequence[Mapping[str, Any]],
    *,
    rank_constant: int,
    rank_window_size: int,
    weights: Sequence[float] | None = None,
) -> dict[str, Any]:
    """`rrf`: sum of w_i / (rank_constant + rank_i), rank 1-based. Weights use the 9.2+ wrapped form."""
    if rank_constant < 1:
        raise ValueError(f"Elasticsearch rrf needs rank_constant >= 1, got {rank_constant}")
    subs: list[dict[str, Any]]
    if weights is None:
        subs = [dict(r) for r in retrievers]
    else:
        _check_weights(weights, len(retrievers))
        subs = [{"retriever": dict(r), "weight": w} for r, w in zip(retrievers, weights, strict=True)]
    return {"rrf": {"retrievers": subs, "rank_constant": rank_constant, "rank_window_size": rank_window_size}}


def linear_retriever(
    retrievers: Sequence[Mapping[str, Any]],
    *,
    weights: Sequence[float],
    normalizer: str,
    rank_window_size: int,
) -> dict[str, Any]:
    """`linear`: sum of w_i * normalizer(score_i); a document missing from a list contributes 0."""
    _check_weights(weights, len(retrievers))
    subs = [
        {"retriever": dict(r), "weight": w, "normalizer": normalizer}
        for r, w in zip(retrievers, weights, strict=True)
    ]
    return {"linear": {"retrievers": subs, "rank_window_size": rank_window_size}}


def _check_weights(weights: Sequence[float], count: int) -> None:
    if len(weights) != count:
        raise ValueError(f"{len(weights)} weights for {count} retrievers")
    for i, w in enumerate(weights):
        if not math.isfinite(w) or w < 0:
            raise ValueError(f"retriever weight {i} must be finite and >= 0, got {w!r}")
