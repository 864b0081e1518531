"""OpenSearch search pipelines for the `hybrid` query, mapped from the engine-neutral `ServerFusion`.

OpenSearch fuses the sub-queries of a `hybrid` query in a search pipeline's phase-results processor:

* `normalization-processor` (2.10+): per sub-query `min_max` / `l2` / `z_score` (3.0+), then a weighted
  `arithmetic_mean` / `geometric_mean` / `harmonic_mean` whose weights must sum to 1. A sub-query that did
  not return a document counts 0 for it, with its full weight in the mean (measured on real 2.19.1 and 3.6.0
  nodes, tests/live: a document found by one of two equally weighted sub-queries gets half its score).
* `score-ranker-processor` (2.19+): RRF, `sum_i w_i / (rank_constant + rank_i)` with 1-based ranks; weights
  (3.1+) must sum to 1.

`plan_fusion` maps a `ServerFusion` onto these only where the result means exactly what the hybrid module's
client-side fusion means, and says why not otherwise. `normalization_processor` and `score_ranker_processor`
build any OpenSearch-native combination (z_score, geometric or harmonic mean) for callers who want those.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from spladebridge.connectors.base import ServerFusion

__all__ = [
    "MAX_SUB_QUERIES",
    "NORMALIZERS",
    "FusionPlan",
    "PipelineError",
    "SearchPipeline",
    "fusion_problem",
    "normalization_processor",
    "normalized_weights",
    "pipeline_name",
    "plan_fusion",
    "score_ranker_processor",
]

#: The `hybrid` query takes at most this many sub-queries.
MAX_SUB_QUERIES = 5
#: Our normalizer names -> OpenSearch `normalization.technique`.
NORMALIZERS: dict[str, str] = {"minmax": "min_max", "l2": "l2", "zscore": "z_score"}
_COMBINATIONS = ("arithmetic_mean", "geometric_mean", "harmonic_mean")
_RANK_CONSTANT_RANGE = (1, 10_000)

Version = tuple[int, int]


class PipelineError(ValueError):
    """A pipeline OpenSearch would reject (bad weights, unknown technique, rank constant out of range)."""


@dataclass(frozen=True, slots=True)
class SearchPipeline:
    """A search pipeline body with the OpenSearch version it needs, named by a hash of its content."""

    body: dict[str, Any]
    min_version: Version

    @property
    def name(self) -> str:
        return pipeline_name(self.body)


@dataclass(frozen=True, slots=True)
class FusionPlan:
    """How a `ServerFusion` runs on OpenSearch: the pipeline, and the factor that puts its scores on the
    hybrid module's scale (OpenSearch needs weights summing to 1; RRF scores shrink by that sum)."""

    pipeline: SearchPipeline
    score_scale: float = 1.0


def pipeline_name(body: dict[str, Any]) -> str:
    """A stable name for a pipeline body: same content, same name, so concurrent callers never race."""
    digest = hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    return f"spladebridge-hybrid-{digest[:16]}"


def normalized_weights(weights: Sequence[float] | None, count: int) -> tuple[tuple[float, ...] | None, float]:
    """Weights rescaled to sum to 1 (OpenSearch's rule) and the factor that undoes it for a weighted sum.

    Equal weights become None (OpenSearch's default, every weight 1) with that common weight as the factor.

    Raises PipelineError for a wrong count, a negative or non-finite weight, or all zeros.
    """
    if weights is None:
        return None, 1.0
    if len(weights) != count:
        raise PipelineError(f"fusion has {len(weights)} weights for {count} sub-queries")
    for i, w in enumerate(weights):
        if not math.isfinite(w) or w < 0:
            raise PipelineError(f"fusion weight {i} must be finite and >= 0, got {w!r}")
    total = math.fsum(weights)
    if total <= 0:
        raise PipelineError("fusion weights are all zero")
    if all(w == weights[0] for w in weights):
        return None, float(weights[0])  # equal weights: OpenSearch's default (all 1), scaled
    return tuple(w / total for w in weights), total


def _check_weights(weights: Sequence[float] | None) -> list[float] | None:
    if weights is None:
        return None
    if any(not math.isfinite(w) or w < 0 or w > 1 for w in weights):
        raise PipelineError(f"OpenSearch weights must each be in [0, 1], got {list(weights)}")
    if not math.isclose(math.fsum(weights), 1.0, abs_tol=1e-6):
        raise PipelineError(f"OpenSearch weights must sum to 1.0, got {math.fsum(weights)!r}")
    if len(weights) > MAX_SUB_QUERIES:
        raise PipelineError(
            f"a hybrid query has at most {MAX_SUB_QUERIES} sub-queries, got {len(weights)} weights"
        )
    return [float(w) for w in weights]


def normalization_processor(
    technique: Literal["min_max", "l2", "z_score"] = "min_max",
    combination: Literal["arithmetic_mean", "geometric_mean", "harmonic_mean"] = "arithmetic_mean",
    weights: Sequence[float] | None = None,
    description: str | None = None,
) -> SearchPipeline:
    """A pipeline with one `normalization-processor` (any OpenSearch-native combination)."""
    if technique not in NORMALIZERS.values():
        raise PipelineError(
            f"normalization technique must be one of {sorted(NORMALIZERS.values())}, got {technique!r}"
        )
    if combination not in _COMBINATIONS:
        raise PipelineError(
            f"combination technique must be one of {list(_COMBINATIONS)}, got {combination!r}"
        )
    if technique == "z_score" and combination != "arithmetic_mean":
        raise PipelineError("OpenSearch's z_score normalization works only with arithmetic_mean")
    checked = _check_weights(weights)
    combo: dict[str, Any] = {"technique": combination}
    if checked is not None:
        combo["parameters"] = {"weights": checked}
    processor = {"normalization": {"technique": technique}, "combination": combo}
    body: dict[str, Any] = {
        "description": description or f"spladebridge hybrid: {technique} + {combination}",
        "phase_results_processors": [{"normalization-processor": processor}],
    }
    min_version: Version = (3, 0) if technique == "z_score" else (2, 10)
    return SearchPipeline(body, min_version)


def score_ranker_processor(
    rank_constant: int = 60, weights: Sequence[float] | None = None, description: str | None = None
) -> SearchPipeline:
    """A pipeline with one `score-ranker-processor` doing RRF (weights need OpenSearch 3.1)."""
    low, high = _RANK_CONSTANT_RANGE
    if (
        isinstance(rank_constant, bool)
        or not isinstance(rank_constant, int)
        or not low <= rank_constant <= high
    ):
        raise PipelineError(
            f"OpenSearch's rank_constant must be an integer in [{low}, {high}], got {rank_constant!r}"
        )
    checked = _check_weights(weights)
    combo: dict[str, Any] = {"technique": "rrf", "rank_constant": rank_constant}
    if checked is not None:
        combo["parameters"] = {"weights": checked}
    body: dict[str, Any] = {
        "description": description or f"spladebridge hybrid: rrf k={rank_constant}",
        "phase_results_processors": [{"score-ranker-processor": {"combination": combo}}],
    }
    return SearchPipeline(body, (3, 1) if checked is not None else (2, 19))


def fusion_problem(fusion: ServerFusion) -> str | None:
    """Why OpenSearch cannot fuse with exactly these semantics server-side, or None when it can."""
    if fusion.method == "dbsf":
        return "OpenSearch has no distribution-based score fusion (dbsf); fuse client-side"
    if fusion.method == "linear":
        if fusion.normalizer == "none":
            return (
                "OpenSearch's normalization-processor always normalises (min_max, l2 or z_score); no 'none'"
            )
        if fusion.normalizer == "zscore":
            return (
                "OpenSearch's z_score divides by the sub-query's total hit count, not by the returned list, "
                "so it differs from client-side zscore; normalization_processor builds the native one"
            )
        if fusion.normalizer not in NORMALIZERS:
            return f"unknown normalizer {fusion.normalizer!r}"
        if fusion.missing != "zero":
            return (
                "OpenSearch's arithmetic_mean counts a sub-query that did not return a document as 0 with its "
                f"full weight (missing='zero'); missing={fusion.missing!r} runs client-side"
            )
    return None


def plan_fusion(fusion: ServerFusion, sub_queries: int) -> FusionPlan:
    """The pipeline for `fusion` over `sub_queries` sub-queries; PipelineError with the reason when OpenSearch
    cannot compute the same thing (see `fusion_problem`).

    rrf -> score-ranker-processor (weights rescaled to sum 1; `score_scale` restores the hybrid scale);
    linear + minmax/l2 + missing='zero' -> normalization-processor with arithmetic_mean, which is
    `sum_i w_i * norm_i / sum_i w_i` (0 where sub-query i did not return the document); `score_scale`
    (the weights' sum) turns it into the client-side `weighted_sum`.
    """
    if not 1 <= sub_queries <= MAX_SUB_QUERIES:
        raise PipelineError(f"a hybrid query needs 1 to {MAX_SUB_QUERIES} sub-queries, got {sub_queries}")
    problem = fusion_problem(fusion)
    if problem is not None:
        raise PipelineError(problem)
    weights, total = normalized_weights(fusion.weights, sub_queries)
    if fusion.method == "rrf":
        return FusionPlan(score_ranker_processor(fusion.rank_constant, weights), score_scale=total)
    technique = NORMALIZERS[fusion.normalizer]
    pipeline = normalization_processor(technique, "arithmetic_mean", weights)  # type: ignore[arg-type]
    weight_sum = math.fsum(fusion.weights) if fusion.weights is not None else float(sub_queries)
    return FusionPlan(pipeline, score_scale=weight_sum)
