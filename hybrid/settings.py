"""Fusion settings: what `HybridSearcher` and `tune` choose between (RRF, weighted sum, two-stage rescoring).

A setting is plain, frozen data. `fuse_table` applies an RRF or weighted-sum setting to ranked lists;
`to_server_fusion` maps a setting to the engine-neutral `ServerFusion` when an engine can do the same thing
server-side (two-stage and the `min` missing policy are client-side only).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, TypeAlias

from spladebridge.connectors.base import SIGNALS, ServerFusion, Signal
from spladebridge.hybrid.fusion import (
    MISSING_POLICIES,
    NORMALIZERS,
    FusedTable,
    FusionError,
    MissingPolicy,
    Normalizer,
    RankedList,
    rrf_table,
    weighted_sum_table,
)

__all__ = ["RRF", "FusionSetting", "TwoStage", "WeightedSum", "describe", "fuse_table", "to_server_fusion"]


def _check_weights(weights: tuple[float, ...] | None) -> tuple[float, ...] | None:
    if weights is None:
        return None
    out = tuple(float(w) for w in weights)
    for i, w in enumerate(out):
        if not w >= 0 or w == float("inf"):
            raise FusionError(f"weight {i} is {w!r}; weights must be finite and >= 0")
    return out


@dataclass(frozen=True, slots=True)
class RRF:
    """Reciprocal rank fusion, sum_i w_i / (k + rank_i) with 1-based ranks; `weights` follow the signals."""

    k: float = 60
    weights: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.k, bool) or not isinstance(self.k, int | float) or not 0 <= self.k < float("inf"):
            raise FusionError(f"RRF k must be a finite number >= 0, got {self.k!r}")
        object.__setattr__(self, "weights", _check_weights(self.weights))


@dataclass(frozen=True, slots=True)
class WeightedSum:
    """Weighted sum of per-signal normalised scores (see `weighted_sum`); `weights` follow the signals.

    `normalize="dbsf"` with `missing="zero"` is Qdrant's distribution-based score fusion.
    """

    weights: tuple[float, ...] | None = None
    normalize: Normalizer = "minmax"
    missing: MissingPolicy = "zero"

    def __post_init__(self) -> None:
        if self.normalize not in NORMALIZERS:
            raise FusionError(
                f"unknown normalizer {self.normalize!r}; choose one of {', '.join(NORMALIZERS)}"
            )
        if self.missing not in MISSING_POLICIES:
            raise FusionError(
                f"unknown missing policy {self.missing!r}; choose one of {', '.join(MISSING_POLICIES)}"
            )
        object.__setattr__(self, "weights", _check_weights(self.weights))

    @classmethod
    def convex(
        cls, alpha: float, normalize: Normalizer = "minmax", missing: MissingPolicy = "zero"
    ) -> WeightedSum:
        """Two signals: alpha * first + (1 - alpha) * second."""
        if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not 0.0 <= alpha <= 1.0:
            raise FusionError(f"alpha must be a number in [0, 1], got {alpha!r}")
        return cls((float(alpha), 1.0 - float(alpha)), normalize, missing)


@dataclass(frozen=True, slots=True)
class TwoStage:
    """Retrieve `candidates` with `first`, then re-rank exactly those by `rescore` similarity.

    `source="stored"` reads the candidates' stored vectors back from the index (exact, no model call);
    `source="encode"` encodes the candidates' stored text with the searcher's encoder (for indexes that do
    not store the rescoring vector). Rescoring signals: "dense" (dot product of L2-normalised vectors, i.e.
    cosine) or "sparse" (exact sparse dot product). Candidates without a rescoring vector keep their order
    after every rescored one.
    """

    first: Signal = "sparse"
    rescore: Literal["dense", "sparse"] = "dense"
    source: Literal["stored", "encode"] = "stored"

    def __post_init__(self) -> None:
        if self.first not in SIGNALS:
            raise FusionError(
                f"unknown first-stage signal {self.first!r}; choose one of {', '.join(SIGNALS)}"
            )
        if self.rescore not in ("dense", "sparse"):
            raise FusionError(f"rescoring signal must be 'dense' or 'sparse', got {self.rescore!r}")
        if self.rescore == self.first:
            raise FusionError(f"two-stage rescoring needs two different signals, got {self.first!r} twice")
        if self.source not in ("stored", "encode"):
            raise FusionError(f"rescoring source must be 'stored' or 'encode', got {self.source!r}")


FusionSetting: TypeAlias = RRF | WeightedSum | TwoStage


def fuse_table(
    lists: Sequence[RankedList], setting: RRF | WeightedSum, limit: int | None = None
) -> FusedTable:
    """Apply an RRF or weighted-sum setting to ranked lists (weights line up with `lists`)."""
    if isinstance(setting, RRF):
        return rrf_table(lists, setting.k, setting.weights, limit)
    if isinstance(setting, WeightedSum):
        return weighted_sum_table(lists, setting.weights, setting.normalize, setting.missing, limit)
    raise FusionError(f"fuse_table takes RRF or WeightedSum, got {type(setting).__name__}")


def _server_weights(weights: tuple[float, ...] | None, signals: Sequence[Signal]) -> tuple[float, ...] | None:
    """Reorder per-signal weights (in `signals` order) into `SIGNALS` order, as `ServerFusion` wants."""
    if weights is None:
        return None
    if len(weights) != len(signals):
        raise FusionError(f"got {len(weights)} weights for {len(signals)} signals {tuple(signals)}")
    by_signal = dict(zip(signals, weights, strict=True))
    return tuple(by_signal[s] for s in SIGNALS if s in by_signal)


def to_server_fusion(setting: FusionSetting, signals: Sequence[Signal]) -> ServerFusion | None:
    """The `ServerFusion` with exactly this setting's semantics, or None where there is none.

    RRF needs an integer k >= 1 (engines take an integer rank constant); the weighted sum's `min` missing
    policy and two-stage rescoring exist only client-side.
    """
    if isinstance(setting, RRF):
        if float(setting.k) != int(setting.k) or setting.k < 1:
            return None
        return ServerFusion(
            method="rrf",
            rank_constant=int(setting.k),
            weights=_server_weights(setting.weights, signals),
            signals=tuple(signals),
        )
    if isinstance(setting, WeightedSum):
        weights = _server_weights(setting.weights, signals)
        if setting.normalize == "dbsf":
            if setting.missing != "zero":
                return None
            return ServerFusion(method="dbsf", weights=weights, signals=tuple(signals))
        if setting.missing == "min":
            return None
        return ServerFusion(
            method="linear",
            normalizer=setting.normalize,
            missing=setting.missing,
            weights=weights,
            signals=tuple(signals),
        )
    return None


def describe(setting: FusionSetting) -> str:
    """A short, stable label for tables and logs, e.g. `rrf(k=60)` or `wsum(minmax,zero,w=0.7/0.3)`."""
    if isinstance(setting, RRF):
        w = "" if setting.weights is None else ",w=" + "/".join(f"{x:g}" for x in setting.weights)
        return f"rrf(k={setting.k:g}{w})"
    if isinstance(setting, WeightedSum):
        w = "" if setting.weights is None else ",w=" + "/".join(f"{x:g}" for x in setting.weights)
        return f"wsum({setting.normalize},{setting.missing}{w})"
    return f"two_stage({setting.first}->{setting.rescore},{setting.source})"
