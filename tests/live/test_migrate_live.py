"""Migrations against real Elasticsearch 8.19 / 9.x and OpenSearch 2.19 / 3.x nodes (tests/live/conftest.py).

A plain BM25 index behind an alias is migrated by reindex (alias swapped in one call), in place, and into
Qdrant Edge; a run killed mid-scan is resumed. After `spladebridge migrate` (reindex + alias, and in place)
the index opens with `spladebridge.connect(url, index=...)` and no spec, like any index the connectors made,
and sparse and hybrid searches return hits.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from conftest import LiveNode, raw_client

import spladebridge as sb
from spladebridge.connectors.base import IndexSpec
from spladebridge.connectors.lucene_client import LuceneClient, lucene_client
from spladebridge.connectors.lucene_connector import lucene_connector
from spladebridge.connectors.qdrant_edge import QdrantEdgeConnector
from spladebridge.migrate import ConnectorTarget, migrate
from spladebridge.migrate import cli as migrate_cli
from spladebridge.migrate.lucene_bodies import AddedFields
from spladebridge.migrate.lucene_cluster import (
    InPlaceTarget,
    LuceneIndexSource,
    ReindexTarget,
    resolve_reindex,
)

WORDS = ["solar", "river", "bread", "piano", "garden", "rocket", "coffee", "winter"]


def _fakes() -> ModuleType:
    if "migrate_fakes" not in sys.modules:
        path = Path(__file__).resolve().parents[1] / "unit" / "migrate_fakes.py"
        spec = importlib.util.spec_from_file_location("migrate_fakes", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["migrate_fakes"] = module
        spec.loader.exec_module(module)
    return sys.modules["migrate_fakes"]


@pytest.fixture(scope="module")
def api(lucene_node: LiveNode) -> LuceneClient:
    client = raw_client(lucene_node)
    # a reused node (make engines-up) keeps what an earlier run left
    for name in client.indices.get(index="live-*", allow_no_indices=True):
        client.indices.delete(index=name)
    return lucene_client(client)


def _bm25_index(
    api: LuceneClient, name: str, alias: str | None = None, n: int = 57, knn: bool = False
) -> None:
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
        BulkAction(
            "index",
            name,
            f"d{i}",
            {
                "title": f"{WORDS[i % 8]} notes {i}",
                "text": f"all about {WORDS[i % 8]} and {WORDS[(i + 3) % 8]}",
                "year": 2000 + i,
            },
        )
        for i in range(n)
    ]
    assert api.bulk(actions, BulkConfig(chunk_size=20)).ok
    if alias:
        api.update_aliases({"actions": [{"add": {"index": name, "alias": alias}}]})
    api.refresh(name)


def _added(api: LuceneClient, dense: bool) -> AddedFields:
    sparse_type = lucene_connector(api).new_sparse_type()  # what a new index of the connector gets
    return AddedFields(
        sparse_type=sparse_type, dense_field="emb" if dense else None, dense_dim=8 if dense else None
    )


def test_reindex_swaps_the_alias_and_hybrid_works(api: LuceneClient, tmp_path: Path) -> None:
    fakes = _fakes()
    _bm25_index(api, "live-reindex-1", alias="live-reindex")
    added = _added(api, dense=True)
    old, alias, options = resolve_reindex(api, "live-reindex")
    target = ReindexTarget(api, old, "live-reindex-2", alias, ("title", "text"), added, alias_options=options)
    report = migrate(
        LuceneIndexSource(api, old, ("title", "text"), added=added),
        target,
        fakes.HashSparseEncoder(),
        fakes.HashDenseEncoder(),
        batch_size=10,
        checkpoint=tmp_path / "ck.json",
        sample_queries=["solar river", "coffee"],
    )
    assert report.ok, report.summary()
    assert api.aliases("live-reindex") == {"live-reindex-2": {}}
    assert api.count("live-reindex") == 57 and api.exists("live-reindex-1")
    assert api.index_settings("live-reindex-2")["number_of_shards"] == "2"  # the copy keeps the old shape
    verification = report.verification
    assert verification is not None and verification.ok
    solar = verification.queries[0]
    assert solar.error is None and solar.bm25 and solar.hybrid and solar.overlap >= 1


def test_in_place_adds_vectors_to_every_document(api: LuceneClient, tmp_path: Path) -> None:
    fakes = _fakes()
    _bm25_index(api, "live-inplace", knn=api.dialect == "opensearch")
    added = _added(api, dense=True)
    report = migrate(
        LuceneIndexSource(api, "live-inplace", ("title", "text"), added=added),
        InPlaceTarget(api, "live-inplace", ("title", "text"), added),
        fakes.HashSparseEncoder(),
        fakes.HashDenseEncoder(),
        batch_size=16,
        sample_queries=["bread"],
        sample_size=57,
    )
    assert report.ok, report.summary()
    assert report.verification is not None and all(s.ok for s in report.verification.samples)
    assert len(report.verification.samples) == 57


def test_killed_scan_resumes_without_duplicates(api: LuceneClient, tmp_path: Path) -> None:
    fakes = _fakes()
    _bm25_index(api, "live-kill-1", alias="live-kill")
    added = _added(api, dense=False)
    old, alias, options = resolve_reindex(api, "live-kill")

    def target() -> ReindexTarget:
        return ReindexTarget(api, old, "live-kill-2", alias, ("title", "text"), added, alias_options=options)

    class Killed(BaseException):
        pass

    encoder = fakes.HashSparseEncoder()
    original = encoder.encode_documents
    calls = {"n": 0}

    def dying(texts: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 4:
            raise Killed
        return original(texts)

    encoder.encode_documents = dying
    ck = tmp_path / "ck.json"
    with pytest.raises(Killed):
        migrate(
            LuceneIndexSource(api, old, ("title", "text"), added=added),
            target(),
            encoder,
            batch_size=8,
            checkpoint=ck,
        )
    fresh = fakes.HashSparseEncoder()
    report = migrate(
        LuceneIndexSource(api, old, ("title", "text"), added=added),
        target(),
        fresh,
        batch_size=8,
        checkpoint=ck,
        resume=True,
    )
    assert report.ok and report.resumed and len(fresh.texts) == 57 - 24
    assert api.count("live-kill-2") == 57 and api.aliases("live-kill") == {"live-kill-2": {}}


def test_to_qdrant_edge(api: LuceneClient, tmp_path: Path) -> None:
    fakes = _fakes()
    _bm25_index(api, "live-to-qdrant")
    with QdrantEdgeConnector(tmp_path / "edge") as edge:
        report = migrate(
            LuceneIndexSource(api, "live-to-qdrant", ("title", "text")),
            ConnectorTarget(edge, IndexSpec(name="copy", dense_field="dense", dense_dim=8)),
            fakes.HashSparseEncoder(),
            fakes.HashDenseEncoder(),
            sample_queries=["winter garden"],
        )
        assert report.ok, report.summary()
        assert edge.count() == 57
        (doc,) = edge.get(["d5"])
        assert (
            doc is not None and doc.metadata["year"] == 2005 and doc.sparse is not None and doc.sparse.nnz > 0
        )


def _cli(*argv: str) -> dict[str, Any]:
    """Run `spladebridge migrate ARGV --json` through its argparse front with the hashing encoders (no model
    downloads); the JSON report of a run that succeeded."""
    fakes = _fakes()
    parser = argparse.ArgumentParser(prog="spladebridge")
    migrate_cli.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["migrate", *argv, "--json", "--quiet"])
    out = io.StringIO()
    code = migrate_cli.run(args, out, encoders=(fakes.HashSparseEncoder(), fakes.HashDenseEncoder()))
    report: dict[str, Any] = json.loads(out.getvalue())
    assert code == 0 and report["ok"], report
    return report


def _check_opens_as_an_ordinary_index(url: str, index: str) -> None:
    """`spladebridge.connect(url, index=...)` with no spec: the stored spec, the documents with their vectors,
    and sparse and hybrid searches that find them."""
    fakes = _fakes()
    with sb.connect(url, index=index) as conn:
        spec = conn.existing_spec()
        assert spec.name == index and spec.text_fields == ("title", "text")
        assert (spec.sparse_field, spec.dense_field, spec.dense_dim) == ("splade", "dense", 8)
        assert conn.count() == 57
        (doc,) = conn.get(["d2"])
        assert doc is not None and doc.fields == {
            "title": "bread notes 2",
            "text": "all about bread and rocket",
        }
        assert doc.metadata == {"year": 2002}
        assert doc.sparse is not None and doc.sparse.nnz > 0
        assert doc.dense is not None and doc.dense.shape == (8,)
        query = fakes.HashSparseEncoder().encode_queries(["bread"])[0]
        sparse_hits = conn.search_sparse(query, 5)
        assert len(sparse_hits) == 5 and all("bread" in h.fields["text"] for h in sparse_hits)
        searcher = sb.HybridSearcher(conn, fakes.HashSparseEncoder(), fakes.HashDenseEncoder())
        hits = searcher.search("bread coffee", 5)
        assert len(hits) == 5 and {"bread", "coffee"} & set(hits[0].fields["text"].split())


def test_cli_reindex_then_connect_by_the_alias_with_no_spec(
    api: LuceneClient, lucene_node: LiveNode, tmp_path: Path
) -> None:
    _bm25_index(api, "live-cli-1", alias="live-cli")
    report = _cli(
        "live-cli",
        "--url",
        lucene_node.url,
        "--mode",
        "reindex",
        "--new-index",
        "live-cli-2",
        "--text-field",
        "title,text",
        "--state-dir",
        str(tmp_path / "state"),
    )
    assert report["written"] == 57 and report["verification"]["counts_ok"]
    assert api.aliases("live-cli") == {"live-cli-2": {}}
    _check_opens_as_an_ordinary_index(lucene_node.url, "live-cli")


def test_cli_in_place_then_connect_with_no_spec(
    api: LuceneClient, lucene_node: LiveNode, tmp_path: Path
) -> None:
    _bm25_index(api, "live-cli-inplace", knn=api.dialect == "opensearch")
    report = _cli(
        "live-cli-inplace",
        "--url",
        lucene_node.url,
        "--mode",
        "in-place",
        "--text-field",
        "title,text",
        "--state-dir",
        str(tmp_path / "state"),
    )
    assert report["written"] == 57 and report["verification"]["ok"]
    _check_opens_as_an_ordinary_index(lucene_node.url, "live-cli-inplace")
