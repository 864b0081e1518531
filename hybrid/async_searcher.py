"""`AsyncHybridSearcher`: hybrid search for asyncio services, with micro-batched query encoding.

The same search as `HybridSearcher` (`search_core.SearchCore`, one implementation), driven on asyncio: each
step's engine calls run concurrently on an `AsyncConnector`, query encoding runs on a worker thread (never on
the event loop), and queries that arrive within `batch_window_ms` of each other share one encoder batch
(`micro_batch.MicroBatcher`). A cancelled or timed-out search cancels its engine calls and waits for any
that already run in a thread, so nothing of it is left running; errors are the connector's own
`ConnectorError`s.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from types import TracebackType
from typing import Any, Self

from spladebridge.connectors.async_base import AsyncConnector
from spladebridge.connectors.async_threads import AsyncThreadedConnector, available_cpus, run_in_thread
from spladebridge.connectors.base import Connector, Signal
from spladebridge.connectors.filters import FilterLike
from spladebridge.hybrid.hits import FusedHit
from spladebridge.hybrid.micro_batch import MicroBatcher
from spladebridge.hybrid.protocols import DenseTextEncoder, SparseQueryEncoder
from spladebridge.hybrid.query_encoding import EncodedQuery, encode_queries
from spladebridge.hybrid.search_core import DEFAULT_FUSION, SearchCore
from spladebridge.hybrid.settings import FusionSetting
from spladebridge.hybrid.steps import Call, gather_or_cancel, run_steps_async

__all__ = ["AsyncHybridSearcher"]

#: A query waiting to be encoded: its text and whether it needs the sparse and the dense vector.
_Job = tuple[str, bool, bool]


class AsyncHybridSearcher(SearchCore):
    """Hybrid search on asyncio over an `AsyncConnector` (a plain `Connector` is wrapped in a bounded thread
    pool, `AsyncThreadedConnector`, which this searcher then closes; a given `AsyncConnector` is the
    caller's to close).

    Settings as `HybridSearcher` (signals, fusion, candidates, server_fusion, signal_details,
    explain_top_k), plus `batch_window_ms` (how long the first query of an encoder batch waits for others;
    0 still batches the queries that arrived while the encoder was busy), `max_batch` (queries per encoder
    batch), `timeout` (seconds per search, None: no limit; `TimeoutError` when it passes) and
    `encoder_workers` (encoder batches computed at once, one thread each; default: one per CPU, at most 2)
    and `encoder_threads` (torch's intra-op threads of each; None leaves torch's setting: one thread computes
    a small query batch with no per-operation thread barriers, which measured 3-4x less CPU per query than
    two threads for the dense model on a 2-core machine). Open it with
    `async with` (or `await open()`; the first search opens it too) and close it with `aclose()`.
    """

    connector: AsyncConnector

    def __init__(
        self,
        connector: AsyncConnector | Connector,
        sparse_encoder: SparseQueryEncoder,
        dense_encoder: DenseTextEncoder | None = None,
        signals: Sequence[Signal] | None = None,
        fusion: FusionSetting = DEFAULT_FUSION,
        candidates: int = 100,
        *,
        server_fusion: bool | None = None,
        signal_details: bool = True,
        explain_top_k: int | None = 10,
        batch_window_ms: float = 2.0,
        max_batch: int = 64,
        timeout: float | None = None,
        encoder_threads: int | None = 1,
        encoder_workers: int | None = None,
    ) -> None:
        if timeout is not None and not timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds or None, got {timeout!r}")
        if encoder_threads is not None and (isinstance(encoder_threads, bool) or encoder_threads < 1):
            raise ValueError(f"encoder_threads must be a positive integer or None, got {encoder_threads!r}")
        self._owns_connector = isinstance(connector, Connector)
        async_connector = (
            AsyncThreadedConnector(connector, owns_connector=False)
            if isinstance(connector, Connector)
            else connector
        )
        super().__init__(
            async_connector,
            sparse_encoder,
            dense_encoder,
            signals,
            fusion,
            candidates,
            server_fusion=server_fusion,
            signal_details=signal_details,
            explain_top_k=explain_top_k,
        )
        self.timeout = timeout
        self.batcher: MicroBatcher[_Job, EncodedQuery] = MicroBatcher(
            self._encode_batch,
            window_s=batch_window_ms / 1000.0,
            max_batch=max_batch,
            thread_name="spladebridge-query-encode",
            thread_init=None if encoder_threads is None else lambda: _intra_op_threads(encoder_threads),
            workers=min(2, available_cpus()) if encoder_workers is None else encoder_workers,
        )
        self._opened = False
        self._open_lock = asyncio.Lock()

    # -- lifecycle ----------------------------------------------------------------------------------------

    async def open(self) -> Self:
        """Open the connector and plan the search (signals, server-side fusion) from the engine's answers."""
        async with self._open_lock:
            if not self._opened:
                await self.connector.open()
                await run_steps_async(self.configure_steps(), self._call)
                self._opened = True
        return self

    async def aclose(self) -> None:
        """Stop the encoder thread (a running batch is awaited); close a connector this searcher wrapped."""
        await self.batcher.aclose()
        if self._owns_connector:
            await self.connector.aclose()

    async def __aenter__(self) -> Self:
        return await self.open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- searches -----------------------------------------------------------------------------------------

    async def search(
        self,
        query: str,
        k: int = 10,
        filter: FilterLike = None,
        explain: bool = False,
        *,
        timeout: float | None = None,
    ) -> list[FusedHit]:
        """The top `k` fused hits for one query text (encoded in a batch with concurrent queries)."""
        return (await self.search_batch([query], k, filter, explain, timeout=timeout))[0]

    async def search_batch(
        self,
        queries: Sequence[str],
        k: int = 10,
        filter: FilterLike = None,
        explain: bool = False,
        *,
        timeout: float | None = None,
    ) -> list[list[FusedHit]]:
        """The top `k` fused hits for each query; the queries are searched concurrently."""
        texts = self.check_request(queries, k)
        limit = timeout if timeout is not None else self.timeout
        async with asyncio.timeout(limit):
            if not self._opened:
                await self.open()
            return await gather_or_cancel([self._search_one(t, k, filter, explain) for t in texts])

    async def _search_one(self, text: str, k: int, filter: FilterLike, explain: bool) -> list[FusedHit]:
        sparse, dense = self.query_encoders(explain)
        query = await self.batcher.submit((text, sparse is not None, dense is not None))
        return await run_steps_async(self.search_steps(query, k, filter, explain), self._call)

    # -- plumbing -----------------------------------------------------------------------------------------

    def _encode_batch(self, jobs: list[_Job]) -> list[EncodedQuery]:
        """One encoder batch per vector kind over the jobs that need it (runs on the encoder thread)."""
        texts = [text for text, _, _ in jobs]
        need_sparse = [i for i, (_, s, _) in enumerate(jobs) if s]
        need_dense = [i for i, (_, _, d) in enumerate(jobs) if d]
        out = [EncodedQuery(text, None, None) for text in texts]
        if need_sparse:
            for i, q in zip(
                need_sparse,
                encode_queries([texts[i] for i in need_sparse], self.sparse_encoder, None),
                strict=True,
            ):
                out[i].sparse = q.sparse
        if need_dense:
            for i, q in zip(
                need_dense,
                encode_queries([texts[i] for i in need_dense], None, self.dense_encoder),
                strict=True,
            ):
                out[i].dense = q.dense
        return out

    async def _call(self, call: Call) -> Any:
        """One named call: on the async connector, or an encoder's on the encoder thread."""
        if call.target == "connector":
            return await getattr(self.connector, call.method)(*call.args)
        encoder = self.sparse_encoder if call.target == "sparse_encoder" else self.dense_encoder
        executor = self.batcher.executor()
        return await run_in_thread(executor, lambda: getattr(encoder, call.method)(*call.args))


def _intra_op_threads(n: int) -> None:
    """Torch's intra-op threads for the calling thread, when the encoders loaded torch (hybrid imports no
    model library itself)."""
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(n)
