"""Executor-side choices of spladebridge.spark: the device and thread count a task encodes with."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from spladebridge.spark import worker


@dataclass
class _Resource:
    addresses: list[str]


@dataclass
class _Context:
    task_cpus: int = 1
    gpus: list[str] = field(default_factory=list)

    def cpus(self) -> int:
        return self.task_cpus

    def resources(self) -> dict[str, Any]:
        return {"gpu": _Resource(self.gpus)} if self.gpus else {}


def test_a_task_with_a_gpu_encodes_on_that_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(worker.TaskContext, "get", staticmethod(lambda: _Context(gpus=["3"])))
    assert worker.task_device(None) == "cuda:3"
    assert worker.task_device("cpu") == "cpu"  # an explicit device always wins


def test_without_a_gpu_the_encoder_chooses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(worker.TaskContext, "get", staticmethod(lambda: _Context()))
    assert worker.task_device(None) is None


def test_torch_threads_follow_the_task_cpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(worker.TaskContext, "get", staticmethod(lambda: _Context(task_cpus=4)))
    assert worker.task_threads() == 4
    monkeypatch.setattr(worker.TaskContext, "get", staticmethod(lambda: None))
    assert worker.task_threads() == 1


def test_dense_precision_reaches_the_encoder_and_its_cache_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(worker.TaskContext, "get", staticmethod(lambda: None))
    made: list[dict[str, object]] = []

    class Recorder:
        __name__ = "Recorder"

        def __init__(self, model: object, **kwargs: object) -> None:
            made.append(kwargs)

    monkeypatch.setattr(worker, "_ENCODERS", {})
    exact = worker._cached(Recorder, None, "cpu", 256, 32, None)
    fast = worker._cached(Recorder, None, "cpu", 256, 32, None, precision="fast")
    assert worker._cached(Recorder, None, "cpu", 256, 32, None, precision="fast") is fast
    assert exact is not fast and len(made) == 2
    assert "precision" not in made[0] and made[1]["precision"] == "fast"
