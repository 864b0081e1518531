"""The bodies only a migration sends to Elasticsearch / OpenSearch, as pure functions (contract-tested
against the official API specs): the copied index body, the in-place mapping update, and the one-call alias
swap. The vector fields' mappings, the stored spec, documents and searches come from the connectors
(`spladebridge.connectors.lucene_connector`), so a migrated index is written, stored and read exactly as an
index the connectors created.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from spladebridge.connectors.base import IndexSpec
from spladebridge.connectors.index_meta import SPEC_META_KEY
from spladebridge.connectors.lucene_connector import BM25_FIELD_TYPES

__all__ = [
    "MIGRATION_META_KEY",
    "SHAPE_SETTINGS",
    "UNCOPYABLE_SETTINGS",
    "AddedFields",
    "alias_add_body",
    "alias_swap_body",
    "bm25_fields",
    "copyable_settings",
    "in_place_mapping_body",
    "reindex_index_body",
]

#: Key under the mapping's `_meta` recording what the migration did (source index, fields, feature names).
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
#: Settings that give an index its shape: a copy keeps the old index's values (the vector settings of a
#: connector may carry the defaults a new index of its own gets, which must not reshape a copied one).
SHAPE_SETTINGS = ("number_of_shards", "number_of_replicas")


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

    def spec(self, index: str, text_fields: tuple[str, ...], *, lexical: bool = True) -> IndexSpec:
        """The IndexSpec of the migrated index: its text fields plus these vector fields (`lexical=False`
        where the text fields are not all BM25 fields, see `bm25_fields`)."""
        return IndexSpec(
            name=index,
            sparse_field=self.sparse_field,
            dense_field=self.dense_field,
            dense_dim=self.dense_dim,
            text_fields=text_fields,
            lexical=lexical,
            options={"dense_similarity": self.dense_similarity} if self.dense_field else {},
        )


def bm25_fields(mappings: Mapping[str, Any], text_fields: Sequence[str]) -> bool:
    """Whether every text field is mapped as a BM25 field (`text`, `match_only_text`) in `mappings`.

    A migration encodes whatever fields it is told to, keyword fields included; the connectors run BM25
    searches only over BM25 fields (and refuse to open an index whose spec promises them otherwise), so the
    stored spec says `lexical=False` when one of them is not."""
    props = mappings.get("properties") or {}
    return all((props.get(name) or {}).get("type") in BM25_FIELD_TYPES for name in text_fields)


def copyable_settings(index_settings: Mapping[str, Any]) -> dict[str, Any]:
    """The `settings.index` of `GET /<index>/_settings` without what a new index cannot take."""
    return {k: v for k, v in index_settings.items() if k not in UNCOPYABLE_SETTINGS}


def _check_new_fields(properties: Mapping[str, Any], wanted: Mapping[str, Any]) -> None:
    for name, mapping in wanted.items():
        existing = properties.get(name)
        if existing is not None and existing.get("type") != mapping["type"]:
            raise ValueError(
                f"field {name!r} already exists as {existing.get('type')!r}; choose another field name "
                f"(the migration adds it as {mapping['type']!r})"
            )


def _merged(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """`base` with `extra` merged in, nested objects merged key by key."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merged(out[key], value)
        else:
            out[key] = value
    return out


def migrated_meta(stored_spec: Mapping[str, Any], migration: Mapping[str, Any]) -> dict[str, Any]:
    """The `_meta` entries of a migrated index: what the migration did, and the stored spec the connectors
    (and so `spladebridge.connect` and the CLI) read, so the index opens by name like one they created."""
    return {MIGRATION_META_KEY: dict(migration), SPEC_META_KEY: dict(stored_spec)}


def reindex_index_body(
    source_mappings: Mapping[str, Any],
    source_settings: Mapping[str, Any],
    vector_mappings: Mapping[str, Any],
    vector_settings: Mapping[str, Any],
    meta: Mapping[str, Any],
) -> dict[str, Any]:
    """`PUT /<new index>`: the old index's mappings and settings plus the vector fields' mappings and the
    settings they need (both from the connector), and `meta` merged into `_meta`. The copy keeps the old
    index's shard and replica counts (`SHAPE_SETTINGS`) even where the vector settings name others."""
    source_block = source_mappings.get("_source")
    if isinstance(source_block, Mapping) and (
        source_block.get("enabled") is False or source_block.get("excludes") or source_block.get("includes")
    ):
        raise ValueError(
            "the source index does not keep its whole _source (_source disabled or filtered), so documents "
            "cannot be copied; migrate in place instead"
        )
    properties = dict(source_mappings.get("properties") or {})
    _check_new_fields(properties, vector_mappings)
    properties.update(vector_mappings)
    mappings = {k: v for k, v in source_mappings.items() if k != "properties"}
    mappings["properties"] = properties
    mappings["_meta"] = {**dict(source_mappings.get("_meta") or {}), **dict(meta)}
    copied = copyable_settings(source_settings)
    needed = {k: v for k, v in vector_settings.items() if not (k in SHAPE_SETTINGS and k in copied)}
    settings = _merged(copied, needed)
    return {"settings": {"index": settings}, "mappings": mappings}


def in_place_mapping_body(
    existing_mappings: Mapping[str, Any], vector_mappings: Mapping[str, Any], meta: Mapping[str, Any]
) -> dict[str, Any]:
    """`PUT /<index>/_mapping`: the vector fields, and `_meta` merged (a mapping update replaces `_meta`)."""
    _check_new_fields(existing_mappings.get("properties") or {}, vector_mappings)
    return {
        "properties": dict(vector_mappings),
        "_meta": {**dict(existing_mappings.get("_meta") or {}), **dict(meta)},
    }


def alias_add_body(alias: str, index: str) -> dict[str, Any]:
    """`POST /_aliases`: add `alias` to `index` (clients can move to it before the migration ends)."""
    return {"actions": [{"add": {"index": index, "alias": alias}}]}


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
