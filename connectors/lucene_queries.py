"""Query-DSL pieces that Elasticsearch and OpenSearch share: feature names, filters, lexical and linear
`rank_feature` queries. Pure functions returning plain dicts, so contract tests can validate them.

Feature names (`FeatureNamer`): connectors know engines, not models, so a vector's token ids become names in
one of two modes: the id as a decimal string (default), or the token string from a vocabulary (`vocab[id]`)
encoded with `token_names.encode_token` (reversible and collision-free; no dots, so `rank_features` accepts
it). Both modes decode exactly back to ids.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from spladebridge.connectors.filters import Filter, FilterLike, Range, Term, Terms, as_filter
from spladebridge.connectors.token_names import TokenNameError, decode_token, encode_token
from spladebridge.encoder.sparse_vector import SparseVector

__all__ = [
    "FeatureNameError",
    "FeatureNamer",
    "bm25_query",
    "filter_clauses",
    "rank_features_query",
]


class FeatureNameError(ValueError):
    """A stored feature name that this namer cannot map back to a token id."""


class FeatureNamer:
    """Token id <-> feature name, by id (`"2023"`) or, with `vocab`, by encoded token string (`"##ing"`)."""

    __slots__ = ("_ids", "_names", "vocab")

    def __init__(self, vocab: Sequence[str] | None = None) -> None:
        self.vocab: tuple[str, ...] | None = tuple(vocab) if vocab is not None else None
        self._ids: dict[str, int] | None = None
        self._names: list[str] | None = None
        if self.vocab is not None:
            ids: dict[str, int] = {}
            names: list[str] = []
            for i, token in enumerate(self.vocab):
                if not isinstance(token, str):
                    raise FeatureNameError(f"vocab entry {i} is not a string: {token!r}")
                name = encode_token(token)
                if name in ids:
                    raise FeatureNameError(f"vocab entries {ids[name]} and {i} are the same token {token!r}")
                ids[name] = i
                names.append(name)
            self._ids = ids
            self._names = names

    @property
    def mode(self) -> str:
        """'ids' or 'tokens'."""
        return "ids" if self.vocab is None else "tokens"

    def name(self, token_id: int) -> str:
        if self.vocab is None:
            return str(int(token_id))
        if self._names is None or not 0 <= token_id < len(self._names):
            raise FeatureNameError(f"token id {token_id} is outside the vocabulary (size {len(self.vocab)})")
        return self._names[token_id]

    def label(self, token_id: int) -> str:
        """A readable name for explanations: the token string with a vocabulary, else the id."""
        if self.vocab is not None and 0 <= token_id < len(self.vocab):
            return self.vocab[token_id]
        return str(token_id)

    def to_features(self, vector: SparseVector) -> dict[str, float]:
        """`{name: weight}` with Python floats (the exact float32 values)."""
        ids: list[int] = vector.indices.tolist()
        weights: list[float] = vector.values.tolist()
        if self._names is None:
            return dict(zip(map(str, ids), weights, strict=True))
        if ids and ids[-1] >= len(self._names):
            raise FeatureNameError(f"token id {ids[-1]} is outside the vocabulary (size {len(self._names)})")
        names = self._names
        return {names[i]: w for i, w in zip(ids, weights, strict=True)}

    def token_id(self, name: str) -> int:
        if self._ids is None:
            if not name.isascii() or not name.isdigit() or (len(name) > 1 and name[0] == "0"):
                raise FeatureNameError(f"feature name {name!r} is not a token id (names are decimal ids)")
            return int(name)
        found = self._ids.get(name)
        if found is None:
            try:
                token = decode_token(name)
            except TokenNameError as exc:
                raise FeatureNameError(str(exc)) from None
            raise FeatureNameError(f"token {token!r} (feature {name!r}) is not in the vocabulary")
        return found

    def from_features(self, features: Mapping[str, Any]) -> SparseVector:
        """The vector stored as `{name: weight}` (what `to_features` wrote)."""
        if not isinstance(features, Mapping):
            raise FeatureNameError(f"stored sparse vector must be an object, got {type(features).__name__}")
        ids = np.fromiter((self.token_id(n) for n in features), dtype=np.int64, count=len(features))
        values = np.fromiter((float(v) for v in features.values()), dtype=np.float64, count=len(features))
        return SparseVector(ids, values)


def _condition(cond: Term | Terms | Range, field: Callable[[str], str]) -> dict[str, Any]:
    if isinstance(cond, Term):
        return {"term": {field(cond.field): {"value": cond.value}}}
    if isinstance(cond, Terms):
        return {"terms": {field(cond.field): list(cond.values)}}
    return {"range": {field(cond.field): cond.bounds()}}


def filter_clauses(value: FilterLike, field: Callable[[str], str] = str) -> list[dict[str, Any]]:
    """Filter-context clauses (all must hold) for a `bool.filter`; `field` maps a filter field to the
    indexed one (e.g. a text field to its `.keyword` sub-field)."""
    flt: Filter | None = as_filter(value)
    if flt is None:
        return []
    return [_condition(c, field) for c in flt.conditions]


def rank_features_query(field: str, features: Mapping[str, float]) -> dict[str, Any]:
    """Exact dot product on a `rank_features` field: one `should` clause per token, `linear` function
    (score = stored 9-bit value) times `boost` = query weight. Never `saturation`, the default."""
    return {
        "bool": {
            "should": [
                {"rank_feature": {"field": f"{field}.{name}", "linear": {}, "boost": weight}}
                for name, weight in features.items()
            ],
            "minimum_should_match": 1,
        }
    }


def bm25_query(text: str, fields: Sequence[str], *, combined: bool = False) -> dict[str, Any]:
    """BM25 over the text fields: `match` for one field; for several, `combined_fields` (BM25F: the fields
    scored as one field; Elasticsearch only, and only for `text` fields sharing one analyzer) when
    `combined`, else `multi_match` `best_fields` (the best single field's score)."""
    if not fields:
        raise ValueError("a BM25 query needs at least one text field")
    if len(fields) == 1:
        return {"match": {fields[0]: {"query": text}}}
    if combined:
        return {"combined_fields": {"query": text, "fields": list(fields)}}
    return {"multi_match": {"query": text, "fields": list(fields), "type": "best_fields"}}
