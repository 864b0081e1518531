"""Hybrid search: fusion of ranked lists (pure functions), tuning on labelled data, `HybridSearcher` and its
asyncio twin `AsyncHybridSearcher`."""

from __future__ import annotations

from spladebridge.hybrid.async_searcher import AsyncHybridSearcher
from spladebridge.hybrid.fusion import (
    MISSING_POLICIES,
    NORMALIZERS,
    FusedTable,
    FusionError,
    MissingPolicy,
    Normalizer,
    RankedList,
    convex,
    normalize_scores,
    rrf,
    rrf_table,
    weighted_sum,
    weighted_sum_table,
)
from spladebridge.hybrid.protocols import DenseTextEncoder, SparseQueryEncoder
from spladebridge.hybrid.searcher import DEFAULT_FUSION, FusedHit, HybridSearcher, SignalResult
from spladebridge.hybrid.settings import (
    RRF,
    FusionSetting,
    TwoStage,
    WeightedSum,
    fuse_table,
    to_server_fusion,
)
from spladebridge.hybrid.tuning import TrialRow, TuningResult, default_grid, evaluate, tune
from spladebridge.hybrid.two_stage import rescore

__all__ = [
    "DEFAULT_FUSION",
    "MISSING_POLICIES",
    "NORMALIZERS",
    "RRF",
    "AsyncHybridSearcher",
    "DenseTextEncoder",
    "FusedHit",
    "FusedTable",
    "FusionError",
    "FusionSetting",
    "HybridSearcher",
    "MissingPolicy",
    "Normalizer",
    "RankedList",
    "SignalResult",
    "SparseQueryEncoder",
    "TrialRow",
    "TuningResult",
    "TwoStage",
    "WeightedSum",
    "convex",
    "default_grid",
    "evaluate",
    "fuse_table",
    "normalize_scores",
    "rescore",
    "rrf",
    "rrf_table",
    "to_server_fusion",
    "tune",
    "weighted_sum",
    "weighted_sum_table",
]
