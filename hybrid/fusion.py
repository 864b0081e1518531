"""Pure, numpy-vectorised fusion of ranked lists: reciprocal rank fusion and normalised weighted sums.

Input: a sequence of ranked lists, each a sequence of `(id, score)` pairs already sorted best first (each id
at most once per list; ids are any hashable, normally `str | int`; longer items use their first two
elements). Output: `(id, fused_score)` pairs, best
first, with a deterministic tie-break: fused score descending, then the best single-list rank ascending,
then the id (ordered by `(type name, value)`, so mixed `str`/`int` ids compare). A document contributes
only through the lists that returned it; an id absent from every list never appears.

Fused scores are sums over lists of per-list contributions; the contributions of each document are summed
in sorted order, so permuting equally weighted lists gives bit-identical scores and the same ranking.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain, count
from operator import itemgetter
from typing import Any, Literal, TypeAlias

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "MISSING_POLICIES",
    "NORMALIZERS",
    "FusedTable",
    "FusionError",
    "MissingPolicy",
    "Normalizer",
    "RankedList",
    "convex",
    "id_sort_key",
    "normalize_scores",
    "rrf",
    "rrf_table",
    "weighted_sum",
    "weighted_sum_table",
]

RankedList: TypeAlias = Sequence[tuple[Any, float]]
Normalizer: TypeAlias = Literal["none", "minmax", "zscore", "l2", "max", "dbsf"]
MissingPolicy: TypeAlias = Literal["zero", "min", "exclude"]
NORMALIZERS: tuple[Normalizer, ...] = ("none", "minmax", "zscore", "l2", "max", "dbsf")
MISSING_POLICIES: tuple[MissingPolicy, ...] = ("zero", "min", "exclude")

_ABSENT_RANK = np.iinfo(np.int64).max


class FusionError(ValueError):
    """Malformed fusion input or parameters; the message names the list index, position or parameter."""


def id_sort_key(doc_id: Any) -> tuple[str, Any]:
    """The tie-break order of ids: by type name, then value (so `1` and `"1"` are distinct and comparable)."""
    return (type(doc_id).__name__, doc_id)


@dataclass(frozen=True, slots=True)
class FusedTable:
    """Everything one fusion computed, best first.

    `ids[j]` has fused score `scores[j]`; `ranks[i, j]` is its 1-based rank in input list i (0 where that list
    did not return it) and `raw[i, j]` its raw score there (NaN where absent).
    """

    ids: list[Any]
    scores: NDArray[np.float64]
    ranks: NDArray[np.int64]
    raw: NDArray[np.float64]

    def pairs(self) -> list[tuple[Any, float]]:
        """`(id, fused_score)` pairs with Python floats, best first."""
        return list(zip(self.ids, self.scores.tolist(), strict=True))

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(slots=True)
class _Pool:
    """The lists split into columns, with every id mapped to a code 0..n_unique-1 (first appearance order)."""

    ids: list[Any]
    codes: list[NDArray[np.intp]]
    scores: list[NDArray[np.float64]]


_FIRST = itemgetter(0)
_SECOND = itemgetter(1)


def _locate_error(lists: Sequence[RankedList], check_scores: bool) -> FusionError:
    """Scan the lists item by item (the slow path, after the fast one failed) and say what is wrong where."""
    for li, lst in enumerate(lists):
        if isinstance(lst, str | bytes) or not isinstance(lst, Sequence):
            return FusionError(
                f"list {li}: expected a sequence of (id, score) pairs, got {type(lst).__name__}"
            )
        seen: dict[Any, int] = {}
        for pos, item in enumerate(lst):
            try:
                doc_id, score = item[0], item[1]
            except (TypeError, IndexError, KeyError):
                return FusionError(f"list {li}, position {pos}: expected an (id, score) pair, got {item!r}")
            try:
                hash(doc_id)
            except TypeError:
                return FusionError(f"list {li}, position {pos}: id {doc_id!r} is not hashable")
            try:
                value = float(score)
            except (TypeError, ValueError):
                return FusionError(
                    f"list {li}, position {pos} (id {doc_id!r}): score {score!r} is not a number"
                )
            if check_scores and not np.isfinite(value):
                return FusionError(
                    f"list {li}, position {pos} (id {doc_id!r}): score {value!r} is not finite"
                )
            if doc_id in seen:
                return FusionError(
                    f"list {li}: id {doc_id!r} appears at positions {seen[doc_id]} and {pos}; "
                    "a ranked list holds each id once"
                )
            seen[doc_id] = pos
    return FusionError("malformed ranked lists")


def _pool(lists: Sequence[RankedList], check_scores: bool) -> _Pool:
    """Flatten the lists in one pass each for ids and scores; give every id a column 0..n_unique-1.

    Items are sequences whose first two elements are the id and the score (extra elements are ignored).
    The fast path does no per-item Python work; on any failure `_locate_error` finds the culprit.
    """
    if isinstance(lists, str | bytes) or not isinstance(lists, Sequence):
        raise FusionError(f"expected a sequence of ranked lists, got {type(lists).__name__}")
    try:
        sizes = [len(lst) for lst in lists]
        if any(isinstance(lst, str | bytes) for lst in lists):
            raise TypeError
        total = sum(sizes)
        first_pos: dict[Any, int] = {}
        ids = map(_FIRST, chain.from_iterable(lists))
        flat = np.fromiter(map(first_pos.setdefault, ids, count()), np.intp, total)
        scores = np.fromiter(map(_SECOND, chain.from_iterable(lists)), np.float64, total)
    except (TypeError, ValueError, IndexError, KeyError):
        raise _locate_error(lists, check_scores) from None
    if check_scores and not np.isfinite(scores).all():
        raise _locate_error(lists, check_scores)
    bounds = np.cumsum([0, *sizes]).tolist()
    for i in range(len(sizes)):
        seg = flat[bounds[i] : bounds[i + 1]]
        if seg.shape[0] > 1 and int(np.bincount(seg).max()) > 1:
            raise _locate_error(lists, check_scores)
    unique = list(first_pos)
    column = np.empty(total, np.intp)
    column[np.fromiter(first_pos.values(), np.intp, len(unique))] = np.arange(len(unique))
    cols = column[flat]
    return _Pool(
        unique,
        [cols[bounds[i] : bounds[i + 1]] for i in range(len(sizes))],
        [scores[bounds[i] : bounds[i + 1]] for i in range(len(sizes))],
    )


def _check_weights(weights: Sequence[float] | None, n_lists: int) -> NDArray[np.float64]:
    if weights is None:
        return np.ones(n_lists, np.float64)
    if isinstance(weights, str | bytes):
        raise FusionError(f"weights must be a sequence of numbers, got {weights!r}")
    try:
        w = np.asarray(weights, dtype=np.float64)
    except (TypeError, ValueError):
        raise FusionError(f"weights must be numbers, got {weights!r}") from None
    if w.ndim != 1 or w.shape[0] != n_lists:
        raise FusionError(f"got {w.size} weights for {n_lists} lists; give one weight per list")
    if not np.isfinite(w).all() or (w < 0).any():
        bad = int(np.flatnonzero(~np.isfinite(w) | (w < 0))[0])
        raise FusionError(f"weight {bad} is {float(w[bad])!r}; weights must be finite and >= 0")
    return w


def normalize_scores(scores: NDArray[np.float64], method: Normalizer) -> NDArray[np.float64]:
    """Normalise one list's scores.

    - `none`: unchanged.
    - `minmax`: (s - min) / (max - min); a list whose scores are all equal (or has one item) gets 1.0, as
      OpenSearch's min_max does (its best is as good as any list's best). ranx divides by max(span, 1e-9),
      giving 0.0 there; ranks and scores agree with ranx whenever the span is non-zero.
    - `zscore`: (s - mean) / std, population std (ranx `zmuv`, OpenSearch `z_score`); all equal -> 0.0.
    - `l2`: s / sqrt(sum s^2) (Elasticsearch `l2_norm`, OpenSearch `l2`); an all-zero list is unchanged.
    - `max`: s / max|s| (ranx `max` for positive scores); an all-zero list is unchanged.
    - `dbsf`: Qdrant's distribution-based normalisation: mean and *sample* std (n - 1), lo = mean - 3 std,
      hi = mean + 3 std, (s - lo) / (hi - lo), not clipped (can fall outside [0, 1]); fewer than 2 scores or
      zero variance give 0.5 (lib/segment/src/common/score_fusion.rs). Computed in float64 where Qdrant
      uses float32, so scores agree to about 1e-6 relative.
    """
    n = scores.shape[0]
    if n == 0 or method == "none":
        return scores
    if method == "minmax":
        lo, hi = scores.min(), scores.max()
        if hi == lo:
            return np.ones(n, np.float64)
        return _f64((scores - lo) / (hi - lo))
    if method == "zscore":
        std = scores.std()
        if std == 0:
            return np.zeros(n, np.float64)
        return _f64((scores - scores.mean()) / std)
    if method == "l2":
        norm = float(np.sqrt(np.dot(scores, scores)))
        return _f64(scores / norm) if norm > 0 else scores
    if method == "max":
        top = float(np.abs(scores).max())
        return _f64(scores / top) if top > 0 else scores
    if method == "dbsf":
        if n < 2:
            return np.full(n, 0.5)
        var = scores.var(ddof=1)
        if var == 0:
            return np.full(n, 0.5)
        mean, std = scores.mean(), np.sqrt(var)
        lo, hi = mean - 3.0 * std, mean + 3.0 * std
        return _f64((scores - lo) / (hi - lo))
    raise FusionError(f"unknown normalizer {method!r}; choose one of {', '.join(NORMALIZERS)}")


def _rank_matrices(pool: _Pool) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    n_lists, n_docs = len(pool.codes), len(pool.ids)
    ranks = np.zeros((n_lists, n_docs), np.int64)
    raw = np.full((n_lists, n_docs), np.nan)
    for i, (codes, scores) in enumerate(zip(pool.codes, pool.scores, strict=True)):
        ranks[i, codes] = np.arange(1, codes.shape[0] + 1)
        raw[i, codes] = scores
    return ranks, raw


def _order_independent_sum(matrix: NDArray[np.float64]) -> NDArray[np.float64]:
    """Column sums computed in sorted order, so that the result does not depend on the row order."""
    if matrix.shape[0] <= 2:
        return _f64(matrix.sum(axis=0))
    if matrix.shape[0] == 3:
        a, b, c = matrix
        low, high = np.minimum(a, b), np.maximum(a, b)
        return _f64((np.minimum(low, c) + np.maximum(low, np.minimum(high, c))) + np.maximum(high, c))
    return _f64(np.sort(matrix, axis=0).sum(axis=0))


def _f64(values: Any) -> NDArray[np.float64]:
    """`values` as a float64 array (no copy when it already is one)."""
    return np.asarray(values, dtype=np.float64)


def _ranked(pool: _Pool, fused: NDArray[np.float64], limit: int | None) -> FusedTable:
    """Sort by fused score desc, best single rank asc, id; cut to `limit`.

    Ids are compared only among documents tied on both score and best rank, and with a `limit` only within
    the kept head (extended over a tie group that straddles the cut).
    """
    ranks, raw = _rank_matrices(pool)
    best = np.where(ranks > 0, ranks, _ABSENT_RANK).min(axis=0) if ranks.size else np.empty(0, np.int64)
    order = np.lexsort((best, -fused))
    f, b = fused[order], best[order]
    stop = order.shape[0]
    if limit is not None and limit < stop:
        stop = limit
        if limit > 0:
            same = (f[limit:] == f[limit - 1]) & (b[limit:] == b[limit - 1])
            stop += same.shape[0] if same.all() else int(np.argmin(same))
    head, f, b = order[:stop], f[:stop], b[:stop]
    tied = (f[1:] == f[:-1]) & (b[1:] == b[:-1])
    if tied.any():
        involved = np.zeros(stop, bool)
        involved[1:] |= tied
        involved[:-1] |= tied
        id_rank = np.zeros(stop, np.int64)
        id_rank[involved] = _id_ranks([pool.ids[j] for j in head[involved].tolist()])
        head = head[np.lexsort((id_rank, b, -f))]
    if limit is not None:
        head = head[:limit]
    if head.shape[0] <= 64:
        ids = [pool.ids[j] for j in head.tolist()]
    else:
        table = np.empty(len(pool.ids), dtype=object)
        table[:] = pool.ids
        ids = table[head].tolist()
    return FusedTable(ids, fused[head], ranks[:, head], raw[:, head])


def _id_ranks(ids: list[Any]) -> NDArray[np.int64]:
    """Position of each id in `id_sort_key` order (vectorised when all ids are str, or all int)."""
    kinds = set(map(type, ids))
    if kinds == {str} or kinds == {int}:
        order = np.argsort(np.asarray(ids), kind="stable")
    else:
        try:
            order = np.asarray(sorted(range(len(ids)), key=lambda j: id_sort_key(ids[j])), np.int64)
        except TypeError:
            order = np.asarray(
                sorted(range(len(ids)), key=lambda j: (type(ids[j]).__name__, str(ids[j]))), np.int64
            )
    ranks = np.empty(len(ids), np.int64)
    ranks[order] = np.arange(len(ids))
    return ranks


def _check_limit(limit: int | None) -> None:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise FusionError(f"limit must be a non-negative integer or None, got {limit!r}")


def rrf_table(
    lists: Sequence[RankedList],
    k: float = 60,
    weights: Sequence[float] | None = None,
    limit: int | None = None,
) -> FusedTable:
    """`rrf` returning the full `FusedTable` (per-list ranks and raw scores of every fused document)."""
    if isinstance(k, bool) or not isinstance(k, int | float) or not np.isfinite(k) or k < 0:
        raise FusionError(f"RRF k must be a finite number >= 0, got {k!r}")
    _check_limit(limit)
    pool = _pool(lists, check_scores=False)
    w = _check_weights(weights, len(pool.codes))
    contrib = np.zeros((len(pool.codes), len(pool.ids)))
    for i, codes in enumerate(pool.codes):
        contrib[i, codes] = w[i] / (k + np.arange(1, codes.shape[0] + 1, dtype=np.float64))
    return _ranked(pool, _order_independent_sum(contrib), limit)


def rrf(
    lists: Sequence[RankedList],
    k: float = 60,
    weights: Sequence[float] | None = None,
    limit: int | None = None,
) -> list[tuple[Any, float]]:
    """Reciprocal rank fusion: score(d) = sum_i w_i / (k + rank_i(d)), with **1-based** ranks.

    `rank_i(d)` is d's 1-based position in list i (scores are ignored, only order matters); a list that
    did not return d contributes 0. `weights` default to 1 each. `limit` keeps the best `limit` results.

    Conversions to engines that count differently (same ranking and scores):
    - Elasticsearch `rrf` retriever, OpenSearch `rrf` technique, ranx `rrf`, LangChain `EnsembleRetriever`
      (`c`), sentence-transformers' `ReciprocalRankFusionEvaluator` (`rrf_k`): 1-based too, k is the same.
    - Qdrant: 0-based positions, score = 1 / (k_q + pos0), so k_q = k + 1 (Qdrant's default k_q = 2 is k = 1
      here; the conventional k = 60 is k_q = 61). Qdrant's *weighted* RRF is 1 / ((pos0 + 1) / w + k_q - 1)
      = w / (rank + k * w), which is not w / (k + rank) unless w = 1.
    - Weaviate `rankedFusion`: 1 / (60 + pos0), i.e. k = 59 here.
    """
    return rrf_table(lists, k, weights, limit).pairs()


def weighted_sum_table(
    lists: Sequence[RankedList],
    weights: Sequence[float] | None = None,
    normalize: Normalizer = "minmax",
    missing: MissingPolicy = "zero",
    limit: int | None = None,
) -> FusedTable:
    """`weighted_sum` returning the full `FusedTable`."""
    if normalize not in NORMALIZERS:
        raise FusionError(f"unknown normalizer {normalize!r}; choose one of {', '.join(NORMALIZERS)}")
    if missing not in MISSING_POLICIES:
        raise FusionError(f"unknown missing policy {missing!r}; choose one of {', '.join(MISSING_POLICIES)}")
    _check_limit(limit)
    pool = _pool(lists, check_scores=True)
    w = _check_weights(weights, len(pool.codes))
    n_lists, n_docs = len(pool.codes), len(pool.ids)
    normed = [normalize_scores(s, normalize) for s in pool.scores]
    if missing == "min":
        floors = np.array([float(z.min()) if z.size else 0.0 for z in normed]) * w
        contrib = np.repeat(floors[:, None], n_docs, axis=1)
    else:
        contrib = np.zeros((n_lists, n_docs))
    for i, (codes, z) in enumerate(zip(pool.codes, normed, strict=True)):
        contrib[i, codes] = w[i] * z
    fused = _order_independent_sum(contrib)
    if missing == "exclude":
        present = np.zeros((n_lists, n_docs))
        for i, codes in enumerate(pool.codes):
            present[i, codes] = w[i]
        total = _order_independent_sum(present)
        fused = np.divide(fused, total, out=np.zeros_like(fused), where=total > 0)
    return _ranked(pool, fused, limit)


def weighted_sum(
    lists: Sequence[RankedList],
    weights: Sequence[float] | None = None,
    normalize: Normalizer = "minmax",
    missing: MissingPolicy = "zero",
    limit: int | None = None,
) -> list[tuple[Any, float]]:
    """Weighted sum of per-list normalised scores: score(d) = sum_i w_i * norm_i(score_i(d)).

    `normalize` is applied to each list separately (see `normalize_scores`: none, minmax, zscore, l2, max,
    dbsf). `missing` says what a list that did not return d contributes:
    - `zero` (default): 0, as Elasticsearch's linear retriever, Qdrant, Weaviate and ranx (CombSUM/wsum) do.
      Note that under zscore 0 is the list's mean, not its bottom.
    - `min`: that list's lowest normalised score, times its weight (as Pyserini's hybrid searcher imputes).
    - `exclude`: the weighted arithmetic mean over the lists that did return d, sum w_i s_i / sum w_i over
      present i; a document found by one list is not penalised. (OpenSearch's normalization processor,
      measured on real nodes, counts a missing sub-query as 0 with its full weight: that is `zero`, scaled.)
    Weights default to 1 each; scores must be finite. `limit` keeps the best `limit` results.
    """
    return weighted_sum_table(lists, weights, normalize, missing, limit).pairs()


def convex(
    lists: Sequence[RankedList],
    alpha: float = 0.5,
    normalize: Normalizer = "minmax",
    missing: MissingPolicy = "zero",
    limit: int | None = None,
) -> list[tuple[Any, float]]:
    """Convex combination of exactly two lists: alpha * first + (1 - alpha) * second, normalised first."""
    if len(lists) != 2:
        raise FusionError(f"convex fuses exactly two lists, got {len(lists)}")
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not 0.0 <= alpha <= 1.0:
        raise FusionError(f"alpha must be a number in [0, 1], got {alpha!r}")
    return weighted_sum(lists, (float(alpha), 1.0 - float(alpha)), normalize, missing, limit)
