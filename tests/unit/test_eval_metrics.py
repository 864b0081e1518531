"""Metrics through ir-measures: values checked against the textbook formulas, zeros for silent queries."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spladebridge.evaluation.metrics import MetricError, evaluate, measure_for


def dcg(gains: list[float]) -> float:
    return sum(g / math.log2(i + 2) for i, g in enumerate(gains))


def test_values_match_formulas() -> None:
    qrels = {"q1": {"a": 2, "b": 1, "c": 1}}
    run = {"q1": {"x": 3.0, "b": 2.0, "a": 1.0}}
    scores = evaluate(qrels, run)
    assert scores.means["ndcg@10"] == pytest.approx(dcg([0, 1, 2]) / dcg([2, 1, 1]))
    assert scores.means["mrr@10"] == pytest.approx(0.5)
    assert scores.means["recall@100"] == pytest.approx(2 / 3)


def test_query_without_results_counts_as_zero() -> None:
    qrels = {"q1": {"a": 1}, "q2": {"b": 1}}
    scores = evaluate(qrels, {"q1": {"a": 1.0}, "unjudged": {"a": 1.0}})
    assert scores.per_query["q2"] == {"ndcg@10": 0.0, "recall@100": 0.0, "mrr@10": 0.0}
    assert scores.means["ndcg@10"] == pytest.approx(0.5)
    assert set(scores.per_query) == {"q1", "q2"}


def test_cutoffs_apply() -> None:
    qrels = {"q": {"rel": 1}}
    run = {"q": {f"d{i}": 100.0 - i for i in range(11)} | {"rel": 1.0}}
    scores = evaluate(qrels, run)
    assert scores.means["mrr@10"] == 0.0
    assert scores.means["ndcg@10"] == 0.0
    assert scores.means["recall@100"] == 1.0


def test_metric_names() -> None:
    assert str(measure_for("ndcg@10")) == "nDCG@10"
    assert str(measure_for("recall@100")) == "R@100"
    assert str(measure_for("mrr@10")) == "RR@10"
    with pytest.raises(MetricError, match="unknown metric 'bogus@3'"):
        measure_for("bogus@3")
    with pytest.raises(MetricError, match="qrels are empty"):
        evaluate({}, {})


@settings(max_examples=40, deadline=None)
@given(
    rels=st.lists(st.integers(min_value=0, max_value=3), min_size=1, max_size=15),
    order=st.permutations(list(range(15))),
)
def test_ndcg_matches_formula_for_any_ranking(rels: list[int], order: list[int]) -> None:
    docs = [f"d{i}" for i in range(len(rels))]
    qrels = {"q": {d: r for d, r in zip(docs, rels, strict=True)}}
    ranked = [docs[i] for i in order if i < len(docs)]
    run = {"q": {d: float(len(ranked) - pos) for pos, d in enumerate(ranked)}}
    ideal = dcg(sorted(rels, reverse=True)[:10])
    expected = dcg([qrels["q"][d] for d in ranked[:10]]) / ideal if ideal > 0 else 0.0
    assert evaluate(qrels, run).means["ndcg@10"] == pytest.approx(expected, abs=1e-9)
