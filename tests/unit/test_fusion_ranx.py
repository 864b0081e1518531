"""Equivalence with ranx (the reference fusion library): same rankings, scores within 1e-9, on random runs."""

from __future__ import annotations

import warnings
from itertools import pairwise
from typing import Any

import numpy as np
import pytest

from spladebridge.hybrid.fusion import rrf, weighted_sum

ranx = pytest.importorskip("ranx")

N_QUERIES = 40


def _random_runs(seed: int, n_runs: int) -> list[dict[str, dict[str, float]]]:
    """Runs over a shared pool of documents, varied depth and overlap, distinct scores per list."""
    rng = np.random.default_rng(seed)
    runs: list[dict[str, dict[str, float]]] = [{} for _ in range(n_runs)]
    for q in range(N_QUERIES):
        pool = int(rng.integers(5, 60))
        for run in runs:
            depth = int(rng.integers(2, pool + 1))
            docs = rng.choice(pool, depth, replace=False)
            scores = rng.normal(rng.uniform(-5, 5), rng.uniform(0.1, 10), depth)
            run[f"q{q}"] = {f"d{d}": float(s) for d, s in zip(docs, scores, strict=True)}
    return runs


def _as_lists(runs: list[dict[str, dict[str, float]]], qid: str) -> list[list[tuple[str, float]]]:
    return [sorted(run[qid].items(), key=lambda kv: -kv[1]) for run in runs]


def _ranx_fuse(runs: list[dict[str, dict[str, float]]], **kwargs: Any) -> dict[str, dict[str, float]]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fused = ranx.fuse([ranx.Run(r) for r in runs], **kwargs)
    return {q: dict(docs) for q, docs in fused.to_dict().items()}


def _assert_same(ours: list[tuple[str, float]], theirs: dict[str, float]) -> None:
    assert {d for d, _ in ours} == set(theirs)
    for doc_id, score in ours:
        assert score == pytest.approx(theirs[doc_id], abs=1e-9, rel=0)
    # identical ranking: every strictly better ranx score is ranked strictly earlier by us
    scores = [theirs[d] for d, _ in ours]
    assert all(a >= b - 1e-12 for a, b in pairwise(scores))


@pytest.mark.parametrize("n_runs", [2, 3, 4])
@pytest.mark.parametrize("k", [1, 60])
def test_rrf_matches_ranx(n_runs: int, k: int) -> None:
    runs = _random_runs(seed=n_runs * 100 + k, n_runs=n_runs)
    theirs = _ranx_fuse(runs, method="rrf", norm=None, params={"k": k})
    for qid in theirs:
        _assert_same(rrf(_as_lists(runs, qid), k=k), theirs[qid])


@pytest.mark.parametrize(("norm", "ranx_norm"), [("minmax", "min-max"), ("zscore", "zmuv"), ("max", "max")])
@pytest.mark.parametrize("n_runs", [2, 3])
def test_combsum_matches_ranx(norm: str, ranx_norm: str, n_runs: int) -> None:
    runs = _random_runs(seed=7 + n_runs, n_runs=n_runs)
    if norm == "max":  # ranx's max norm is s / max, ours s / max|s|: equal for positive scores
        runs = [{q: {d: abs(s) + 0.01 for d, s in docs.items()} for q, docs in r.items()} for r in runs]
    theirs = _ranx_fuse(runs, method="sum", norm=ranx_norm)
    for qid in theirs:
        _assert_same(weighted_sum(_as_lists(runs, qid), normalize=norm), theirs[qid])  # type: ignore[arg-type]


def test_weighted_minmax_matches_ranx_wsum() -> None:
    runs = _random_runs(seed=3, n_runs=3)
    weights = [0.2, 0.5, 0.3]
    theirs = _ranx_fuse(runs, method="wsum", norm="min-max", params={"weights": weights})
    for qid in theirs:
        _assert_same(weighted_sum(_as_lists(runs, qid), weights, normalize="minmax"), theirs[qid])
