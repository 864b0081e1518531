"""Retrieval metrics through ir-measures (pytrec_eval underneath): nDCG@10, Recall@100, MRR@10, per query.

Runs are `{query_id: {doc_id: score}}`. Means are taken over every judged query: a query the system
returned nothing for scores 0, it is never dropped from the average.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from spladebridge.evaluation.beir import Qrels

__all__ = ["DEFAULT_METRICS", "MetricError", "Run", "Scores", "evaluate", "mean", "measure_for"]

#: A ranked result set per query: `{query_id: {doc_id: score}}` (higher score ranks first).
Run = dict[str, dict[str, float]]

#: Our metric names (lower-case, used as JSON keys) and the ir-measures spelling of each.
_ALIASES: dict[str, str] = {"ndcg": "nDCG", "recall": "R", "mrr": "RR", "map": "AP", "p": "P", "r": "R"}
DEFAULT_METRICS: tuple[str, ...] = ("ndcg@10", "recall@100", "mrr@10")


class MetricError(ValueError):
    """A metric name that neither our aliases nor ir-measures understand."""


def _ir_measures() -> Any:
    try:
        return importlib.import_module("ir_measures")
    except ImportError:
        raise ImportError("evaluation metrics need ir-measures: pip install 'ir-measures>=0.3'") from None


def measure_for(name: str) -> Any:
    """The ir-measures measure object for one of our names ("ndcg@10", "recall@100", "mrr@10", or native)."""
    base, sep, cutoff = name.partition("@")
    native = _ALIASES.get(base.lower(), base) + (sep + cutoff if sep else "")
    try:
        return _ir_measures().parse_measure(native)
    except (ValueError, NameError, SyntaxError, TypeError) as exc:
        raise MetricError(f"unknown metric {name!r} ({exc})") from None


@dataclass(frozen=True, slots=True)
class Scores:
    """Mean and per-query values of several metrics for one system."""

    means: dict[str, float]
    per_query: dict[str, dict[str, float]]

    def query_values(self, metric: str) -> dict[str, float]:
        """`{query_id: value}` of one metric."""
        return {qid: values[metric] for qid, values in self.per_query.items()}


def mean(values: Iterable[float]) -> float:
    items = list(values)
    return sum(items) / len(items) if items else 0.0


def evaluate(
    qrels: Mapping[str, Mapping[str, int]],
    run: Mapping[str, Mapping[str, float]],
    metrics: Sequence[str] = DEFAULT_METRICS,
) -> Scores:
    """Score `run` against `qrels`: means over all judged queries, and each query's values."""
    if not qrels:
        raise MetricError("qrels are empty: nothing to evaluate")
    measures = {name: measure_for(name) for name in metrics}
    by_measure = {str(m): name for name, m in measures.items()}
    judged: Qrels = {qid: dict(docs) for qid, docs in qrels.items()}
    scored = {qid: {d: float(s) for d, s in run.get(qid, {}).items()} for qid in judged if run.get(qid)}
    per_query: dict[str, dict[str, float]] = {qid: dict.fromkeys(metrics, 0.0) for qid in judged}
    if scored:
        for metric in _ir_measures().iter_calc(list(measures.values()), judged, scored):
            name = by_measure[str(metric.measure)]
            per_query[metric.query_id][name] = float(metric.value)
    means = {name: mean(values[name] for values in per_query.values()) for name in metrics}
    return Scores(means=means, per_query=per_query)
