"""`AsyncHybridSearcher` on a real Qdrant Edge shard with the default models, on the ADI collection: the same
hits as `HybridSearcher` (client-side fusion, server-side RRF, two-stage, explanations) with all 35 queries
in flight at once and micro-batched encoding; the same `ConnectorError`s; closing and cancelling leave no
engine call running and release the shard."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import spladebridge as sb
from spladebridge.connectors.async_qdrant_edge import AsyncQdrantEdgeConnector
from spladebridge.connectors.async_threads import AsyncThreadedConnector
from spladebridge.connectors.base import ConnectorError, Document, IndexSpec
from spladebridge.connectors.qdrant_edge import QdrantEdgeConnector
from spladebridge.encoder.dense import DenseEncoder
from spladebridge.encoder.splade import SpladeEncoder
from spladebridge.hybrid import RRF, AsyncHybridSearcher, HybridSearcher, TwoStage, WeightedSum
from spladebridge.hybrid.searcher import FusedHit

ADI = Path("/work/shared/datasets/adi")
pytestmark = pytest.mark.skipif(not ADI.exists(), reason="the ADI test collection is not available")


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def encoders() -> tuple[SpladeEncoder, DenseEncoder]:
    return SpladeEncoder(), DenseEncoder()


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return [q["text"] for q in _jsonl(ADI / "queries.jsonl")]


@pytest.fixture(scope="module")
def shard(encoders: tuple[SpladeEncoder, DenseEncoder], tmp_path_factory: pytest.TempPathFactory) -> Path:
    sparse, dense = encoders
    spec = IndexSpec(name="adi", dense_dim=dense.dim, text_fields=("title", "text"))
    docs = [
        Document(id=d["_id"], fields={"title": d["title"], "text": d["text"]})
        for d in _jsonl(ADI / "corpus.jsonl")
    ]
    bodies = [d.text(spec.text_fields) for d in docs]
    for doc, s, v in zip(docs, sparse.encode_documents(bodies), dense.encode(bodies), strict=True):
        doc.sparse, doc.dense = s, v
    path = tmp_path_factory.mktemp("async-edge") / "shard"
    with QdrantEdgeConnector(path, spec) as connector:
        assert connector.upsert(docs).ok
    return path


@pytest.fixture
def edge(shard: Path) -> Iterator[QdrantEdgeConnector]:
    with QdrantEdgeConnector(shard) as connector:
        yield connector


def _same_hits(got: list[FusedHit], want: list[FusedHit], rel: float = 1e-4) -> None:
    """Same scores position by position, the same id wherever the score is not tied, the same signals.
    (Queries encoded in other batches may differ in the last float bits.)"""
    assert len(got) == len(want)
    for pos, (a, b) in enumerate(zip(got, want, strict=True)):
        assert a.score == pytest.approx(b.score, rel=rel, abs=1e-6), (pos, a, b)
        tied = sum(1 for h in want if h.score == pytest.approx(b.score, rel=rel, abs=1e-6)) > 1
        if not tied:
            assert a.id == b.id and a.fields == b.fields, (pos, a, b)
            assert set(a.signals) == set(b.signals), (pos, a, b)
            for s, r in a.signals.items():
                assert r.score == pytest.approx(b.signals[s].score, rel=rel, abs=1e-6)
            assert (a.explanation is None) == (b.explanation is None)
            if a.explanation is not None and b.explanation is not None:
                assert [t for t, _ in a.explanation[:3]] == [t for t, _ in b.explanation[:3]]


@pytest.mark.parametrize(
    "fusion, server_fusion, explain",
    [
        (WeightedSum(normalize="minmax"), None, False),
        (RRF(k=60), None, False),
        (RRF(k=60), True, False),
        (RRF(k=10, weights=(1.0, 2.0, 0.5)), True, True),
        (TwoStage("sparse", "dense", "stored"), None, False),
    ],
)
def test_all_queries_at_once_give_the_sync_searchers_hits(
    edge: QdrantEdgeConnector,
    encoders: tuple[SpladeEncoder, DenseEncoder],
    texts: list[str],
    fusion: Any,
    server_fusion: bool | None,
    explain: bool,
) -> None:
    sync = HybridSearcher(edge, *encoders, fusion=fusion, candidates=30, server_fusion=server_fusion)
    want = sync.search_batch(texts, k=10, explain=explain)

    async def run() -> tuple[list[list[FusedHit]], list[int], bool]:
        wrapped = AsyncThreadedConnector(edge, max_workers=4, owns_connector=False)
        async with (
            wrapped,
            AsyncHybridSearcher(
                wrapped, *encoders, fusion=fusion, candidates=30, server_fusion=server_fusion
            ) as searcher,
        ):
            got = await asyncio.gather(*(searcher.search(t, k=10, explain=explain) for t in texts))
            return list(got), list(searcher.batcher.stats.sizes), searcher.uses_server_fusion

    got, sizes, server = asyncio.run(run())
    assert server == sync.uses_server_fusion == bool(server_fusion)
    assert sum(sizes) == len(texts) and len(sizes) < len(texts)  # the queries shared encoder batches
    for a, b in zip(got, want, strict=True):
        _same_hits(a, b)
    assert sum(len(hits) for hits in got) == 10 * len(texts)


def test_errors_are_the_sync_connector_errors(
    shard: Path, encoders: tuple[SpladeEncoder, DenseEncoder]
) -> None:
    closed = QdrantEdgeConnector(shard)
    sync = HybridSearcher(closed, *encoders)
    closed.close()
    with pytest.raises(ConnectorError) as sync_error:
        sync.search("computer")

    async def run() -> ConnectorError:
        wrapped = AsyncThreadedConnector(closed, owns_connector=False)
        async with AsyncHybridSearcher(wrapped, *encoders) as searcher:
            with pytest.raises(ConnectorError) as caught:
                await searcher.search("computer")
        await wrapped.aclose()
        return caught.value

    error = asyncio.run(run())
    assert type(error) is type(sync_error.value) and str(error) == str(sync_error.value)


def test_cancelled_searches_leave_nothing_running_and_aclose_releases_the_shard(
    shard: Path, encoders: tuple[SpladeEncoder, DenseEncoder], texts: list[str]
) -> None:
    async def run() -> None:
        async with (
            AsyncQdrantEdgeConnector(shard, max_workers=2) as store,
            AsyncHybridSearcher(store, *encoders) as searcher,
        ):
            tasks = [asyncio.create_task(searcher.search(t)) for t in texts]
            await asyncio.sleep(0.05)
            for task in tasks:
                task.cancel()
            results = await asyncio.gather(*tasks, return_exceptions=True)
            assert any(isinstance(r, asyncio.CancelledError) for r in results)
            assert store._pool._work_queue.empty()  # no engine call queued
            mine = {t for t in asyncio.all_tasks() if not t.get_name().startswith("spladebridge")}
            assert mine == {asyncio.current_task()}
            assert await searcher.search(texts[0])  # and the searcher still serves
        with pytest.raises(ConnectorError, match="closed"):
            await store.count()

    asyncio.run(run())
    with QdrantEdgeConnector(shard) as again:  # the lock was released: a new connector may open it
        assert again.count() == 82


def test_sb_names_resolve() -> None:
    assert sb.AsyncQdrantEdgeConnector is AsyncQdrantEdgeConnector
