"""`AsyncConnector`: the read side of the connector interface on asyncio (what a searcher needs).

The same calls as `Connector`'s searches and reads, awaited; the same `Hit`s and `Document`s; the same
`ConnectorError`s. `spec` and `stored_sparse` need no I/O and stay plain. An async connector is opened with
`await connector.open()` (or `async with`), which reads what the engine is and what the index holds.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from types import TracebackType
from typing import Self

import numpy as np
from numpy.typing import NDArray

from spladebridge.connectors.base import (
    Capabilities,
    DocId,
    Document,
    Hit,
    HybridRequest,
    IndexSpec,
    ServerFusion,
)
from spladebridge.connectors.filters import FilterLike
from spladebridge.encoder.sparse_vector import SparseVector

__all__ = ["AsyncConnector"]


class AsyncConnector(ABC):
    """One engine, one index, on asyncio: searches and reads. Use `async with` or `await aclose()`."""

    @property
    @abstractmethod
    def spec(self) -> IndexSpec | None:
        """The index spec (known once opened)."""

    async def open(self) -> Self:
        """Read what the engine and the index are (no-op where nothing is to be read); returns self."""
        return self

    @abstractmethod
    async def capabilities(self) -> Capabilities:
        """What this engine can do."""

    @abstractmethod
    async def server_fusion_problem(self, fusion: ServerFusion, sub_queries: int) -> str | None:
        """Why the engine cannot run `fusion` exactly as the hybrid module does, or None."""

    @abstractmethod
    async def search_sparse(self, vector: SparseVector, k: int, filter: FilterLike = None) -> list[Hit]:
        """Top-k documents by sparse dot product."""

    @abstractmethod
    async def search_dense(self, vector: NDArray[np.float32], k: int, filter: FilterLike = None) -> list[Hit]:
        """Top-k documents by dense similarity."""

    @abstractmethod
    async def search_text(self, text: str, k: int, filter: FilterLike = None) -> list[Hit]:
        """Top-k documents by the engine's own lexical scorer (BM25)."""

    @abstractmethod
    async def search_hybrid(self, request: HybridRequest) -> list[Hit]:
        """Top-k documents fused server-side (UnsupportedOperation when the engine cannot fuse exactly)."""

    @abstractmethod
    async def get(self, ids: Sequence[DocId]) -> list[Document | None]:
        """Documents by id, in the order asked; None where absent."""

    @abstractmethod
    async def count(self) -> int:
        """Number of documents in the index."""

    @abstractmethod
    def stored_sparse(self, vector: SparseVector) -> SparseVector:
        """The weights the engine scores a stored document vector with (so explanations add up)."""

    @abstractmethod
    async def aclose(self) -> None:
        """Release connections and threads; nothing of this connector runs afterwards. Safe to call twice."""

    async def __aenter__(self) -> Self:
        return await self.open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
