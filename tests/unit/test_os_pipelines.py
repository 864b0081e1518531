"""Search pipelines: which ServerFusion settings map onto OpenSearch's processors, and how."""

from __future__ import annotations

from typing import Any

import pytest

from spladebridge.connectors.base import ServerFusion
from spladebridge.connectors.opensearch_pipelines import (
    PipelineError,
    fusion_problem,
    normalization_processor,
    normalized_weights,
    pipeline_name,
    plan_fusion,
    score_ranker_processor,
)


def _processor(body: dict[str, Any]) -> dict[str, Any]:
    processors = body["phase_results_processors"]
    assert isinstance(processors, list) and len(processors) == 1
    proc: dict[str, Any] = processors[0]
    return proc


def test_rrf_maps_to_score_ranker_with_rank_constant_and_no_weights_when_equal() -> None:
    plan = plan_fusion(ServerFusion(method="rrf", rank_constant=20), 2)
    combo = _processor(plan.pipeline.body)["score-ranker-processor"]["combination"]
    assert combo == {"technique": "rrf", "rank_constant": 20}
    assert plan.score_scale == 1.0 and plan.pipeline.min_version == (2, 19)


def test_weighted_rrf_renormalises_weights_and_scales_scores_back() -> None:
    plan = plan_fusion(ServerFusion(method="rrf", weights=(3.0, 1.0)), 2)
    combo = _processor(plan.pipeline.body)["score-ranker-processor"]["combination"]
    assert combo["parameters"]["weights"] == [0.75, 0.25]
    assert plan.score_scale == 4.0  # server score (weights sum 1) x 4 == sum w_i / (k + rank_i)
    assert plan.pipeline.min_version == (3, 1)


def test_equal_non_unit_weights_need_no_weights_parameter() -> None:
    plan = plan_fusion(ServerFusion(method="rrf", weights=(2.0, 2.0, 2.0)), 3)
    combo = _processor(plan.pipeline.body)["score-ranker-processor"]["combination"]
    assert "parameters" not in combo and plan.score_scale == 2.0


@pytest.mark.parametrize(("normalizer", "technique"), [("minmax", "min_max"), ("l2", "l2")])
def test_linear_zero_maps_to_normalization_processor_arithmetic_mean(normalizer: str, technique: str) -> None:
    plan = plan_fusion(
        ServerFusion(method="linear", normalizer=normalizer, missing="zero", weights=(1, 3)), 2
    )
    proc = _processor(plan.pipeline.body)["normalization-processor"]
    assert proc == {
        "normalization": {"technique": technique},
        "combination": {"technique": "arithmetic_mean", "parameters": {"weights": [0.25, 0.75]}},
    }
    assert plan.score_scale == 4.0  # the mean divides by the weights' sum; this restores sum_i w_i * norm_i


@pytest.mark.parametrize(
    ("fusion", "fragment"),
    [
        (ServerFusion(method="dbsf"), "dbsf"),
        (ServerFusion(method="linear", normalizer="none", missing="zero"), "always normalises"),
        (ServerFusion(method="linear", normalizer="minmax", missing="exclude"), "missing='exclude'"),
        (ServerFusion(method="linear", normalizer="l2", missing="min"), "missing='min'"),
        (ServerFusion(method="linear", normalizer="zscore", missing="zero"), "total hit count"),
    ],
)
def test_fusions_with_other_semantics_are_refused_with_a_reason(fusion: ServerFusion, fragment: str) -> None:
    problem = fusion_problem(fusion)
    assert problem is not None and fragment in problem
    with pytest.raises(PipelineError) as info:
        plan_fusion(fusion, 2)
    assert str(info.value) == problem


def test_rrf_ignores_the_missing_policy_because_absent_contributes_zero_either_way() -> None:
    assert fusion_problem(ServerFusion(method="rrf", missing="exclude")) is None


@pytest.mark.parametrize(
    ("weights", "count", "fragment"),
    [((1.0,), 2, "1 weights for 2"), ((1.0, -1.0), 2, ">= 0"), ((0.0, 0.0), 2, "all zero")],
)
def test_bad_weights_are_rejected(weights: tuple[float, ...], count: int, fragment: str) -> None:
    with pytest.raises(PipelineError, match=fragment):
        normalized_weights(weights, count)


def test_sub_query_count_is_limited_to_five() -> None:
    with pytest.raises(PipelineError, match="1 to 5"):
        plan_fusion(ServerFusion(), 6)


def test_native_processors_validate_opensearch_rules() -> None:
    with pytest.raises(PipelineError, match="sum to 1"):
        normalization_processor("min_max", "arithmetic_mean", [0.5, 0.6])
    with pytest.raises(PipelineError, match="only with arithmetic_mean"):
        normalization_processor("z_score", "harmonic_mean")
    with pytest.raises(PipelineError, match=r"\[1, 10000\]"):
        score_ranker_processor(0)
    z = normalization_processor("z_score")
    assert z.min_version == (3, 0)
    geo = normalization_processor("l2", "geometric_mean", [0.4, 0.6])
    assert _processor(geo.body)["normalization-processor"]["combination"]["technique"] == "geometric_mean"


def test_pipeline_names_depend_on_content_only() -> None:
    a = plan_fusion(ServerFusion(method="rrf", rank_constant=60), 2).pipeline
    b = plan_fusion(ServerFusion(method="rrf", rank_constant=60), 3).pipeline
    c = plan_fusion(ServerFusion(method="rrf", rank_constant=61), 2).pipeline
    assert a.name == b.name != c.name
    assert a.name == pipeline_name(dict(a.body))
    assert a.name.startswith("spladebridge-hybrid-")
