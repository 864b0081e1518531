"""Faults on real OpenSearch 2.19 nodes of their own (started here, not shared with other tests).

Real 429 rejections from a shrunken write thread pool, the node killed with SIGKILL mid-ingest and restarted
on its data (the resumed run loses and duplicates nothing), a write block, a mapping conflict, and a node
without the plugins a feature needs: per-item outcomes and one clear error each, never a raw client exception.
The encoder here is a small deterministic hash encoder: what is tested is the engine's behaviour, not a model.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import nodes
import pytest
from conftest import nodes_required

import spladebridge as sb
from spladebridge.connectors.base import ConnectorError, Document, IndexSpec, UnsupportedOperation
from spladebridge.connectors.bulk import BulkConfig
from spladebridge.connectors.opensearch import OpenSearchConnector, OpenSearchOptions
from spladebridge.encoder.sparse_vector import SparseVector

KIND = nodes.NODE_KINDS["opensearch-2.19"]


class HashEncoder:
    """Deterministic sparse vectors from the words of a text (no model: these tests are about the engine)."""

    def encode_documents(self, texts: Sequence[str]) -> list[SparseVector]:
        out = []
        for text in texts:
            weights: dict[int, float] = {}
            for word in text.split():
                token = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=2).digest(), "big") % 30000
                weights[token] = weights.get(token, 0.0) + 0.5
            out.append(SparseVector(list(weights), list(weights.values())))
        return out

    encode_queries = encode_documents


def _docs(n: int) -> list[dict[str, Any]]:
    words = ["solar", "river", "bread", "piano", "garden", "rocket", "coffee", "winter", "maple", "quartz"]
    return [{"id": f"d{i}", "text": f"{words[i % 10]} {words[(i * 7) % 10]} item {i}"} for i in range(n)]


def _require_fetched() -> None:
    if not KIND.fetched():
        reason = "opensearch-2.19 is not fetched: run `make engines`"
        if nodes_required():
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture
def private_node(request: pytest.FixtureRequest) -> Iterator[nodes.RunningNode]:
    """A fresh node for one test, with the settings the test's `node_settings` mark gives."""
    _require_fetched()
    mark = request.node.get_closest_marker("node_settings")
    settings = dict(mark.kwargs.get("settings", {})) if mark else {}
    plugins = mark.kwargs.get("plugins") if mark else None
    node = nodes.start(KIND, extra_settings=settings, plugin_classes=plugins)
    yield node
    node.stop()
    failed = getattr(request.node, "rep_call", None)
    if failed is None or not failed.failed:
        import shutil

        shutil.rmtree(node.run_dir, ignore_errors=True)


@pytest.mark.node_settings(settings={"thread_pool.write.size": "1", "thread_pool.write.queue_size": "1"})
def test_real_429_rejections_are_retried_until_every_document_lands(private_node: nodes.RunningNode) -> None:
    options = OpenSearchOptions(
        shards=6, bulk=BulkConfig(chunk_size=300, initial_backoff=0.05, max_attempts=10)
    )
    with OpenSearchConnector(private_node.url, options=options) as conn:
        conn.ensure_index(IndexSpec(name="sb-429", dense_field=None, text_fields=("text",)))
        encoder = HashEncoder()
        raw = _docs(900)
        docs = [
            Document(id=d["id"], fields={"text": d["text"]}, sparse=v)
            for d, v in zip(raw, encoder.encode_documents([d["text"] for d in raw]), strict=True)
        ]
        report = conn.upsert(docs)
        assert report.ok, report.failures()[:3]
        conn.flush()
        assert conn.count() == len(docs)
        stats = conn.client.nodes.stats(metric="thread_pool")
        rejected = sum(n["thread_pool"]["write"]["rejected"] for n in stats["nodes"].values())
        assert rejected > 0, "the node rejected nothing: the test did not provoke 429s"
        assert max(o.attempts for o in report.outcomes) > 1  # the rejected items were retried


def test_sigkill_mid_ingest_then_restart_and_resume_loses_and_duplicates_nothing(
    private_node: nodes.RunningNode, tmp_path: Path
) -> None:
    n, kill_at = 600, 250
    raw = _docs(n)
    killed = threading.Event()

    def source() -> Iterator[dict[str, Any]]:
        for i, doc in enumerate(raw):
            if i == kill_at:
                private_node.kill()  # SIGKILL the whole node, mid-run
                killed.set()
            yield doc

    spec = IndexSpec(name="sb-crash", dense_field=None, text_fields=("text",))
    # 4 sends of a document at most, all by the connector (ingest never re-sends)
    quick = OpenSearchOptions(bulk=BulkConfig(max_attempts=4, initial_backoff=0.05, request_kwargs={}))
    conn = OpenSearchConnector(private_node.url, options=quick)
    conn.ensure_index(spec)
    kwargs: dict[str, Any] = {
        "text_fields": ["text"],
        "id_field": "id",
        "spec": spec,
        "batch_size": 50,
        "checkpoint": tmp_path / "ckpt.json",
        "dead_letter": tmp_path / "dead.jsonl",
        "progress": False,
    }
    first = sb.ingest(source(), conn, HashEncoder(), **kwargs)
    conn.close()
    assert killed.is_set()
    assert not first.complete and first.failed == 0  # connection errors stop the run; nothing dead-lettered
    assert first.written < n

    restarted = nodes.start(KIND, run_dir=private_node.run_dir)
    try:
        with OpenSearchConnector(restarted.url, index=spec.name, options=quick) as again:
            landed_before = again.count()
            assert landed_before >= first.written  # every acknowledged write survived the crash
            second = sb.ingest(iter(raw), again, HashEncoder(), **kwargs)
            assert second.complete and second.failed == 0, second
            assert second.skipped >= first.written  # what landed was not re-encoded
            again.flush()
            assert again.count() == n  # nothing lost, nothing duplicated (ids are explicit)
            ids = {str(d.id) for d in again.scan(batch_size=200)}
            assert ids == {d["id"] for d in raw}
    finally:
        restarted.stop()


def test_a_write_block_gives_per_item_outcomes_and_a_clear_ingest_report(
    private_node: nodes.RunningNode, tmp_path: Path
) -> None:
    spec = IndexSpec(name="sb-blocked", dense_field=None, text_fields=("text",))
    with OpenSearchConnector(private_node.url) as conn:
        conn.ensure_index(spec)
        conn.client.indices.put_settings(index=spec.name, body={"index.blocks.write": True})
        report = conn.upsert([Document(id="a", fields={"text": "x"}, sparse=SparseVector([1], [1.0]))])
        assert not report.ok
        (outcome,) = report.outcomes
        assert outcome.status in ("403", "cluster_block_exception") or "block" in (outcome.error or "")
        assert "block" in (outcome.error or "").lower()
        result = sb.ingest(
            _docs(5),
            conn,
            HashEncoder(),
            text_fields=["text"],
            id_field="id",
            spec=spec,
            dead_letter=tmp_path / "dead.jsonl",
            progress=False,
        )
        assert result.written == 0 and result.failed == 5
        assert all("block" in f.error.lower() for f in result.failures)
        assert len((tmp_path / "dead.jsonl").read_text().splitlines()) == 5


def test_a_mapping_conflict_is_one_clear_error(private_node: nodes.RunningNode) -> None:
    with OpenSearchConnector(private_node.url) as conn:
        conn.client.indices.create(
            index="sb-conflict", body={"mappings": {"properties": {"splade": {"type": "keyword"}}}}
        )
        with pytest.raises(ConnectorError) as info:
            conn.ensure_index(IndexSpec(name="sb-conflict", dense_field=None))
        assert "splade" in str(info.value)


@pytest.mark.node_settings(plugins=())
def test_a_node_without_knn_and_neural_search(private_node: nodes.RunningNode) -> None:
    with OpenSearchConnector(private_node.url) as conn:
        caps = conn.capabilities()
        assert not caps.dense
        with pytest.raises(UnsupportedOperation, match="k-NN"):
            conn.ensure_index(IndexSpec(name="sb-bare", dense_dim=4))
        # sparse search still runs, as rank_feature linear clauses: the same dot product
        conn.ensure_index(IndexSpec(name="sb-bare", dense_field=None, text_fields=("text",)))
        docs = [
            Document(id="a", fields={"text": "x"}, sparse=SparseVector([1, 7], [1.5, 0.25])),
            Document(id="b", fields={"text": "y"}, sparse=SparseVector([1, 9], [0.5, 2.0])),
        ]
        assert conn.upsert(docs).ok
        conn.flush()
        hits = conn.search_sparse(SparseVector([1, 9], [2.0, 1.0]), 5)
        assert {str(h.id): h.score for h in hits} == pytest.approx({"a": 3.0, "b": 3.0}, rel=1e-3)


def test_the_wrong_engine_is_one_clear_error(node_pool: Any) -> None:
    es = node_pool.get("elasticsearch-9.5")
    with pytest.raises(ConnectorError, match=r"(?i)elasticsearch"):
        OpenSearchConnector(es.url).capabilities()
