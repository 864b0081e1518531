"""Sparsity statistics: active dims and the SPLADE papers' FLOPS."""

from __future__ import annotations

import pytest

from spladebridge.encoder.sparse_vector import SparseVector
from spladebridge.encoder.stats import EncodeStats, sparsity_stats


def test_flops_is_the_sum_of_squared_activation_rates() -> None:
    docs = [SparseVector([0, 1], [1.0, 1.0]), SparseVector([1], [2.0]), SparseVector([1, 3], [1.0, 1.0])]
    stats = sparsity_stats(docs, vocab_size=4)
    # p = [1/3, 1, 0, 1/3] -> sum p^2 = 1/9 + 1 + 1/9
    assert stats.flops == pytest.approx(1 / 9 + 1 + 1 / 9)
    assert stats.mean_active_dims == pytest.approx(5 / 3)
    assert stats.median_active_dims == 2
    assert stats.max_active_dims == 2
    assert stats.sparsity_ratio == pytest.approx(1 - (5 / 3) / 4)


def test_flops_against_queries_multiplies_the_two_rates() -> None:
    docs = [SparseVector([0, 1], [1.0, 1.0]), SparseVector([1], [1.0])]
    queries = [
        SparseVector([1], [1.0]),
        SparseVector([2], [1.0]),
        SparseVector([0], [1.0]),
        SparseVector.empty(),
    ]
    stats = sparsity_stats(docs, vocab_size=3, queries=queries)
    # p_d = [1/2, 1, 0], p_q = [1/4, 1/4, 1/4] -> 1/8 + 1/4
    assert stats.flops == pytest.approx(0.375)


def test_empty_input_and_bad_items() -> None:
    assert sparsity_stats([], vocab_size=10).mean_active_dims == 0.0
    with pytest.raises(TypeError, match="item 1 is a dict"):
        sparsity_stats([SparseVector.empty(), {}], vocab_size=10)  # type: ignore[list-item]
    with pytest.raises(ValueError, match="item 0 has index 12"):
        sparsity_stats([SparseVector([12], [1.0])], vocab_size=10)


def test_encode_stats_accumulate() -> None:
    total = EncodeStats()
    total.add(EncodeStats(texts=2, empty=1, truncated=1, tokens=30, batches=1))
    total.add(EncodeStats(texts=3, tokens=5, batches=2))
    assert total == EncodeStats(texts=5, empty=1, truncated=1, tokens=35, batches=3)
