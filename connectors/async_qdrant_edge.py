"""`AsyncQdrantEdgeConnector`: the embedded Qdrant Edge shard on asyncio, through a bounded thread pool.

Qdrant Edge runs in-process (no network client to make async), so each search runs the synchronous
`QdrantEdgeConnector`'s own method on one of `max_workers` threads: the same results and errors as the sync
path, and the event loop never blocks on the engine.
"""

from __future__ import annotations

import os

from spladebridge.connectors.async_threads import AsyncThreadedConnector
from spladebridge.connectors.base import IndexSpec
from spladebridge.connectors.qdrant_edge import QdrantEdgeConnector

__all__ = ["AsyncQdrantEdgeConnector"]


class AsyncQdrantEdgeConnector(AsyncThreadedConnector):
    """The Qdrant Edge shard in the folder `path` (see `QdrantEdgeConnector`), searched from asyncio;
    `aclose()` waits for running searches, then closes the shard and releases its lock."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        spec: IndexSpec | None = None,
        *,
        max_workers: int | None = None,
        max_search_threads: int | None = None,
    ) -> None:
        super().__init__(
            QdrantEdgeConnector(path, spec, max_search_threads=max_search_threads),
            max_workers=max_workers,
            owns_connector=True,
        )
