"""Per-query wins and losses of one system against another (e.g. hybrid against the best single signal)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["WinLoss", "best_system", "wins_losses"]


@dataclass(frozen=True, slots=True)
class WinLoss:
    """How often `system` beat, lost to or tied `baseline` on one metric, with the largest swings."""

    system: str
    baseline: str
    metric: str
    wins: int
    losses: int
    ties: int
    mean_delta: float
    top_wins: list[tuple[str, float]] = field(default_factory=list)
    top_losses: list[tuple[str, float]] = field(default_factory=list)

    def to_json_obj(self) -> dict[str, object]:
        return {
            "system": self.system,
            "baseline": self.baseline,
            "metric": self.metric,
            "wins": self.wins,
            "losses": self.losses,
            "ties": self.ties,
            "mean_delta": self.mean_delta,
            "top_wins": [{"query_id": q, "delta": d} for q, d in self.top_wins],
            "top_losses": [{"query_id": q, "delta": d} for q, d in self.top_losses],
        }


def wins_losses(
    system: str,
    values: Mapping[str, float],
    baseline: str,
    baseline_values: Mapping[str, float],
    *,
    metric: str = "ndcg@10",
    tolerance: float = 1e-9,
    top: int = 5,
) -> WinLoss:
    """Compare two systems query by query; both must cover the same query ids.

    A difference within `tolerance` is a tie. `top_wins`/`top_losses` hold the `top` largest gains and
    drops as (query id, delta), largest swing first, ties broken by query id for a stable report.
    """
    if set(values) != set(baseline_values):
        only = sorted(set(values) ^ set(baseline_values))
        raise ValueError(f"{system} and {baseline} cover different queries, e.g. {only[0]!r}")
    if tolerance < 0 or top < 0:
        raise ValueError("tolerance and top must be non-negative")
    deltas = {qid: values[qid] - baseline_values[qid] for qid in values}
    wins = sorted(((q, d) for q, d in deltas.items() if d > tolerance), key=lambda x: (-x[1], x[0]))
    losses = sorted(((q, d) for q, d in deltas.items() if d < -tolerance), key=lambda x: (x[1], x[0]))
    return WinLoss(
        system=system,
        baseline=baseline,
        metric=metric,
        wins=len(wins),
        losses=len(losses),
        ties=len(deltas) - len(wins) - len(losses),
        mean_delta=sum(deltas.values()) / len(deltas) if deltas else 0.0,
        top_wins=wins[:top],
        top_losses=losses[:top],
    )


def best_system(means: Mapping[str, Mapping[str, float]], metric: str = "ndcg@10") -> str:
    """The name with the highest mean `metric` (first in iteration order on a tie)."""
    if not means:
        raise ValueError("no systems to choose from")
    best = None
    for name, values in means.items():
        if best is None or values[metric] > means[best][metric]:
            best = name
    assert best is not None
    return best
