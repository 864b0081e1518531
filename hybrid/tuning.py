"""Choose a fusion on labelled data: try RRF k and weighted sums (weights x normalisers), keep the best.

Tune on a train or dev split, never on the test split you report. Metrics come from ir-measures
(pytrec_eval); each fused list is handed over as strictly decreasing rank scores, so the metric sees exactly
our tie-broken order (trec_eval would otherwise re-break score ties by document id).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import product
from typing import Any

from spladebridge.hybrid.fusion import NORMALIZERS, FusionError, MissingPolicy, Normalizer
from spladebridge.hybrid.settings import RRF, FusionSetting, TwoStage, WeightedSum, describe, fuse_table

__all__ = ["DEFAULT_RRF_KS", "TrialRow", "TuningResult", "default_grid", "evaluate", "parse_metric", "tune"]

#: RRF constants tried by default; 60 first, so that it wins ties.
DEFAULT_RRF_KS: tuple[int, ...] = (60, 1, 5, 10, 20, 40, 80, 100)

_METRIC_NAMES = {
    "ndcg": "nDCG",
    "map": "AP",
    "ap": "AP",
    "mrr": "RR",
    "rr": "RR",
    "recall": "R",
    "r": "R",
    "precision": "P",
    "p": "P",
}

Run = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class TrialRow:
    """One configuration tried: the setting, a readable label, and the mean metric over the queries."""

    setting: FusionSetting
    label: str
    score: float


@dataclass(frozen=True, slots=True)
class TuningResult:
    """The best setting, its score, every trial (in the order tried), and each single signal's score."""

    best: FusionSetting
    best_score: float
    metric: str
    signals: tuple[str, ...]
    table: list[TrialRow] = field(default_factory=list)
    baselines: dict[str, float] = field(default_factory=dict)
    n_queries: int = 0

    def ranked(self) -> list[TrialRow]:
        """The trials, best first (stable: earlier trials win ties)."""
        return sorted(self.table, key=lambda row: -row.score)


def parse_metric(metric: Any) -> Any:
    """An ir-measures measure from `"ndcg@10"`-style names (ndcg, map, mrr, recall, precision) or its own."""
    import ir_measures

    if not isinstance(metric, str):
        return metric
    name, _, cutoff = metric.partition("@")
    native = _METRIC_NAMES.get(name.strip().lower(), name.strip())
    text = f"{native}@{cutoff.strip()}" if cutoff else native
    try:
        return ir_measures.parse_measure(text)
    except (ValueError, NameError, KeyError, TypeError) as exc:
        raise ValueError(f"unknown metric {metric!r}: {exc}") from None


def _as_lists(run: Any, signal: str) -> dict[str, list[tuple[Any, float]]]:
    """`{qid: [(doc, score), ...] best first}` from a mapping of lists or of `{doc: score}`, or a ranx Run."""
    if hasattr(run, "to_dict") and not isinstance(run, Mapping):
        run = run.to_dict()
    if not isinstance(run, Mapping):
        raise FusionError(f"run {signal!r} must map query ids to ranked lists, got {type(run).__name__}")
    out: dict[str, list[tuple[Any, float]]] = {}
    for qid, ranked in run.items():
        if isinstance(ranked, Mapping):
            out[str(qid)] = sorted(((d, float(s)) for d, s in ranked.items()), key=lambda kv: -kv[1])
        elif isinstance(ranked, Sequence) and not isinstance(ranked, str):
            out[str(qid)] = [(d, float(s)) for d, s in ranked]
        else:
            raise FusionError(f"run {signal!r}, query {qid!r}: expected (doc, score) pairs or a mapping")
    return out


def _qrels(qrels: Mapping[Any, Mapping[Any, Any]]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for qid, judged in qrels.items():
        if not isinstance(judged, Mapping):
            raise FusionError(f"qrels for query {qid!r} must map document ids to grades")
        out[str(qid)] = {str(d): int(g) for d, g in judged.items()}
    return out


def evaluate(
    ranked: Mapping[str, Sequence[tuple[Any, float]]], qrels: Mapping[str, Mapping[str, int]], metric: Any
) -> float:
    """Mean `metric` of ranked lists over the queries of `qrels` that have a relevant document (absent: 0)."""
    import ir_measures

    measure = parse_metric(metric)
    judged = [q for q, docs in qrels.items() if any(g > 0 for g in docs.values())]
    if not judged:
        raise ValueError("qrels hold no query with a relevant (grade > 0) document")
    run = {
        q: {str(d): float(len(ranked[q]) - i) for i, (d, _) in enumerate(ranked[q])}
        for q in judged
        if ranked.get(q)
    }
    values = dict.fromkeys(judged, 0.0)
    if run:
        for m in ir_measures.iter_calc([measure], {q: dict(qrels[q]) for q in judged}, run):
            values[m.query_id] = float(m.value)
    return sum(values.values()) / len(judged)


def _simplex(n: int, step: float) -> list[tuple[float, ...]]:
    parts = round(1.0 / step)
    if parts < 1 or abs(parts * step - 1.0) > 1e-9:
        raise ValueError(f"weight step must divide 1 evenly, got {step!r}")
    out = []
    for combo in product(range(parts + 1), repeat=n):
        if sum(combo) == parts:
            out.append(tuple(round(c / parts, 10) for c in combo))
    return sorted(out, key=lambda w: (-min(w), w))


def default_grid(
    n_signals: int,
    *,
    rrf_ks: Iterable[int] = DEFAULT_RRF_KS,
    weight_step: float | None = None,
    normalizers: Iterable[Normalizer] = ("minmax", "zscore", "dbsf"),
    missing: Iterable[MissingPolicy] = ("zero",),
) -> list[FusionSetting]:
    """RRF over `rrf_ks` (equal weights), then weighted sums over every weight vector on the simplex.

    `weight_step` defaults to 0.1 for two signals (11 weightings, as ranx's `optimize_fusion`) and 0.2 for
    three or more (21 for three), times each normaliser and missing policy.
    """
    if n_signals < 1:
        raise ValueError(f"need at least one signal, got {n_signals}")
    step = weight_step if weight_step is not None else (0.1 if n_signals <= 2 else 0.2)
    grid: list[FusionSetting] = [RRF(k=k) for k in rrf_ks]
    norms = list(normalizers)
    for norm in norms:
        if norm not in NORMALIZERS:
            raise ValueError(f"unknown normalizer {norm!r}")
    for norm, miss in product(norms, list(missing)):
        grid.extend(WeightedSum(w, norm, miss) for w in _simplex(n_signals, step))
    return grid


def tune(
    runs: Mapping[str, Any],
    qrels: Mapping[Any, Mapping[Any, Any]],
    metric: Any = "ndcg@10",
    grid: Sequence[FusionSetting] | None = None,
    *,
    split: str | None = None,
) -> TuningResult:
    """Try every setting of `grid` on `runs` and return the best by `metric`, with the full table.

    `runs`: `{signal: {qid: [(doc, score), ...] best first}}` (or `{qid: {doc: score}}`, or a ranx Run);
    weights in the settings follow the order of `runs`. `qrels`: `{qid: {doc: grade}}` of a train or dev
    split; `split="test"` is refused. The best is the first trial with the highest mean metric.
    """
    if split is not None and split.strip().lower() == "test":
        raise ValueError("tune on a train or dev split, never on the test split you report")
    if not runs:
        raise ValueError("runs must hold at least one signal")
    signals = tuple(str(s) for s in runs)
    lists = {s: _as_lists(run, s) for s, run in zip(signals, runs.values(), strict=True)}
    judged = _qrels(qrels)
    measure = parse_metric(metric)
    trials = list(grid) if grid is not None else default_grid(len(signals))
    if not trials:
        raise ValueError("the grid is empty")
    for i, setting in enumerate(trials):
        if isinstance(setting, TwoStage) or not isinstance(setting, RRF | WeightedSum):
            raise ValueError(
                f"grid[{i}] is {setting!r}; tune compares fusions of the given runs (RRF, WeightedSum); "
                "evaluate two-stage rescoring with HybridSearcher"
            )
        if setting.weights is not None and len(setting.weights) != len(signals):
            raise ValueError(f"grid[{i}] has {len(setting.weights)} weights for {len(signals)} signals")
    queries = [q for q in judged if any(g > 0 for g in judged[q].values())]
    per_query = {q: [lists[s].get(q, []) for s in signals] for q in queries}
    baselines = {s: evaluate(lists[s], judged, measure) for s in signals}
    table: list[TrialRow] = []
    for setting in trials:
        assert isinstance(setting, RRF | WeightedSum)
        fused = {q: fuse_table(per_query[q], setting).pairs() for q in queries}
        table.append(TrialRow(setting, describe(setting), evaluate(fused, judged, measure)))
    best = max(table, key=lambda row: row.score)  # max returns the first maximal row
    return TuningResult(best.setting, best.score, str(measure), signals, table, baselines, len(queries))
