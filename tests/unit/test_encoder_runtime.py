"""Runtime helpers: batch-level parallelism keeps order, device and dtype resolution."""

from __future__ import annotations

import threading

import pytest
import torch

from spladebridge.encoder import runtime
from spladebridge.encoder.runtime import BatchRunner, resolve_device, resolve_dtype


def test_batch_runner_keeps_order_and_uses_one_intra_op_thread_per_worker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(torch, "get_num_threads", lambda: 3)
    runner = BatchRunner(torch.device("cpu"))
    assert runner.workers == 3 and runner.in_flight == 6
    seen: list[str] = []

    def work(item: int) -> int:
        seen.append(threading.current_thread().name)
        return item * item

    try:
        assert list(runner.map(work, range(20))) == [i * i for i in range(20)]
    finally:
        runner.close()
    assert len(seen) == 20
    assert all(name.startswith("spladebridge-encode") for name in seen), seen


def test_a_lone_batch_on_an_idle_runner_runs_in_the_callers_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    runner = BatchRunner(torch.device("cpu"))
    seen: list[str] = []

    def work(item: int) -> int:
        seen.append(threading.current_thread().name)
        return item

    try:
        assert list(runner.map(work, [7])) == [7]
        assert list(runner.map(work, [1, 2])) == [1, 2]
        assert runner._claim_idle()  # another caller's batch is running: a lone batch queues for a worker
        try:
            assert list(runner.map(work, [9])) == [9]
        finally:
            runner._release()
        assert list(runner.map(work, [8])) == [8]  # idle again: inline
    finally:
        runner.close()
    assert seen[0] == threading.current_thread().name
    assert all(name.startswith("spladebridge-encode") for name in seen[1:4])
    assert seen[4] == threading.current_thread().name


def test_precision_picks_the_compute_dtype(monkeypatch: pytest.MonkeyPatch) -> None:
    cpu = torch.device("cpu")
    assert resolve_dtype(None, cpu, "exact") == torch.float32
    assert resolve_dtype("bf16", cpu, "exact") == torch.bfloat16  # an explicit dtype wins
    monkeypatch.setattr(runtime, "cpu_has_bf16", lambda: True)
    assert resolve_dtype(None, cpu, "fast") == torch.bfloat16
    monkeypatch.setattr(runtime, "cpu_has_bf16", lambda: False)
    assert resolve_dtype(None, cpu, "fast") == torch.float32  # emulated bf16 would be slower
    with pytest.raises(ValueError, match="precision"):
        resolve_dtype(None, cpu, "quick")  # type: ignore[arg-type]


def test_single_worker_runs_inline() -> None:
    runner = BatchRunner(torch.device("meta"))
    assert runner.workers == 1 and runner.in_flight == 1
    assert list(runner.map(str, [1, 2])) == ["1", "2"]


def test_dtype_resolution() -> None:
    cpu = torch.device("cpu")
    assert resolve_dtype(None, cpu) == torch.float32
    assert resolve_dtype("bf16", cpu) == torch.bfloat16
    assert resolve_dtype(torch.float16, cpu) == torch.float16
    with pytest.raises(ValueError, match="unsupported dtype"):
        resolve_dtype("int8", cpu)
    assert resolve_device("cpu") == cpu
