"""The first encode may come from many threads at once (an async service's encoder pool, a thread-pool
server): the lazy model load happens once, and every thread gets the same vectors as a lone call."""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np

import spladebridge as sb


def test_concurrent_first_calls_load_each_model_once_and_agree() -> None:
    sparse, dense = sb.SpladeEncoder(), sb.DenseEncoder()
    results: list[tuple[list[int], np.ndarray]] = []
    errors: list[BaseException] = []
    start = threading.Barrier(12)

    def first_call() -> None:
        try:
            start.wait()
            vector = sparse.encode_queries(["my bike tyre keeps going flat"])[0]
            results.append((vector.indices.tolist(), dense.encode(["my bike tyre keeps going flat"])[0]))
        except BaseException as exc:  # recorded and asserted below, not swallowed
            errors.append(exc)

    threads = [threading.Thread(target=first_call) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(results) == 12
    lone_sparse = sparse.encode_queries(["my bike tyre keeps going flat"])[0].indices.tolist()
    lone_dense = dense.encode(["my bike tyre keeps going flat"])[0]
    for indices, vector in results:
        assert indices == lone_sparse
        assert float(vector @ lone_dense) >= 0.9999


def _load_both_at_once() -> dict[str, object]:
    sparse, dense = sb.SpladeEncoder(), sb.DenseEncoder()
    start = threading.Barrier(2)
    errors: list[BaseException] = []
    out: dict[str, object] = {}

    def run(name: str, call: Callable[[], object]) -> None:
        try:
            start.wait()
            out[name] = call()
        except BaseException as exc:  # recorded and asserted below, not swallowed
            errors.append(exc)

    threads = [
        threading.Thread(target=run, args=("sparse", lambda: sparse.encode_queries(["flat tyre"])[0])),
        threading.Thread(target=run, args=("dense", lambda: dense.encode(["flat tyre"])[0])),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    return out


def test_two_different_models_loading_at_once_both_load_whole() -> None:
    """A SPLADE and a dense model first used from two threads at the same moment (a service warming up):
    transformers' loading state is process-wide, so the loads take turns and neither is left half-made."""
    for _ in range(3):
        out = _load_both_at_once()
        sparse = out["sparse"]
        assert isinstance(sparse, sb.SparseVector) and sparse.nnz > 0
        assert abs(float(np.linalg.norm(np.asarray(out["dense"]))) - 1.0) < 1e-5
