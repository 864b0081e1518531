"""Evaluation results as plain data: per-system metrics, tuning, wins/losses, the query-pruning curve.

`EvalReport.to_json_obj()` is what `spladebridge eval --json` prints; `results_table` renders several
reports (one per dataset) as the Markdown table in benchmarks/README.md.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from spladebridge.evaluation.compare import WinLoss

__all__ = ["EvalReport", "PruningPoint", "SystemResult", "machine_description", "results_table"]


@dataclass(slots=True)
class SystemResult:
    """One system (a single signal or a fusion): mean metrics, per-query values and how it was made."""

    name: str
    kind: str
    description: str
    means: dict[str, float]
    per_query: dict[str, dict[str, float]] = field(default_factory=dict)
    latency_ms: dict[str, float] | None = None
    tuned_on: str | None = None
    params: dict[str, Any] = field(default_factory=dict)

    def per_query_values(self, metric: str) -> dict[str, float]:
        """`{query_id: value}` of one metric."""
        return {qid: values[metric] for qid, values in self.per_query.items()}

    def info(self) -> dict[str, Any]:
        """Everything but the metrics and per-query values (those are reported elsewhere)."""
        out: dict[str, Any] = {"kind": self.kind, "description": self.description, "tuned_on": self.tuned_on}
        if self.params:
            out["params"] = self.params
        if self.latency_ms is not None:
            out["latency_ms"] = self.latency_ms
        return out


@dataclass(frozen=True, slots=True)
class PruningPoint:
    """SPLADE quality and search latency when each query keeps at most `max_terms` terms (None = all)."""

    max_terms: int | None
    mean_terms: float
    ndcg_at_10: float
    latency_ms_mean: float
    latency_ms_p95: float

    def to_json_obj(self) -> dict[str, Any]:
        return {
            "max_terms": "all" if self.max_terms is None else self.max_terms,
            "mean_terms": self.mean_terms,
            "ndcg@10": self.ndcg_at_10,
            "latency_ms_mean": self.latency_ms_mean,
            "latency_ms_p95": self.latency_ms_p95,
        }


@dataclass(slots=True)
class EvalReport:
    """Everything one `eval` run measured on one dataset."""

    dataset: str
    n_docs: int
    n_queries: int
    engine: str
    models: dict[str, str] = field(default_factory=dict)
    systems: dict[str, SystemResult] = field(default_factory=dict)
    wins_losses: list[WinLoss] = field(default_factory=list)
    pruning: list[PruningPoint] = field(default_factory=list)
    timings_s: dict[str, float] = field(default_factory=dict)
    machine: str = ""
    notes: list[str] = field(default_factory=list)

    def add(self, result: SystemResult) -> None:
        if result.name in self.systems:
            raise ValueError(f"system {result.name!r} is already in the report")
        self.systems[result.name] = result

    def to_json_obj(self, *, per_query: bool = False) -> dict[str, Any]:
        """`{"dataset": ..., "systems": {name: {metric: value}}, ...}`; per-query values on request."""
        out: dict[str, Any] = {
            "dataset": self.dataset,
            "systems": {name: dict(res.means) for name, res in self.systems.items()},
            "system_info": {name: res.info() for name, res in self.systems.items()},
            "wins_losses": [w.to_json_obj() for w in self.wins_losses],
            "pruning": [p.to_json_obj() for p in self.pruning],
            "n_docs": self.n_docs,
            "n_queries": self.n_queries,
            "engine": self.engine,
            "models": self.models,
            "timings_s": self.timings_s,
            "machine": self.machine,
            "notes": self.notes,
        }
        if per_query:
            out["per_query"] = {name: res.per_query for name, res in self.systems.items()}
        return out

    def to_text(self, metrics: Sequence[str] = ("ndcg@10", "recall@100", "mrr@10")) -> str:
        """A human-readable summary: the metric table, wins/losses and the pruning curve."""
        lines = [
            f"{self.dataset}: {self.n_docs} docs, {self.n_queries} judged test queries, engine {self.engine}"
        ]
        width = max([len(n) for n in self.systems] + [6])
        lines.append(f"{'system':<{width}}  " + "  ".join(f"{m:>10}" for m in metrics) + "  tuned on")
        for name, res in self.systems.items():
            vals = "  ".join(f"{res.means.get(m, float('nan')):>10.4f}" for m in metrics)
            lines.append(f"{name:<{width}}  {vals}  {res.tuned_on or '-'}")
        for w in self.wins_losses:
            lines.append(
                f"{w.system} vs {w.baseline} ({w.metric}): {w.wins} wins, {w.losses} losses, {w.ties} ties, "
                f"mean delta {w.mean_delta:+.4f}"
            )
        if self.pruning:
            lines.append("query pruning (SPLADE): max terms -> nDCG@10, mean latency ms")
            for p in self.pruning:
                label = "all" if p.max_terms is None else str(p.max_terms)
                lines.append(f"  {label:>4}: {p.ndcg_at_10:.4f}  {p.latency_ms_mean:.2f} ms")
        lines.extend(f"note: {n}" for n in self.notes)
        return "\n".join(lines)


def results_table(
    reports: Mapping[str, Mapping[str, Mapping[str, float]]],
    systems: Sequence[str],
    metric: str = "ndcg@10",
    published: Mapping[str, Mapping[str, float]] | None = None,
) -> str:
    """Markdown table, one row per dataset, one column per system (+ published reference columns).

    `reports` is `{dataset: {system: {metric: value}}}` (the "systems" object of each JSON report);
    `published` is `{column title: {dataset: value}}`; a missing value shows as an em dash.
    """
    published = published or {}
    header = ["dataset", *systems, *published]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for dataset, by_system in reports.items():
        cells = [dataset]
        cells += [f"{by_system[s][metric]:.3f}" if s in by_system else "—" for s in systems]
        cells += [f"{col[dataset]:.3f}" if dataset in col else "—" for col in published.values()]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def machine_description() -> str:
    """CPU model, core count and OS, for labelling every published number with where it ran."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    system = f"{platform.system()} {platform.release()}"
    return f"{model}, {cores} CPU cores available, {system}, Python {platform.python_version()}"
