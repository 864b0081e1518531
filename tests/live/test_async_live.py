"""`AsyncHybridSearcher` on `AsyncOpenSearchConnector` (opensearchpy.AsyncOpenSearch) against each real
OpenSearch node: adi ingested through the product path, all 35 queries in flight at once give the hits of the
sync `HybridSearcher` on `OpenSearchConnector` (server-side fusion, client-side fusion, explanations); errors
are the sync path's `ConnectorError`s; cancelled and timed-out searches leave no HTTP connection in use, and
closing closes the client's session."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import LiveNode, ingest_adi, raw_client

from spladebridge.connectors.async_opensearch import AsyncOpenSearchConnector
from spladebridge.connectors.base import ConnectorError, IndexNotFound, IndexSpec
from spladebridge.connectors.opensearch import OpenSearchConnector
from spladebridge.hybrid import RRF, AsyncHybridSearcher, HybridSearcher, WeightedSum
from spladebridge.hybrid.searcher import FusedHit

ERROR_FIELDS = ("operation", "index", "status", "error_type", "reason")


@pytest.fixture(scope="module")
def index(
    os_node: LiveNode,
    adi: dict[str, Any],
    encoders: tuple[Any, Any],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    name = f"sb-async-{os_node.name.replace('.', '-')}"
    raw_client(os_node).indices.delete(index=name, ignore=[404])
    spec = IndexSpec(name=name, dense_dim=encoders[1].dim, text_fields=("title", "text"))
    with OpenSearchConnector(os_node.url, spec=spec) as conn:
        ingest_adi(conn, spec, adi, encoders, tmp_path_factory.mktemp("async-os"))
    yield name
    raw_client(os_node).indices.delete(index=name, ignore=[404])


def _in_use(client: Any) -> int:
    """HTTP connections the async client's aiohttp sessions hold right now (0: none leaked)."""
    sessions = [c.session for c in client.transport.connection_pool.connections if c.session is not None]
    return sum(len(s.connector._acquired) for s in sessions)


def _same_hits(got: list[FusedHit], want: list[FusedHit], rel: float = 1e-4) -> None:
    assert len(got) == len(want)
    for pos, (a, b) in enumerate(zip(got, want, strict=True)):
        assert a.score == pytest.approx(b.score, rel=rel, abs=1e-6), (pos, a, b)
        tied = sum(1 for h in want if h.score == pytest.approx(b.score, rel=rel, abs=1e-6)) > 1
        if not tied:
            assert (a.id, a.fields, set(a.signals)) == (b.id, b.fields, set(b.signals)), (pos, a, b)
            assert (a.explanation is None) == (b.explanation is None)


@pytest.mark.parametrize(
    "fusion, server_fusion, explain",
    [
        (WeightedSum(normalize="minmax"), None, False),  # the default: client-side (signal details on)
        (WeightedSum(normalize="minmax"), True, False),  # server-side on OpenSearch
        (RRF(k=60), None, False),
        (WeightedSum(normalize="zscore"), None, True),  # client-side
        (RRF(k=60), False, False),
    ],
)
def test_all_queries_at_once_give_the_sync_searchers_hits(
    os_node: LiveNode,
    index: str,
    adi: dict[str, Any],
    encoders: tuple[Any, Any],
    fusion: Any,
    server_fusion: bool | None,
    explain: bool,
) -> None:
    texts = [q["text"] for q in adi["queries"]]
    with OpenSearchConnector(os_node.url, index=index) as conn:
        sync = HybridSearcher(conn, *encoders, fusion=fusion, server_fusion=server_fusion)
        want = sync.search_batch(texts, k=10, explain=explain)

    async def run() -> tuple[list[list[FusedHit]], bool, int]:
        async with (
            AsyncOpenSearchConnector(os_node.url, index=index) as store,
            AsyncHybridSearcher(store, *encoders, fusion=fusion, server_fusion=server_fusion) as searcher,
        ):
            got = await asyncio.gather(*(searcher.search(t, k=10, explain=explain) for t in texts))
            return list(got), searcher.uses_server_fusion, len(searcher.batcher.stats.sizes)

    got, server, batches = asyncio.run(run())
    assert server == sync.uses_server_fusion
    assert batches < len(texts)
    for a, b in zip(got, want, strict=True):
        _same_hits(a, b)
    assert sum(len(h) for h in got) == 10 * len(texts)


def test_errors_are_the_sync_paths_connector_errors(
    os_node: LiveNode, index: str, encoders: tuple[Any, Any]
) -> None:
    with pytest.raises(IndexNotFound) as sync_missing:
        OpenSearchConnector(os_node.url, index="sb-async-missing").existing_spec()
    name = f"{index}-doomed"
    raw_client(os_node).indices.delete(index=name, ignore=[404])
    spec = IndexSpec(name=name, dense_dim=encoders[1].dim, text_fields=("title", "text"))
    OpenSearchConnector(os_node.url, spec=spec).count()  # creates the (empty) index

    async def run() -> tuple[IndexNotFound, ConnectorError, ConnectorError]:
        with pytest.raises(IndexNotFound) as missing:
            async with AsyncOpenSearchConnector(os_node.url, index="sb-async-missing"):
                pass
        sync_conn = OpenSearchConnector(os_node.url, index=name)
        sync_conn.existing_spec()
        async with AsyncOpenSearchConnector(os_node.url, index=name) as store:
            raw_client(os_node).indices.delete(index=name)  # gone after both opened it
            with pytest.raises(ConnectorError) as sync_gone:
                sync_conn.search_text("computer", 5)
            with pytest.raises(ConnectorError) as gone:
                await store.search_text("computer", 5)
        sync_conn.close()
        return missing.value, gone.value, sync_gone.value

    missing, gone, sync_gone = asyncio.run(run())
    assert type(missing) is IndexNotFound and str(missing) == str(sync_missing.value)
    assert type(gone) is type(sync_gone) and str(gone) == str(sync_gone)
    assert [getattr(gone, f) for f in ERROR_FIELDS] == [getattr(sync_gone, f) for f in ERROR_FIELDS]
    assert gone.status == 404


def test_cancelled_and_timed_out_searches_leak_no_connection(
    os_node: LiveNode, index: str, adi: dict[str, Any], encoders: tuple[Any, Any]
) -> None:
    texts = [q["text"] for q in adi["queries"]]

    async def run() -> Any:
        store = AsyncOpenSearchConnector(os_node.url, index=index)
        async with store, AsyncHybridSearcher(store, *encoders, signals=("sparse", "dense")) as searcher:
            for delay in (0.0, 0.02, 0.05, 0.1):
                tasks = [asyncio.create_task(searcher.search(t)) for t in texts]
                await asyncio.sleep(delay)
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                assert _in_use(store.client) == 0, delay
            with pytest.raises(TimeoutError):
                await searcher.search_batch(texts, timeout=0.01)
            assert _in_use(store.client) == 0
            assert await searcher.search(texts[0])  # still serves
            mine = {t for t in asyncio.all_tasks() if not t.get_name().startswith("spladebridge")}
            assert mine == {asyncio.current_task()}
        return store.client

    client = asyncio.run(run())
    assert all(c.session is None for c in client.transport.connection_pool.connections)  # closed


def test_elasticsearch_async_connector_gives_the_sync_searchers_hits(
    es_node: LiveNode,
    adi: dict[str, Any],
    encoders: tuple[Any, Any],
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """The same on each real Elasticsearch node, through `elasticsearch.AsyncElasticsearch` (an 8.19 node is
    spoken to with `compatible-with=8`, as the sync client does)."""
    from spladebridge.connectors.async_elasticsearch import AsyncElasticsearchConnector
    from spladebridge.connectors.elasticsearch import ElasticsearchConnector

    name = f"sb-async-{es_node.name.replace('.', '-')}"
    raw_client(es_node).indices.delete(index=name, ignore_unavailable=True)
    spec = IndexSpec(name=name, dense_dim=encoders[1].dim, text_fields=("title", "text"))
    texts = [q["text"] for q in adi["queries"]]
    try:
        with ElasticsearchConnector(es_node.url, spec=spec) as conn:
            ingest_adi(conn, spec, adi, encoders, tmp_path_factory.mktemp("async-es"))
            want = HybridSearcher(conn, *encoders).search_batch(texts, k=10, explain=True)

        async def run() -> list[list[FusedHit]]:
            async with (
                AsyncElasticsearchConnector(es_node.url, index=name) as store,
                AsyncHybridSearcher(store, *encoders) as searcher,
            ):
                got = await asyncio.gather(*(searcher.search(t, k=10, explain=True) for t in texts))
                with pytest.raises(ValueError, match="k must be"):
                    await searcher.search(texts[0], k=0)
                return list(got)

        for a, b in zip(asyncio.run(run()), want, strict=True):
            _same_hits(a, b)
    finally:
        raw_client(es_node).indices.delete(index=name, ignore_unavailable=True)
