"""A small deterministic corpus for the Qdrant connector tests, with brute-force reference scorers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from spladebridge.connectors.base import DocId, Document, IndexSpec
from spladebridge.encoder.sparse_vector import SparseVector

DIM = 8
VOCAB = 120
WORDS = ["cat", "dog", "fish", "bird", "tree", "river", "stone", "cloud", "fire", "snow", "lamp", "road"]
SPEC = IndexSpec(name="sb_test", dense_dim=DIM, text_fields=("title", "text"))


def make_docs(n: int = 60, seed: int = 7) -> list[Document]:
    """`n` documents with int and str ids, text, metadata, a sparse and a dense vector."""
    rng = np.random.default_rng(seed)
    docs = []
    for i in range(n):
        nnz = int(rng.integers(6, 14))
        idx = rng.choice(VOCAB, size=nnz, replace=False)
        words = rng.choice(WORDS, size=int(rng.integers(3, 8)))
        doc_id: DocId = i if i % 3 else f"doc-{i}"
        docs.append(
            Document(
                id=doc_id,
                fields={"title": f"title {i}", "text": " ".join(words)},
                metadata={
                    "year": 1990 + i % 30,
                    "lang": ["en", "de", "fr"][i % 3],
                    "score": round(i * 0.1, 1),
                },
                sparse=SparseVector(idx, rng.random(nnz) + 0.05),
                dense=rng.normal(size=DIM).astype(np.float32),
            )
        )
    return docs


def query_sparse(seed: int = 1) -> SparseVector:
    rng = np.random.default_rng(seed)
    idx = rng.choice(VOCAB, size=20, replace=False)
    return SparseVector(idx, rng.random(20) + 0.1)


def query_dense(seed: int = 1) -> NDArray[np.float32]:
    return np.random.default_rng(seed + 100).normal(size=DIM).astype(np.float32)


def brute_sparse(
    docs: list[Document], q: SparseVector, keep: Callable[[Document], bool] = lambda d: True
) -> list[tuple[DocId, float]]:
    """Every matching document by exact dot product, best first (documents with no shared term left out)."""
    scored = [(d.id, q.dot(d.sparse)) for d in docs if d.sparse is not None and keep(d)]
    return sorted([s for s in scored if s[1] > 0], key=lambda s: -s[1])


def brute_dense(docs: list[Document], q: NDArray[np.float32]) -> list[tuple[DocId, float]]:
    """Every document by cosine similarity, best first."""
    qn = q / np.linalg.norm(q)
    scored = []
    for d in docs:
        assert d.dense is not None
        scored.append((d.id, float(np.dot(qn, d.dense / np.linalg.norm(d.dense)))))
    return sorted(scored, key=lambda s: -s[1])


def assert_same_ranking(
    got: list[tuple[Any, float]], want: list[tuple[Any, float]], k: int | None = None, rel: float = 1e-5
) -> None:
    """`got` is a top-k of the full reference ranking `want`, up to ties and float32 precision.

    Every returned id has its reference score, and the returned scores are the k best reference scores in
    order; among equal scores (RRF ties are common) any order and any cut is accepted.
    """
    k = len(want) if k is None else k
    assert len(got) == min(k, len(want)), (got, want[:k])
    ref = dict(want)

    def close(a: float, b: float) -> bool:
        return abs(a - b) <= rel * max(1.0, abs(a), abs(b))

    for doc_id, score in got:
        assert doc_id in ref, f"{doc_id!r} is not in the reference; got {got}, want {want[:k]}"
        assert close(score, ref[doc_id]), f"{doc_id!r}: score {score} != reference {ref[doc_id]}"
    for pos, ((a, sa), (b, sb)) in enumerate(zip(got, want, strict=False)):
        assert close(sa, sb), f"position {pos}: {a!r} scores {sa}, reference has {b!r} at {sb}"
