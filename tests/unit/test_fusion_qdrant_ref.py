"""Same scores and ranking as Qdrant's fusion, via qdrant-client's local-mode port of the server code.

qdrant_client.hybrid.fusion reproduces the server's `reciprocal_rank_fusion.rs` (0-based positions, k_q)
and `score_fusion.rs` DBSF; the integration test checks the embedded engine itself.
"""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest

from spladebridge.hybrid.fusion import rrf, weighted_sum

fusion_ref = pytest.importorskip("qdrant_client.hybrid.fusion")
models = pytest.importorskip("qdrant_client.http.models")


def _random_lists(seed: int, n_lists: int) -> list[list[tuple[int, float]]]:
    rng = np.random.default_rng(seed)
    pool = int(rng.integers(3, 40))
    out = []
    for _ in range(n_lists):
        depth = int(rng.integers(1, pool + 1))
        docs = rng.choice(pool, depth, replace=False).tolist()
        scores = sorted(rng.normal(0, rng.uniform(0.1, 5), depth).tolist(), reverse=True)
        out.append(list(zip(docs, scores, strict=True)))
    return out


def _points(lst: list[tuple[int, float]]) -> list[object]:
    return [models.ScoredPoint(id=d, version=0, score=s) for d, s in lst]


def _check(ours: list[tuple[int, float]], theirs: list[object]) -> None:
    ref = {p.id: p.score for p in theirs}  # type: ignore[attr-defined]
    assert set(ref) == {d for d, _ in ours}
    for doc_id, score in ours:
        assert score == pytest.approx(ref[doc_id], abs=1e-9, rel=0)
    ordered = [ref[d] for d, _ in ours]
    assert all(a >= b - 1e-12 for a, b in pairwise(ordered))


@pytest.mark.parametrize("seed", range(25))
@pytest.mark.parametrize("k", [1, 60])
def test_rrf_equals_qdrant_with_k_plus_one(seed: int, k: int) -> None:
    lists = _random_lists(seed, n_lists=1 + seed % 3)
    theirs = fusion_ref.reciprocal_rank_fusion(
        [_points(x) for x in lists], limit=10_000, ranking_constant_k=k + 1
    )
    _check(rrf(lists, k=k), theirs)


@pytest.mark.parametrize("seed", range(25))
def test_dbsf_equals_qdrant(seed: int) -> None:
    lists = _random_lists(seed, n_lists=2 + seed % 2)
    theirs = fusion_ref.distribution_based_score_fusion([_points(x) for x in lists], limit=10_000)
    _check(weighted_sum(lists, normalize="dbsf", missing="zero"), theirs)


def test_qdrant_default_k2_is_k1_here() -> None:
    lists = _random_lists(1, 3)
    theirs = fusion_ref.reciprocal_rank_fusion([_points(x) for x in lists], limit=10_000)
    _check(rrf(lists, k=1), theirs)
