"""One retry policy, no nesting: sends of each document are counted at the engine, through every layer.

The engine answers 429 (or drops the connection) to every send, or only to the first few. Whatever the path
(ingest or migrate over a bulk-backed connector or the Qdrant connector, `run_bulk` with the Elasticsearch
and OpenSearch `streaming_bulk` helpers, the Qdrant connector alone), a document is sent at most
`max_retries + 1` times, and exactly that many while it keeps failing: only the connector re-sends.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from elastic_transport import ConnectionError as TransportConnectionError
from elasticsearch.helpers import streaming_bulk
from es_fake import FakeCluster, Reply, Request, bulk_reply
from ingest_fakes import HashSparseEncoder, MemoryConnector, corpus, write_jsonl
from qdrant_client import QdrantClient
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from spladebridge.connectors.base import ConnectorError, Document, IndexSpec, WriteReport
from spladebridge.connectors.bulk import BulkAction, BulkConfig, run_bulk
from spladebridge.connectors.qdrant import QdrantConnector
from spladebridge.connectors.retry import RetryPolicy
from spladebridge.ingest import ingest
from spladebridge.migrate import ConnectorTarget, MigrationError, RecordFileSource, migrate

RETRIES = [0, 1, 3]
SPEC = IndexSpec(name="sends", text_fields=("title", "text"))


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def policy(max_retries: int, sleeps: Sleeps | None = None) -> RetryPolicy:
    return RetryPolicy(
        max_retries=max_retries,
        initial_backoff=0.25,
        max_backoff=1.0,
        sleep=sleeps if sleeps is not None else Sleeps(),
    )


# -- engines that count what reaches them ------------------------------------------------------------------


class BusyNode:
    """A fake Elasticsearch node answering 429 to the first `busy` sends of each document (-1: always)."""

    def __init__(self, busy: int = -1) -> None:
        self.busy = busy
        self.sends: Counter[str] = Counter()
        self.cluster = FakeCluster(self.handle)

    def handle(self, request: Request) -> Reply:
        ids = [line["index"]["_id"] for line in request.lines[::2]]
        self.sends.update(ids)
        statuses = {i: 429 for i in ids if self.busy < 0 or self.sends[i] <= self.busy}
        return bulk_reply(request, statuses)


class BulkBackedConnector(MemoryConnector):
    """Writes the way the Elasticsearch and OpenSearch connectors do: `BulkAction`s through `run_bulk` and
    the real `elasticsearch.helpers.streaming_bulk`, to a `BusyNode`."""

    def __init__(self, node: BusyNode, retry: RetryPolicy) -> None:
        super().__init__()
        self.client = node.cluster.client()
        self.config = BulkConfig(retry=retry)

    def upsert(self, documents: Iterable[Document]) -> WriteReport:
        actions = [
            BulkAction("index", "sends", str(d.id), {"text": d.fields.get("text")}, item_id=d.id)
            for d in documents
        ]
        return run_bulk(
            streaming_bulk,
            self.client,
            actions,
            self.config,
            retryable_exceptions=(TransportConnectionError,),
        )


class BusyQdrant(QdrantClient):
    """Local-mode Qdrant whose upserts answer 429 to the first `busy` sends of each point (-1: always)."""

    def __init__(self, busy: int = -1) -> None:
        super().__init__(":memory:")
        self.busy = busy
        self.sends: Counter[Any] = Counter()

    def upsert(self, collection_name: str, points: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        self.sends.update(p.id for p in points)
        if any(self.busy < 0 or self.sends[p.id] <= self.busy for p in points):
            raise UnexpectedResponse(429, "Too Many Requests", b"busy", httpx.Headers())
        return super().upsert(collection_name, points, **kwargs)


def bulk_connector(busy: int, retries: int) -> tuple[BulkBackedConnector, BusyNode]:
    node = BusyNode(busy)
    return BulkBackedConnector(node, policy(retries)), node


def qdrant_connector(busy: int, retries: int) -> tuple[QdrantConnector, BusyQdrant]:
    client = BusyQdrant(busy)
    return QdrantConnector(client, SPEC, retry=policy(retries)), client


CONNECTORS = {"bulk": bulk_connector, "qdrant": qdrant_connector}


def one_document(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "one.jsonl", corpus(1))


# -- ingest ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(CONNECTORS))
@pytest.mark.parametrize("retries", RETRIES)
def test_ingest_sends_a_failing_document_exactly_max_retries_plus_one_times(
    tmp_path: Path, kind: str, retries: int
) -> None:
    connector, engine = CONNECTORS[kind](-1, retries)
    report = ingest(one_document(tmp_path), connector, HashSparseEncoder(), spec=SPEC, progress=False,
                    checkpoint=tmp_path / "ckpt.json")  # fmt: skip
    assert list(engine.sends.values()) == [retries + 1]
    assert report.written == 0 and report.failed == 0 and not report.complete
    assert report.stopped is not None and f"after {retries + 1} attempt" in report.stopped


@pytest.mark.parametrize("kind", sorted(CONNECTORS))
@pytest.mark.parametrize("busy", [1, 3])
def test_ingest_sends_a_document_that_recovers_once_more_than_it_failed(
    tmp_path: Path, kind: str, busy: int
) -> None:
    connector, engine = CONNECTORS[kind](busy, 3)
    report = ingest(one_document(tmp_path), connector, HashSparseEncoder(), spec=SPEC, progress=False)
    assert list(engine.sends.values()) == [busy + 1]
    assert report.ok and report.written == 1


# -- migrate -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(CONNECTORS))
@pytest.mark.parametrize("retries", RETRIES)
def test_migrate_sends_a_failing_document_exactly_max_retries_plus_one_times(
    tmp_path: Path, kind: str, retries: int
) -> None:
    connector, engine = CONNECTORS[kind](-1, retries)
    with pytest.raises(MigrationError, match=f"after {retries + 1} attempt"):
        migrate(RecordFileSource(one_document(tmp_path)), ConnectorTarget(connector, SPEC), HashSparseEncoder(),
                checkpoint=tmp_path / "ckpt.json", verify_after=False)  # fmt: skip
    assert list(engine.sends.values()) == [retries + 1]


@pytest.mark.parametrize("kind", sorted(CONNECTORS))
def test_migrate_sends_a_document_that_recovers_once_more_than_it_failed(tmp_path: Path, kind: str) -> None:
    connector, engine = CONNECTORS[kind](2, 3)
    report = migrate(RecordFileSource(one_document(tmp_path)), ConnectorTarget(connector, SPEC),
                     HashSparseEncoder(), verify_after=False)  # fmt: skip
    assert list(engine.sends.values()) == [3]
    assert report.finished and report.totals["written"] == 1


# -- the connectors' own write paths ----------------------------------------------------------------------


def _actions(n: int) -> list[BulkAction]:
    return [BulkAction("index", "sends", f"d{i}", {"n": i}) for i in range(n)]


@pytest.mark.parametrize("retries", RETRIES)
def test_run_bulk_with_the_elasticsearch_helper_sends_each_item_max_retries_plus_one_times(
    retries: int,
) -> None:
    node, sleeps = BusyNode(), Sleeps()
    config = BulkConfig(chunk_size=2, retry=policy(retries, sleeps))
    report = run_bulk(streaming_bulk, node.cluster.client(), _actions(3), config)
    assert node.sends == {"d0": retries + 1, "d1": retries + 1, "d2": retries + 1}
    assert all(o.retryable and o.attempts == retries + 1 and o.status == "429" for o in report.outcomes)
    assert sleeps == [0.25, 0.5, 1.0][:retries]  # one wait per round, doubling, capped


def test_run_bulk_with_the_opensearch_helper_sends_each_item_max_retries_plus_one_times() -> None:
    from opensearchpy.helpers import streaming_bulk as os_streaming_bulk
    from os_fake import FakeOpenSearch

    fake = FakeOpenSearch(fail_plan={"d0": [429] * 10, "d1": [429]})
    config = BulkConfig(retry=policy(2))
    report = run_bulk(os_streaming_bulk, fake.client(), _actions(3), config)
    bulks = [r for r in fake.requests if r.path.endswith("_bulk")]
    sends = Counter(line["index"]["_id"] for r in bulks for line in r.body[::2])
    assert sends == {"d0": 3, "d1": 2, "d2": 1}
    assert [(o.ok, o.attempts) for o in report.outcomes] == [(False, 3), (True, 2), (True, 1)]
    assert fake.fail_plan["d0"] == [429] * 7


@pytest.mark.parametrize("retries", RETRIES)
def test_run_bulk_resends_after_a_dropped_connection_at_most_max_retries_plus_one_times(retries: int) -> None:
    sends: Counter[str] = Counter()

    def dropping_helper(client: Any, actions: Iterable[dict[str, Any]], **kwargs: Any) -> Iterator[Any]:
        sends.update(action["_id"] for action in actions)
        raise TransportConnectionError("connection reset")
        yield  # a generator, as the real helper is

    report = run_bulk(dropping_helper, None, _actions(2), BulkConfig(retry=policy(retries)),
                      retryable_exceptions=(TransportConnectionError,))  # fmt: skip
    assert sends == {"d0": retries + 1, "d1": retries + 1}
    assert all(o.status == "connection_error" and o.retryable for o in report.outcomes)


def test_bulk_config_keeps_its_older_arguments_as_a_retry_policy() -> None:
    config = BulkConfig(max_attempts=3, initial_backoff=0.5, max_backoff=2.0)
    assert config.retry == RetryPolicy(max_retries=2, initial_backoff=0.5, max_backoff=2.0)
    assert config.max_attempts is None and config.backoff(3) == 2.0
    assert BulkConfig().retry == RetryPolicy()
    with pytest.raises(ValueError, match="max_attempts must be >= 1"):
        BulkConfig(max_attempts=0)


@pytest.mark.parametrize("retries", RETRIES)
def test_qdrant_sends_each_point_max_retries_plus_one_times(retries: int) -> None:
    client = BusyQdrant()
    docs = _with_vectors([Document(id=i, fields={"text": f"doc {i}"}) for i in range(3)])
    with QdrantConnector(client, SPEC, retry=policy(retries)) as conn:
        report = conn.upsert(docs)
    assert sorted(client.sends.values()) == [retries + 1] * 3
    assert all(o.retryable and o.attempts == retries + 1 for o in report.outcomes)


class PoisonThenBusy(QdrantClient):
    """Rejects a batch holding the poisoned point for good (400), then answers 429 to every single point."""

    def __init__(self) -> None:
        super().__init__(":memory:")
        self.sends: Counter[Any] = Counter()

    def upsert(self, collection_name: str, points: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        self.sends.update(p.id for p in points)
        if len(points) > 1:
            raise UnexpectedResponse(400, "Bad Request", b"bad point", httpx.Headers())
        raise ResponseHandlingException(ConnectionError("connection reset"))


@pytest.mark.parametrize("retries", RETRIES)
def test_isolating_a_permanent_error_stays_within_the_same_budget(retries: int) -> None:
    client = PoisonThenBusy()
    docs = _with_vectors([Document(id=i, fields={"text": f"doc {i}"}) for i in range(3)])
    with QdrantConnector(client, SPEC, retry=policy(retries)) as conn:
        report = conn.upsert(docs)
    assert sorted(client.sends.values()) == [retries + 1] * 3  # 1 in the batch + `retries` alone
    assert all(not o.ok and o.retryable and o.attempts == retries + 1 for o in report.outcomes)


def test_qdrant_edge_never_retries_and_splits_a_failed_batch_once(tmp_path: Path) -> None:
    """Qdrant Edge runs in-process: nothing is transient, so nothing is retried. A failed batch is split once
    to find the bad documents (2 sends each, reported non-retryable); a single document is sent once."""
    from spladebridge.connectors.qdrant_edge import QdrantEdgeConnector

    sends: Counter[Any] = Counter()
    with QdrantEdgeConnector(tmp_path / "shard", SPEC) as conn:

        def broken(operation: Any) -> None:
            sends["calls"] += 1
            raise ConnectorError("the shard refused the update")

        conn._shard_update = broken  # type: ignore[method-assign]
        one = conn.upsert(_with_vectors([Document(id=1, fields={"text": "a"})]))
        assert sends["calls"] == 1 and not one.outcomes[0].retryable
        sends.clear()
        three = conn.upsert(_with_vectors([Document(id=i, fields={"text": "a"}) for i in range(3)]))
        assert sends["calls"] == 1 + 3 and all(o.attempts == 2 and not o.retryable for o in three.outcomes)


def _with_vectors(docs: list[Document]) -> list[Document]:
    encoder = HashSparseEncoder()
    for doc, vector in zip(docs, encoder.encode_documents([d.text(("text",)) for d in docs]), strict=True):
        doc.sparse = vector
    return docs


# -- the policy itself -------------------------------------------------------------------------------------


def test_policy_calls_again_only_while_the_error_is_transient() -> None:
    sleeps, calls = Sleeps(), Counter[str]()

    def flaky(kind: type[Exception]) -> Any:
        def call() -> str:
            calls[kind.__name__] += 1
            raise kind("nope")

        return call

    with pytest.raises(TimeoutError):
        policy(2, sleeps).call(flaky(TimeoutError), retry_if=lambda e: isinstance(e, TimeoutError))
    with pytest.raises(ValueError):
        policy(2, sleeps).call(flaky(ValueError), retry_if=lambda e: isinstance(e, TimeoutError))
    assert calls == {"TimeoutError": 3, "ValueError": 1} and sleeps == [0.25, 0.5]
    assert policy(5).call(lambda: "landed", retry_if=lambda e: True) == "landed"


def test_policy_rounds_resend_only_what_failed_and_stop_when_nothing_is_left() -> None:
    sent: list[list[str]] = []

    def send(pending: list[str], attempt: int) -> list[str]:
        sent.append(pending)
        return pending[1:]  # each round, the first item gets through

    assert policy(5).rounds(["a", "b", "c"], send) == 3
    assert sent == [["a", "b", "c"], ["b", "c"], ["c"]]
    assert policy(5).rounds([], send) == 0


@pytest.mark.parametrize(
    "bad",
    [{"max_retries": -1}, {"max_retries": 1.5}, {"initial_backoff": -1.0}, {"max_backoff": float("inf")}],
)
def test_policy_refuses_nonsense(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**bad)


def test_the_cli_max_retries_sets_the_policy_of_the_connector_it_built() -> None:
    from es_fake import MiniES
    from os_fake import FakeOpenSearch

    from spladebridge.cli import _set_write_retries
    from spladebridge.connectors.elasticsearch import ElasticsearchConnector
    from spladebridge.connectors.opensearch import OpenSearchConnector, OpenSearchOptions

    qdrant = QdrantConnector(QdrantClient(":memory:"), SPEC, retry=policy(1))
    es = ElasticsearchConnector(client=MiniES().client(), bulk=BulkConfig(chunk_size=9))
    os_ = OpenSearchConnector(
        client=FakeOpenSearch().client(), options=OpenSearchOptions(bulk=BulkConfig(chunk_size=7))
    )
    for conn in (qdrant, es, os_):
        _set_write_retries(conn, 6)
    assert qdrant.retry.max_retries == 6 and qdrant.retry.initial_backoff == 0.25
    # the Lucene connectors keep their policy in the bulk config they write with; the rest of it is kept
    assert es.retry.attempts == 7 and es.bulk_config.retry.attempts == 7 and es.bulk_config.chunk_size == 9
    assert os_.retry.attempts == 7 and os_.bulk_config.chunk_size == 7


def test_an_interrupted_ingest_does_not_sit_out_the_connectors_retry_wait() -> None:
    """During a run the connector's policy waits on the run's discard event, so a second Ctrl-C (discard)
    ends a 60 s backoff at once; afterwards the connector has its own policy back."""
    import time

    from spladebridge.ingest import IngestReport, _EngineStop, _Run

    class WithPolicy(MemoryConnector):
        retry = RetryPolicy(max_retries=3, initial_backoff=60.0)

    conn = WithPolicy()
    original = conn.retry
    run = _Run(conn, IngestReport(), None, None, queue_size=2, on_settled=lambda n: None)
    assert conn.retry is not original and conn.retry.max_retries == 3  # same budget, interruptible waits
    run.discard.set()
    started = time.perf_counter()
    with pytest.raises(_EngineStop, match="interrupted"):
        conn.retry.sleep(60.0)
    assert time.perf_counter() - started < 1.0
    run.thread.start()
    run.finish(discard=True)
    assert conn.retry is original
