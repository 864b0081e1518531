"""The one stored form of an `IndexSpec`, for every engine: JSON kept beside the index, so a later connector,
the CLI or a migration opens the index by name and searches it the way it was written.

Elasticsearch and OpenSearch keep it in the mapping (`mappings._meta.spladebridge`), with the engine facts a
reader needs (`sparse_type`, `feature_names`, OpenSearch's `sparse_scale`); Qdrant in the collection's
metadata, Qdrant Edge in a file beside the shard. The index's own name wins over the stored one when read back
(an alias, a renamed or restored index).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from spladebridge.connectors.base import IndexSpec

__all__ = ["SPEC_KEY", "SPEC_META_KEY", "SPEC_VERSION", "spec_from_json", "spec_to_json"]

#: Key under the mapping's `_meta` where Elasticsearch and OpenSearch keep the spec.
SPEC_META_KEY = "spladebridge"
#: Key (and format version) that marks a stored spec.
SPEC_KEY = "spladebridge_spec"
SPEC_VERSION = 1
_LEGACY_KEY = "spec_version"  # what Elasticsearch / OpenSearch indices carried before one format
_SPEC_KEYS = (
    "name",
    "sparse_field",
    "dense_field",
    "dense_dim",
    "text_fields",
    "sparse_idf",
    "lexical",
    "options",
)


def spec_to_json(spec: IndexSpec, **engine: Any) -> dict[str, Any]:
    """The stored form of `spec`, plus the engine facts given as keywords (they must be JSON data).

    `options` keep only their JSON-serialisable entries (objects such as clients cannot be stored)."""
    stored: dict[str, Any] = {
        SPEC_KEY: SPEC_VERSION,
        "name": spec.name,
        "sparse_field": spec.sparse_field,
        "dense_field": spec.dense_field,
        "dense_dim": spec.dense_dim,
        "text_fields": list(spec.text_fields),
        "sparse_idf": spec.sparse_idf,
        "lexical": spec.lexical,
        "options": _json_options(spec.options),
    }
    for key, value in engine.items():
        if key in stored:
            raise ValueError(f"engine fact {key!r} would overwrite a spec field")
        stored[key] = value
    return stored


def _json_options(options: Mapping[str, Any]) -> dict[str, Any]:
    kept: dict[str, Any] = {}
    for key, value in options.items():
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError):
            continue
        kept[str(key)] = value
    return kept


def spec_from_json(stored: Mapping[str, Any] | None, name: str | None = None) -> IndexSpec:
    """The IndexSpec of a stored form (`name`, when given, replaces the stored name); ValueError says what
    is missing or wrong."""
    where = f"index {name!r}: the stored mapping _meta" if name is not None else "the stored JSON"
    if not isinstance(stored, Mapping) or (
        stored.get(SPEC_KEY) != SPEC_VERSION and stored.get(_LEGACY_KEY) != SPEC_VERSION
    ):
        raise ValueError(f"{where} is not a spladebridge index spec (version {SPEC_VERSION})")
    try:
        return IndexSpec(
            name=name if name is not None else str(stored["name"]),
            sparse_field=str(stored["sparse_field"]),
            dense_field=stored["dense_field"],
            dense_dim=stored["dense_dim"],
            text_fields=tuple(stored["text_fields"]),
            sparse_idf=bool(stored.get("sparse_idf", False)),
            lexical=bool(stored.get("lexical", True)),
            options=dict(stored.get("options") or {}),
        )
    except KeyError as exc:
        raise ValueError(f"{where}: stored spec lacks {exc}") from None
