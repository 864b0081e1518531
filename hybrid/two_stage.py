"""Two-stage retrieval as a pure function: keep one signal's candidates, re-rank exactly those by another.

The classic retrieve-then-rescore pipeline: e.g. SPLADE candidates re-ranked by their dense similarity.
Unlike fusion, the second signal never adds a document; it only reorders the first stage's candidates.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from spladebridge.hybrid.fusion import FusionError, RankedList

__all__ = ["rescore"]


def rescore(
    candidates: RankedList, scores: Mapping[Any, float], limit: int | None = None
) -> list[tuple[Any, float]]:
    """Re-rank `candidates` (best first) by `scores[id]`, highest first; ties keep the first-stage order.

    Candidates without a rescoring score keep their first-stage order after every rescored one, with score
    -inf; ids in `scores` that are not candidates are ignored.
    """
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise FusionError(f"limit must be a non-negative integer or None, got {limit!r}")
    ids: list[Any] = []
    for pos, item in enumerate(candidates):
        if not isinstance(item, tuple | list) or len(item) != 2:
            raise FusionError(f"candidate {pos}: expected an (id, score) pair, got {item!r}")
        ids.append(item[0])
    if len(set(ids)) != len(ids):
        raise FusionError("candidates hold an id twice; a ranked list holds each id once")
    values = np.full(len(ids), -np.inf)
    for pos, doc_id in enumerate(ids):
        s = scores.get(doc_id)
        if s is not None:
            value = float(s)
            if not np.isfinite(value):
                raise FusionError(f"rescoring score of candidate {pos} (id {doc_id!r}) is not finite: {s!r}")
            values[pos] = value
    order = np.lexsort((np.arange(len(ids)), -values))
    if limit is not None:
        order = order[:limit]
    return [(ids[j], float(values[j])) for j in order.tolist()]
