"""`connectors.bulk.run_bulk` with the real `elasticsearch.helpers.streaming_bulk` against a fake node."""

from __future__ import annotations

from typing import Any

import pytest
from elastic_transport import ConnectionError as TransportConnectionError
from elasticsearch.helpers import streaming_bulk
from es_fake import FakeCluster, Reply, Request, bulk_reply

from spladebridge.connectors.base import ItemOutcome
from spladebridge.connectors.bulk import BulkAction, BulkConfig, format_bulk_error, run_bulk

RETRYABLE = (TransportConnectionError,)


def _docs(n: int, index: str = "idx") -> list[BulkAction]:
    return [BulkAction("index", index, f"d{i}", {"n": i}, item_id=i) for i in range(n)]


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def test_every_item_gets_an_ok_outcome_in_input_order() -> None:
    cluster = FakeCluster(lambda r: bulk_reply(r))
    sleeps = Sleeps()
    report = run_bulk(streaming_bulk, cluster.client(), _docs(7), BulkConfig(chunk_size=3), sleep=sleeps)
    assert [o.id for o in report.outcomes] == list(range(7))
    assert report.ok and report.succeeded == 7
    assert all(o.status == "created" and o.attempts == 1 for o in report.outcomes)
    bulks = cluster.calls("PUT", "/_bulk") + cluster.calls("POST", "/_bulk")
    assert [len(r.lines) // 2 for r in bulks] == [3, 3, 1]  # chunked by count
    assert sleeps == []


def test_action_lines_carry_explicit_ids_and_sources() -> None:
    cluster = FakeCluster(lambda r: bulk_reply(r))
    actions = [
        BulkAction("index", "idx", "a", {"x": 1}),
        BulkAction("delete", "idx", "b", missing_ok=True),
    ]
    run_bulk(streaming_bulk, cluster.client(), actions)
    (bulk,) = cluster.requests
    assert bulk.lines == [
        {"index": {"_index": "idx", "_id": "a"}},
        {"x": 1},
        {"delete": {"_index": "idx", "_id": "b"}},
    ]


def test_chunks_are_cut_by_bytes() -> None:
    cluster = FakeCluster(lambda r: bulk_reply(r))
    actions = [BulkAction("index", "idx", f"d{i}", {"pad": "x" * 600}) for i in range(6)]
    report = run_bulk(
        streaming_bulk, cluster.client(), actions, BulkConfig(chunk_size=500, max_chunk_bytes=1500)
    )
    assert report.ok
    sizes = [len(r.lines) // 2 for r in cluster.requests]
    assert sum(sizes) == 6 and max(sizes) <= 2


def test_per_item_429_is_retried_with_backoff_until_it_succeeds() -> None:
    rejections = {"d1": 2, "d4": 1}

    def handler(request: Request) -> Reply:
        statuses = {}
        for line in request.lines[::2]:
            doc_id = line["index"]["_id"]
            if rejections.get(doc_id, 0) > 0:
                rejections[doc_id] -= 1
                statuses[doc_id] = 429
        return bulk_reply(request, statuses)

    cluster = FakeCluster(handler)
    sleeps = Sleeps()
    config = BulkConfig(initial_backoff=0.5, max_backoff=10)
    report = run_bulk(streaming_bulk, cluster.client(), _docs(6), config, sleep=sleeps)
    assert report.ok
    attempts = {o.id: o.attempts for o in report.outcomes}
    assert attempts == {0: 1, 1: 3, 2: 1, 3: 1, 4: 2, 5: 1}
    assert sleeps == [0.5, 1.0]
    # only the rejected items are re-sent
    resent = [[line["index"]["_id"] for line in r.lines[::2]] for r in cluster.requests[1:]]
    assert resent == [["d1", "d4"], ["d1"]]


def test_item_that_stays_rejected_fails_after_max_attempts_as_retryable() -> None:
    cluster = FakeCluster(lambda r: bulk_reply(r, {"d2": 429}))
    sleeps = Sleeps()
    config = BulkConfig(max_attempts=3, initial_backoff=1, max_backoff=1.5)
    report = run_bulk(streaming_bulk, cluster.client(), _docs(4), config, sleep=sleeps)
    assert report.failed == 1 and report.succeeded == 3
    (failure,) = report.failures()
    assert failure.id == 2 and failure.status == "429" and failure.retryable and failure.attempts == 3
    assert "es_rejected_execution_exception: busy" in (failure.error or "")
    assert sleeps == [1.0, 1.5]  # capped by max_backoff


def test_mapping_rejection_is_reported_once_and_not_retried() -> None:
    error = {
        "type": "document_parsing_exception",
        "reason": "[1:10] failed to parse field [splade]",
        "caused_by": {"type": "illegal_argument_exception", "reason": "feature value must be > 0"},
    }
    cluster = FakeCluster(lambda r: bulk_reply(r, {"d1": 400}, {"d1": error}))
    sleeps = Sleeps()
    report = run_bulk(streaming_bulk, cluster.client(), _docs(3), sleep=sleeps)
    (failure,) = report.failures()
    assert failure.id == 1 and failure.status == "400" and not failure.retryable and failure.attempts == 1
    assert failure.error == (
        "document_parsing_exception: [1:10] failed to parse field [splade] "
        "(caused by illegal_argument_exception: feature value must be > 0)"
    )
    assert len(cluster.requests) == 1 and sleeps == []


def test_whole_request_429_is_retried_for_every_item_of_the_chunk() -> None:
    replies: list[Reply] = [(429, {"error": {"type": "circuit_breaking_exception", "reason": "too much"}})]

    def handler(request: Request) -> Reply:
        return replies.pop(0) if replies else bulk_reply(request)

    cluster = FakeCluster(handler)
    sleeps = Sleeps()
    report = run_bulk(streaming_bulk, cluster.client(), _docs(3), sleep=sleeps)
    assert report.ok and [o.attempts for o in report.outcomes] == [2, 2, 2]
    assert len(sleeps) == 1


def test_connection_error_is_retried_and_only_unanswered_items_are_resent() -> None:
    cluster = FakeCluster(lambda r: bulk_reply(r))
    # the first chunk goes through, the second hits a dead connection once
    calls = {"n": 0}
    original = cluster.handler

    def handler(request: Request) -> Reply:
        calls["n"] += 1
        if calls["n"] == 2:
            raise TransportConnectionError("connection refused")
        return original(request)

    cluster.handler = handler
    sleeps = Sleeps()
    report = run_bulk(
        streaming_bulk,
        cluster.client(),
        _docs(4),
        BulkConfig(chunk_size=2),
        retryable_exceptions=RETRYABLE,
        sleep=sleeps,
    )
    assert report.ok
    assert [o.attempts for o in report.outcomes] == [1, 1, 2, 2]
    sent = [[line["index"]["_id"] for line in r.lines[::2]] for r in cluster.requests]
    assert sent == [["d0", "d1"], ["d2", "d3"], ["d2", "d3"]]


def test_connection_error_that_persists_fails_every_unanswered_item() -> None:
    def handler(request: Request) -> Reply:
        raise TransportConnectionError("connection refused")

    report = run_bulk(
        streaming_bulk,
        FakeCluster(handler).client(),
        _docs(3),
        BulkConfig(max_attempts=2),
        retryable_exceptions=RETRYABLE,
        sleep=Sleeps(),
    )
    assert report.failed == 3
    assert all(o.status == "connection_error" and o.retryable and o.attempts == 2 for o in report.outcomes)
    assert all("connection refused" in (o.error or "") for o in report.outcomes)


def test_delete_of_absent_document_is_a_success_only_when_missing_ok() -> None:
    cluster = FakeCluster(lambda r: bulk_reply(r, {"a": 404, "b": 404}))
    actions = [BulkAction("delete", "idx", "a", missing_ok=True), BulkAction("delete", "idx", "b")]
    report = run_bulk(streaming_bulk, cluster.client(), actions)
    assert [(o.id, o.ok, o.status) for o in report.outcomes] == [
        ("a", True, "not_found"),
        ("b", False, "404"),
    ]


def test_prefailed_items_pass_through_in_place() -> None:
    cluster = FakeCluster(lambda r: bulk_reply(r))
    rejected = ItemOutcome(id=1, ok=False, status="invalid", error="dense vector has 3 dims, expected 4")
    items: list[BulkAction | ItemOutcome] = [
        _docs(1)[0],
        rejected,
        BulkAction("index", "idx", "d2", {"n": 2}, 2),
    ]
    report = run_bulk(streaming_bulk, cluster.client(), items)
    assert [o.id for o in report.outcomes] == [0, 1, 2]
    assert report.outcomes[1] is rejected
    assert len(cluster.requests[0].lines) == 4


def test_a_response_missing_items_marks_them_failed_not_lost() -> None:
    def handler(request: Request) -> Reply:
        status, body = bulk_reply(request)
        body["items"] = body["items"][:1]
        return status, body

    report = run_bulk(
        streaming_bulk, FakeCluster(handler).client(), _docs(3), BulkConfig(max_attempts=1), sleep=Sleeps()
    )
    assert [o.ok for o in report.outcomes] == [True, False, False]
    assert {o.status for o in report.failures()} == {"no_response"}


def test_windows_bound_memory_and_keep_order() -> None:
    cluster = FakeCluster(lambda r: bulk_reply(r, {"d5": 400}))
    progress: list[int] = []
    report = run_bulk(
        streaming_bulk,
        cluster.client(),
        iter(_docs(12)),
        BulkConfig(window=5, chunk_size=2),
        on_progress=progress.append,
    )
    assert progress == [5, 5, 2]
    assert [o.id for o in report.outcomes] == list(range(12))
    assert [o.id for o in report.failures()] == [5]


def test_extra_request_kwargs_reach_the_bulk_call() -> None:
    cluster = FakeCluster(lambda r: bulk_reply(r))
    run_bulk(streaming_bulk, cluster.client(), _docs(1), BulkConfig(request_kwargs={"refresh": "wait_for"}))
    assert cluster.requests[0].query.get("refresh") == "wait_for"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"chunk_size": 0}, "chunk_size"),
        ({"max_attempts": 0}, "max_attempts"),
        ({"max_chunk_bytes": 10}, "max_chunk_bytes"),
        ({"window": 0}, "window"),
    ],
)
def test_bad_config_is_rejected(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BulkConfig(**kwargs)


def test_bad_actions_are_rejected() -> None:
    with pytest.raises(ValueError, match="non-empty string _id"):
        BulkAction("index", "idx", "", {"a": 1})
    with pytest.raises(ValueError, match="needs a source"):
        BulkAction("index", "idx", "x")
    with pytest.raises(ValueError, match="must not carry a source"):
        BulkAction("delete", "idx", "x", {"a": 1})
    with pytest.raises(ValueError, match="bulk op"):
        BulkAction("upsert", "idx", "x", {"a": 1})  # type: ignore[arg-type]


def test_format_bulk_error_handles_strings_dicts_and_long_text() -> None:
    assert format_bulk_error("boom") == "boom"
    assert format_bulk_error(None) == "unknown error"
    assert format_bulk_error({"type": "t"}) == "t"
    long = format_bulk_error("x" * 5000)
    assert len(long) == 1000 and long.endswith("...")
