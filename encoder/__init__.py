"""Text to SPLADE term-weight maps (`SparseVector`) and dense embeddings. Knows models, not engines."""

from spladebridge.encoder.sparse_vector import SparseVector, SparseVectorError

__all__ = ["SparseVector", "SparseVectorError"]
