"""`AsyncHybridSearcher` against the in-memory fake connector: plumbing only (the same steps as the sync
searcher give the same hits; micro-batching; cancellation, timeouts and errors leave nothing running).
Engine behaviour is proven on real engines in tests/integration and tests/live."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from hybrid_fakes import (
    ExplainingFakeSparseEncoder,
    FakeConnector,
    FakeDenseEncoder,
    FakeSparseEncoder,
    make_documents,
)
from numpy.typing import NDArray

import spladebridge as sb
from spladebridge.connectors.async_threads import AsyncThreadedConnector
from spladebridge.connectors.base import ConnectorError, Hit
from spladebridge.connectors.filters import FilterLike, Term
from spladebridge.encoder.sparse_vector import SparseVector
from spladebridge.hybrid import RRF, AsyncHybridSearcher, HybridSearcher, TwoStage, WeightedSum
from spladebridge.hybrid.settings import FusionSetting

QUERIES = ["fast red car", "cat and dog", "sofa", "pet food", "nothing matches zzz", "red wine"]


def _setup(**kwargs: Any) -> tuple[FakeConnector, ExplainingFakeSparseEncoder, FakeDenseEncoder]:
    sparse, dense = ExplainingFakeSparseEncoder(), FakeDenseEncoder()
    return FakeConnector(make_documents(sparse, dense), **kwargs), sparse, dense


def test_the_package_root_exports_the_async_searcher() -> None:
    assert sb.AsyncHybridSearcher is AsyncHybridSearcher


@pytest.mark.parametrize(
    "fusion",
    [
        WeightedSum(normalize="minmax"),
        RRF(k=60),
        RRF(k=10, weights=(2.0, 1.0, 0.5)),
        WeightedSum(normalize="dbsf", weights=(1.0, 0.5, 2.0)),
        TwoStage(first="bm25", rescore="dense"),
        TwoStage(first="bm25", rescore="sparse", source="encode"),
        TwoStage(first="sparse", rescore="dense", source="encode"),
    ],
)
@pytest.mark.parametrize("server", [frozenset(), frozenset({"rrf", "dbsf"})])
@pytest.mark.parametrize("explain", [False, True])
def test_async_hits_equal_the_sync_searchers(
    fusion: FusionSetting, server: frozenset[str], explain: bool
) -> None:
    conn, sparse, dense = _setup(server_fusion=server, weighted_fusion=True)
    flt = Term("lang", "en")
    details = not server  # with signal details on, fusion runs client-side whatever the engine offers
    want = HybridSearcher(
        conn, sparse, dense, fusion=fusion, candidates=5, signal_details=details
    ).search_batch(QUERIES, k=4, filter=flt, explain=explain)

    async def run() -> tuple[list[list[Any]], bool]:
        async with AsyncHybridSearcher(
            conn, sparse, dense, fusion=fusion, candidates=5, signal_details=details
        ) as searcher:
            batch = await searcher.search_batch(QUERIES, k=4, filter=flt, explain=explain)
            single = await asyncio.gather(*(searcher.search(q, 4, flt, explain) for q in QUERIES))
            assert batch == list(single)
            return batch, searcher.uses_server_fusion

    got, server_fused = asyncio.run(run())
    assert got == want
    assert any(hits for hits in got)
    if explain:
        assert any(h.explanation for hits in got for h in hits)
    uses_server = (
        bool(server)
        and not isinstance(fusion, TwoStage)
        and not (isinstance(fusion, WeightedSum) and fusion.normalize == "minmax")
    )
    assert server_fused == uses_server
    if uses_server:
        planned = HybridSearcher(conn, sparse, dense, fusion=fusion, signal_details=False)._server
        assert ("hybrid", planned) in conn.calls


def test_concurrent_queries_share_one_encoder_batch() -> None:
    conn, sparse, dense = _setup()

    async def run() -> list[int]:
        async with AsyncHybridSearcher(conn, sparse, dense, batch_window_ms=50) as searcher:
            await asyncio.gather(*(searcher.search(q) for q in QUERIES))
            await searcher.search("sofa")  # alone: a batch of its own
            return list(searcher.batcher.stats.sizes)

    sizes = asyncio.run(run())
    assert sizes == [len(QUERIES), 1]
    assert sorted(sparse.query_calls[0]) == sorted(QUERIES) and sparse.query_calls[1] == ["sofa"]
    assert sorted(dense.calls[0]) == sorted(QUERIES) and len(dense.calls) == 2


def test_a_query_cancelled_before_its_batch_starts_is_never_encoded() -> None:
    conn, sparse, dense = _setup()

    async def run() -> tuple[int, int]:
        async with AsyncHybridSearcher(conn, sparse, dense, batch_window_ms=100) as searcher:
            task = asyncio.create_task(searcher.search("cancel me"))
            await asyncio.sleep(0.01)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await asyncio.sleep(0.2)  # past the window: the batch would have run by now
            hits = await searcher.search("sofa")
            assert hits and hits[0].id in ("d2", "d7")
            return searcher.batcher.stats.dropped, searcher.batcher.stats.batches

    dropped, batches = asyncio.run(run())
    assert dropped == 1 and batches == 1
    assert all("cancel me" not in call for call in sparse.query_calls)
    assert all("cancel me" not in call for call in dense.calls)


class SlowConnector(FakeConnector):
    """The fake connector whose dense search takes `delay` seconds; counts the calls running right now."""

    def __init__(self, *args: Any, delay: float = 0.3, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.delay = delay
        self.running = 0
        self.finished = 0
        self.started = threading.Event()
        self._lock = threading.Lock()

    def search_dense(self, vector: NDArray[np.float32], k: int, filter: FilterLike = None) -> list[Hit]:
        with self._lock:
            self.running += 1
        self.started.set()
        try:
            time.sleep(self.delay)
            return super().search_dense(vector, k, filter)
        finally:
            with self._lock:
                self.running -= 1
                self.finished += 1


def _other_tasks() -> set[asyncio.Task[Any]]:
    return {
        t
        for t in asyncio.all_tasks()
        if t is not asyncio.current_task() and not t.get_name().startswith("spladebridge")
    }


def test_a_cancelled_search_leaves_no_engine_call_and_no_task_running() -> None:
    sparse, dense = ExplainingFakeSparseEncoder(), FakeDenseEncoder()
    conn = SlowConnector(make_documents(sparse, dense))

    async def run() -> None:
        async with AsyncHybridSearcher(conn, sparse, dense) as searcher:
            task = asyncio.create_task(searcher.search("fast red car"))
            while not conn.started.is_set():
                await asyncio.sleep(0.005)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert conn.running == 0 and conn.finished == 1  # the running thread call was waited for
            assert not _other_tasks()
            assert isinstance(searcher.connector, AsyncThreadedConnector)
            assert searcher.connector._pool._work_queue.empty()  # nothing queued either

    asyncio.run(run())


def test_a_timeout_raises_timeout_error_and_leaves_nothing_running() -> None:
    sparse, dense = ExplainingFakeSparseEncoder(), FakeDenseEncoder()
    conn = SlowConnector(make_documents(sparse, dense), delay=0.5)

    async def run() -> None:
        async with AsyncHybridSearcher(conn, sparse, dense, timeout=0.1) as searcher:
            t0 = time.perf_counter()
            with pytest.raises(TimeoutError):
                await searcher.search("fast red car")
            assert time.perf_counter() - t0 < 0.5 + 0.3  # the limit plus the one running engine call
            assert conn.running == 0 and not _other_tasks()
            conn.delay = 0.0
            assert await searcher.search("sofa", timeout=5)  # the searcher still works afterwards

    asyncio.run(run())


class FailingConnector(FakeConnector):
    def search_text(self, text: str, k: int, filter: FilterLike = None) -> list[Hit]:
        raise ConnectorError(
            "opensearch: cannot run a text (BM25) search (index 'x'): 503 unavailable",
            operation="run a text (BM25) search",
            index="x",
            status=503,
            error_type="unavailable",
            reason="busy",
        )


def test_errors_are_the_sync_paths_connector_errors() -> None:
    sparse, dense = ExplainingFakeSparseEncoder(), FakeDenseEncoder()
    conn = FailingConnector(make_documents(sparse, dense))
    with pytest.raises(ConnectorError) as sync_error:
        HybridSearcher(conn, sparse, dense).search("fast red car")

    async def run() -> ConnectorError:
        async with AsyncHybridSearcher(conn, sparse, dense) as searcher:
            with pytest.raises(ConnectorError) as caught:
                await searcher.search("fast red car")
            assert not _other_tasks()
            return caught.value

    error = asyncio.run(run())
    assert type(error) is type(sync_error.value) and str(error) == str(sync_error.value)
    fields = ("operation", "index", "status", "error_type", "reason")
    assert [getattr(error, f) for f in fields] == [getattr(sync_error.value, f) for f in fields]


class PickyEncoder(FakeSparseEncoder):
    """Fails a whole batch that contains the text "boom"."""

    def encode_queries(self, texts: Sequence[str]) -> list[SparseVector]:
        if "boom" in texts:
            raise ValueError("cannot encode boom")
        return super().encode_queries(texts)


def test_one_bad_query_fails_alone_in_a_shared_batch() -> None:
    sparse, dense = PickyEncoder(), FakeDenseEncoder()
    conn = FakeConnector(make_documents(sparse, dense))

    async def run() -> list[Any]:
        async with AsyncHybridSearcher(conn, sparse, dense, batch_window_ms=50) as searcher:
            return await asyncio.gather(
                searcher.search("sofa"),
                searcher.search("boom"),
                searcher.search("cat"),
                return_exceptions=True,
            )

    sofa, boom, cat = asyncio.run(run())
    assert isinstance(boom, ValueError) and "boom" in str(boom)
    assert isinstance(sofa, list) and sofa and isinstance(cat, list) and cat


def test_encoding_runs_off_the_event_loop_thread() -> None:
    conn, sparse, dense = _setup()
    threads: list[str] = []
    original = sparse.encode_queries

    def spy(texts: Sequence[str]) -> list[SparseVector]:
        threads.append(threading.current_thread().name)
        return original(texts)

    sparse.encode_queries = spy  # type: ignore[method-assign]

    async def run() -> None:
        async with AsyncHybridSearcher(conn, sparse, dense) as searcher:
            await searcher.search("sofa")

    asyncio.run(run())
    assert threads and all(name.startswith("spladebridge-query-encode") for name in threads)


def test_settings_are_checked_as_in_the_sync_searcher() -> None:
    conn, sparse, dense = _setup()
    with pytest.raises(ValueError, match="timeout"):
        AsyncHybridSearcher(conn, sparse, dense, timeout=0)
    with pytest.raises(ValueError, match="max_batch"):
        AsyncHybridSearcher(conn, sparse, dense, max_batch=0)

    async def run() -> None:
        searcher = AsyncHybridSearcher(conn, sparse, None, signals=("dense",))
        with pytest.raises(ValueError, match="dense_encoder"):
            await searcher.open()
        await searcher.aclose()
        async with AsyncHybridSearcher(conn, sparse, dense) as ok:
            with pytest.raises(ValueError, match="k must be"):
                await ok.search("sofa", k=0)
            with pytest.raises(TypeError):
                await ok.search_batch("sofa")

    asyncio.run(run())
