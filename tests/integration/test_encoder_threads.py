"""The first encode may come from many threads at once (an async service's encoder pool, a thread-pool
server): the lazy model load happens once, and every thread gets the same vectors as a lone call."""

from __future__ import annotations

import threading

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
