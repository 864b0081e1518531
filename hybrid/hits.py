"""What a hybrid search returns: fused hits with each signal's rank and score (plain data)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from spladebridge.connectors.base import DocId, Hit

__all__ = ["FusedHit", "SignalResult", "fields_by_id"]


@dataclass(frozen=True, slots=True)
class SignalResult:
    """One signal's view of a hit: its 1-based rank and raw score in that signal's candidate list."""

    rank: int
    score: float


@dataclass(slots=True)
class FusedHit:
    """One hybrid result: fused score and 1-based rank, stored fields, and what each signal said about it.

    `signals` holds the signals whose candidate lists contained the document (for two-stage: the first stage
    and the rescoring signal). `explanation` (with `explain=True`) lists the matching expansion terms and
    their contributions to the sparse dot product, largest first; None when not asked for or when the index
    holds no sparse vector for the document.
    """

    id: DocId
    score: float
    rank: int
    fields: dict[str, Any] = field(default_factory=dict)
    signals: dict[str, SignalResult] = field(default_factory=dict)
    explanation: list[tuple[str, float]] | None = None


def fields_by_id(lists: Iterable[list[Hit]]) -> dict[DocId, dict[str, Any]]:
    """The stored fields of each id, from the first list whose hit carried any."""
    out: dict[DocId, dict[str, Any]] = {}
    for hits in lists:
        for h in hits:
            if h.fields and h.id not in out:
                out[h.id] = dict(h.fields)
    return out
