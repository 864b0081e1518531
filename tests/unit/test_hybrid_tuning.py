"""`tune` and `evaluate`: metric values checked by hand, best-of-grid selection, refusals."""

from __future__ import annotations

import math

import pytest

from spladebridge.hybrid import RRF, TwoStage, WeightedSum
from spladebridge.hybrid.tuning import default_grid, evaluate, parse_metric, tune


def _lists(order: str) -> list[tuple[str, float]]:
    return [(d, float(len(order) - i)) for i, d in enumerate(order)]


# sparse is right on q1/q2 and poor on q3/q4, dense the other way round: fusing beats both.
RUNS = {
    "sparse": {
        "q1": _lists("abcdef"),
        "q2": _lists("ghijkl"),
        "q3": _lists("xyzmno"),
        "q4": _lists("pqrstu"),
    },
    "dense": {"q1": _lists("fedcba"), "q2": _lists("lkjihg"), "q3": _lists("mxyzno"), "q4": _lists("rpqstu")},
}
QRELS = {
    "q1": {"a": 1, "f": 1},
    "q2": {"g": 2},
    "q3": {"m": 1},
    "q4": {"r": 1, "zz": 0},
    "q5": {"nothing": 0},  # no relevant document: not counted
}


def test_evaluate_ndcg_by_hand() -> None:
    ranked = {"q": [("x", 3.0), ("rel", 2.0), ("y", 1.0)]}
    got = evaluate(ranked, {"q": {"rel": 1}}, "ndcg@3")
    assert got == pytest.approx((1 / math.log2(3)) / 1.0)
    assert evaluate(ranked, {"q": {"rel": 1}}, "mrr@10") == pytest.approx(0.5)
    assert evaluate(ranked, {"q": {"rel": 1}}, "recall@1") == 0.0


def test_evaluate_follows_list_order_on_score_ties_and_counts_missing_queries_as_zero() -> None:
    # trec_eval would re-break this tie by document id ("b" first); the fused order puts "a" first
    ranked = {"q1": [("a", 1.0), ("b", 1.0)]}
    assert evaluate(ranked, {"q1": {"b": 1}, "q2": {"c": 1}}, "mrr@10") == pytest.approx(0.5 / 2)


def test_tune_picks_the_best_trial_and_reports_everything() -> None:
    result = tune(RUNS, QRELS, "ndcg@3", split="dev")
    assert result.signals == ("sparse", "dense")
    assert result.n_queries == 4
    assert len(result.table) == len(default_grid(2))
    assert result.best_score == max(row.score for row in result.table)
    first_best = next(row for row in result.table if row.score == result.best_score)
    assert result.best == first_best.setting
    assert result.ranked()[0].score == result.best_score
    assert result.best_score > max(result.baselines.values())
    assert result.baselines["sparse"] == pytest.approx(evaluate(RUNS["sparse"], QRELS, "ndcg@3"))
    labels = {row.label for row in result.table}
    assert "rrf(k=60)" in labels and "wsum(minmax,zero,w=0.5/0.5)" in labels


def test_tune_on_a_given_grid_and_mapping_runs() -> None:
    as_maps = {s: {q: dict(lst) for q, lst in run.items()} for s, run in RUNS.items()}
    grid = [WeightedSum((1.0, 0.0)), WeightedSum((0.0, 1.0)), RRF(k=60)]
    result = tune(as_maps, QRELS, "ndcg@3", grid=grid)
    assert [row.setting for row in result.table] == grid
    assert result.table[0].score == pytest.approx(result.baselines["sparse"])
    assert result.table[1].score == pytest.approx(result.baselines["dense"])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"split": "test"}, "never on the test split"),
        ({"grid": [TwoStage()]}, "evaluate two-stage"),
        ({"grid": [RRF(weights=(1.0, 1.0, 1.0))]}, "3 weights for 2 signals"),
        ({"grid": []}, "grid is empty"),
        ({"metric": "bogus@10"}, "unknown metric"),
    ],
)
def test_tune_refusals(kwargs: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ValueError, match=message):
        tune(RUNS, QRELS, **kwargs)


def test_default_grid_shape() -> None:
    two, three = default_grid(2), default_grid(3)
    assert sum(isinstance(s, RRF) for s in two) == 8 and isinstance(two[0], RRF) and two[0].k == 60
    assert sum(isinstance(s, WeightedSum) for s in two) == 3 * 11
    assert sum(isinstance(s, WeightedSum) for s in three) == 3 * 21
    for s in three:
        if isinstance(s, WeightedSum):
            assert s.weights is not None and sum(s.weights) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="divide 1"):
        default_grid(2, weight_step=0.3)


def test_parse_metric_aliases() -> None:
    assert str(parse_metric("ndcg@10")) == "nDCG@10"
    assert str(parse_metric("map@100")) == "AP@100"
    assert str(parse_metric("MRR@10")) == "RR@10"
