"""The IndexSpec kept in an Elasticsearch / OpenSearch index mapping (`mappings._meta.spladebridge`).

Engine-neutral between the two Lucene engines: both connectors write and read the same `_meta` object, so an
index created by one is understood by the other. (Qdrant keeps its spec in another format, see
`qdrant_common.spec_to_json`.)
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from spladebridge.connectors.base import IndexSpec

__all__ = ["SPEC_META_KEY", "spec_from_meta", "spec_to_meta"]

#: Key under the mapping's `_meta` where the IndexSpec is kept.
SPEC_META_KEY = "spladebridge"
_SPEC_VERSION = 1


def spec_to_meta(spec: IndexSpec, sparse_type: str, namer_mode: str) -> dict[str, Any]:
    """What goes under `mappings._meta.spladebridge`: the spec, the sparse type and the naming mode."""
    return {
        "spec_version": _SPEC_VERSION,
        "sparse_field": spec.sparse_field,
        "sparse_type": sparse_type,
        "feature_names": namer_mode,
        "dense_field": spec.dense_field,
        "dense_dim": spec.dense_dim,
        "text_fields": list(spec.text_fields),
        "sparse_idf": spec.sparse_idf,
        "lexical": spec.lexical,
        "options": _json_options(spec.options),
    }


def _json_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON-serialisable part of `IndexSpec.options` (kept so a reopened index queries the same way)."""
    kept: dict[str, Any] = {}
    for key, value in options.items():
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError):
            continue
        kept[str(key)] = value
    return kept


def spec_from_meta(name: str, meta: Mapping[str, Any]) -> IndexSpec:
    """The IndexSpec kept by `spec_to_meta`; ValueError names what is missing."""
    if not isinstance(meta, Mapping) or meta.get("spec_version") != _SPEC_VERSION:
        raise ValueError(
            f"index {name!r} has no spladebridge spec (version {_SPEC_VERSION}) in its mapping _meta"
        )
    try:
        return IndexSpec(
            name=name,
            sparse_field=str(meta["sparse_field"]),
            dense_field=meta["dense_field"],
            dense_dim=meta["dense_dim"],
            text_fields=tuple(meta["text_fields"]),
            sparse_idf=bool(meta.get("sparse_idf", False)),
            lexical=bool(meta.get("lexical", True)),
            options=dict(meta.get("options") or {}),
        )
    except KeyError as exc:
        raise ValueError(f"index {name!r}: stored spec lacks {exc}") from None
