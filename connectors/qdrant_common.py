"""What the two Qdrant connectors (Edge and qdrant-client) share: payload layout, document checks, the
stored spec (in the one format of `index_meta`), the BM25 signal, filter translation and the server-side fusion plan.

Payload layout: text fields and metadata at the top level (so metadata filters address them by name), plus
internal keys starting with `_sb_`: the original id (`_sb_id`, `_sb_id_type`) and the names of the text
fields (`_sb_fields`), so that a stored point reads back as the same `Document`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import numpy as np
from numpy.typing import NDArray

from spladebridge.connectors.base import (
    DocId,
    Document,
    HybridRequest,
    IndexSpec,
    Signal,
    UnsupportedOperation,
)
from spladebridge.connectors.documents import DocumentError, dense_values
from spladebridge.connectors.filters import Filter, FilterLike, Range, Scalar, Term, Terms, as_filter
from spladebridge.connectors.ids import (
    ID_KEY,
    ID_TYPE_KEY,
    IdError,
    PointId,
    doc_id_from_payload,
    id_payload,
    to_point_id,
)
from spladebridge.connectors.index_meta import SPEC_VERSION, spec_from_json, spec_to_json
from spladebridge.encoder.sparse_vector import SparseVector

#: Logged when a Qdrant index is created with `sparse_idf` (see `IndexSpec`).
SPARSE_IDF_WARNING = (
    "sparse_idf=True: Qdrant multiplies every stored sparse weight by its term's IDF at search time, so sparse "
    "scores are no longer the model's dot product (SPLADE weights already carry IDF); meant for term counts "
    "or inference-free document vectors"
)

__all__ = [
    "BM25_STATS_KEY",
    "FIELDS_KEY",
    "INTERNAL_PREFIX",
    "LUCENE_ENGLISH_STOP_WORDS",
    "SPARSE_IDF_WARNING",
    "SPEC_VERSION",
    "Bm25Settings",
    "Bm25Stats",
    "DocumentError",
    "FilterBuilder",
    "FusionPlan",
    "PreparedDocument",
    "bm25_settings",
    "bm25_vector_name",
    "check_k",
    "check_query_dense",
    "document_from_payload",
    "hit_fields",
    "plan_fusion",
    "prepare_document",
    "spec_differences",
    "spec_from_json",
    "spec_to_json",
    "translate_filter",
]

INTERNAL_PREFIX = "_sb_"
FIELDS_KEY = "_sb_fields"
#: Key of the BM25 corpus statistics in the stored spec (an engine fact beside the spec's own fields).
BM25_STATS_KEY = "bm25_stats"
_BM25_OPTION_KEYS = (
    "k",
    "b",
    "avg_len",
    "language",
    "stopwords",
    "stemmer",
    "lowercase",
    "min_token_len",
    "max_token_len",
)
#: Lucene's English stop words (`EnglishAnalyzer.ENGLISH_STOP_WORDS_SET`), the list Anserini / Pyserini and
#: bm25s (`stopwords="en"`) use; Qdrant's own English list is much longer (it drops "what", "how", ...).
LUCENE_ENGLISH_STOP_WORDS: frozenset[str] = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "but",
        "by",
        "for",
        "if",
        "in",
        "into",
        "is",
        "it",
        "no",
        "not",
        "of",
        "on",
        "or",
        "such",
        "that",
        "the",
        "their",
        "then",
        "there",
        "these",
        "they",
        "this",
        "to",
        "was",
        "will",
        "with",
    ]
)


# -- the stored spec ----------------------------------------------------------------------------------


def spec_differences(wanted: IndexSpec, stored: IndexSpec) -> list[str]:
    """Layout differences between two specs (empty when compatible); names and options may differ."""
    diffs = []
    for name in ("sparse_field", "dense_field", "dense_dim", "text_fields", "sparse_idf", "lexical"):
        a, b = getattr(wanted, name), getattr(stored, name)
        if a != b:
            diffs.append(f"{name}: wanted {a!r}, index has {b!r}")
    if bm25_vector_name(wanted) != bm25_vector_name(stored):
        diffs.append(
            f"bm25_field: wanted {bm25_vector_name(wanted)!r}, index has {bm25_vector_name(stored)!r}"
        )
    return diffs


def bm25_vector_name(spec: IndexSpec) -> str:
    """Name of the sparse vector that holds the BM25 signal (`options["bm25_field"]`, default "bm25")."""
    name = str(spec.options.get("bm25_field", "bm25"))
    if name in (spec.sparse_field, spec.dense_field):
        raise ValueError(
            f"bm25_field {name!r} collides with the sparse or dense field name; set options['bm25_field']"
        )
    return name


@dataclass(frozen=True, slots=True)
class Bm25Settings:
    """How the Qdrant connectors analyse text and weight terms for BM25, from `options["bm25"]`.

    The defaults make Qdrant's BM25 embedder score like Lucene's BM25 as Anserini / Pyserini run it on BEIR
    (and like `spladebridge.evaluation.LexicalBM25`): k1 = 0.9, b = 0.4, Lucene's 33 English stop words
    ("lucene"), the Snowball English stemmer, tokens of at least 2 characters, and the corpus's own average
    document length (`avg_len` None). `stopwords` is "lucene", a Qdrant language name (its own list: for
    English a much longer one), "none", or a list of words; by default "lucene" for English and Qdrant's list
    for any other `language`. `stemmer` is a Snowball language name or "none" (default: `language`). A fixed
    `avg_len` replaces the corpus average (the statistics are still kept).
    """

    k: float = 0.9
    b: float = 0.4
    avg_len: float | None = None
    language: str = "english"
    stopwords: str | tuple[str, ...] | None = None
    stemmer: str | None = None
    lowercase: bool = True
    min_token_len: int | None = 2
    max_token_len: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.k, bool) or not isinstance(self.k, int | float) or not 0 <= self.k < math.inf:
            raise ValueError(f"options['bm25']['k'] must be a finite number >= 0, got {self.k!r}")
        if isinstance(self.b, bool) or not isinstance(self.b, int | float) or not 0 <= self.b <= 1:
            raise ValueError(f"options['bm25']['b'] must be within [0, 1], got {self.b!r}")
        if self.avg_len is not None and (
            isinstance(self.avg_len, bool)
            or not isinstance(self.avg_len, int | float)
            or not 0 < self.avg_len < math.inf
        ):
            raise ValueError(f"options['bm25']['avg_len'] must be a positive number, got {self.avg_len!r}")
        for name in ("min_token_len", "max_token_len"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise ValueError(f"options['bm25'][{name!r}] must be an integer >= 0, got {value!r}")
        words = self.stopwords
        if (
            words is not None
            and not isinstance(words, str)
            and not (isinstance(words, tuple) and all(isinstance(w, str) for w in words))
        ):
            raise ValueError(f"options['bm25']['stopwords'] must be a name or a list of words, got {words!r}")

    @property
    def stemmer_language(self) -> str | None:
        """The Snowball language that stems tokens, None when stemming is off."""
        name = self.stemmer if self.stemmer is not None else self.language
        return None if name.lower() == "none" else name

    @property
    def stop_words(self) -> frozenset[str] | str | None:
        """The stop words: a set of words, a Qdrant language name (its own list), or None for none."""
        if isinstance(self.stopwords, tuple):
            return frozenset(self.stopwords)
        default = "lucene" if self.language.lower() == "english" else self.language
        name = (self.stopwords if self.stopwords is not None else default).lower()
        if name == "lucene":
            return LUCENE_ENGLISH_STOP_WORDS
        return None if name == "none" else name


def bm25_settings(spec: IndexSpec) -> Bm25Settings:
    """The BM25 settings of `spec` (`options["bm25"]`: k, b, avg_len, language, stopwords, stemmer, ...)."""
    raw = spec.options.get("bm25") or {}
    if not isinstance(raw, Mapping):
        raise ValueError(f"options['bm25'] must be a mapping, got {type(raw).__name__}")
    unknown = sorted(set(raw) - set(_BM25_OPTION_KEYS))
    if unknown:
        raise ValueError(f"options['bm25'] has unknown keys {unknown}; known: {list(_BM25_OPTION_KEYS)}")
    values = dict(raw)
    if isinstance(values.get("stopwords"), list | tuple | set | frozenset):
        values["stopwords"] = tuple(sorted(values["stopwords"]))
    for name in ("language", "stemmer"):
        if name in values and values[name] is not None and not isinstance(values[name], str):
            raise ValueError(f"options['bm25'][{name!r}] must be a language name, got {values[name]!r}")
    return Bm25Settings(**values)


@dataclass(frozen=True, slots=True)
class Bm25Stats:
    """What BM25's length normalisation needs from the corpus: the documents with at least one token and
    the tokens they hold in all (after analysis), so that `avg_len` is the corpus's real average.

    The connectors keep it in the stored spec (key `bm25_stats`) and update it on every upsert (a replaced
    document's old length leaves, the new one comes in) and delete, so a reopened index goes on from the
    same numbers. A document's BM25 vector is written with the average as it stands after its own batch.
    """

    documents: int = 0
    tokens: int = 0

    def __post_init__(self) -> None:
        for name in ("documents", "tokens"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"BM25 statistics need {name} as an integer >= 0, got {value!r}")

    @property
    def avg_len(self) -> float | None:
        """Average document length in tokens (None before the first document with a token)."""
        return self.tokens / self.documents if self.documents else None

    def changed(self, added: Iterable[int] = (), removed: Iterable[int] = ()) -> Bm25Stats:
        """The statistics after documents of lengths `added` came in and of lengths `removed` went out;
        a length of 0 is a document without a token, which BM25 does not count (as Lucene's docCount)."""
        plus, minus = [n for n in added if n > 0], [n for n in removed if n > 0]
        documents = self.documents + len(plus) - len(minus)
        tokens = self.tokens + sum(plus) - sum(minus)
        if documents <= 0 or tokens <= 0:  # never below empty, even after an out-of-band change
            return Bm25Stats()
        return Bm25Stats(documents, tokens)

    def to_json(self) -> dict[str, int]:
        return {"documents": self.documents, "tokens": self.tokens}

    @classmethod
    def from_json(cls, value: object) -> Bm25Stats:
        """The statistics of their stored form; ValueError when it is malformed."""
        if not isinstance(value, Mapping):
            raise ValueError(f"stored BM25 statistics must be an object, got {type(value).__name__}")
        try:
            return cls(value["documents"], value["tokens"])
        except KeyError as exc:
            raise ValueError(f"stored BM25 statistics lack {exc}") from None


# -- documents ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PreparedDocument:
    """A checked document, ready for an engine: point id, payload, vectors and the text for BM25."""

    index: int
    doc_id: DocId
    point_id: PointId
    payload: dict[str, Any]
    sparse: SparseVector
    dense: list[float] | None
    text: str


def prepare_document(doc: object, index: int, spec: IndexSpec) -> PreparedDocument:
    """Check one document against `spec` and build its payload; `DocumentError` says what and where."""
    if not isinstance(doc, Document):
        raise DocumentError(f"item {index}: expected a Document, got {type(doc).__name__}")
    where = f"document {index} (id {doc.id!r})"
    try:
        point_id = to_point_id(doc.id)
    except IdError as exc:
        raise DocumentError(f"{where}: {exc}") from None
    if not isinstance(doc.sparse, SparseVector):
        got = "no sparse vector" if doc.sparse is None else f"a {type(doc.sparse).__name__}"
        raise DocumentError(f"{where}: field {spec.sparse_field!r} needs a SparseVector, got {got}")
    dense = dense_values(doc.dense, spec, where) if doc.dense is not None else None
    if not isinstance(doc.fields, Mapping) or not isinstance(doc.metadata, Mapping):
        raise DocumentError(f"{where}: fields and metadata must be dicts")
    payload: dict[str, Any] = {}
    for name, value in doc.fields.items():
        if not isinstance(name, str) or not name or name.startswith(INTERNAL_PREFIX):
            raise DocumentError(
                f"{where}: text field name {name!r} is empty or uses the reserved prefix '_sb_'"
            )
        if not isinstance(value, str):
            raise DocumentError(f"{where}: text field {name!r} must be a string, got {type(value).__name__}")
        payload[name] = value
    for key, value in doc.metadata.items():
        if not isinstance(key, str) or not key or key.startswith(INTERNAL_PREFIX):
            raise DocumentError(f"{where}: metadata key {key!r} is empty or uses the reserved prefix '_sb_'")
        if key in doc.fields:
            raise DocumentError(f"{where}: metadata key {key!r} is also a text field name")
        payload[key] = value
    try:
        json.dumps(payload, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise DocumentError(f"{where}: metadata is not JSON-serialisable: {exc}") from None
    payload.update(id_payload(doc.id))
    payload[FIELDS_KEY] = list(doc.fields)
    return PreparedDocument(index, doc.id, point_id, payload, doc.sparse, dense, doc.text(spec.text_fields))


def check_query_dense(vector: object, spec: IndexSpec) -> list[float]:
    """A dense query vector as a list, after checking it fits the index."""
    if spec.dense_field is None:
        raise UnsupportedOperation(f"index {spec.name!r} has no dense field")
    arr = np.asarray(vector, dtype=np.float32)
    if arr.ndim != 1 or arr.shape[0] != spec.dense_dim:
        raise ValueError(f"dense query has shape {arr.shape}, index {spec.name!r} wants ({spec.dense_dim},)")
    if not np.all(np.isfinite(arr)):
        raise ValueError("dense query has non-finite values")
    values: list[float] = arr.tolist()
    return values


def check_k(k: int, name: str = "k") -> None:
    """Reject a non-positive result count early, with its name."""
    if isinstance(k, bool) or not isinstance(k, int) or k <= 0:
        raise ValueError(f"{name} must be a positive integer, got {k!r}")


def hit_fields(payload: Mapping[str, Any] | None) -> dict[str, Any]:
    """Text fields and metadata of a stored point, without the internal `_sb_` keys."""
    if not payload:
        return {}
    return {k: v for k, v in payload.items() if not k.startswith(INTERNAL_PREFIX)}


def document_from_payload(
    payload: Mapping[str, Any] | None,
    point_id: object,
    sparse: SparseVector | None,
    dense: NDArray[np.float32] | None,
) -> Document:
    """Rebuild the `Document` a point was written from (text fields and metadata split by `_sb_fields`)."""
    data = dict(payload or {})
    doc_id = doc_id_from_payload(data, point_id)
    names = data.get(FIELDS_KEY)
    text_names = set(names) if isinstance(names, list) else set()
    fields: dict[str, str] = {}
    metadata: dict[str, Any] = {}
    for key, value in data.items():
        if key in (ID_KEY, ID_TYPE_KEY, FIELDS_KEY):
            continue
        if key in text_names:
            fields[key] = value
        else:
            metadata[key] = value
    return Document(id=doc_id, fields=fields, metadata=metadata, sparse=sparse, dense=dense)


# -- filters ------------------------------------------------------------------------------------------

C = TypeVar("C")


class FilterBuilder(Protocol[C]):
    """Makes one engine library's condition objects; `translate_filter` drives it."""

    def match_value(self, key: str, value: str | int | bool) -> C: ...

    def match_any(self, key: str, values: list[str] | list[int]) -> C: ...

    def range(self, key: str, bounds: dict[str, float]) -> C: ...

    def any_of(self, conditions: list[C]) -> C: ...


@dataclass(frozen=True, slots=True)
class TranslatedFilter(Generic[C]):
    """The `must` conditions of an engine filter (all must hold)."""

    must: list[C]


#: Integers up to this size are exact as floats, so a range can match them in int and float payloads alike.
_EXACT_FLOAT_INT = 2**53


def _numeric(value: Scalar) -> bool:
    """A number to compare numerically (2 == 2.0), as JSON does not tell 2 from 2.0; never a bool."""
    if isinstance(value, bool):
        return False
    return isinstance(value, float) or (isinstance(value, int) and abs(value) <= _EXACT_FLOAT_INT)


def _scalar_condition(builder: FilterBuilder[C], key: str, value: Scalar) -> C:
    if isinstance(value, bool | str):
        return builder.match_value(key, value)
    if isinstance(value, float) or abs(value) <= _EXACT_FLOAT_INT:  # matches int and float payloads alike
        return builder.range(key, {"gte": float(value), "lte": float(value)})
    return builder.match_value(key, value)


def _terms_condition(builder: FilterBuilder[C], cond: Terms) -> C:
    strs = [v for v in cond.values if isinstance(v, str)]
    ints = [v for v in cond.values if isinstance(v, int) and not isinstance(v, bool) and not _numeric(v)]
    others = [v for v in cond.values if isinstance(v, bool) or _numeric(v)]
    parts: list[C] = []
    if strs:
        parts.append(builder.match_any(cond.field, strs))
    if ints:
        parts.append(builder.match_any(cond.field, ints))
    parts.extend(_scalar_condition(builder, cond.field, v) for v in others)
    return parts[0] if len(parts) == 1 else builder.any_of(parts)


def translate_filter(value: FilterLike, builder: FilterBuilder[C]) -> TranslatedFilter[C] | None:
    """Translate an engine-neutral filter into `must` conditions built by `builder` (None for no filter)."""
    flt: Filter | None = as_filter(value)
    if flt is None:
        return None
    must: list[C] = []
    for cond in flt.conditions:
        if isinstance(cond, Term):
            must.append(_scalar_condition(builder, cond.field, cond.value))
        elif isinstance(cond, Terms):
            must.append(_terms_condition(builder, cond))
        elif isinstance(cond, Range):
            must.append(builder.range(cond.field, cond.bounds()))
    return TranslatedFilter(must)


# -- server-side fusion -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FusionPlan:
    """How to run a `HybridRequest` on Qdrant.

    `native` True: one fusion over the prefetches (`Fusion.Rrf(k=qdrant_k)` or DBSF), exact for equal
    weights. Otherwise a formula `sum_i w_i * $score[i]` over prefetches that each fuse one signal alone
    (single-list RRF gives 1/(qdrant_k + pos0), single-list DBSF gives the normalised score), which is the
    hybrid module's weighted RRF / weighted DBSF exactly. Qdrant's own weighted RRF, 1/((pos0+1)/w + k-1),
    is a different function, so it is never used for weights.
    """

    method: str
    qdrant_k: int
    signals: tuple[Signal, ...]
    weights: tuple[float, ...]
    native: bool
    limit: int
    candidates: int


def plan_fusion(request: HybridRequest, *, empty: Sequence[Signal] = ()) -> FusionPlan:
    """Check a hybrid request and decide how Qdrant runs it; `empty` names signals with an empty query.

    Signals with an empty query are dropped: they return no document, so they change no fused score. A
    signal with weight 0 stays (its documents take part with a 0 contribution, as in the hybrid module).
    """
    fusion = request.fusion
    check_k(request.k)
    check_k(request.candidates, "candidates")
    if fusion.method not in ("rrf", "dbsf"):
        raise UnsupportedOperation(f"Qdrant fuses server-side with 'rrf' or 'dbsf', not {fusion.method!r}")
    if fusion.missing != "zero":
        raise UnsupportedOperation(
            "Qdrant fusion counts a document missing from a list as 0 (missing='zero')"
        )
    signals = request.signals()
    if not signals:
        raise ValueError("a hybrid request needs at least one of sparse, dense or text")
    weights = tuple(float(w) for w in fusion.weights) if fusion.weights is not None else (1.0,) * len(signals)
    if len(weights) != len(signals):
        raise ValueError(f"fusion has {len(weights)} weights for {len(signals)} signals {signals}")
    for signal, w in zip(signals, weights, strict=True):
        if not math.isfinite(w) or w < 0:
            raise ValueError(f"fusion weight for {signal!r} must be finite and >= 0, got {w!r}")
    if fusion.method == "rrf" and (isinstance(fusion.rank_constant, bool) or fusion.rank_constant < 0):
        raise ValueError(f"rank_constant must be >= 0, got {fusion.rank_constant!r}")
    kept = [(s, w) for s, w in zip(signals, weights, strict=True) if s not in empty]
    native = all(w == 1.0 for _, w in kept)
    return FusionPlan(
        method=fusion.method,
        qdrant_k=int(fusion.rank_constant) + 1,
        signals=tuple(s for s, _ in kept),
        weights=tuple(w for _, w in kept),
        native=native,
        limit=request.k,
        candidates=max(request.candidates, request.k),
    )
