"""The vector cache: round trips, hits skip the encoder, stale entries are refused."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from spladebridge.encoder.sparse_vector import SparseVector
from spladebridge.evaluation.cache import CacheError, VectorCache, fingerprint_object, fingerprint_path


class Counting:
    def __init__(self) -> None:
        self.calls = 0

    def sparse(self, texts: Sequence[str]) -> list[SparseVector]:
        self.calls += 1
        return [
            SparseVector([i, 100 + len(t)], [0.5, float(len(t))]) if t else SparseVector.empty()
            for i, t in enumerate(texts)
        ]

    def dense(self, texts: Sequence[str]) -> NDArray[np.float32]:
        self.calls += 1
        return np.arange(len(texts) * 3, dtype=np.float32).reshape(len(texts), 3)


def test_sparse_round_trip_and_hit(tmp_path: Path) -> None:
    cache, enc = VectorCache(tmp_path), Counting()
    ids, texts = ["a", "b", "c"], ["xx", "", "yyyy"]
    first, hit1 = cache.sparse("k", "docs", ids, texts, enc.sparse)
    second, hit2 = cache.sparse("k", "docs", ids, texts, enc.sparse)
    assert (hit1, hit2, enc.calls) == (False, True, 1)
    assert second == first
    assert second[1].nnz == 0
    with np.load(cache.path("k", "docs"), allow_pickle=False) as data:
        assert set(data.files) == {"ids", "indptr", "indices", "values"}


def test_dense_round_trip_and_hit(tmp_path: Path) -> None:
    cache, enc = VectorCache(tmp_path), Counting()
    first, _ = cache.dense("k", "docs", ["a", "b"], ["x", "y"], enc.dense)
    second, hit = cache.dense("k", "docs", ["a", "b"], ["x", "y"], enc.dense)
    assert hit and enc.calls == 1
    assert second.dtype == np.float32
    np.testing.assert_array_equal(first, second)


def test_stale_entry_is_refused(tmp_path: Path) -> None:
    cache, enc = VectorCache(tmp_path), Counting()
    cache.dense("k", "docs", ["a", "b"], ["x", "y"], enc.dense)
    with pytest.raises(CacheError, match="cached ids do not match"):
        cache.dense("k", "docs", ["a", "c"], ["x", "y"], enc.dense)


def test_wrong_encoder_output_is_refused(tmp_path: Path) -> None:
    cache = VectorCache(tmp_path)
    with pytest.raises(CacheError, match=r"shape \(1, 3\) for 2 texts"):
        cache.dense("k", "d", ["a", "b"], ["x", "y"], lambda t: np.zeros((1, 3), np.float32))
    assert not cache.path("k", "d").exists()


def test_fingerprints(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "w.bin").write_bytes(b"abc")
    before = fingerprint_path(model)
    (model / "w.bin").write_bytes(b"abd")
    assert fingerprint_path(model) != before

    class Enc:
        def __init__(self, path: str, max_length: int) -> None:
            self.model_path = path
            self.max_length = max_length

    assert fingerprint_object(Enc(str(model), 256)) != fingerprint_object(Enc(str(model), 128))
    assert fingerprint_object(Enc(str(model), 256)) == fingerprint_object(Enc(str(model), 256))
