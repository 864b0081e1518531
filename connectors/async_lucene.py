"""`AsyncLuceneConnector`: Elasticsearch and OpenSearch searches on the official async clients.

Nothing of the sync connectors is copied. A planner, the dialect's own synchronous connector, builds every
request (`prepare_sparse`, `prepare_dense`, `prepare_text`, `prepare_hybrid_search`) and reads every answer
(`read_hits`); searches are then sent with the async client through `LuceneClient.search_async`, so errors
are the same `ConnectorError`s under the same `RetryPolicy`. What the planner must learn once (version,
plugins, licence, mapping) and rare calls (`get`, `count`, creating a search pipeline) run its own code on a
worker thread, whose client is a `BlockingBridge` to the async client: every byte goes through the official
async client, and the event loop never blocks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Generic, Self, TypeVar

import numpy as np
from numpy.typing import NDArray

from spladebridge.connectors.async_base import AsyncConnector
from spladebridge.connectors.async_bridge import BlockingBridge, WouldBlock
from spladebridge.connectors.async_threads import run_in_thread
from spladebridge.connectors.base import (
    Capabilities,
    ConnectorError,
    DocId,
    Document,
    Hit,
    HybridRequest,
    IndexSpec,
    ServerFusion,
)
from spladebridge.connectors.filters import FilterLike
from spladebridge.connectors.lucene_client import LuceneClient
from spladebridge.connectors.lucene_connector import LuceneConnector, PreparedSearch
from spladebridge.encoder.sparse_vector import SparseVector

__all__ = ["AsyncLuceneConnector"]

T = TypeVar("T")
P = TypeVar("P", bound=LuceneConnector)


class AsyncLuceneConnector(AsyncConnector, Generic[P]):
    """One existing Elasticsearch or OpenSearch index, searched on the dialect's async client `aclient`.

    `cluster` wraps the async client (its `where`, redaction and retry policy); `planner(cluster)` builds the
    dialect's sync connector over a `LuceneClient` of the same dialect. The index must exist (write it with
    the sync connector or `spladebridge index`); `open()` reads its spec and the server's facts."""

    def __init__(
        self, cluster: LuceneClient, planner: Callable[[LuceneClient], P], *, owns_client: bool
    ) -> None:
        self.cluster = cluster
        self._make_planner = planner
        self._planner: P | None = None
        self._owns_client = owns_client
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spladebridge-lucene-setup")
        self._closed = False

    @property
    def client(self) -> Any:
        """The official async client."""
        return self.cluster.client

    @property
    def planner(self) -> P:
        """The dialect's sync connector that builds requests and reads answers (after `open()`)."""
        if self._closed:
            raise ConnectorError(f"this {type(self).__name__} is closed")
        if self._planner is None:
            raise ConnectorError(f"{type(self).__name__} is not open: use `async with` or `await open()`")
        return self._planner

    @property
    def spec(self) -> IndexSpec | None:
        return None if self._planner is None else self._planner.spec

    async def open(self) -> Self:
        """Read the server's facts and the index's spec (IndexNotFound when there is no such index)."""
        if self._closed:
            raise ConnectorError(f"this {type(self).__name__} is closed")
        if self._planner is None:
            bridge = BlockingBridge(self.client, asyncio.get_running_loop())
            cluster = type(self.cluster)(bridge, where=self.cluster.where, redact=self.cluster.redact)
            cluster.settings = self.cluster.settings
            planner = self._make_planner(cluster)
            try:
                await self._in_thread(planner.existing_spec)
                await self._in_thread(planner.capabilities)
            except BaseException:
                await self.aclose()  # `async with` calls no __aexit__ when opening fails
                raise
            self._planner = planner
        return self

    async def aclose(self) -> None:
        """Close the async client (when this built it) and the setup thread; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        await asyncio.get_running_loop().run_in_executor(None, lambda: self._pool.shutdown(wait=True))
        if self._owns_client:
            await self.client.close()

    # -- engine facts (cached by the planner after open; read on the setup thread when not) ------------

    async def capabilities(self) -> Capabilities:
        return await self._plan(self.planner.capabilities)

    async def server_fusion_problem(self, fusion: ServerFusion, sub_queries: int) -> str | None:
        return await self._plan(lambda: self.planner.server_fusion_problem(fusion, sub_queries))

    def stored_sparse(self, vector: SparseVector) -> SparseVector:
        return self.planner.stored_sparse(vector)

    # -- searches: requests built by the planner, sent by the async client --------------------------------

    async def search_sparse(self, vector: SparseVector, k: int, filter: FilterLike = None) -> list[Hit]:
        return await self._execute(await self._plan(lambda: self.planner.prepare_sparse(vector, k, filter)))

    async def search_dense(self, vector: NDArray[np.float32], k: int, filter: FilterLike = None) -> list[Hit]:
        return await self._execute(await self._plan(lambda: self.planner.prepare_dense(vector, k, filter)))

    async def search_text(self, text: str, k: int, filter: FilterLike = None) -> list[Hit]:
        return await self._execute(await self._plan(lambda: self.planner.prepare_text(text, k, filter)))

    async def search_hybrid(self, request: HybridRequest) -> list[Hit]:
        return await self._execute(await self._plan(lambda: self.planner.prepare_hybrid_search(request)))

    async def get(self, ids: Sequence[DocId]) -> list[Document | None]:
        return await self._in_thread(lambda: self.planner.get(ids))

    async def count(self) -> int:
        return await self._in_thread(self.planner.count)

    # -- plumbing -----------------------------------------------------------------------------------------

    async def _execute(self, prepared: PreparedSearch | None) -> list[Hit]:
        if prepared is None:
            return []
        planner = self.planner
        if planner.needs_setup(prepared):
            await self._in_thread(lambda: planner.run_setup(prepared.setup))
        index = planner.index
        response = await planner.cluster.search_async(
            self.client, prepared.body, index, what=prepared.what, **prepared.params
        )
        return planner.read_hits(prepared, response)

    async def _plan(self, fn: Callable[[], T]) -> T:
        """`fn()` on the event loop when it needs no I/O (the planner's facts are cached), else on the
        setup thread, where its blocking calls go through the async client."""
        try:
            return fn()
        except WouldBlock:
            return await self._in_thread(fn)

    async def _in_thread(self, fn: Callable[[], T]) -> T:
        return await run_in_thread(self._pool, fn)
