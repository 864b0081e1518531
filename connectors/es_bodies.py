"""Elasticsearch request bodies as pure functions: version features, index mappings, sparse / dense / BM25
queries, `rrf` and `linear` retrievers, point-in-time pages. No client here, so contract tests can validate
every body against the official OpenAPI spec and other modules (migration) can reuse the mapping builders.

Version facts (see shared/research/engines.md §1): `sparse_vector` fields 8.11+, the `sparse_vector` query
8.15+, field-level `index_options.prune` 8.19 / 9.1+ (pruning on by default for new indices there, so the
mapping sets `prune: false` unless pruning is asked for), `rrf` retriever GA 8.16, `linear` retriever
8.18 / 9.0, `l2_norm` normaliser 8.19 / 9.1, per-retriever RRF weights 9.2, vectors left out of `_source`
by default from 9.2 (`index.mapping.exclude_source_vectors`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

from spladebridge.connectors.base import IndexSpec, Signal
from spladebridge.connectors.index_meta import SPEC_META_KEY, spec_from_meta, spec_to_meta

__all__ = [
    "DEFAULT_DENSE_INDEX_OPTIONS",
    "META_FIELD",
    "SPEC_META_KEY",
    "EsNode",
    "EsVersion",
    "SparseFieldType",
    "bm25_query",
    "check_index_name",
    "dense_mapping",
    "index_body",
    "knn_section",
    "linear_retriever",
    "pit_search_body",
    "rrf_retriever",
    "search_body",
    "sparse_mapping",
    "sparse_vector_query",
    "spec_from_meta",
    "spec_to_meta",
]

SparseFieldType: TypeAlias = Literal["sparse_vector", "rank_features"]

#: `dense_vector` index options when the spec names none: float HNSW, no quantisation. Left to itself the
#: server quantises (int8_hnsw from 8.14, bbq_hnsw on 9.x for dims >= 384), which measured recall@10 of
#: 0.51 (8.19, int8_hnsw) and 0.33 (9.5, bbq_hnsw) at num_candidates 20 on 20,000 random 384-d vectors.
#: `options={"dense_index_options": None}` keeps the server's default; any other mapping is sent as is.
DEFAULT_DENSE_INDEX_OPTIONS: Mapping[str, Any] = {"type": "hnsw", "m": 32, "ef_construction": 200}

#: Source key holding the original id and the names of the text fields (mapped `enabled: false`).
META_FIELD = "sb_meta"
_KEYWORD_IGNORE_ABOVE = 8191  # keyword terms are capped at 32766 bytes; 8191 chars always fit in UTF-8
_INDEX_NAME_BAD = re.compile(r'[\\/*?"<>| ,#:A-Z]')


@dataclass(frozen=True, slots=True, order=True)
class EsVersion:
    """A server version with the features this connector depends on. Serverless counts as the newest."""

    major: int
    minor: int
    patch: int = 0
    serverless: bool = False

    @classmethod
    def parse(cls, number: str, build_flavor: str | None = None) -> EsVersion:
        match = re.match(r"^(\d+)\.(\d+)(?:\.(\d+))?", number or "")
        if not match:
            raise ValueError(f"cannot read an Elasticsearch version from {number!r}")
        return cls(int(match[1]), int(match[2]), int(match[3] or 0), serverless=build_flavor == "serverless")

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


def check_index_name(name: str) -> str:
    """Elasticsearch's index-name rules, checked before any request so the error says which rule."""
    if not name or name in (".", ".."):
        raise ValueError(f"index name {name!r} is empty or '.'/'..'")
    bad = _INDEX_NAME_BAD.search(name)
    if bad:
        raise ValueError(
            f'index name {name!r} has the character {bad.group()!r} (lowercase, no \\/*?"<>| ,#:)'
        )
    if name[0] in "-_+":
        raise ValueError(f"index name {name!r} must not start with '-', '_' or '+'")
    if len(name.encode("utf-8")) > 255:
        raise ValueError(f"index name {name!r} is longer than 255 bytes")
    return name


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


def index_body(
    spec: IndexSpec,
    version: EsVersion,
    *,
    sparse_type: SparseFieldType,
    namer_mode: str = "ids",
) -> dict[str, Any]:
    """`PUT /<index>` body: settings and mappings for `spec`.

    `spec.options` understood here: `shards`, `replicas`, `dense_similarity` (default cosine),
    `dense_index_options` (default `DEFAULT_DENSE_INDEX_OPTIONS`; None: the server's default, which
    quantises), `sparse_prune` (default False), `sparse_pruning_config`.
    Text fields are `text` (BM25) with a `.keyword` sub-field for filters; other strings (metadata) are
    mapped `keyword` by a dynamic template, so term filters match them exactly.
    """
    opts = spec.options
    properties: dict[str, Any] = {
        spec.sparse_field: sparse_mapping(
            sparse_type,
            version,
            prune=bool(opts.get("sparse_prune", False)),
            pruning_config=opts.get("sparse_pruning_config"),
        ),
        META_FIELD: {"type": "object", "enabled": False},
    }
    for name in spec.text_fields:
        properties[name] = {
            "type": "text",
            "fields": {"keyword": {"type": "keyword", "ignore_above": _KEYWORD_IGNORE_ABOVE}},
        }
    if spec.dense_field is not None and spec.dense_dim is not None:
        properties[spec.dense_field] = dense_mapping(
            spec.dense_dim,
            str(opts.get("dense_similarity", "cosine")),
            opts.get("dense_index_options", DEFAULT_DENSE_INDEX_OPTIONS),
        )
    mappings: dict[str, Any] = {
        "_meta": {SPEC_META_KEY: spec_to_meta(spec, sparse_type, namer_mode)},
        "dynamic_templates": [
            {
                "strings_as_keywords": {
                    "match_mapping_type": "string",
                    "mapping": {"type": "keyword", "ignore_above": _KEYWORD_IGNORE_ABOVE},
                }
            }
        ],
        "properties": properties,
    }
    settings: dict[str, Any] = {}
    if "shards" in opts:
        settings["number_of_shards"] = int(opts["shards"])
    if "replicas" in opts:
        settings["number_of_replicas"] = int(opts["replicas"])
    if version.exclude_source_vectors and not version.serverless:
        settings["index.mapping.exclude_source_vectors"] = False  # keep vectors readable from _source
    body: dict[str, Any] = {"mappings": mappings}
    if settings:
        body["settings"] = settings
    return body


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


def bm25_query(text: str, fields: Sequence[str], *, combined: bool) -> dict[str, Any]:
    """BM25 over the text fields: `match` for one field; for several, `combined_fields` (BM25F: the fields
    scored as one field, which needs `text` fields sharing one analyzer) when `combined`, else
    `multi_match` `best_fields` (the best single field's score)."""
    if not fields:
        raise ValueError("a BM25 query needs at least one text field")
    if len(fields) == 1:
        return {"match": {fields[0]: {"query": text}}}
    if combined:
        return {"combined_fields": {"query": text, "fields": list(fields)}}
    return {"multi_match": {"query": text, "fields": list(fields), "type": "best_fields"}}


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


def filtered(query: Mapping[str, Any], filters: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """`query` scored as is, restricted by filter-context clauses (which add nothing to the score)."""
    if not filters:
        return dict(query)
    return {"bool": {"must": [dict(query)], "filter": list(filters)}}


def search_body(
    size: int,
    *,
    query: Mapping[str, Any] | None = None,
    knn: Mapping[str, Any] | None = None,
    retriever: Mapping[str, Any] | None = None,
    source_excludes: Sequence[str] = (),
) -> dict[str, Any]:
    """A `_search` body; totals are not tracked (lets Lucene skip non-competitive hits)."""
    body: dict[str, Any] = {"size": size, "track_total_hits": False}
    if query is not None:
        body["query"] = dict(query)
    if knn is not None:
        body["knn"] = dict(knn)
    if retriever is not None:
        body["retriever"] = dict(retriever)
    if source_excludes:
        body["_source"] = {"excludes": list(source_excludes)}
    return body


def pit_search_body(
    pit_id: str, size: int, keep_alive: str, search_after: Sequence[Any] | None = None
) -> dict[str, Any]:
    """One page of a point-in-time scan, in `_shard_doc` order (the cheapest total order)."""
    body: dict[str, Any] = {
        "size": size,
        "pit": {"id": pit_id, "keep_alive": keep_alive},
        "sort": ["_shard_doc"],  # ascending; the tiebreaker every PIT search has
        "track_total_hits": False,
    }
    if search_after is not None:
        body["search_after"] = list(search_after)
    return body


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
