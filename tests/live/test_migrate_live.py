"""Migrations against real Elasticsearch 8.19 / 9.x and OpenSearch 2.19 nodes (tests/live/conftest.py).
 A plain BM25 index behind an alias is migrated by reindex (alias swapped in one call), in place,
and into Qdrant Edge; a run killed mid-scan is resumed.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from conftest import LiveNode, raw_client

from spladebridge.connectors.base import IndexSpec
from spladebridge.connectors.qdrant_edge import QdrantEdgeConnector
from spladebridge.migrate import ConnectorTarget, migrate
from spladebridge.migrate.lucene_bodies import AddedFields
from spladebridge.migrate.lucene_cluster import (
    ClusterApi,
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
def api(lucene_node: LiveNode) -> ClusterApi:
    client = raw_client(lucene_node)
    # a reused node (make engines-up) keeps what an earlier run left
    for name in client.indices.get(index="live-*", allow_no_indices=True):
        client.indices.delete(index=name)
    return ClusterApi(client)


def _bm25_index(api: ClusterApi, name: str, alias: str | None = None, n: int = 57, knn: bool = False) -> None:
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


def _added(api: ClusterApi, dense: bool) -> AddedFields:
    sparse_type = api.es_version.default_sparse_type() if api.es_version is not None else "rank_features"
    return AddedFields(
        sparse_type=sparse_type, dense_field="emb" if dense else None, dense_dim=8 if dense else None
    )


def test_reindex_swaps_the_alias_and_hybrid_works(api: ClusterApi, tmp_path: Path) -> None:
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
    assert api.get_alias("live-reindex") == {"live-reindex-2": {}}
    assert api.count("live-reindex") == 57 and api.exists("live-reindex-1")
    verification = report.verification
    assert verification is not None and verification.ok
    solar = verification.queries[0]
    assert solar.error is None and solar.bm25 and solar.hybrid and solar.overlap >= 1


def test_in_place_adds_vectors_to_every_document(api: ClusterApi, tmp_path: Path) -> None:
    fakes = _fakes()
    _bm25_index(api, "live-inplace", knn=api.flavor == "opensearch")
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


def test_killed_scan_resumes_without_duplicates(api: ClusterApi, tmp_path: Path) -> None:
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
    assert api.count("live-kill-2") == 57 and api.get_alias("live-kill") == {"live-kill-2": {}}


def test_to_qdrant_edge(api: ClusterApi, tmp_path: Path) -> None:
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
