"""Every Elasticsearch and OpenSearch request body a migration sends, validated against the official specs.

The reindex and in-place flows (with and without a dense field, with sample queries for the hybrid
comparison) run through the real clients against `MiniLucene` (tests/unit/migrate_fakes.py), and every
recorded body is checked: index creation, mapping update, the `_aliases` swap, PIT pages and close, bulk
index / partial update lines, mget, BM25 / rank_feature / sparse_vector / kNN searches. The migration's own
bodies come from `lucene_bodies`; writes, reads and searches from the connectors' Lucene layer it runs on.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

_HERE = Path(__file__).resolve().parent


def _load(name: str, path: Path) -> ModuleType:
    """Import a helper module of another test folder by its file path (registered under its own name)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


_load("es_fake", _HERE.parent / "unit" / "es_fake.py")
_load("os_fake", _HERE.parent / "unit" / "os_fake.py")
fakes = _load("migrate_fakes", _HERE.parent / "unit" / "migrate_fakes.py")
es_spec = _load("es_spec", _HERE / "es_spec.py")
os_spec = _load("os_spec", _HERE / "os_spec.py")

from spladebridge.connectors.lucene_client import lucene_client  # noqa: E402
from spladebridge.connectors.lucene_connector import lucene_connector  # noqa: E402
from spladebridge.migrate import migrate  # noqa: E402
from spladebridge.migrate.lucene_bodies import AddedFields  # noqa: E402
from spladebridge.migrate.lucene_cluster import (  # noqa: E402
    InPlaceTarget,
    LuceneIndexSource,
    ReindexTarget,
    resolve_reindex,
)

#: Stateful-only settings the serverless spec leaves out (es_spec.STATEFUL_ONLY_KEYS lists the flat form).
_STATEFUL_ONLY = ("$.settings.index.number_of_shards", "$.settings.index.number_of_replicas")

_ES_OPS = {
    ("PUT", "index"): "indices-create",
    ("PUT", "_mapping"): "indices-put-mapping",
    ("POST", "_aliases"): "indices-update-aliases",
    ("DELETE", "_pit"): "close-point-in-time",
    ("POST", "/_search"): "search-1",
    ("POST", "_search"): "search-3",
    ("POST", "_mget"): "mget-3",
}
_OS_OPS = {
    ("PUT", "index"): "indices.create.0",
    ("PUT", "_mapping"): "indices.put_mapping.1",
    ("POST", "_aliases"): "indices.update_aliases.0",
    ("DELETE", "point_in_time"): "delete_pit.0",
    ("POST", "/_search"): "search.1",
    ("GET", "/_search"): "search.0",
    ("POST", "_search"): "search.3",
    ("GET", "_search"): "search.2",
    ("POST", "_mget"): "mget.3",
    ("GET", "_mget"): "mget.2",
}


def _operation(method: str, path: str, ops: dict[tuple[str, str], str]) -> str:
    parts = [p for p in path.split("/") if p]
    if len(parts) == 1 and not parts[0].startswith("_"):
        key = (method, "index")
    elif path == "/_search":
        key = (method, "/_search")
    else:
        key = (method, parts[-1])
    if key not in ops:
        raise AssertionError(f"no spec operation known for {method} {path}")
    return ops[key]


def _docs(n: int) -> dict[str, dict[str, Any]]:
    words = ["alpha", "beta", "gamma", "delta", "omega"]
    return {
        f"d{i}": {
            "title": f"{words[i % 5]} {words[(i + 2) % 5]}",
            "text": f"{words[(i + 1) % 5]} text {i}",
            "n": i,
        }
        for i in range(12)
    }


def _run_flows(cluster: Any, *, dense: bool) -> None:
    cluster.add_index("books-1", _docs(12))
    cluster.aliases["books"] = {"books-1": {}}
    cluster.add_index("notes", _docs(12), settings={"index": {"number_of_shards": "1", "knn": "true"}})
    api = lucene_client(cluster.client())
    sparse_type = lucene_connector(api).new_sparse_type()
    added = AddedFields(
        sparse_type=sparse_type, dense_field="emb" if dense else None, dense_dim=8 if dense else None
    )
    dense_encoder = fakes.HashDenseEncoder() if dense else None
    old, alias, options = resolve_reindex(api, "books")
    reindex = ReindexTarget(api, old, "books-2", alias, ("title", "text"), added, alias_options=options)
    report = migrate(
        LuceneIndexSource(api, old, ("title", "text"), added=added),
        reindex,
        fakes.HashSparseEncoder(),
        dense_encoder,
        batch_size=5,
        sample_queries=["alpha beta", "omega"],
    )
    assert report.ok, report.summary()
    assert report.verification is not None and all(q.error is None for q in report.verification.queries)
    in_place = InPlaceTarget(api, "notes", ("title", "text"), added)
    report = migrate(
        LuceneIndexSource(api, "notes", ("title", "text"), added=added, sort_field="_id"),
        in_place,
        fakes.HashSparseEncoder(),
        dense_encoder,
        batch_size=5,
        sample_queries=["gamma"],
    )
    assert report.ok, report.summary()


@pytest.mark.parametrize(
    ("version", "dense"), [("9.1.0", False), ("9.1.0", True), ("9.2.0", True), ("8.13.0", True)]
)
def test_elasticsearch_bodies_match_the_spec(version: str, dense: bool) -> None:
    spec = es_spec.load_spec()
    cluster = fakes.MiniLucene("elasticsearch", version=version)
    _run_flows(cluster, dense=dense)
    checked: set[str] = set()
    problems: list[str] = []
    for method, path, _, body in cluster.requests:
        if body is None:
            continue
        if path.endswith("/_bulk"):
            problems += [f"{method} {path}: {p}" for p in spec.check_bulk(body)]
            checked.add("bulk")
            continue
        operation = _operation(method, path, _ES_OPS)
        found = [p for p in spec.check_request(operation, body) if not p.endswith(_STATEFUL_ONLY)]
        problems += [f"{method} {path} ({operation}): {p}" for p in found]
        checked.add(operation)
    assert not problems, "\n".join(problems)
    expected = {
        "indices-create",
        "indices-put-mapping",
        "indices-update-aliases",
        "search-1",
        "search-3",
        "mget-3",  # 9.2+ too: the same body, sent with _source_exclude_vectors=false
        "close-point-in-time",
        "bulk",
    }
    assert expected <= checked


@pytest.mark.parametrize("dense", [False, True])
def test_opensearch_bodies_match_the_spec(dense: bool) -> None:
    spec = os_spec.load_spec()
    cluster = fakes.MiniLucene("opensearch", version="2.19.0")
    _run_flows(cluster, dense=dense)
    checked: set[str] = set()
    for method, path, _, body in cluster.requests:
        if body is None:
            continue
        if path.endswith("/_bulk"):
            spec.check_request("bulk.0", body, "application/x-ndjson")
            for line in body:
                if set(line) & {"index", "update", "delete", "create"}:
                    spec.check_schema("_core.bulk.yaml", "OperationContainer", line)
            checked.add("bulk")
            continue
        operation = _operation(method, path, _OS_OPS)
        spec.check_request(operation, body)
        checked.add(operation)
    assert {"indices.create.0", "indices.put_mapping.1", "indices.update_aliases.0", "bulk"} <= checked
    assert any(op.startswith("search.") for op in checked) and any(op.startswith("mget.") for op in checked)
