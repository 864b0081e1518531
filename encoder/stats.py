"""Counters of what an encoder did (texts, empties, truncations) and sparsity statistics of SPLADE vectors."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from spladebridge.encoder.sparse_vector import SparseVector

__all__ = ["EncodeStats", "SparsityStats", "sparsity_stats"]


@dataclass
class EncodeStats:
    """What an encoder saw: texts in, how many were empty, how many were cut to `max_length`, tokens run."""

    texts: int = 0
    empty: int = 0
    truncated: int = 0
    tokens: int = 0
    batches: int = 0

    def add(self, other: EncodeStats) -> None:
        """Accumulate `other` into this one."""
        self.texts += other.texts
        self.empty += other.empty
        self.truncated += other.truncated
        self.tokens += other.tokens
        self.batches += other.batches


@dataclass(frozen=True)
class SparsityStats:
    """Sparsity of a set of vectors.

    `flops` is the SPLADE papers' FLOPS (Paria et al. 2020; Formal et al. 2021): the expected number of
    multiplications in one query-document dot product, sum over dims j of p_j(queries) * p_j(documents), where
    p_j is the fraction of vectors with dim j active. Without queries it is sum_j p_j(documents)^2.
    """

    count: int
    mean_active_dims: float
    median_active_dims: float
    max_active_dims: int
    sparsity_ratio: float  # 1 - mean_active_dims / vocab_size
    flops: float
    vocab_size: int


def _activation_rate(vectors: Sequence[SparseVector], vocab_size: int) -> np.ndarray:
    counts = np.zeros(vocab_size, dtype=np.float64)
    for position, vec in enumerate(vectors):
        if not isinstance(vec, SparseVector):
            raise TypeError(f"item {position} is a {type(vec).__name__}, not a SparseVector")
        if vec.nnz and int(vec.indices[-1]) >= vocab_size:
            raise ValueError(f"item {position} has index {int(vec.indices[-1])} >= vocab_size {vocab_size}")
        counts[vec.indices] += 1.0
    return counts / max(len(vectors), 1)


def sparsity_stats(
    vectors: Sequence[SparseVector], vocab_size: int, *, queries: Sequence[SparseVector] | None = None
) -> SparsityStats:
    """Mean/median/max active dimensions and FLOPS of `vectors` (documents), optionally against `queries`."""
    if vocab_size < 1:
        raise ValueError(f"vocab_size must be >= 1, got {vocab_size}")
    p_docs = _activation_rate(vectors, vocab_size)
    p_queries = _activation_rate(queries, vocab_size) if queries is not None else p_docs
    active = np.asarray([vec.nnz for vec in vectors], dtype=np.float64)
    mean_active = float(active.mean()) if active.size else 0.0
    return SparsityStats(
        count=len(vectors),
        mean_active_dims=mean_active,
        median_active_dims=float(np.median(active)) if active.size else 0.0,
        max_active_dims=int(active.max()) if active.size else 0,
        sparsity_ratio=1.0 - mean_active / vocab_size,
        flops=float(np.dot(p_docs, p_queries)),
        vocab_size=vocab_size,
    )
