"""Elasticsearch / OpenSearch request bodies for a migration, as pure functions (contract-tested against the
official API specs): the copied index body, the added field mappings, PIT pages, bulk `index` / `update`
actions, the one-call alias swap, and the verification queries.

Sparse vectors are stored as `{feature name: weight}` objects (`rank_features`, or Elasticsearch's
`sparse_vector`), names from `FeatureNamer` (token ids as decimal strings by default) and weights cleaned for
Lucene (`clean_document_vector`); an empty vector is left out rather than stored as `{}`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

import numpy as np
from numpy.typing import NDArray

from spladebridge.connectors.base import IndexSpec
from spladebridge.connectors.es_bodies import (
    EsVersion,
    dense_mapping,
    knn_section,
    sparse_mapping,
    sparse_vector_query,
)
from spladebridge.connectors.index_meta import SPEC_META_KEY, spec_to_meta
from spladebridge.connectors.lucene import clean_document_vector, clean_query_vector
from spladebridge.connectors.lucene_queries import FeatureNamer, bm25_query, rank_features_query
from spladebridge.connectors.opensearch_bodies import KnnParams
from spladebridge.encoder.sparse_vector import SparseVector

__all__ = [
    "MIGRATION_META_KEY",
    "UNCOPYABLE_SETTINGS",
    "AddedFields",
    "Flavor",
    "added_properties",
    "alias_swap_body",
    "bm25_search_body",
    "copyable_settings",
    "dense_search_body",
    "ids_search_body",
    "in_place_mapping_body",
    "pit_page_body",
    "reindex_index_body",
    "sparse_search_body",
    "update_body",
    "vector_fields",
]

Flavor: TypeAlias = Literal["elasticsearch", "opensearch"]
#: Key under the mapping's `_meta` recording what the migration added (source index, fields, feature names).
MIGRATION_META_KEY = "spladebridge_migration"
#: Index settings a new index cannot take from the old one (set by the engine, or bound to that index).
UNCOPYABLE_SETTINGS = frozenset(
    {
        "uuid",
        "creation_date",
        "creation_date_string",
        "provided_name",
        "version",
        "history_uuid",
        "resize",
        "verified_before_close",
        "routing",
        "blocks",
        "store",
        "replication",
        "soft_deletes",
        "frozen",
        "lifecycle",
        "shrink",
        "remote_store",
    }
)


@dataclass(frozen=True, slots=True)
class AddedFields:
    """The fields a migration adds: the sparse field (and its type), optionally a dense field."""

    sparse_field: str = "splade"
    sparse_type: Literal["rank_features", "sparse_vector"] = "rank_features"
    dense_field: str | None = None
    dense_dim: int | None = None
    dense_similarity: str = "cosine"

    def __post_init__(self) -> None:
        if not self.sparse_field or "." in self.sparse_field:
            raise ValueError(f"sparse field name {self.sparse_field!r} must be non-empty and without dots")
        if self.dense_field is not None and (self.dense_dim is None or self.dense_dim <= 0):
            raise ValueError(
                f"dense field {self.dense_field!r} needs a positive dense_dim, got {self.dense_dim!r}"
            )
        if self.dense_field == self.sparse_field:
            raise ValueError("the sparse and dense fields need different names")

    def names(self) -> tuple[str, ...]:
        return (self.sparse_field,) + ((self.dense_field,) if self.dense_field else ())


def copyable_settings(index_settings: Mapping[str, Any]) -> dict[str, Any]:
    """The `settings.index` of `GET /<index>/_settings` without what a new index cannot take."""
    return {k: v for k, v in index_settings.items() if k not in UNCOPYABLE_SETTINGS}


def added_properties(flavor: Flavor, fields: AddedFields, version: EsVersion | None = None) -> dict[str, Any]:
    """Mappings of the new fields. Elasticsearch: `sparse_vector` (pruning off where it exists) or
    `rank_features`, `dense_vector`; OpenSearch: `rank_features`, `knn_vector` (the OpenSearch connector's
    default method: HNSW on Lucene, inner product on normalised vectors)."""
    props: dict[str, Any] = {}
    if flavor == "elasticsearch":
        if fields.sparse_type == "sparse_vector":
            props[fields.sparse_field] = sparse_mapping("sparse_vector", version or EsVersion(9, 1))
        else:
            props[fields.sparse_field] = {"type": "rank_features"}
        if fields.dense_field is not None and fields.dense_dim is not None:
            props[fields.dense_field] = dense_mapping(fields.dense_dim, fields.dense_similarity)
        return props
    if fields.sparse_type != "rank_features":
        raise ValueError(
            "OpenSearch migrations write rank_features (the sparse_vector SEISMIC field needs a scale)"
        )
    props[fields.sparse_field] = {"type": "rank_features"}
    if fields.dense_field is not None:
        props[fields.dense_field] = {
            "type": "knn_vector",
            "dimension": fields.dense_dim,
            "method": KnnParams().to_method(),
        }
    return props


def _check_new_fields(properties: Mapping[str, Any], fields: AddedFields, wanted: Mapping[str, Any]) -> None:
    for name in fields.names():
        existing = properties.get(name)
        if existing is not None and existing.get("type") != wanted[name]["type"]:
            raise ValueError(
                f"field {name!r} already exists as {existing.get('type')!r}; choose another field name "
                f"(the migration adds it as {wanted[name]['type']!r})"
            )


def migrated_meta(fields: AddedFields, meta: Mapping[str, Any]) -> dict[str, Any]:
    """The `_meta` a migrated index carries: what the migration did, and the IndexSpec the connectors (and so
    `spladebridge.connect` and the CLI) read, so the migrated index opens by name like one they created."""
    text_fields = tuple(str(f) for f in meta.get("text_fields") or ())
    spec = IndexSpec(
        name="migrated",  # not stored: an index's spec takes the index's name when read back
        sparse_field=fields.sparse_field,
        dense_field=fields.dense_field,
        dense_dim=fields.dense_dim,
        text_fields=text_fields,
        lexical=bool(text_fields),
    )
    feature_names = str(meta.get("feature_names", "ids"))
    return {
        MIGRATION_META_KEY: dict(meta),
        SPEC_META_KEY: spec_to_meta(spec, fields.sparse_type, feature_names),
    }


def reindex_index_body(
    flavor: Flavor,
    source_mappings: Mapping[str, Any],
    source_settings: Mapping[str, Any],
    fields: AddedFields,
    meta: Mapping[str, Any],
    version: EsVersion | None = None,
) -> dict[str, Any]:
    """`PUT /<new index>`: the old index's mappings and settings plus the new fields (and, for OpenSearch
    with a dense field, `index.knn`; for Elasticsearch 9.2+, vectors kept in `_source`)."""
    source_block = source_mappings.get("_source")
    if isinstance(source_block, Mapping) and (
        source_block.get("enabled") is False or source_block.get("excludes") or source_block.get("includes")
    ):
        raise ValueError(
            "the source index does not keep its whole _source (_source disabled or filtered), so documents "
            "cannot be copied; migrate in place instead"
        )
    wanted = added_properties(flavor, fields, version)
    properties = dict(source_mappings.get("properties") or {})
    _check_new_fields(properties, fields, wanted)
    properties.update(wanted)
    mappings = {k: v for k, v in source_mappings.items() if k != "properties"}
    mappings["properties"] = properties
    mappings["_meta"] = {**dict(source_mappings.get("_meta") or {}), **migrated_meta(fields, meta)}
    settings = copyable_settings(source_settings)
    if flavor == "opensearch" and fields.dense_field is not None:
        settings["knn"] = True
    if (
        flavor == "elasticsearch"
        and version is not None
        and version.exclude_source_vectors
        and not version.serverless
    ):
        settings.setdefault("mapping", {})
        if isinstance(settings["mapping"], Mapping):
            settings["mapping"] = {**settings["mapping"], "exclude_source_vectors": False}
    return {"settings": {"index": settings}, "mappings": mappings}


def in_place_mapping_body(
    flavor: Flavor,
    existing_mappings: Mapping[str, Any],
    fields: AddedFields,
    meta: Mapping[str, Any],
    version: EsVersion | None = None,
) -> dict[str, Any]:
    """`PUT /<index>/_mapping`: the new fields, and `_meta` merged (a mapping update replaces `_meta`)."""
    wanted = added_properties(flavor, fields, version)
    _check_new_fields(existing_mappings.get("properties") or {}, fields, wanted)
    return {
        "properties": wanted,
        "_meta": {**dict(existing_mappings.get("_meta") or {}), **migrated_meta(fields, meta)},
    }


def pit_page_body(
    pit_id: str,
    size: int,
    keep_alive: str,
    sort: Sequence[str],
    search_after: Sequence[Any] | None = None,
    source_excludes: Sequence[str] = (),
) -> dict[str, Any]:
    """One page of a point-in-time scan (no index in the path: the PIT names it), sorted ascending on the
    `sort` fields (names alone: the spec's sort objects cannot declare arbitrary field names)."""
    body: dict[str, Any] = {
        "size": size,
        "query": {"match_all": {}},
        "pit": {"id": pit_id, "keep_alive": keep_alive},
        "sort": list(sort),
        "track_total_hits": False,
    }
    if search_after is not None:
        body["search_after"] = list(search_after)
    if source_excludes:
        body["_source"] = {"excludes": list(source_excludes)}
    return body


def vector_fields(
    fields: AddedFields,
    namer: FeatureNamer,
    sparse: SparseVector | None,
    dense: NDArray[np.float32] | None,
) -> dict[str, Any]:
    """The new fields of one document: `{sparse: {name: weight}}` (left out when empty), `{dense: [...]}`."""
    out: dict[str, Any] = {}
    if sparse is not None:
        cleaned = clean_document_vector(sparse).vector
        if cleaned.nnz:
            out[fields.sparse_field] = namer.to_features(cleaned)
    if dense is not None and fields.dense_field is not None:
        vec = np.asarray(dense, dtype=np.float32)
        if vec.shape != (fields.dense_dim,):
            raise ValueError(f"dense vector has shape {vec.shape}, the field holds ({fields.dense_dim},)")
        out[fields.dense_field] = vec.tolist()
    return out


def update_body(new_fields: Mapping[str, Any]) -> dict[str, Any]:
    """The bulk `update` body of an in-place migration: a partial document with only the new fields."""
    return {"doc": dict(new_fields)}


def alias_swap_body(
    alias: str,
    old_index: str,
    new_index: str,
    *,
    alias_options: Mapping[str, Any] | None = None,
    remove_old: bool = False,
) -> dict[str, Any]:
    """`POST /_aliases`: remove the alias from the old index and add it to the new one, atomically.

    `remove_old=True` is for an old index that clients use by its own name: it is deleted in the same call
    (`remove_index`) and its name becomes an alias of the new index. `alias_options` (filter, routing,
    is_write_index, ...) are carried over from the old alias.
    """
    add: dict[str, Any] = {"index": new_index, "alias": alias, **dict(alias_options or {})}
    first: dict[str, Any]
    if remove_old:
        first = {"remove_index": {"index": old_index}}
    else:
        first = {"remove": {"index": old_index, "alias": alias}}
    return {"actions": [first, {"add": add}]}


def bm25_search_body(
    text: str, text_fields: Sequence[str], k: int, source_excludes: Sequence[str] = ()
) -> dict[str, Any]:
    """BM25 over the text fields, top `k`."""
    return _search(bm25_query(text, text_fields), k, source_excludes)


def sparse_search_body(
    flavor: Flavor,
    fields: AddedFields,
    namer: FeatureNamer,
    vector: SparseVector,
    k: int,
    source_excludes: Sequence[str] = (),
) -> dict[str, Any]:
    """Exact sparse dot product: `sparse_vector` query (Elasticsearch `sparse_vector` field) or `rank_feature`
    linear clauses (`rank_features`, both engines); queries capped at 1024 clauses."""
    query_vec = clean_query_vector(vector).vector
    features = namer.to_features(query_vec)
    if flavor == "elasticsearch" and fields.sparse_type == "sparse_vector":
        return _search(sparse_vector_query(fields.sparse_field, features), k, source_excludes)
    return _search(rank_features_query(fields.sparse_field, features), k, source_excludes)


def dense_search_body(
    flavor: Flavor, fields: AddedFields, vector: Sequence[float], k: int, source_excludes: Sequence[str] = ()
) -> dict[str, Any]:
    """kNN on the dense field: top-level `knn` (Elasticsearch) or the `knn` query (OpenSearch)."""
    if fields.dense_field is None:
        raise ValueError("no dense field to search")
    if flavor == "elasticsearch":
        body: dict[str, Any] = {"size": k, "knn": knn_section(fields.dense_field, vector, k, max(k, 100))}
        if source_excludes:
            body["_source"] = {"excludes": list(source_excludes)}
        return body
    return _search({"knn": {fields.dense_field: {"vector": list(vector), "k": k}}}, k, source_excludes)


def ids_search_body(ids: Sequence[str]) -> dict[str, Any]:
    """Fetch documents by id with a search (all of them: `size` = number of ids)."""
    return {"size": len(ids), "query": {"ids": {"values": list(ids)}}}


def _search(query: Mapping[str, Any], k: int, source_excludes: Sequence[str]) -> dict[str, Any]:
    body: dict[str, Any] = {"size": k, "query": dict(query)}
    if source_excludes:
        body["_source"] = {"excludes": list(source_excludes)}
    return body
