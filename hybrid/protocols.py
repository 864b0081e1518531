"""The encoder side of hybrid search as typing Protocols, so that `spladebridge.hybrid` needs no model class.

`spladebridge.encoder.splade.SpladeEncoder` and `spladebridge.encoder.dense.DenseEncoder` satisfy these;
tests use small fakes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from spladebridge.encoder.sparse_vector import SparseVector

__all__ = ["DenseTextEncoder", "ExplainingSparseEncoder", "SparseDocumentEncoder", "SparseQueryEncoder"]


@runtime_checkable
class SparseQueryEncoder(Protocol):
    """Encodes query texts into learned-sparse vectors (one per text, in order)."""

    def encode_queries(self, texts: Sequence[str]) -> list[SparseVector]: ...


@runtime_checkable
class ExplainingSparseEncoder(Protocol):
    """A sparse encoder that can name the expansion terms behind a query-document match."""

    def explain(
        self, query_vec: SparseVector, doc_vec: SparseVector, top_k: int | None = None
    ) -> list[tuple[str, float]]: ...


@runtime_checkable
class SparseDocumentEncoder(Protocol):
    """A sparse encoder that encodes documents (used by two-stage rescoring with `source="encode"`)."""

    def encode_documents(self, texts: Sequence[str]) -> list[SparseVector]: ...


@runtime_checkable
class DenseTextEncoder(Protocol):
    """Encodes texts into an (n, dim) float32 array of L2-normalised rows."""

    def encode(self, texts: Sequence[str]) -> NDArray[np.float32]: ...
