"""The client-side twin (`spladebridge.hybrid.fusion`) agrees with OpenSearch's search-pipeline processors.

`_OpenSearchModel` re-implements, in Python, what neural-search does to the sub-query results of a
`hybrid` query on one shard (MinMaxScoreNormalizationTechnique, L2ScoreNormalizationTechnique,
ArithmeticMeanScoreCombinationTechnique, where a sub-query that did not return a document counts 0 with its full
weight, as real 2.19.1 and 3.6.0 nodes do (tests/live), RRFNormalizationTechnique +
RRFScoreCombinationTechnique). The tests feed the same candidate lists to that model (configured from
`plan_fusion`'s pipeline, so the mapping is what is tested) and to the hybrid module's fusion functions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spladebridge.connectors.base import ServerFusion
from spladebridge.connectors.opensearch_pipelines import PipelineError, plan_fusion
from spladebridge.hybrid import fusion as fuse

Ranked = list[tuple[int, float]]
_MIN_SCORE = 0.001  # MinMaxScoreNormalizationTechnique.MIN_SCORE
_SINGLE_RESULT_SCORE = 1.0
_NOT_RETURNED = 0.0  # what a sub-query that did not return the document contributes (real nodes, tests/live)


def _minmax(scores: list[float], floor: float) -> list[float]:
    lo, hi = min(scores), max(scores)
    out = []
    for s in scores:
        if hi == lo and s == hi:
            out.append(_SINGLE_RESULT_SCORE)
            continue
        n = (s - lo) / (hi - lo)
        out.append(floor if n == 0.0 else n)
    return out


def _l2(scores: list[float]) -> list[float]:
    norm = math.sqrt(sum(s * s for s in scores))
    return [0.0 if norm == 0 else s / norm for s in scores]


class _OpenSearchModel:
    """One search pipeline's phase-results processor, applied to per-sub-query candidate lists."""

    def __init__(self, pipeline_body: dict[str, Any], minmax_floor: float = _MIN_SCORE) -> None:
        ((name, proc),) = pipeline_body["phase_results_processors"][0].items()
        self.kind = name
        self.floor = minmax_floor
        if name == "normalization-processor":
            self.technique = proc["normalization"]["technique"]
            assert proc["combination"]["technique"] == "arithmetic_mean"
            self.weights = proc["combination"].get("parameters", {}).get("weights")
        else:
            self.rank_constant = proc["combination"]["rank_constant"]
            self.weights = proc["combination"].get("parameters", {}).get("weights")

    def fuse(self, lists: Sequence[Ranked]) -> dict[int, float]:
        per_doc: dict[int, list[float]] = {}
        for i, lst in enumerate(lists):
            if not lst:
                continue
            raw = [s for _, s in lst]
            if self.kind == "score-ranker-processor":
                normed = [1.0 / (self.rank_constant + rank) for rank in range(1, len(lst) + 1)]
            elif self.technique == "min_max":
                normed = _minmax(raw, self.floor)
            else:
                normed = _l2(raw)
            for (doc, _), n in zip(lst, normed, strict=True):
                per_doc.setdefault(doc, [_NOT_RETURNED] * len(lists))[i] = n
        weights = self.weights or [1.0] * len(lists)
        out: dict[int, float] = {}
        for doc, scores in per_doc.items():
            present = [(w, s) for w, s in zip(weights, scores, strict=True) if s >= 0.0]
            total = sum(w * s for w, s in present)
            if self.kind == "score-ranker-processor":
                out[doc] = total  # RRFScoreCombinationTechnique: a weighted sum
            else:
                denom = sum(w for w, _ in present)
                out[doc] = 0.0 if denom == 0 else total / denom
        return out


@st.composite
def candidate_lists(draw: st.DrawFn) -> tuple[list[Ranked], tuple[float, ...]]:
    n_lists = draw(st.integers(1, 5))
    lists: list[Ranked] = []
    for _ in range(n_lists):
        ids = draw(st.lists(st.integers(0, 25), min_size=1, max_size=15, unique=True))
        scores = sorted(
            draw(st.lists(st.floats(0.01, 50.0), min_size=len(ids), max_size=len(ids))), reverse=True
        )
        lists.append(list(zip(ids, scores, strict=True)))
    weights = tuple(draw(st.lists(st.floats(0.05, 5.0), min_size=n_lists, max_size=n_lists)))
    return lists, weights


def _order_agrees(model: dict[int, float], twin: dict[int, float], margin: float) -> None:
    ids = list(model)
    for a in ids:
        for b in ids:
            if model[a] > model[b] + margin:
                assert twin[a] > twin[b], f"OpenSearch ranks {a} above {b}, the twin does not"


@settings(max_examples=150, deadline=None)
@given(candidate_lists())
def test_rrf_twin_matches_score_ranker_processor(case: tuple[list[Ranked], tuple[float, ...]]) -> None:
    lists, weights = case
    plan = plan_fusion(ServerFusion(method="rrf", rank_constant=60, weights=weights), len(lists))
    model = _OpenSearchModel(plan.pipeline.body).fuse(lists)
    twin = dict(fuse.rrf(lists, k=60, weights=weights))
    assert set(model) == set(twin)
    for doc, score in model.items():
        assert score * plan.score_scale == pytest.approx(twin[doc], rel=1e-9)


@settings(max_examples=150, deadline=None)
@given(candidate_lists())
def test_l2_arithmetic_mean_twin_matches_normalization_processor(
    case: tuple[list[Ranked], tuple[float, ...]],
) -> None:
    lists, weights = case
    fusion = ServerFusion(method="linear", normalizer="l2", missing="zero", weights=weights)
    plan = plan_fusion(fusion, len(lists))
    model = _OpenSearchModel(plan.pipeline.body).fuse(lists)
    twin = dict(fuse.weighted_sum(lists, weights, normalize="l2", missing="zero"))
    assert set(model) == set(twin)
    for doc, score in model.items():
        assert score * plan.score_scale == pytest.approx(twin[doc], rel=1e-9, abs=1e-12)


@settings(max_examples=150, deadline=None)
@given(candidate_lists())
def test_minmax_arithmetic_mean_twin_matches_up_to_the_min_score_floor(
    case: tuple[list[Ranked], tuple[float, ...]],
) -> None:
    """Exactly equal once OpenSearch's 0.001 floor for a sub-query's lowest score is taken out; within
    0.001 with it, and the same order wherever OpenSearch's scores differ by more than that."""
    lists, weights = case
    fusion = ServerFusion(method="linear", normalizer="minmax", missing="zero", weights=weights)
    plan = plan_fusion(fusion, len(lists))
    twin = dict(fuse.weighted_sum(lists, weights, normalize="minmax", missing="zero"))
    scale = plan.score_scale
    exact = _OpenSearchModel(plan.pipeline.body, minmax_floor=0.0).fuse(lists)
    for doc, score in exact.items():
        assert score * scale == pytest.approx(twin[doc], rel=1e-9, abs=1e-12)
    model = {doc: score * scale for doc, score in _OpenSearchModel(plan.pipeline.body).fuse(lists).items()}
    for doc, score in model.items():
        assert abs(score - twin[doc]) <= _MIN_SCORE * scale + 1e-12
    _order_agrees(model, twin, margin=2 * _MIN_SCORE * scale)


def test_a_document_found_by_one_sub_query_counts_zero_in_the_other() -> None:
    """Doc 9, top of list 0 only, ties doc 1 there but not overall: OpenSearch averages in a 0 for list 1."""
    lists: list[Ranked] = [[(1, 5.0), (9, 5.0), (2, 1.0)], [(1, 3.0), (3, 1.0)]]
    plan = plan_fusion(ServerFusion(method="linear", normalizer="minmax", missing="zero"), 2)
    model = _OpenSearchModel(plan.pipeline.body).fuse(lists)
    twin = dict(fuse.weighted_sum(lists, normalize="minmax", missing="zero"))
    assert model[1] == pytest.approx(1.0) and model[9] == pytest.approx(0.5)
    assert twin[1] == pytest.approx(model[1] * plan.score_scale)
    assert twin[9] == pytest.approx(model[9] * plan.score_scale)
    with pytest.raises(PipelineError, match="missing='exclude'"):
        plan_fusion(ServerFusion(method="linear", normalizer="minmax", missing="exclude"), 2)
