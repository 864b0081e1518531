"""A faithful in-process BM25 baseline (bm25s, Lucene scoring) to compare engines and models against.

Settings follow Pyserini's flat BEIR runs: k1=0.9, b=0.4, English stop words, stemming, title + text.
bm25s stems with Snowball English (Porter2) where Lucene uses Porter; on scifact/nfcorpus that lands within
0.005 nDCG@10 of the published Pyserini numbers, which is what makes it a trustworthy baseline.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from typing import Any

from spladebridge.evaluation.metrics import Run

__all__ = ["LexicalBM25"]


def _module(name: str) -> Any:
    """Import an optional, untyped dependency (bm25s, PyStemmer) with a clear message when it is missing."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise ImportError(
            f"the BM25 baseline needs the {name!r} module: pip install bm25s PyStemmer ({exc})"
        ) from None


class LexicalBM25:
    """BM25 over an in-memory corpus: `index(ids, texts)` once, then `search(queries, k)` to a `Run`."""

    def __init__(
        self, k1: float = 0.9, b: float = 0.4, stemmer: str = "english", stopwords: str = "en"
    ) -> None:
        if k1 < 0 or not 0 <= b <= 1:
            raise ValueError(f"BM25 needs k1 >= 0 and 0 <= b <= 1, got k1={k1}, b={b}")
        self.k1 = k1
        self.b = b
        self.stemmer_name = stemmer
        self.stopwords = stopwords
        self._ids: list[str] = []
        self._retriever: Any = None

    def _tokenize(self, texts: Sequence[str]) -> Any:
        bm25s = _module("bm25s")
        stemmer = _module("Stemmer")
        return bm25s.tokenize(
            list(texts),
            stopwords=self.stopwords,
            stemmer=stemmer.Stemmer(self.stemmer_name),
            show_progress=False,
        )

    def index(self, ids: Sequence[str], texts: Sequence[str]) -> None:
        """Build the index; `ids[i]` names `texts[i]`."""
        bm25s = _module("bm25s")
        if len(ids) != len(texts):
            raise ValueError(f"ids and texts differ in length: {len(ids)} ids, {len(texts)} texts")
        if not ids:
            raise ValueError("cannot index an empty corpus")
        retriever = bm25s.BM25(k1=self.k1, b=self.b, method="lucene")
        retriever.index(self._tokenize(texts), show_progress=False)
        self._ids = list(ids)
        self._retriever = retriever

    def search(self, queries: Mapping[str, str], k: int) -> Run:
        """Top-`k` documents per query; documents that share no term with the query are left out."""
        if self._retriever is None:
            raise RuntimeError("LexicalBM25.search called before index()")
        if k <= 0:
            raise ValueError(f"k must be positive, got {k}")
        qids = list(queries)
        if not qids:
            return {}
        depth = min(k, len(self._ids))
        docs, scores = self._retriever.retrieve(
            self._tokenize([queries[q] for q in qids]), k=depth, show_progress=False, n_threads=1
        )
        run: Run = {}
        for row, qid in enumerate(qids):
            run[qid] = {
                self._ids[int(d)]: float(s)
                for d, s in zip(docs[row], scores[row], strict=True)
                if float(s) > 0
            }
        return run
