"""Fuse per-signal runs query by query with `spladebridge.hybrid`, and tune fusion weights on labels.

Tuning only ever sees the qrels it is given; the runner passes the dataset's dev or train split and
never the test split, so reported test numbers are not fitted to the test labels.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from spladebridge.evaluation.metrics import Run
from spladebridge.hybrid.fusion import rrf, weighted_sum
from spladebridge.hybrid.settings import WeightedSum
from spladebridge.hybrid.tuning import tune

__all__ = [
    "RankedRun",
    "TunedWeights",
    "fuse_rrf",
    "fuse_wsum",
    "ranked_to_run",
    "simplex_grid",
    "tune_weights",
]

#: Per query, `(doc_id, score)` pairs best first: what a connector search returns, before scoring.
RankedRun = dict[str, list[tuple[str, float]]]


@dataclass(frozen=True, slots=True)
class TunedWeights:
    """The best weights found on the tuning labels, and the metric they reached there."""

    signals: tuple[str, ...]
    weights: tuple[float, ...]
    metric: str
    score: float
    split: str
    tried: int


def ranked_to_run(ranked: Mapping[str, Sequence[tuple[Any, float]]], limit: int | None = None) -> Run:
    """`{qid: [(doc, score), ...]}` to the `{qid: {doc: score}}` form the metrics take, cut to `limit`."""
    return {qid: {str(d): float(s) for d, s in pairs[:limit]} for qid, pairs in ranked.items()}


def _per_query(runs: Sequence[RankedRun]) -> list[str]:
    qids: dict[str, None] = {}
    for run in runs:
        qids.update(dict.fromkeys(run))
    return list(qids)


def fuse_rrf(
    runs: Sequence[RankedRun], *, k: int = 60, weights: Sequence[float] | None = None, limit: int = 100
) -> RankedRun:
    """Reciprocal rank fusion per query (1-based ranks; a list without the document adds 0)."""
    return {
        qid: rrf([run.get(qid, []) for run in runs], k=k, weights=weights, limit=limit)
        for qid in _per_query(runs)
    }


def fuse_wsum(runs: Sequence[RankedRun], weights: Sequence[float], *, limit: int = 100) -> RankedRun:
    """Weighted sum of per-list min-max normalised scores per query (a missing document adds 0)."""
    return {
        qid: weighted_sum(
            [run.get(qid, []) for run in runs], weights, normalize="minmax", missing="zero", limit=limit
        )
        for qid in _per_query(runs)
    }


def simplex_grid(n: int, step: float = 0.1) -> list[tuple[float, ...]]:
    """Every weight tuple of length `n` on a `step` grid with each weight > 0 and the sum 1 (ranx's grid)."""
    if n < 1 or not 0 < step <= 1:
        raise ValueError(f"need n >= 1 and 0 < step <= 1, got n={n}, step={step}")
    units = round(1 / step)
    out = []
    for combo in itertools.product(range(1, units + 1), repeat=n):
        if sum(combo) == units:
            out.append(tuple(round(c * step, 10) for c in combo))
    return out


def tune_weights(
    signals: Sequence[str],
    runs: Sequence[RankedRun],
    qrels: Mapping[str, Mapping[str, int]],
    *,
    split: str,
    metric: str = "ndcg@10",
    step: float = 0.1,
) -> TunedWeights:
    """Grid-search min-max weighted-sum weights with `spladebridge.hybrid.tune` (first best wins ties).

    The grid is every weight tuple on a `step` grid with each weight > 0 and the sum 1, so each signal
    keeps a say in the result. `split` names the labels (train or dev); "test" is refused.
    """
    if split.strip().lower() == "test":
        raise ValueError("refusing to tune fusion weights on the test split")
    if len(signals) != len(runs) or not runs:
        raise ValueError(f"got {len(runs)} runs for {len(signals)} signals")
    grid = [WeightedSum(weights=w, normalize="minmax", missing="zero") for w in simplex_grid(len(runs), step)]
    result = tune(dict(zip(signals, runs, strict=True)), qrels, metric=metric, grid=grid, split=split)
    assert isinstance(result.best, WeightedSum) and result.best.weights is not None
    return TunedWeights(
        tuple(signals), tuple(result.best.weights), metric, result.best_score, split, len(grid)
    )
