"""Executor side: one encoder per Python worker and model settings, loaded on the first task that needs it.

Spark reuses Python workers across tasks (`spark.python.worker.reuse`, on by default), so a module-level
cache loads each model once per worker, not once per partition. Torch gets as many threads as the task has
CPUs (`spark.task.cpus`), so parallel tasks do not oversubscribe the cores; a task given a GPU
(`spark.task.resource.gpu.amount`) encodes on that GPU.
"""

from __future__ import annotations

from typing import Any

from pyspark import TaskContext

__all__ = ["dense_encoder", "sparse_encoder", "task_device", "task_threads"]

_ENCODERS: dict[tuple[Any, ...], Any] = {}


def task_threads() -> int:
    """CPUs Spark gave the running task (1 outside a task)."""
    context = TaskContext.get()
    return max(int(context.cpus()), 1) if context is not None else 1


def task_device(requested: str | None) -> str | None:
    """`requested`, else the GPU Spark assigned to this task (`cuda:N`), else None (the encoder's own choice)."""
    if requested is not None:
        return requested
    context = TaskContext.get()
    if context is not None:
        gpu = context.resources().get("gpu")
        if gpu is not None and gpu.addresses:
            return f"cuda:{gpu.addresses[0]}"
    return None


def sparse_encoder(
    model: str | None, device: str | None, max_length: int, batch_size: int, max_batch_tokens: int | None
) -> Any:
    """This worker's `SpladeEncoder` for these settings."""
    from spladebridge.encoder.splade import SpladeEncoder

    return _cached(SpladeEncoder, model, device, max_length, batch_size, max_batch_tokens)


def dense_encoder(
    model: str | None,
    device: str | None,
    max_length: int,
    batch_size: int,
    max_batch_tokens: int | None,
    precision: str | None = None,
) -> Any:
    """This worker's `DenseEncoder` for these settings."""
    from spladebridge.encoder.dense import DenseEncoder

    return _cached(DenseEncoder, model, device, max_length, batch_size, max_batch_tokens, precision=precision)


def _cached(
    cls: type,
    model: str | None,
    device: str | None,
    max_length: int,
    batch_size: int,
    max_batch_tokens: int | None,
    **options: Any,
) -> Any:
    threads = task_threads()
    device = task_device(device)
    given = {name: value for name, value in options.items() if value is not None}
    key = (
        cls.__name__,
        model,
        device,
        max_length,
        batch_size,
        max_batch_tokens,
        threads,
        *sorted(given.items()),
    )
    if key not in _ENCODERS:
        _ENCODERS[key] = cls(
            model,
            device=device,
            max_length=max_length,
            batch_size=batch_size,
            max_batch_tokens=max_batch_tokens,
            num_threads=threads,
            **given,
        )
    return _ENCODERS[key]
