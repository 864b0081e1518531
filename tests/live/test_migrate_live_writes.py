"""Live migrations (issue 19) on real Elasticsearch 8.19 / 9.x and OpenSearch 2.19 / 3.x nodes: a writer
thread indexes, rewrites, partially updates and deletes documents through the alias for the whole
migration; afterwards the target holds exactly the source's final state (ids, fields, and the vectors the real
encoders give the final text): 0 lost, 0 stale, 0 resurrected.

Reindex + alias swap on every node; in place (conditional updates: a document changed under the update is
re-read, never overwritten) and into Qdrant Edge on two; a run SIGKILLed during the catch-up and resumed on
two; and `--dry-run --live`'s expected freeze from measured rates.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from conftest import LiveNode, NodePool, raw_client
from live_writer import PROBE_ID, Writer, assert_migrated, final_state

from spladebridge.connectors.base import IndexSpec
from spladebridge.connectors.lucene_client import LuceneClient, lucene_client
from spladebridge.connectors.lucene_connector import lucene_connector
from spladebridge.connectors.qdrant_edge import QdrantEdgeConnector
from spladebridge.migrate import ConnectorTarget, migrate
from spladebridge.migrate import cli as migrate_cli
from spladebridge.migrate.capture import PassReport
from spladebridge.migrate.live import LiveMigration, LiveOptions
from spladebridge.migrate.lucene_bodies import AddedFields
from spladebridge.migrate.lucene_cluster import (
    InPlaceTarget,
    LuceneIndexSource,
    ReindexTarget,
    resolve_reindex,
)
from spladebridge.migrate.stage import StageResult, encode_and_write

FIELDS = ("title", "text")
FAKES = Path(__file__).resolve().parents[1] / "unit" / "migrate_fakes.py"
#: two nodes of each engine family for the slower variants (every node runs the reindex test)
PAIR = ["opensearch-3.6", "elasticsearch-8.19"]


def _fakes() -> ModuleType:
    if "migrate_fakes" not in sys.modules:
        spec = importlib.util.spec_from_file_location("migrate_fakes", FAKES)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["migrate_fakes"] = module
        spec.loader.exec_module(module)
    return sys.modules["migrate_fakes"]


@pytest.fixture(scope="module")
def api(lucene_node: LiveNode) -> LuceneClient:
    client = raw_client(lucene_node)
    for name in client.indices.get(index="livew-*", allow_no_indices=True):
        client.indices.delete(index=name)
    return lucene_client(client)


@pytest.fixture(scope="module", params=PAIR)
def pair_api(request: pytest.FixtureRequest, node_pool: NodePool) -> tuple[LiveNode, LuceneClient]:
    node = node_pool.get(request.param)
    client = raw_client(node)
    for name in client.indices.get(index="livek-*", allow_no_indices=True):
        client.indices.delete(index=name)
    return node, lucene_client(client)


@pytest.fixture(scope="module")
def corpus(adi: dict[str, Any]) -> list[dict[str, Any]]:
    """30 adi documents, each text cut to its first 32 words (the dense model's time grows with length)."""
    return [{**d, "text": " ".join(d["text"].split()[:32])} for d in adi["corpus"][:30]]


def _source_index(
    api: LuceneClient, name: str, corpus: list[dict[str, Any]], alias: str | None = None, knn: bool = False
) -> list[str]:
    settings: dict[str, Any] = {"number_of_shards": 2, "number_of_replicas": 0}
    if knn:
        settings["knn"] = True
    body = {
        "settings": {"index": settings},
        "mappings": {
            "properties": {"title": {"type": "text"}, "text": {"type": "text"}, "year": {"type": "integer"}}
        },
    }
    api.create_index(name, body)
    from spladebridge.connectors.bulk import BulkAction, BulkConfig

    actions = [
        BulkAction("index", name, str(d["_id"]), {"title": d["title"], "text": d["text"], "year": 1900 + i})
        for i, d in enumerate(corpus)
    ]
    assert api.bulk(actions, BulkConfig(chunk_size=100)).ok
    if alias:
        api.update_aliases({"actions": [{"add": {"index": name, "alias": alias}}]})
    api.refresh(name)
    return [str(d["_id"]) for d in corpus]


def _added(api: LuceneClient, dense: bool) -> AddedFields:
    return AddedFields(
        sparse_type=lucene_connector(api).new_sparse_type(),  # type: ignore[arg-type]
        dense_field="dense" if dense else None,
        dense_dim=384 if dense else None,
    )


def _until(writes: int, writer: Writer, timeout: float = 30) -> None:
    """Wait until the writer has made `writes` more writes (so every phase sees some), or hit the block."""
    goal = writer.total() + writes
    deadline = time.monotonic() + timeout
    while writer.total() < goal and time.monotonic() < deadline and writer.is_alive() and not writer.blocked:
        time.sleep(0.02)


def test_reindex_under_writes_ends_equal_to_the_final_source(
    api: LuceneClient, corpus: list[dict[str, Any]], encoders: tuple[Any, Any], tmp_path: Path
) -> None:
    sparse, dense = encoders
    client = api.client
    ids = _source_index(api, "livew-1", corpus, alias="livew")
    writer = Writer(client, "livew", ids, rate=40)
    writer.start()
    passes: list[PassReport] = []

    class Paced:
        """The real sparse encoder, waiting for a few writes before each call: every batch of the copy and
        every pass of the catch-up runs while the application writes."""

        def encode_documents(self, texts: Any) -> Any:
            _until(2, writer)
            return sparse.encode_documents(texts)

        def encode_queries(self, texts: Any) -> Any:
            return sparse.encode_queries(texts)

    added = _added(api, dense=True)
    old, alias, options = resolve_reindex(api, "livew")
    source = LuceneIndexSource(api, old, FIELDS, added=added, track_versions=True)
    live = LiveMigration(source, LiveOptions(freeze_at=3, max_passes=4, on_pass=passes.append))
    report = migrate(
        source,
        ReindexTarget(api, old, "livew-2", alias, FIELDS, added, alias_options=options),
        Paced(),
        dense,
        batch_size=16,
        checkpoint=tmp_path / "ck.json",
        live=live,
    )
    writer.finish()
    assert report.ok, report.summary()
    assert writer.blocked == 1 and "cluster_block_exception" in writer.block_error
    assert writer.probe_landed and writer.ops["delete"] and writer.ops["rewrite"] and writer.ops["update"]
    assert api.aliases("livew") == {"livew-2": {}}
    assert not api.write_blocked("livew-1")  # lifted (the default)
    live_report = report.live
    assert live_report is not None and live_report["freeze_s"] is not None
    assert sum(p.changed + p.deleted for p in passes) > 0  # the writes during the copy were caught up
    assert passes[-1].frozen and live_report["final_delta"] == passes[-1].delta
    assert live_report["freeze_s"] < 10

    expected = final_state(client, "livew-1")  # frozen at the block: the old index's final state
    assert PROBE_ID not in expected
    with lucene_connector(api, index="livew-2") as conn:
        conn.flush()
        got = final_state(client, "livew-2")
        assert got[PROBE_ID]["text"] == "probe"  # the retried write went through the alias to the new index
        conn.delete([PROBE_ID])
        conn.flush()
        assert_migrated(expected, conn.get, conn.count(), sparse, dense)
    json.dumps(report.to_json_obj(), default=str)  # the CLI's JSON report carries the live section


@pytest.mark.parametrize("node_name", PAIR)
def test_in_place_under_writes_never_overwrites_a_newer_write(
    node_name: str,
    node_pool: NodePool,
    corpus: list[dict[str, Any]],
    encoders: tuple[Any, Any],
    tmp_path: Path,
) -> None:
    node = node_pool.get(node_name)
    api = lucene_client(raw_client(node))
    sparse, _ = encoders
    client = api.client
    if api.exists("livew-inplace"):
        api.delete_index("livew-inplace")
    ids = _source_index(api, "livew-inplace", corpus)
    by_text = {f"{d['title']}\n{d['text']}": str(d["_id"]) for d in corpus}
    writer = Writer(client, "livew-inplace", ids, rate=40, seed=11)
    raced: dict[str, Any] = {"id": None}

    class Racing:
        """The real encoder; while the copy's first batch is being encoded, the application rewrites one of
        its documents: the conditional update of that document must answer 409, not overwrite."""

        def encode_documents(self, texts: Any) -> Any:
            if raced["id"] is None:
                raced["id"] = next(by_text[t] for t in texts if t in by_text)
                client.index(
                    index="livew-inplace",
                    id=raced["id"],
                    body={"title": "raced", "text": "changed under the update", "year": 5},
                )
            return sparse.encode_documents(texts)

        def encode_queries(self, texts: Any) -> Any:
            return sparse.encode_queries(texts)

    stop_after: dict[str, int] = {"passes": 0}

    def on_pass(done: PassReport) -> None:
        stop_after["passes"] += 1
        if stop_after["passes"] == 2:
            writer.stop_event.set()  # the application stops; the next pass finds nothing left
            writer.join(10)

    writer.start()
    added = _added(api, dense=False)
    source = LuceneIndexSource(api, "livew-inplace", FIELDS, added=added, track_versions=True)
    live = LiveMigration(source, LiveOptions(max_passes=8, on_pass=on_pass))
    report = migrate(
        source,
        InPlaceTarget(api, "livew-inplace", FIELDS, added),
        Racing(),
        batch_size=8,
        checkpoint=tmp_path / "ck.json",
        live=live,
    )
    writer.finish()
    assert report.ok, report.summary()
    assert report.live is not None and report.live["conflicts"] >= 1
    assert report.live["passes"][-1]["delta"] == 0 and report.live["freeze_s"] is None
    expected = {
        k: {f: v for f, v in src.items() if f != "splade"}
        for k, src in final_state(client, "livew-inplace").items()
    }
    original = next(d for d in corpus if str(d["_id"]) == raced["id"])
    raced_now = expected.get(raced["id"])  # rewritten under the update (then maybe by the writer too)
    assert raced_now is None or raced_now["title"] != original["title"]
    with lucene_connector(api, index="livew-inplace") as conn:
        assert_migrated(expected, conn.get, conn.count(), sparse, None)


@pytest.mark.parametrize("node_name", PAIR[:1])
def test_to_qdrant_edge_under_writes_ends_equal_to_the_final_source(
    node_name: str,
    node_pool: NodePool,
    corpus: list[dict[str, Any]],
    encoders: tuple[Any, Any],
    tmp_path: Path,
) -> None:
    node = node_pool.get(node_name)
    api = lucene_client(raw_client(node))
    sparse, dense = encoders
    if api.exists("livew-toq"):
        api.delete_index("livew-toq")
    ids = _source_index(api, "livew-toq", corpus)
    writer = Writer(api.client, "livew-toq", ids, rate=40, seed=3)
    writer.start()
    _until(10, writer)
    source = LuceneIndexSource(api, "livew-toq", FIELDS, track_versions=True)
    live = LiveMigration(source, LiveOptions(freeze_at=2, max_passes=3, after_swap="read-only"))
    with QdrantEdgeConnector(tmp_path / "edge") as edge:
        spec = IndexSpec(name="toq", dense_field="dense", dense_dim=dense.dim, text_fields=FIELDS)
        report = migrate(
            source,
            ConnectorTarget(edge, spec),
            sparse,
            dense,
            batch_size=16,
            checkpoint=tmp_path / "ck",
            live=live,
        )
        writer.stop_event.set()  # kept read-only: the writer would wait for ever
        writer.finish()
        assert report.ok, report.summary()
        assert writer.blocked == 1 and not writer.probe_landed and writer.probe_attempts >= 1
        assert api.write_blocked("livew-toq")
        expected = final_state(api.client, "livew-toq")
        assert_migrated(expected, edge.get, edge.count(), sparse, dense)
    api.remove_write_block("livew-toq")


DRIVER = textwrap.dedent(
    """
    import importlib.util, sys
    spec = importlib.util.spec_from_file_location("migrate_fakes", sys.argv[1])
    fakes = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fakes)
    sys.path.insert(0, sys.argv[2])
    from conftest import LiveNode, raw_client
    from spladebridge.connectors.lucene_client import lucene_client
    from spladebridge.connectors.lucene_connector import lucene_connector
    from spladebridge.migrate import migrate
    from spladebridge.migrate.live import LiveMigration, LiveOptions
    from spladebridge.migrate.lucene_bodies import AddedFields
    from spladebridge.migrate.lucene_cluster import LuceneIndexSource, ReindexTarget, resolve_reindex

    engine, url, checkpoint, freeze_at, delay = sys.argv[3:8]
    api = lucene_client(raw_client(LiveNode("child", engine, url)))
    added = AddedFields(sparse_type=lucene_connector(api).new_sparse_type())
    old, alias, options = resolve_reindex(api, "livek")
    source = LuceneIndexSource(api, old, ("title", "text"), added=added, track_versions=True)
    migrate(
        source,
        ReindexTarget(api, old, "livek-2", alias, ("title", "text"), added, alias_options=options),
        fakes.HashSparseEncoder(delay_s=float(delay)),
        batch_size=8,
        checkpoint=checkpoint,
        resume=True,
        live=LiveMigration(source, LiveOptions(freeze_at=int(freeze_at), max_passes=1000)),
    )
    """
)


def _kill_when(child: subprocess.Popen[bytes], ck: Path, ready: Any, timeout: float = 120) -> dict[str, Any]:
    """SIGKILL `child` once its checkpoint satisfies `ready`; the checkpoint as the kill left it."""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and child.poll() is None:
            if ck.exists() and ready(json.loads(ck.read_text())):
                break
            time.sleep(0.02)
        assert child.poll() is None, "the child ended before the kill:\n" + (
            child.stdout.read().decode() if child.stdout else ""
        )
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL
    saved: dict[str, Any] = json.loads(ck.read_text())
    return saved


def test_sigkill_during_the_catch_up_and_the_freeze_then_resume(
    pair_api: tuple[LiveNode, LuceneClient], corpus: list[dict[str, Any]], tmp_path: Path
) -> None:
    node, api = pair_api
    fakes = _fakes()
    ids = _source_index(api, "livek-1", corpus, alias="livek")
    writer = Writer(api.client, "livek", ids, rate=40, seed=5)
    writer.start()
    ck = tmp_path / "ck.json"
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER, encoding="utf-8")
    here = str(Path(__file__).resolve().parent)

    def child(freeze_at: int, delay: float) -> subprocess.Popen[bytes]:
        args = [str(driver), str(FAKES), here, node.engine, node.url, str(ck), str(freeze_at), str(delay)]
        return subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    # 1. killed during the catch-up (it never freezes by itself: freeze_at 0, writes never stop)
    at_kill = _kill_when(
        child(0, 0.3), ck, lambda c: c["phase"] == "catch-up" and c["live"].get("passes", 0) >= 1
    )
    assert at_kill["phase"] == "catch-up" and at_kill["counts"]["written"] == at_kill["counts"]["read"] > 0
    assert not api.write_blocked("livek-1") and api.aliases("livek") == {"livek-1": {}}
    _until(10, writer)  # the application goes on writing while nothing migrates

    # 2. resumed, and killed again during the freeze: the block outlives the process
    at_freeze = _kill_when(
        child(10_000, 0.5), ck, lambda c: c["phase"] == "frozen" and api.write_blocked("livek-1")
    )
    assert at_freeze["phase"] == "frozen" and at_freeze["runs"] == 2
    assert api.write_blocked("livek-1") and api.aliases("livek") == {"livek-1": {}}
    time.sleep(0.2)
    assert writer.blocked == 1 and not writer.probe_landed  # the writer waits on the block, retrying

    # 3. resumed here: the freeze is finished, the alias swapped, the block lifted
    encoder = fakes.HashSparseEncoder()
    added = AddedFields(sparse_type=lucene_connector(api).new_sparse_type())  # type: ignore[arg-type]
    old, alias, options = resolve_reindex(api, "livek")
    source = LuceneIndexSource(api, old, FIELDS, added=added, track_versions=True)
    report = migrate(
        source,
        ReindexTarget(api, old, "livek-2", alias, FIELDS, added, alias_options=options),
        encoder,
        batch_size=8,
        checkpoint=ck,
        resume=True,
        live=LiveMigration(source, LiveOptions(freeze_at=5, max_passes=3)),
    )
    writer.finish()
    assert report.ok and report.resumed, report.summary()
    assert report.read == 0 and report.live is not None and report.live["resumed_in_freeze"]
    (frozen,) = report.live["passes"]  # straight back into the freeze: one pass, the final one
    assert frozen["frozen"] and writer.probe_landed and api.aliases("livek") == {"livek-2": {}}
    assert not api.write_blocked("livek-1")
    expected = final_state(api.client, "livek-1")
    # only what the killed freeze had not written yet was encoded again
    assert len(encoder.texts) == frozen["changed"] < len(expected)
    with lucene_connector(api, index="livek-2") as conn:
        conn.delete([PROBE_ID])
        conn.flush()
        assert_migrated(expected, conn.get, conn.count(), fakes.HashSparseEncoder(), None)
    final = json.loads(ck.read_text())
    assert final["phase"] == "finished" and final["runs"] == 3 and final["live"]["freeze_s"] < 10


def _cli(node: LiveNode, tmp_path: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    """`spladebridge migrate livek-cli ... --live --json` with the hashing encoder; exit code and JSON."""
    parser = argparse.ArgumentParser(prog="spladebridge")
    migrate_cli.add_parser(parser.add_subparsers(dest="command"))
    argv = ["migrate", "livek-cli", "--url", node.url, "--mode", "reindex", "--new-index", "livek-cli-2"]
    argv += [
        "--text-field",
        "title,text",
        "--live",
        "--json",
        "--quiet",
        "--state-dir",
        str(tmp_path),
        *extra,
    ]
    out = io.StringIO()
    code = migrate_cli.run(parser.parse_args(argv), out, encoders=(_fakes().HashSparseEncoder(), None))
    return code, json.loads(out.getvalue())


def test_cli_dry_run_expects_a_freeze_from_measured_rates_and_the_run_measures_it(
    pair_api: tuple[LiveNode, LuceneClient], tmp_path: Path
) -> None:
    node, api = pair_api
    docs = [{"_id": f"d{i}", "title": "t", "text": f"x {i}"} for i in range(300)]
    ids = _source_index(api, "livek-cli-1", docs, alias="livek-cli")
    writer = Writer(api.client, "livek-cli", ids, rate=50, seed=9)
    writer.start()
    _until(5, writer)
    ops, started = writer.total(), time.monotonic()
    code, plan = _cli(node, tmp_path, "--dry-run", "--rate-window", "2")
    real_rate = (writer.total() - ops) / (time.monotonic() - started)
    assert code == 0 and not api.exists("livek-cli-2")  # a dry run writes nothing
    freeze = plan["freeze"]
    # the writer adds and deletes documents while the scan runs: the count lies between those bounds
    assert 300 - writer.ops["delete"] <= freeze["documents"] <= 300 + writer.ops["index"]
    assert freeze["scan_s"] > 0 and freeze["converges"]
    assert 0.5 * real_rate <= freeze["write_rate_per_s"] <= 1.5 * real_rate + 5  # the writer's rate, measured
    assert freeze["expected_freeze_s"] >= freeze["scan_s"] and freeze["expected_last_delta"] > 0

    code, report = _cli(node, tmp_path, "--freeze-at", "20")
    writer.finish()
    assert code == 0 and report["ok"], report
    live = report["live"]
    assert live["freeze_s"] < 10 and live["passes"][-1]["frozen"] and live["write_block"] == "lifted"
    assert report["verification"]["counts_ok"] and writer.probe_landed
    assert api.aliases("livek-cli") == {"livek-cli-2": {}}
    expected = final_state(api.client, "livek-cli-1")
    with lucene_connector(api, index="livek-cli-2") as conn:
        conn.delete([PROBE_ID])
        conn.flush()
        assert_migrated(expected, conn.get, conn.count(), _fakes().HashSparseEncoder(), None)


@pytest.mark.parametrize("node_name", PAIR[1:])
def test_a_failed_verification_lifts_the_block_and_a_resume_catches_up_again(
    node_name: str, node_pool: NodePool, corpus: list[dict[str, Any]], tmp_path: Path
) -> None:
    node = node_pool.get(node_name)
    api = lucene_client(raw_client(node))
    for name in api.client.indices.get(index="livev-*", allow_no_indices=True):
        api.delete_index(name)
    ids = _source_index(api, "livev-1", corpus, alias="livev")
    fakes = _fakes()
    writer = Writer(api.client, "livev", ids, rate=40, seed=13)
    writer.start()
    _until(5, writer)

    def losing(documents: Any, write: Any, *args: Any) -> StageResult:
        """A broken stage (the swappable one): it writes nothing and says nothing."""
        return StageResult()

    class Late:
        """The hashing encoder; its first call indexes a document the copy cannot have seen."""

        def __init__(self) -> None:
            self.inner = fakes.HashSparseEncoder()

        def encode_documents(self, texts: Any) -> Any:
            if not api.exists("livev-2") or api.count("livev-2") == 0:
                api.client.index(index="livev", id="late", body={"title": "late", "text": "late", "year": 2})
            return self.inner.encode_documents(texts)

        def encode_queries(self, texts: Any) -> Any:
            return self.inner.encode_queries(texts)

    def run(stage: Any) -> Any:
        added = AddedFields(sparse_type=lucene_connector(api).new_sparse_type())  # type: ignore[arg-type]
        old, alias, options = resolve_reindex(api, "livev")
        source = LuceneIndexSource(api, old, FIELDS, added=added, track_versions=True)
        return migrate(
            source,
            ReindexTarget(api, old, "livev-2", alias, FIELDS, added, alias_options=options),
            Late(),
            batch_size=8,
            checkpoint=tmp_path / "ck.json",
            resume=True,
            live=LiveMigration(source, LiveOptions(freeze_at=5, max_passes=3, stage=stage)),
        )

    first = run(losing)  # the copy is complete; the catch-up loses what changed, "late" among them
    assert not first.ok and first.stopped and "verification failed" in first.stopped
    assert first.verification is not None and not first.verification.counts_ok
    assert not api.write_blocked("livev-1") and api.aliases("livev") == {"livev-1": {}}
    assert json.loads((tmp_path / "ck.json").read_text())["phase"] == "catch-up"
    time.sleep(0.3)
    assert writer.blocked == 1 and writer.probe_landed  # the block came and went; the alias still works

    second = run(encode_and_write)
    assert second.ok, second.summary()
    assert api.aliases("livev") == {"livev-2": {}}
    expected = final_state(api.client, "livev-1")
    with lucene_connector(api, index="livev-2") as conn:
        assert_migrated(expected, conn.get, conn.count(), fakes.HashSparseEncoder(), None)
