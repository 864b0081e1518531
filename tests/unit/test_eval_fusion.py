"""Fusion of runs query by query and weight tuning on labels (never on test)."""

from __future__ import annotations

import pytest

from spladebridge.evaluation.fusion import fuse_rrf, fuse_wsum, ranked_to_run, simplex_grid, tune_weights


def test_simplex_grid() -> None:
    grid = simplex_grid(3, 0.1)
    assert len(grid) == 36  # compositions of 10 into 3 positive parts: C(9, 2)
    assert all(abs(sum(w) - 1.0) < 1e-9 and min(w) > 0 for w in grid)
    assert simplex_grid(2, 0.5) == [(0.5, 0.5)]
    with pytest.raises(ValueError):
        simplex_grid(0)


def test_rrf_per_query() -> None:
    a = {"q": [("x", 9.0), ("y", 8.0)]}
    b = {"q": [("y", 0.9), ("z", 0.1)], "q2": [("z", 1.0)]}
    fused = fuse_rrf([a, b], k=60, limit=10)
    assert [d for d, _ in fused["q"]] == ["y", "x", "z"]
    assert fused["q"][0][1] == pytest.approx(1 / 62 + 1 / 61)
    assert fused["q2"] == [("z", pytest.approx(1 / 61))]


def test_wsum_follows_weights() -> None:
    a = {"q": [("x", 10.0), ("y", 0.0)]}
    b = {"q": [("y", 1.0), ("x", 0.0)]}
    assert fuse_wsum([a, b], (0.8, 0.2))["q"][0][0] == "x"
    assert fuse_wsum([a, b], (0.2, 0.8))["q"][0][0] == "y"


def test_tuning_prefers_the_signal_that_agrees_with_the_labels() -> None:
    qrels = {f"q{i}": {f"good{i}": 1} for i in range(6)}
    good = {f"q{i}": [(f"good{i}", 2.0), (f"bad{i}", 1.0), (f"other{i}", 0.5)] for i in range(6)}
    bad = {f"q{i}": [(f"bad{i}", 2.0), (f"other{i}", 1.5), (f"good{i}", 0.1)] for i in range(6)}
    tuned = tune_weights(["good", "bad"], [good, bad], qrels, split="train", step=0.1)
    assert tuned.weights[0] > tuned.weights[1]
    assert tuned.score == pytest.approx(1.0)
    assert tuned.split == "train" and tuned.tried == 9


def test_tuning_on_test_is_refused() -> None:
    with pytest.raises(ValueError, match="test split"):
        tune_weights(["a", "b"], [{}, {}], {"q": {"d": 1}}, split="test")


def test_ranked_to_run_cuts() -> None:
    assert ranked_to_run({"q": [("a", 2.0), ("b", 1.0)]}, 1) == {"q": {"a": 2.0}}
