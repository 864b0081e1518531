"""The engine-neutral migration end to end on embedded Qdrant Edge: JSONL -> Edge, Edge -> Edge re-encoding
with a new model, verification with BM25-only vs hybrid, the dry-run plan, and one run with the real default
SPLADE encoder."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

from spladebridge.connectors.base import IndexSpec
from spladebridge.connectors.qdrant_edge import QdrantEdgeConnector
from spladebridge.migrate import ConnectorSource, ConnectorTarget, RecordFileSource, migrate, plan_migration


def _fakes() -> ModuleType:
    name = "migrate_fakes"
    if name not in sys.modules:
        path = Path(__file__).resolve().parents[1] / "unit" / "migrate_fakes.py"
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


fakes = _fakes()
TOPICS = ["solar power panels", "river fishing trips", "bread baking recipes", "jazz piano chords"]


def _corpus(path: Path, n: int = 40) -> Path:
    with path.open("w", encoding="utf-8") as fh:
        for i in range(n):
            topic = TOPICS[i % len(TOPICS)]
            row = {
                "_id": f"doc-{i}",
                "title": f"{topic} {i}",
                "text": f"notes on {topic} part {i}",
                "year": 1990 + i,
            }
            if i == 7:
                row["text"] = ""  # a document with only a title
            fh.write(json.dumps(row) + "\n")
    return path


def _spec(name: str, dense: bool) -> IndexSpec:
    return IndexSpec(name=name, dense_field="dense" if dense else None, dense_dim=8 if dense else None)


def test_jsonl_to_edge_with_dense_verified_and_compared(tmp_path: Path) -> None:
    corpus = _corpus(tmp_path / "corpus.jsonl")
    with QdrantEdgeConnector(tmp_path / "shard") as edge:
        report = migrate(
            RecordFileSource(corpus),
            ConnectorTarget(edge, _spec("docs", dense=True)),
            fakes.HashSparseEncoder(),
            fakes.HashDenseEncoder(),
            batch_size=16,
            checkpoint=tmp_path / "ck.json",
            sample_queries=["solar panels", "baking bread"],
            k=5,
        )
        assert report.ok, report.summary()
        assert edge.count() == 40
        (doc,) = edge.get(["doc-7"])
        assert doc is not None and doc.fields["title"] == "jazz piano chords 7" and not doc.fields.get("text")
        assert doc.metadata["year"] == 1997 and doc.sparse is not None and doc.sparse.nnz > 0
        assert doc.dense is not None and doc.dense.shape == (8,)
    verification = report.verification
    assert verification is not None and verification.ok and len(verification.samples) == 20
    solar = verification.queries[0]
    assert solar.bm25_from == "target"  # a JSONL file has no lexical scorer of its own
    assert solar.bm25 and solar.hybrid
    assert all(str(i).startswith("doc-") for i, _ in solar.hybrid)
    top_ids = [int(str(i).split("-")[1]) for i, _ in solar.hybrid[:3]]
    assert all(i % 4 == 0 for i in top_ids)  # solar documents are every 4th
    text = report.summary()
    assert "BM25 only" in text and "hybrid (after)" in text


def test_edge_to_edge_reencodes_with_a_new_model(tmp_path: Path) -> None:
    corpus = _corpus(tmp_path / "corpus.jsonl", 30)
    old_encoder = fakes.HashSparseEncoder(salt="v1")
    with QdrantEdgeConnector(tmp_path / "old") as old:
        migrate(RecordFileSource(corpus), ConnectorTarget(old, _spec("old", dense=False)), old_encoder)
        before = {d.id: d for d in old.scan()}
    with QdrantEdgeConnector(tmp_path / "old") as old, QdrantEdgeConnector(tmp_path / "new") as new:
        new_encoder = fakes.HashSparseEncoder(salt="v2")
        report = migrate(
            ConnectorSource(old),
            ConnectorTarget(new, _spec("new", dense=False)),
            new_encoder,
            checkpoint=tmp_path / "reencode.json",
            sample_queries=["river fishing"],
            batch_size=8,
        )
        assert report.ok, report.summary()
        assert report.verification is not None and report.verification.queries[0].bm25_from == "source"
        after = {d.id: d for d in new.scan()}
    assert set(after) == set(before)
    for doc_id, doc in after.items():
        assert doc.fields == before[doc_id].fields and doc.metadata == before[doc_id].metadata
        assert doc.sparse == new_encoder.encode_documents([doc.text(("title", "text"))])[0]
        assert doc.sparse != before[doc_id].sparse


def test_rerun_of_finished_edge_migration_changes_nothing(tmp_path: Path) -> None:
    corpus = _corpus(tmp_path / "corpus.jsonl", 10)
    ck = tmp_path / "ck.json"
    with QdrantEdgeConnector(tmp_path / "shard") as edge:
        first = migrate(
            RecordFileSource(corpus),
            ConnectorTarget(edge, _spec("d", False)),
            fakes.HashSparseEncoder(),
            checkpoint=ck,
        )
    assert first.verification is not None and len(first.verification.queries) == 3  # probes from the sample
    for q in first.verification.queries:
        assert q.error is None and q.hybrid and any(q.query.startswith(t) for t in TOPICS)
    with QdrantEdgeConnector(tmp_path / "shard") as edge:
        encoder = fakes.HashSparseEncoder()
        again = migrate(
            RecordFileSource(corpus),
            ConnectorTarget(edge, _spec("d", False)),
            encoder,
            checkpoint=ck,
            resume=True,
        )
        assert again.already_finished and encoder.texts == [] and edge.count() == 10


def test_dry_run_plan_measures_rate_and_growth(tmp_path: Path) -> None:
    corpus = _corpus(tmp_path / "corpus.jsonl", 40)
    plan = plan_migration(
        RecordFileSource(corpus),
        fakes.HashSparseEncoder(),
        fakes.HashDenseEncoder(),
        engine="qdrant",
        sample_size=10,
        actions=["create Qdrant Edge shard docs"],
    )
    vectors = fakes.HashSparseEncoder().encode_documents(
        [
            json.loads(line)["title"] + "\n" + json.loads(line)["text"]
            for line in corpus.read_text().splitlines()[:10]
        ]
    )
    mean = sum(v.nnz for v in vectors) / 10
    assert plan.documents == 40 and plan.sample_docs == 10
    assert plan.mean_active_dims == pytest.approx(mean)
    assert plan.estimated_sparse_bytes == round(40 * mean * 16.0)
    assert plan.estimated_dense_bytes == 40 * (8 * 4 + 2 * 16 * 4)
    assert plan.encode_docs_per_s > 0 and plan.estimated_seconds == pytest.approx(40 / plan.encode_docs_per_s)
    assert "mean active dims" in plan.summary() and not (tmp_path / "shard").exists()


@pytest.mark.slow
def test_real_default_encoder_on_a_handful_of_documents(tmp_path: Path) -> None:
    from spladebridge.encoder.splade import SpladeEncoder

    corpus = _corpus(tmp_path / "corpus.jsonl", 6)
    encoder = SpladeEncoder(max_length=64, num_threads=1)
    with QdrantEdgeConnector(tmp_path / "shard") as edge:
        report = migrate(
            RecordFileSource(corpus),
            ConnectorTarget(edge, _spec("real", dense=False)),
            encoder,
            sample_queries=["jazz piano"],
            k=3,
        )
        assert report.ok, report.summary()
        docs = edge.get([f"doc-{i}" for i in range(6)])
    assert all(d is not None and d.sparse is not None and d.sparse.nnz > 5 for d in docs)
    jazz = report.verification.queries[0] if report.verification else None
    assert jazz is not None and jazz.hybrid and str(jazz.hybrid[0][0]) == "doc-3"
