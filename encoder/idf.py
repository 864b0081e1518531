"""`IdfTable`: per-token IDF weights for inference-free queries (query weights from the tokenizer alone).

In inference-free mode a query is its set of tokens, each weighted by its IDF, so a query costs one
tokenizer call and a table lookup (microseconds) and no model call. This is the query side of the
"doc-only" SPLADE models (naver's SpladeDoc, OpenSearch's neural sparse doc-v* models).

IDF is the BM25 / Lucene form, ln(1 + (N - df + 0.5) / (df + 0.5)), always positive. It can be fitted from
texts (df = documents containing the token) or from encoded documents (df = documents with the dimension
active). Tables are stored as JSON only (never pickle); a plain `{token: weight}` object, the `idf.json`
that OpenSearch and sentence-transformers models ship, loads as well.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from spladebridge.encoder.sparse_vector import SparseVector

if TYPE_CHECKING:
    from spladebridge.encoder.splade import SpladeEncoder

__all__ = ["IdfTable", "IdfTableError", "bm25_idf"]

FORMAT = "spladebridge.idf"
VERSION = 1


class IdfTableError(ValueError):
    """An IDF table could not be built or read; the message names the item, token or field."""


def bm25_idf(n_docs: int, doc_freq: NDArray[np.float64]) -> NDArray[np.float64]:
    """ln(1 + (N - df + 0.5) / (df + 0.5)): positive, and largest for the rarest tokens."""
    return np.log1p((n_docs - doc_freq + 0.5) / (doc_freq + 0.5))


@dataclass(frozen=True)
class IdfTable:
    """Token -> IDF weight, the corpus size it came from, and the weight of tokens not in the table.

    `default` is used for a query token the table does not know (a token no fitted document contained);
    0.0 drops such tokens from queries.
    """

    weights: Mapping[str, float]
    n_docs: int = 0
    default: float = 0.0
    formula: str = "bm25"
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for token, weight in self.weights.items():
            if not isinstance(token, str):
                raise IdfTableError(f"token {token!r} is not a string")
            if isinstance(weight, bool) or not isinstance(weight, int | float) or not math.isfinite(weight):
                raise IdfTableError(f"weight of token {token!r} is not a finite number: {weight!r}")
            if weight < 0:
                raise IdfTableError(f"weight of token {token!r} is negative: {weight!r}")
        if not math.isfinite(self.default) or self.default < 0:
            raise IdfTableError(f"default weight must be finite and >= 0, got {self.default!r}")

    def __len__(self) -> int:
        return len(self.weights)

    def weight(self, token: str) -> float:
        """The IDF of `token`, or `default` when the table does not know it."""
        return float(self.weights.get(token, self.default))

    def to_array(self, vocab: Sequence[str]) -> NDArray[np.float32]:
        """Weights aligned with a vocabulary (id -> token): the lookup table a query encoder indexes."""
        out = np.full(len(vocab), self.default, dtype=np.float32)
        for token_id, token in enumerate(vocab):
            weight = self.weights.get(token)
            if weight is not None:
                out[token_id] = weight
        return out

    # -- fitting --------------------------------------------------------------------------------------

    @classmethod
    def fit(
        cls,
        corpus: Iterable[str] | Iterable[SparseVector],
        *,
        encoder: SpladeEncoder | None = None,
        vocab: Sequence[str] | None = None,
        tokenize: Callable[[Sequence[str]], list[list[int]]] | None = None,
        batch_size: int = 1024,
    ) -> IdfTable:
        """Fit from texts or from encoded documents (`SparseVector`s), in one streaming pass.

        Give `encoder=` (its vocabulary and tokenizer are used), or `vocab=` plus, for texts, `tokenize=`
        (texts -> token ids without special tokens). Mixing texts and vectors raises, naming the item.
        """
        if encoder is not None:
            vocab = encoder.vocab
            tokenize = encoder.tokenize_ids
        if vocab is None:
            raise IdfTableError("pass encoder= or vocab= so that token ids can be named")
        if isinstance(corpus, str | bytes):
            raise IdfTableError("expected an iterable of texts or SparseVectors, got a single string")
        size = len(vocab)
        doc_freq = np.zeros(size, dtype=np.float64)
        n_docs = 0
        kind: type | None = None
        pending: list[str] = []

        def flush() -> None:
            if not pending:
                return
            assert tokenize is not None
            for ids in tokenize(pending):
                unique = np.unique(np.asarray(ids, dtype=np.int64))
                unique = unique[(unique >= 0) & (unique < size)]
                doc_freq[unique] += 1.0
            pending.clear()

        for index, item in enumerate(corpus):
            item_kind: type = SparseVector if isinstance(item, SparseVector) else str
            if not isinstance(item, SparseVector | str):
                raise IdfTableError(f"item {index} is a {type(item).__name__}, not a text or a SparseVector")
            if kind is None:
                kind = item_kind
                if kind is str and tokenize is None:
                    raise IdfTableError("fitting from texts needs encoder= or tokenize=")
            elif item_kind is not kind:
                raise IdfTableError(
                    f"item {index} is a {item_kind.__name__} but earlier items are {kind.__name__}"
                )
            n_docs += 1
            if isinstance(item, SparseVector):
                if item.nnz and int(item.indices[-1]) >= size:
                    raise IdfTableError(
                        f"item {index} has token id {int(item.indices[-1])} outside the vocabulary ({size})"
                    )
                doc_freq[item.indices] += 1.0
            else:
                pending.append(item)
                if len(pending) >= batch_size:
                    flush()
        flush()
        if n_docs == 0:
            raise IdfTableError("cannot fit an IDF table on an empty corpus")
        idf = bm25_idf(n_docs, doc_freq)
        seen = np.flatnonzero(doc_freq > 0)
        weights = {vocab[i]: float(idf[i]) for i in seen.tolist()}
        default = float(bm25_idf(n_docs, np.zeros(1))[0])
        source = "texts" if kind is str else "vectors"
        return cls(weights=weights, n_docs=n_docs, default=default, meta={"fitted_on": source})

    # -- JSON -----------------------------------------------------------------------------------------

    def to_json_obj(self) -> dict[str, Any]:
        """The JSON object `save` writes."""
        return {
            "format": FORMAT,
            "version": VERSION,
            "formula": self.formula,
            "n_docs": self.n_docs,
            "default": self.default,
            "meta": dict(self.meta),
            "idf": dict(sorted(self.weights.items())),
        }

    def save(self, path: str | Path) -> None:
        """Write the table as UTF-8 JSON."""
        Path(path).write_text(json.dumps(self.to_json_obj(), ensure_ascii=False), encoding="utf-8")

    @classmethod
    def from_json_obj(cls, obj: Any, *, source: str = "IDF table") -> IdfTable:
        """Parse this module's format, or a plain `{token: weight}` object (OpenSearch models' `idf.json`)."""
        if not isinstance(obj, dict):
            raise IdfTableError(f"{source}: expected a JSON object, got {type(obj).__name__}")
        if obj.get("format") != FORMAT:
            return cls(weights=_parse_weights(obj, source), meta={"format": "token-weight map"})
        if obj.get("version") != VERSION:
            raise IdfTableError(f"{source}: unsupported version {obj.get('version')!r} (expected {VERSION})")
        for key in ("idf", "n_docs", "default"):
            if key not in obj:
                raise IdfTableError(f"{source}: missing field {key!r}")
        n_docs = obj["n_docs"]
        if isinstance(n_docs, bool) or not isinstance(n_docs, int) or n_docs < 0:
            raise IdfTableError(f"{source}: field 'n_docs' must be a non-negative integer, got {n_docs!r}")
        default = obj["default"]
        if isinstance(default, bool) or not isinstance(default, int | float):
            raise IdfTableError(f"{source}: field 'default' must be a number, got {default!r}")
        meta = obj.get("meta", {})
        return cls(
            weights=_parse_weights(obj["idf"], source),
            n_docs=n_docs,
            default=float(default),
            formula=str(obj.get("formula", "bm25")),
            meta=meta if isinstance(meta, dict) else {},
        )

    @classmethod
    def load(cls, path: str | Path) -> IdfTable:
        """Read a table written by `save`, or an `idf.json` token -> weight map."""
        try:
            obj = json.loads(Path(path).read_text(encoding="utf-8"))
        except UnicodeDecodeError as exc:
            raise IdfTableError(f"{path}: not UTF-8 text (byte {exc.start}); IDF tables are JSON") from None
        except json.JSONDecodeError as exc:
            raise IdfTableError(f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno})") from None
        return cls.from_json_obj(obj, source=str(path))


def _parse_weights(obj: Any, source: str) -> dict[str, float]:
    if not isinstance(obj, dict):
        raise IdfTableError(f"{source}: field 'idf' must be an object of token -> weight")
    weights: dict[str, float] = {}
    for token, weight in obj.items():
        if isinstance(weight, bool) or not isinstance(weight, int | float):
            raise IdfTableError(f"{source}: weight of token {token!r} is not a number: {weight!r}")
        weights[token] = float(weight)
    return weights
