"""The column names `encode()` adds and `write()` reads, and the metadata key that carries the dense size."""

from __future__ import annotations

__all__ = ["DENSE", "DIM_KEY", "ENCODE_ERROR", "SPARSE_INDICES", "SPARSE_VALUES", "VECTOR_COLUMNS"]

SPARSE_INDICES = "sparse_indices"
SPARSE_VALUES = "sparse_values"
DENSE = "dense"
#: Null when the row encoded; otherwise why it did not (such rows become dead letters in `write()`).
ENCODE_ERROR = "encode_error"
VECTOR_COLUMNS = (SPARSE_INDICES, SPARSE_VALUES, DENSE, ENCODE_ERROR)
#: Column metadata on `dense`: {"spladebridge": {"dim": 384, "model": ...}}, so `write()` can size the index
#: without computing a row.
DIM_KEY = "spladebridge"
