"""Blocking connector calls on asyncio through a bounded thread pool, cancellation-safe.

`run_in_thread` is the one way this package runs blocking work from a coroutine: a call that has not started
when its awaiter is cancelled never runs; one that has started is waited for before the cancellation goes
on (a thread cannot be interrupted), so a cancelled request leaves nothing running. `AsyncThreadedConnector`
gives any synchronous `Connector` (Qdrant Edge in-process, qdrant-client) the `AsyncConnector` interface:
every call runs the connector's own method in its pool, so results and `ConnectorError`s are the sync ones.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray

from spladebridge.connectors.async_base import AsyncConnector
from spladebridge.connectors.base import (
    Capabilities,
    Connector,
    ConnectorError,
    DocId,
    Document,
    Hit,
    HybridRequest,
    IndexSpec,
    ServerFusion,
)
from spladebridge.connectors.filters import FilterLike
from spladebridge.encoder.sparse_vector import SparseVector

__all__ = ["AsyncThreadedConnector", "available_cpus", "default_workers", "run_in_thread"]

T = TypeVar("T")


def available_cpus() -> int:
    """CPUs this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def default_workers() -> int:
    """Threads for in-process engine calls: two per CPU this process may use (calls release the GIL)."""
    return max(2, 2 * available_cpus())


async def run_in_thread(executor: Executor, fn: Callable[[], T]) -> T:
    """`fn()` on `executor`; cancelled before it starts: never runs; after: awaited, then cancelled."""
    submitted = executor.submit(fn)
    future = asyncio.wrap_future(submitted)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        if not submitted.cancel():  # already running (or done): wait until the thread has let go of it
            await asyncio.wait([future])
            if not future.cancelled():
                future.exception()  # seen: the cancellation is what the caller gets
        raise


class AsyncThreadedConnector(AsyncConnector):
    """Any synchronous `Connector` on asyncio: each call runs the connector's own method in a pool of at most
    `max_workers` threads (default `default_workers()`). `owns_connector`: `aclose()` closes it too."""

    def __init__(
        self, connector: Connector, *, max_workers: int | None = None, owns_connector: bool = True
    ) -> None:
        workers = default_workers() if max_workers is None else max_workers
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"max_workers must be a positive integer, got {max_workers!r}")
        self.connector = connector
        self.max_workers = workers
        self.owns_connector = owns_connector
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="spladebridge-engine")
        self._closed = False

    @property
    def spec(self) -> IndexSpec | None:
        return self.connector.spec

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        if self._closed:
            raise ConnectorError(f"this {type(self).__name__} is closed")
        return await run_in_thread(self._pool, lambda: fn(*args))

    async def capabilities(self) -> Capabilities:
        return await self._call(self.connector.capabilities)

    async def server_fusion_problem(self, fusion: ServerFusion, sub_queries: int) -> str | None:
        return await self._call(self.connector.server_fusion_problem, fusion, sub_queries)

    async def search_sparse(self, vector: SparseVector, k: int, filter: FilterLike = None) -> list[Hit]:
        return await self._call(self.connector.search_sparse, vector, k, filter)

    async def search_dense(self, vector: NDArray[np.float32], k: int, filter: FilterLike = None) -> list[Hit]:
        return await self._call(self.connector.search_dense, vector, k, filter)

    async def search_text(self, text: str, k: int, filter: FilterLike = None) -> list[Hit]:
        return await self._call(self.connector.search_text, text, k, filter)

    async def search_hybrid(self, request: HybridRequest) -> list[Hit]:
        return await self._call(self.connector.search_hybrid, request)

    async def get(self, ids: Sequence[DocId]) -> list[Document | None]:
        return await self._call(self.connector.get, ids)

    async def count(self) -> int:
        return await self._call(self.connector.count)

    def stored_sparse(self, vector: SparseVector) -> SparseVector:
        return self.connector.stored_sparse(vector)

    async def aclose(self) -> None:
        """Wait for running calls, stop the threads, and close the connector when this owns it."""
        if self._closed:
            return
        self._closed = True
        await asyncio.get_running_loop().run_in_executor(None, lambda: self._pool.shutdown(wait=True))
        if self.owns_connector:
            self.connector.close()
