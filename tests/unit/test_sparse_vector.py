"""SparseVector: validation, conversions, arithmetic."""

from __future__ import annotations

import json
import math
import pickle

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from spladebridge.encoder.sparse_vector import SparseVector, SparseVectorError

weights_maps = st.dictionaries(
    st.integers(min_value=0, max_value=30_521),
    st.floats(min_value=1e-6, max_value=100.0, allow_nan=False, allow_infinity=False),
    max_size=60,
)


def test_sorts_and_keeps_dtypes() -> None:
    vec = SparseVector([9, 2, 5], [0.3, 1.5, 0.7])
    assert vec.indices.tolist() == [2, 5, 9]
    assert vec.values.tolist() == pytest.approx([1.5, 0.7, 0.3])
    assert vec.indices.dtype == np.int32
    assert vec.values.dtype == np.float32
    assert vec.nnz == 3


def test_zero_weights_are_dropped() -> None:
    vec = SparseVector([1, 2, 3], [0.0, 2.0, 0.0])
    assert vec.to_dict() == {2: 2.0}


def test_arrays_are_read_only() -> None:
    vec = SparseVector([1], [1.0])
    with pytest.raises(ValueError):
        vec.values[0] = 5.0


@pytest.mark.parametrize(
    ("indices", "values", "message"),
    [
        ([1, 1], [1.0, 2.0], "duplicate index 1"),
        ([1, 2], [1.0, float("nan")], "position 1"),
        ([1, 2], [float("inf"), 1.0], "not finite"),
        ([1, 2], [1.0, -0.5], "negative"),
        ([-3], [1.0], "out of the int32 id range"),
        ([1.5], [1.0], "not an integer"),
        ([1, 2, 3], [1.0, 2.0], "differ in length"),
        ([[1]], [[1.0]], "1-D"),
    ],
)
def test_bad_input_names_the_problem(indices: list[object], values: list[object], message: str) -> None:
    with pytest.raises(SparseVectorError, match=message):
        SparseVector(indices, values)  # type: ignore[arg-type]


def test_out_of_vocabulary_id_is_rejected() -> None:
    with pytest.raises(SparseVectorError, match="outside the vocabulary"):
        SparseVector([10, 30_522], [1.0, 1.0], vocab_size=30_522)


def test_from_dict_rejects_non_integer_keys() -> None:
    with pytest.raises(SparseVectorError, match="not an integer"):
        SparseVector.from_dict({"7": 1.0})  # type: ignore[dict-item]
    with pytest.raises(SparseVectorError, match="not an integer"):
        SparseVector.from_dict({True: 1.0})


@given(weights_maps)
def test_dict_json_csr_round_trips(weights: dict[int, float]) -> None:
    vec = SparseVector.from_dict(weights)
    as_f32 = {k: float(np.float32(v)) for k, v in weights.items()}
    assert vec.to_dict() == as_f32
    assert SparseVector.from_json(vec.to_json()) == vec
    assert SparseVector.from_json(json.loads(vec.to_json())) == vec
    (back,) = SparseVector.from_csr(SparseVector.to_csr([vec], vocab_size=30_522))
    assert back == vec
    assert pickle.loads(pickle.dumps(vec)) == vec


@given(weights_maps, weights_maps)
def test_dot_matches_dense_dot(a: dict[int, float], b: dict[int, float]) -> None:
    va, vb = SparseVector.from_dict(a), SparseVector.from_dict(b)
    dense_a = np.zeros(30_522)
    dense_b = np.zeros(30_522)
    dense_a[va.indices] = va.values
    dense_b[vb.indices] = vb.values
    assert va.dot(vb) == pytest.approx(float(dense_a @ dense_b), rel=1e-9, abs=1e-12)
    assert math.fsum(c for _, c in va.contributions(vb)) == pytest.approx(va.dot(vb), rel=1e-9, abs=1e-12)


def test_contributions_largest_first() -> None:
    q = SparseVector.from_dict({1: 1.0, 2: 2.0, 3: 0.5})
    d = SparseVector.from_dict({1: 3.0, 2: 1.0, 4: 9.0})
    assert q.contributions(d) == [(1, 3.0), (2, 2.0)]


@given(weights_maps, st.integers(min_value=0, max_value=80))
def test_top_k_keeps_the_largest(weights: dict[int, float], k: int) -> None:
    vec = SparseVector.from_dict(weights)
    top = vec.top_k(k)
    assert top.nnz == min(k, vec.nnz)
    if top.nnz and top.nnz < vec.nnz:
        dropped = set(vec.indices.tolist()) - set(top.indices.tolist())
        smallest_kept = float(top.values.min())
        assert all(vec.to_dict()[i] <= smallest_kept for i in dropped)
    assert np.all(np.diff(top.indices) > 0)


def test_prune_and_scale() -> None:
    vec = SparseVector.from_dict({1: 0.1, 2: 0.5, 3: 2.0})
    assert vec.prune(0.5).to_dict() == {2: 0.5, 3: 2.0}
    assert vec.scale(2.0).to_dict() == pytest.approx({1: 0.2, 2: 1.0, 3: 4.0})
    with pytest.raises(SparseVectorError):
        vec.scale(0.0)


def test_tokens_round_trip_through_a_vocabulary() -> None:
    vocab = ["[PAD]", "cat", "##s", "."]
    vec = SparseVector.from_dict({1: 1.0, 3: 0.5})
    assert vec.to_tokens(vocab) == {"cat": 1.0, ".": 0.5}
    back = SparseVector.from_tokens({"cat": 1.0, ".": 0.5}, {t: i for i, t in enumerate(vocab)})
    assert back == vec
    with pytest.raises(SparseVectorError, match="not in the vocabulary"):
        SparseVector.from_tokens({"dog": 1.0}, {t: i for i, t in enumerate(vocab)})


def test_empty_vector() -> None:
    empty = SparseVector.empty()
    assert empty.nnz == 0 and not empty
    assert empty.dot(SparseVector.from_dict({1: 1.0})) == 0.0
    assert SparseVector.to_csr([empty, empty]).shape == (2, 0)
