"""Fusion formulas, normalisers, missing-document policies, tie-breaks and input errors, worked by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from spladebridge.hybrid.fusion import (
    FusionError,
    convex,
    normalize_scores,
    rrf,
    rrf_table,
    weighted_sum,
    weighted_sum_table,
)
from spladebridge.hybrid.two_stage import rescore

A = [("a", 3.0), ("b", 2.0), ("c", 1.0)]
B = [("b", 10.0), ("d", 4.0)]


def test_rrf_uses_one_based_ranks_and_absent_contributes_nothing() -> None:
    fused = dict(rrf([A, B], k=60))
    assert fused["b"] == pytest.approx(1 / 62 + 1 / 61)
    assert fused["a"] == pytest.approx(1 / 61)
    assert fused["d"] == pytest.approx(1 / 62)
    assert fused["c"] == pytest.approx(1 / 63)
    assert [d for d, _ in rrf([A, B])] == ["b", "a", "d", "c"]


def test_rrf_weights_multiply_each_list() -> None:
    fused = dict(rrf([A, B], k=10, weights=[2.0, 0.5]))
    assert fused["b"] == pytest.approx(2.0 / 12 + 0.5 / 11)
    assert fused["d"] == pytest.approx(0.5 / 12)


def test_rrf_ignores_scores_only_order_counts() -> None:
    rescaled = [[(d, s * 1000 - 7) for d, s in A], [(d, -s) for d, s in B]]
    assert rrf([A, B]) == rrf(rescaled)


def test_tie_break_is_best_single_rank_then_id() -> None:
    # x and y have ranks (2, 1) and (1, 2): equal scores and equal best rank, so the id decides
    first = [("y", 1.0), ("x", 0.5)]
    second = [("x", 1.0), ("y", 0.5)]
    assert [d for d, _ in rrf([first, second])] == ["x", "y"]
    # each document ranks 1st, 2nd and 3rd once: one score, one best rank, id order
    l1 = [("z", 1.0), ("m", 0.9), ("a", 0.8)]
    l2 = [("m", 1.0), ("a", 0.9), ("z", 0.8)]
    l3 = [("a", 1.0), ("z", 0.9), ("m", 0.8)]
    fused = rrf([l1, l2, l3])
    assert {s for _, s in fused} == {fused[0][1]}
    assert [d for d, _ in fused] == ["a", "m", "z"]


def test_tie_break_by_best_rank_before_id() -> None:
    # k=0: zb scores 0.5/1, aa scores 1/2 -> equal; zb's best rank is 1, aa's is 2, so zb goes first
    fused = rrf([[("zb", 1.0)], [("top", 1.0), ("aa", 0.5)]], k=0, weights=[0.5, 1.0])
    assert fused[1][1] == fused[2][1]
    assert [d for d, _ in fused] == ["top", "zb", "aa"]


def test_mixed_id_types_order_by_type_name_then_value() -> None:
    fused = rrf([[(2, 1.0)], [("1", 1.0)], [(1, 1.0)]])
    assert [d for d, _ in fused] == [1, 2, "1"]


def test_limit_and_empty_inputs() -> None:
    assert rrf([]) == []
    assert rrf([[], []]) == []
    assert weighted_sum([[], A])[0][0] == "a"
    assert len(rrf([A, B], limit=2)) == 2
    assert rrf([A, B], limit=0) == []


def test_minmax_sum_by_hand() -> None:
    fused = dict(weighted_sum([A, B], normalize="minmax"))
    assert fused == pytest.approx({"a": 1.0, "b": 0.5 + 1.0, "c": 0.0, "d": 0.0})


def test_missing_policies_by_hand() -> None:
    zero = dict(weighted_sum([A, B], [1.0, 3.0], normalize="minmax", missing="zero"))
    assert zero["a"] == pytest.approx(1.0)
    # min: a missing from B gets B's min normalised score (0) times its weight; c missing from B likewise
    low = dict(weighted_sum([A, B], [1.0, 3.0], normalize="none", missing="min"))
    assert low["a"] == pytest.approx(3.0 + 3.0 * 4.0)
    assert low["d"] == pytest.approx(1.0 * 1.0 + 3.0 * 4.0)
    # exclude: OpenSearch's arithmetic mean over the lists that returned the document
    excl = dict(weighted_sum([A, B], [1.0, 3.0], normalize="none", missing="exclude"))
    assert excl["a"] == pytest.approx(3.0)
    assert excl["b"] == pytest.approx((1.0 * 2.0 + 3.0 * 10.0) / 4.0)
    assert excl["d"] == pytest.approx(4.0)


def test_exclude_with_zero_weight_everywhere_scores_zero() -> None:
    fused = dict(weighted_sum([A, B], [0.0, 1.0], normalize="none", missing="exclude"))
    assert fused["a"] == 0.0
    assert fused["b"] == pytest.approx(10.0)


@pytest.mark.parametrize(
    ("method", "expected"),
    [
        ("none", [4.0, 2.0, 1.0, 1.0]),
        ("minmax", [1.0, 1 / 3, 0.0, 0.0]),
        ("max", [1.0, 0.5, 0.25, 0.25]),
        ("l2", [4 / math.sqrt(22), 2 / math.sqrt(22), 1 / math.sqrt(22), 1 / math.sqrt(22)]),
    ],
)
def test_normalisers_by_hand(method: str, expected: list[float]) -> None:
    out = normalize_scores(np.array([4.0, 2.0, 1.0, 1.0]), method)  # type: ignore[arg-type]
    assert out.tolist() == pytest.approx(expected)


def test_zscore_uses_population_std() -> None:
    x = np.array([1.0, 2.0, 3.0, 6.0])
    assert normalize_scores(x, "zscore").tolist() == pytest.approx(((x - x.mean()) / x.std(ddof=0)).tolist())


def test_dbsf_is_qdrants_three_sigma_with_sample_variance_and_no_clipping() -> None:
    x = np.array([10.0, 1.0, 0.5, 0.25, 0.0])
    mean, sd = x.mean(), x.std(ddof=1)
    out = normalize_scores(x, "dbsf")
    assert out.tolist() == pytest.approx(((x - (mean - 3 * sd)) / (6 * sd)).tolist())
    extreme = normalize_scores(np.array([1000.0] + [0.0] * 200), "dbsf")
    assert extreme[0] > 1.0  # not clipped
    assert normalize_scores(np.array([3.0]), "dbsf").tolist() == [0.5]
    assert normalize_scores(np.array([2.0, 2.0, 2.0]), "dbsf").tolist() == [0.5, 0.5, 0.5]


def test_degenerate_lists() -> None:
    assert normalize_scores(np.array([5.0, 5.0]), "minmax").tolist() == [1.0, 1.0]
    assert normalize_scores(np.array([5.0]), "minmax").tolist() == [1.0]
    assert normalize_scores(np.array([5.0, 5.0]), "zscore").tolist() == [0.0, 0.0]
    assert normalize_scores(np.array([0.0, 0.0]), "l2").tolist() == [0.0, 0.0]
    assert normalize_scores(np.array([0.0, 0.0]), "max").tolist() == [0.0, 0.0]


def test_convex_is_alpha_weighted_pair() -> None:
    assert convex([A, B], alpha=0.25) == weighted_sum([A, B], [0.25, 0.75])
    with pytest.raises(FusionError, match="exactly two"):
        convex([A], 0.5)
    with pytest.raises(FusionError, match="alpha"):
        convex([A, B], 1.5)


def test_table_reports_per_list_ranks_and_raw_scores() -> None:
    table = rrf_table([A, B])
    j = table.ids.index("b")
    assert table.ranks[:, j].tolist() == [2, 1]
    assert table.raw[:, j].tolist() == [2.0, 10.0]
    j = table.ids.index("d")
    assert table.ranks[:, j].tolist() == [0, 2]
    assert math.isnan(table.raw[0, j])
    wt = weighted_sum_table([A, B], limit=1)
    assert len(wt) == 1 and wt.ids == ["b"]


@pytest.mark.parametrize(
    ("lists", "message"),
    [
        ([[("a", 1.0), ("a", 0.5)]], r"list 0: id 'a' appears at positions 0 and 1"),
        ([A, [("x", 1.0), ("y",)]], r"list 1, position 1: expected an \(id, score\) pair"),
        ([A, [("x",)]], r"list 1, position 0: expected an \(id, score\) pair"),
        ([A, 5], r"list 1: expected a sequence of \(id, score\) pairs, got int"),
        ([[("x", "high")]], r"list 0, position 0 \(id 'x'\): score 'high' is not a number"),
        ([A, [("x", float("nan"))]], r"list 1, position 0 \(id 'x'\): score nan is not finite"),
        ([[(["unhashable"], 1.0)]], r"list 0, position 0: id \['unhashable'\] is not hashable"),
        ("abc", "expected a sequence of ranked lists"),
    ],
)
def test_bad_input_names_list_and_position(lists: object, message: str) -> None:
    with pytest.raises(FusionError, match=message):
        weighted_sum(lists)  # type: ignore[arg-type]


def test_items_may_carry_more_than_id_and_score() -> None:
    assert rrf([[("a", 2.0, "extra"), ["b", 1.0]]]) == rrf([[("a", 2.0), ("b", 1.0)]])


def test_bad_parameters() -> None:
    with pytest.raises(FusionError, match="2 weights for 1 lists"):
        rrf([A], weights=[1.0, 2.0])
    with pytest.raises(FusionError, match=r"weight 0 is -1\.0"):
        weighted_sum([A], weights=[-1.0])
    with pytest.raises(FusionError, match="RRF k"):
        rrf([A], k=-1)
    with pytest.raises(FusionError, match="unknown normalizer 'softmax'"):
        weighted_sum([A], normalize="softmax")  # type: ignore[arg-type]
    with pytest.raises(FusionError, match="unknown missing policy"):
        weighted_sum([A], missing="drop")  # type: ignore[arg-type]
    with pytest.raises(FusionError, match="limit"):
        rrf([A], limit=-1)


def test_rrf_accepts_non_finite_scores_since_it_ignores_them() -> None:
    assert [d for d, _ in rrf([[("a", float("inf")), ("b", float("nan"))]])] == ["a", "b"]


def test_rescore_keeps_candidates_only_and_orders_missing_last() -> None:
    first = [("a", 9.0), ("b", 8.0), ("c", 7.0), ("d", 6.0)]
    out = rescore(first, {"c": 0.9, "a": 0.1, "b": 0.9, "zzz": 5.0})
    assert [d for d, _ in out] == ["b", "c", "a", "d"]  # b and c tie: first-stage order decides
    assert out[-1][1] == -math.inf
    assert rescore(first, {}, limit=2) == [("a", -math.inf), ("b", -math.inf)]
    with pytest.raises(FusionError, match="candidate 1"):
        rescore([("a", 1.0), "b"], {})  # type: ignore[list-item]
    with pytest.raises(FusionError, match="not finite"):
        rescore(first, {"a": float("nan")})
