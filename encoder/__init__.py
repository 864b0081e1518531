"""Text to SPLADE term-weight maps (`SparseVector`) and dense embeddings. Knows models, not engines.

`SpladeEncoder` and `DenseEncoder` import torch, so they load on first use; everything else here is light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from spladebridge.encoder.idf import IdfTable, IdfTableError
from spladebridge.encoder.inputs import EncoderInputError
from spladebridge.encoder.models import ModelNotFoundError, resolve_model
from spladebridge.encoder.sparse_vector import SparseVector, SparseVectorError
from spladebridge.encoder.stats import EncodeStats, SparsityStats, sparsity_stats

if TYPE_CHECKING:
    from spladebridge.encoder.dense import DenseEncoder
    from spladebridge.encoder.splade import SpladeEncoder

_LAZY = {"SpladeEncoder": "spladebridge.encoder.splade", "DenseEncoder": "spladebridge.encoder.dense"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'spladebridge.encoder' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "DenseEncoder",
    "EncodeStats",
    "EncoderInputError",
    "IdfTable",
    "IdfTableError",
    "ModelNotFoundError",
    "SparseVector",
    "SparseVectorError",
    "SparsityStats",
    "SpladeEncoder",
    "resolve_model",
    "sparsity_stats",
]
