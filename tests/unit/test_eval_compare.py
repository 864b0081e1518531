"""Per-query wins and losses against a baseline, and choosing the best single signal."""

from __future__ import annotations

import pytest

from spladebridge.evaluation.compare import best_system, wins_losses


def test_counts_and_largest_swings() -> None:
    mine = {"a": 0.9, "b": 0.1, "c": 0.5, "d": 0.7, "e": 0.3}
    base = {"a": 0.4, "b": 0.6, "c": 0.5, "d": 0.6, "e": 0.35}
    result = wins_losses("hybrid", mine, "bm25", base, top=1)
    assert (result.wins, result.losses, result.ties) == (2, 2, 1)
    assert result.top_wins == [("a", pytest.approx(0.5))]
    assert result.top_losses == [("b", pytest.approx(-0.5))]
    assert result.mean_delta == pytest.approx((0.5 - 0.5 + 0 + 0.1 - 0.05) / 5)
    obj = result.to_json_obj()
    assert obj["system"] == "hybrid" and obj["baseline"] == "bm25"
    assert obj["top_wins"] == [{"query_id": "a", "delta": pytest.approx(0.5)}]


def test_tolerance_turns_small_differences_into_ties() -> None:
    result = wins_losses("x", {"q": 0.501}, "y", {"q": 0.5}, tolerance=0.01)
    assert (result.wins, result.losses, result.ties) == (0, 0, 1)


def test_different_query_sets_are_rejected() -> None:
    with pytest.raises(ValueError, match=r"cover different queries, e\.g\. 'q2'"):
        wins_losses("x", {"q1": 1.0}, "y", {"q1": 1.0, "q2": 0.0})


def test_best_system() -> None:
    means = {"bm25": {"ndcg@10": 0.6}, "splade": {"ndcg@10": 0.7}, "dense": {"ndcg@10": 0.65}}
    assert best_system(means) == "splade"
    with pytest.raises(ValueError, match="no systems"):
        best_system({})
