"""Query texts -> the vectors a hybrid search needs, one batch per encoder (blocking; shared by both searchers)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from spladebridge.encoder.sparse_vector import SparseVector
from spladebridge.hybrid.protocols import DenseTextEncoder, SparseQueryEncoder

__all__ = ["EncodedQuery", "encode_queries"]


@dataclass(slots=True)
class EncodedQuery:
    """One query: its text and, where a signal needs them, its sparse and dense vectors."""

    text: str
    sparse: SparseVector | None
    dense: NDArray[np.float32] | None


def encode_queries(
    texts: Sequence[str],
    sparse_encoder: SparseQueryEncoder | None,
    dense_encoder: DenseTextEncoder | None,
) -> list[EncodedQuery]:
    """Encode `texts` in one batch per given encoder (None: that vector is not needed), checking the counts."""
    n = len(texts)
    sparse: list[SparseVector] | list[None] = [None] * n
    dense: list[NDArray[np.float32]] | list[None] = [None] * n
    if n and sparse_encoder is not None:
        sparse = sparse_encoder.encode_queries(list(texts))
        if len(sparse) != n:
            raise RuntimeError(f"sparse encoder returned {len(sparse)} vectors for {n} queries")
    if n and dense_encoder is not None:
        matrix = np.asarray(dense_encoder.encode(list(texts)), dtype=np.float32)
        if matrix.ndim != 2 or matrix.shape[0] != n:
            raise RuntimeError(f"dense encoder returned shape {matrix.shape} for {n} queries")
        dense = list(matrix)
    return [EncodedQuery(t, s, d) for t, s, d in zip(texts, sparse, dense, strict=True)]
