"""The client-side model of Lucene FeatureField: 9-bit truncation, value hygiene, clause budget."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from spladebridge.connectors.lucene import (
    FLOAT_MIN_NORMAL,
    clean_document_vector,
    clean_query_vector,
    lucene_dot,
    truncate_9bit,
)
from spladebridge.encoder.sparse_vector import SparseVector


def java_feature_roundtrip(value: float) -> float:
    """Lucene: `Float.floatToIntBits(v) >>> 15` stored as a frequency, then `Float.intBitsToFloat(freq << 15)`."""
    bits = struct.unpack(">I", struct.pack(">f", value))[0]
    return float(struct.unpack(">f", struct.pack(">I", (bits >> 15) << 15))[0])


@given(st.floats(min_value=FLOAT_MIN_NORMAL, max_value=1e30, allow_nan=False, allow_infinity=False))
def test_truncation_matches_lucene_bit_arithmetic(value: float) -> None:
    f32 = float(np.float32(value))
    got = float(truncate_9bit(np.float32(f32)))
    assert got == java_feature_roundtrip(f32)
    assert got <= f32
    assert (f32 - got) / f32 < 2**-8


def test_truncation_explains_out_of_order_results() -> None:
    # elastic/elasticsearch#68626: 0.43122 and 0.43133 index to the same value
    a, b = truncate_9bit(np.array([0.43122, 0.43133], dtype=np.float32))
    assert a == b


def test_lucene_dot_uses_stored_values() -> None:
    q = SparseVector.from_dict({1: 2.0, 2: 1.0})
    d = SparseVector.from_dict({1: 0.43133, 3: 5.0})
    assert lucene_dot(q, d) == pytest.approx(2.0 * float(truncate_9bit(np.float32(0.43133))))
    assert lucene_dot(q, d) < q.dot(d)


def test_subnormal_weights_are_dropped_and_counted() -> None:
    vec = SparseVector([1, 2], np.array([1e-40, 1.0], dtype=np.float32))
    cleaned = clean_document_vector(vec)
    assert cleaned.vector.to_dict() == {2: 1.0}
    assert cleaned.dropped == 1


def test_query_cap_and_rescale_keep_the_ranking() -> None:
    rng = np.random.default_rng(0)
    query = SparseVector(np.arange(2000), rng.uniform(0.1, 200.0, 2000))
    docs = [SparseVector(rng.choice(2000, 50, replace=False), rng.uniform(0.1, 3.0, 50)) for _ in range(30)]
    cleaned = clean_query_vector(query, max_terms=1024, max_weight=64.0)
    assert cleaned.vector.nnz == 1024 and cleaned.truncated_terms == 976
    assert cleaned.vector.max_weight() <= 64.0
    capped_only = query.top_k(1024)
    order_before = np.argsort([-capped_only.dot(d) for d in docs], kind="stable")
    order_after = np.argsort([-cleaned.vector.dot(d) for d in docs], kind="stable")
    assert order_before.tolist() == order_after.tolist()
    assert cleaned.scale == pytest.approx(64.0 / capped_only.max_weight())
