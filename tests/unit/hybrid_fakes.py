"""Small in-memory fakes for the hybrid tests: a connector and word-level sparse / dense encoders.

The fake connector scores exactly (sparse dot, dense dot, word-overlap "BM25"), breaks score ties by id, and
fuses server-side with its own naive implementation of `ServerFusion`, so that client- and server-side paths
of `HybridSearcher` can be compared.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from spladebridge.connectors.base import (
    Capabilities,
    Connector,
    DocId,
    Document,
    Hit,
    HybridRequest,
    IndexSpec,
    ServerFusion,
    Signal,
    WriteReport,
)
from spladebridge.connectors.filters import FilterLike, Term, as_filter
from spladebridge.encoder.sparse_vector import SparseVector

DIM = 16
WORD = re.compile(r"[a-z]+")
#: query-side expansions, as a learned-sparse model would add them
EXPANSIONS = {"car": ("vehicle",), "cat": ("pet",), "dog": ("pet",)}


def words(text: str) -> list[str]:
    return WORD.findall(text.lower())


class FakeSparseEncoder:
    """Each word gets an id from a growing vocabulary; weights 1.0 per word, 0.5 per expansion term."""

    def __init__(self) -> None:
        self.vocab: dict[str, int] = {}
        self.query_calls: list[list[str]] = []

    def _id(self, token: str) -> int:
        return self.vocab.setdefault(token, len(self.vocab))

    def _encode(self, text: str, expand: bool) -> SparseVector:
        weights: dict[int, float] = {}
        for w in words(text):
            weights[self._id(w)] = weights.get(self._id(w), 0.0) + 1.0
            for extra in EXPANSIONS.get(w, ()) if expand else ():
                weights[self._id(extra)] = max(weights.get(self._id(extra), 0.0), 0.5)
        return SparseVector.from_dict(weights) if weights else SparseVector.empty()

    def encode_queries(self, texts: Sequence[str]) -> list[SparseVector]:
        self.query_calls.append(list(texts))
        return [self._encode(t, expand=True) for t in texts]

    def encode_documents(self, texts: Sequence[str]) -> list[SparseVector]:
        return [self._encode(t, expand=False) for t in texts]


class ExplainingFakeSparseEncoder(FakeSparseEncoder):
    """The fake encoder with `explain`, naming tokens through its vocabulary."""

    def explain(
        self, query_vec: SparseVector, doc_vec: SparseVector, top_k: int | None = None
    ) -> list[tuple[str, float]]:
        names = {i: w for w, i in self.vocab.items()}
        terms = [(names[i], v) for i, v in query_vec.contributions(doc_vec)]
        return terms if top_k is None else terms[:top_k]


class FakeDenseEncoder:
    """Hashed bag of words, L2-normalised, float32."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def encode(self, texts: Sequence[str]) -> NDArray[np.float32]:
        self.calls.append(list(texts))
        out = np.zeros((len(texts), DIM), np.float32)
        for row, text in enumerate(texts):
            for w in words(text):
                out[row, zlib.crc32(w.encode()) % DIM] += 1.0
                out[row, (zlib.crc32(w.encode()) // DIM) % DIM] += 0.5
            norm = float(np.linalg.norm(out[row]))
            if norm > 0:
                out[row] /= norm
        return out


CORPUS = {
    "d1": "the red car drives fast",
    "d2": "a cat sleeps on the sofa",
    "d3": "my dog and my cat play",
    "d4": "vehicle maintenance for every car owner",
    "d5": "fast food and a fast car",
    "d6": "the pet shop sells food for cat and dog",
    "d7": "sofa cleaning tips",
    "d8": "red wine and red cheese",
}


def make_documents(
    sparse: FakeSparseEncoder, dense: FakeDenseEncoder, *, with_vectors: bool = True
) -> list[Document]:
    ids = list(CORPUS)
    texts = [CORPUS[i] for i in ids]
    svecs = sparse.encode_documents(texts)
    dvecs = dense.encode(texts)
    dense.calls.clear()
    return [
        Document(
            id=i,
            fields={"text": t},
            metadata={"lang": "en", "n": n},
            sparse=s if with_vectors else None,
            dense=d if with_vectors else None,
        )
        for n, (i, t, s, d) in enumerate(zip(ids, texts, svecs, dvecs, strict=True))
    ]


class FakeConnector(Connector):
    """In-memory index with exact scoring; records every call."""

    def __init__(
        self,
        documents: Iterable[Document],
        *,
        server_fusion: frozenset[str] = frozenset(),
        weighted_fusion: bool = False,
        lexical: bool = True,
    ) -> None:
        self.docs = {d.id: d for d in documents}
        self.spec = IndexSpec(dense_dim=DIM, text_fields=("text",), lexical=lexical)
        self._caps = Capabilities(
            engine="fake", lexical=lexical, server_fusion=server_fusion, weighted_fusion=weighted_fusion
        )
        self.calls: list[tuple[str, Any]] = []

    # -- writes (not used by hybrid) ----------------------------------------------------------------
    def ensure_index(self, spec: IndexSpec) -> None:
        self.spec = spec

    def upsert(self, documents: Iterable[Document]) -> WriteReport:
        raise NotImplementedError

    def delete(self, ids: Iterable[DocId]) -> WriteReport:
        raise NotImplementedError

    def scan(self, batch_size: int = 500) -> Iterator[Document]:
        yield from self.docs.values()

    def count(self) -> int:
        return len(self.docs)

    def close(self) -> None:
        pass

    def capabilities(self) -> Capabilities:
        return self._caps

    # -- reads ----------------------------------------------------------------------------------------
    def get(self, ids: Sequence[DocId]) -> list[Document | None]:
        self.calls.append(("get", list(ids)))
        return [self.docs.get(i) for i in ids]

    def _allowed(self, doc: Document, filter: FilterLike) -> bool:
        flt = as_filter(filter)
        if flt is None:
            return True
        for cond in flt.conditions:
            assert isinstance(cond, Term), "the fake connector filters on Term only"
            if doc.metadata.get(cond.field) != cond.value:
                return False
        return True

    def _top(self, scores: dict[DocId, float], k: int) -> list[Hit]:
        ranked = sorted(scores.items(), key=lambda kv: (-kv[1], str(kv[0])))[:k]
        return [
            Hit(d, s, r, {**self.docs[d].fields, **self.docs[d].metadata})
            for r, (d, s) in enumerate(ranked, start=1)
        ]

    def search_sparse(self, vector: SparseVector, k: int, filter: FilterLike = None) -> list[Hit]:
        self.calls.append(("sparse", k))
        return self._sparse(vector, k, filter)

    def _sparse(self, vector: SparseVector, k: int, filter: FilterLike) -> list[Hit]:
        scores = {
            d.id: vector.dot(d.sparse)
            for d in self.docs.values()
            if d.sparse is not None and self._allowed(d, filter)
        }
        return self._top({i: s for i, s in scores.items() if s > 0}, k)

    def search_dense(self, vector: NDArray[np.float32], k: int, filter: FilterLike = None) -> list[Hit]:
        self.calls.append(("dense", k))
        return self._dense(vector, k, filter)

    def _dense(self, vector: NDArray[np.float32], k: int, filter: FilterLike) -> list[Hit]:
        scores = {
            d.id: float(np.dot(d.dense.astype(np.float64), vector.astype(np.float64)))
            for d in self.docs.values()
            if d.dense is not None and self._allowed(d, filter)
        }
        return self._top(scores, k)

    def search_text(self, text: str, k: int, filter: FilterLike = None) -> list[Hit]:
        self.calls.append(("bm25", k))
        return self._text(text, k, filter)

    def _text(self, text: str, k: int, filter: FilterLike) -> list[Hit]:
        q = set(words(text))
        scores = {
            d.id: float(sum(1.0 for w in words(d.text()) if w in q))
            for d in self.docs.values()
            if self._allowed(d, filter)
        }
        return self._top({i: s for i, s in scores.items() if s > 0}, k)

    def search_hybrid(self, request: HybridRequest) -> list[Hit]:
        """A naive, independent implementation of `ServerFusion` (rrf and dbsf, missing = 0)."""
        self.calls.append(("hybrid", request.fusion))
        fusion: ServerFusion = request.fusion
        signals: tuple[Signal, ...] = request.signals()
        weights = fusion.weights or (1.0,) * len(signals)
        lists = []
        for s in signals:
            if s == "sparse":
                assert request.sparse is not None
                lists.append(self._sparse(request.sparse, request.candidates, request.filter))
            elif s == "dense":
                assert request.dense is not None
                lists.append(self._dense(request.dense, request.candidates, request.filter))
            else:
                assert request.text is not None
                lists.append(self._text(request.text, request.candidates, request.filter))
        total: dict[DocId, float] = {}
        best: dict[DocId, int] = {}
        for w, hits in zip(weights, lists, strict=True):
            if fusion.method == "dbsf":
                xs = [h.score for h in hits]
                mean = sum(xs) / len(xs) if xs else 0.0
                var = sum((x - mean) ** 2 for x in xs) / (len(xs) - 1) if len(xs) > 1 else 0.0
                lo, hi = mean - 3 * var**0.5, mean + 3 * var**0.5
            for h in hits:
                if fusion.method == "rrf":
                    part = w / (fusion.rank_constant + h.rank)
                else:
                    part = w * (0.5 if var == 0 else (h.score - lo) / (hi - lo))
                total[h.id] = total.get(h.id, 0.0) + part
                best[h.id] = min(best.get(h.id, h.rank), h.rank)
        ranked = sorted(total.items(), key=lambda kv: (-kv[1], best[kv[0]], str(kv[0])))[: request.k]
        return [
            Hit(d, s, r, {**self.docs[d].fields, **self.docs[d].metadata})
            for r, (d, s) in enumerate(ranked, start=1)
        ]
