"""Every request body the Elasticsearch connector builds, validated against the official OpenAPI spec.

The connector runs against MiniES (tests/unit/es_fake.py: the real client, an in-memory node) so the bodies
checked are exactly the ones sent: index creation (both sparse field types, every version branch), bulk
action lines, mget, sparse / dense / BM25 searches with filters, rrf and linear retrievers, PIT pages and
PIT close. `es_spec.check*` = JSON-schema validation + no undeclared keys.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from es_fake import MiniES, Request
from es_spec import load_spec

from spladebridge.connectors.base import Document, HybridRequest, IndexSpec, ServerFusion
from spladebridge.connectors.elasticsearch import ElasticsearchConnector
from spladebridge.connectors.filters import Filter, Range, Term, Terms
from spladebridge.encoder.sparse_vector import SparseVector

SPEC = IndexSpec(
    name="docs",
    dense_field="dense",
    dense_dim=4,
    options={"dense_index_options": {"type": "hnsw", "m": 16, "ef_construction": 100}, "shards": 1},
)
FILTER = Filter(
    Term("lang", "en"), Terms("tag", ["a", "b"]), Range("year", gte=2000, lt=2010), Term("title", "x")
)


def _operation(request: Request) -> str | None:
    """The spec operation id of a recorded request (None for bodiless calls)."""
    path, method = request.path, request.method
    if request.body is None:
        return None
    if path.endswith("/_bulk"):
        return "bulk"
    if path == "/_search" or path.endswith("/_search"):
        return "search-3"
    if path.endswith("/_mget"):
        return "mget-3"
    if path == "/_pit" and method == "DELETE":
        return "close-point-in-time"
    if path.endswith("/_pit"):
        return "open-point-in-time"
    if method == "PUT" and path.count("/") == 1:
        return "indices-create"
    raise AssertionError(f"no spec operation known for {method} {path}")


def _problems(es: MiniES) -> list[str]:
    spec = load_spec()
    problems: list[str] = []
    for request in es.cluster.requests:
        operation = _operation(request)
        if operation is None:
            continue
        found = (
            spec.check_bulk(request.lines)
            if operation == "bulk"
            else spec.check_request(operation, request.body)
        )
        problems += [f"{request.method} {request.path}: {p}" for p in found]
    return problems


def _docs() -> list[Document]:
    rng = np.random.default_rng(7)
    return [
        Document(
            id=i,
            fields={"title": f"title {i}", "text": "alpha beta"},
            metadata={"lang": "en", "tag": "a", "year": 2000 + i},
            sparse=SparseVector(rng.choice(40, 6, replace=False), rng.uniform(0.1, 2, 6)),
            dense=rng.normal(size=4).astype(np.float32),
        )
        for i in range(5)
    ]


def _exercise(conn: ElasticsearchConnector, es: MiniES, fusions: list[ServerFusion]) -> None:
    conn.ensure_index(SPEC)
    conn.upsert(_docs())
    conn.delete([0, "absent"])
    conn.get([1, 2])
    conn.search_sparse(SparseVector([1, 2, 3], [0.5, 1.0, 2.0]), 3, FILTER)
    conn.search_dense(np.ones(4, np.float32), 3, FILTER)
    conn.search_text("alpha", 3, FILTER)
    conn.search_text("alpha", 3)
    list(conn.scan(batch_size=2))
    es.retriever_hits = ["1"]
    for fusion in fusions:
        request = HybridRequest(
            k=3,
            candidates=20,
            fusion=fusion,
            sparse=SparseVector([1, 2], [1.0, 2.0]),
            dense=np.ones(4, np.float32),
            text="alpha",
            filter=FILTER,
        )
        conn.search_hybrid(request)


@pytest.mark.parametrize(
    ("version", "sparse_type"),
    [
        ("9.2.0", "auto"),
        ("9.1.0", "auto"),
        ("8.19.0", "auto"),
        ("8.16.0", "auto"),
        ("8.13.0", "auto"),
        ("9.1.0", "rank_features"),
    ],
)
def test_every_request_body_conforms_to_the_spec(version: str, sparse_type: Any) -> None:
    es = MiniES(version, "trial")
    conn = ElasticsearchConnector(client=es.client(), sparse_type=sparse_type)
    fusions = []
    if conn.version.rrf_retriever:
        fusions.append(ServerFusion("rrf", rank_constant=60))
    if conn.version.linear_retriever:
        fusions += [ServerFusion("linear", normalizer="minmax", weights=(0.5, 0.3, 0.2))]
    if conn.version.weighted_rrf:
        fusions.append(ServerFusion("rrf", weights=(2.0, 1.0, 1.0)))
    _exercise(conn, es, fusions)
    operations = {_operation(r) for r in es.cluster.requests} - {None}
    assert {"indices-create", "bulk", "mget-3", "search-3", "close-point-in-time"} <= operations
    assert _problems(es) == []


def test_pruning_mapping_and_query_conform() -> None:
    es = MiniES("9.1.0")
    spec = IndexSpec(
        name="docs",
        dense_field=None,
        options={
            "sparse_prune": True,
            "sparse_pruning_config": {"tokens_freq_ratio_threshold": 5, "tokens_weight_threshold": 0.4},
        },
    )
    conn = ElasticsearchConnector(client=es.client())
    conn.ensure_index(spec)
    body = conn.sparse_search_body(SparseVector([1], [1.0]), 2)
    assert body is not None
    found = load_spec().check_request("search-3", body)
    create = [r for r in es.cluster.requests if r.method == "PUT"][-1].body
    found += load_spec().check_request("indices-create", create)
    assert found == []
    assert body["query"]["sparse_vector"]["prune"] is True


def test_the_checker_catches_a_wrong_body() -> None:
    """Guards the guard: undeclared keys and wrong shapes are reported."""
    spec = load_spec()
    bad_query = {"query": {"rank_feature": {"field": "s.1", "linar": {}, "boost": 1.0}}, "size": 1}
    assert spec.check_request("search-3", bad_query) == ["undeclared key $.query.rank_feature.linar"]
    bad_knn = {"knn": {"field": "d", "query_vector": "not-a-vector", "k": 1, "num_candidates": 2}}
    assert spec.check_request("search-3", bad_knn)
    assert spec.check_bulk([{"indx": {"_id": "1"}}, {}]) == ["line 0: undeclared key $.indx"]
    bad_mapping = {"mappings": {"properties": {"v": {"type": "dense_vector", "dimz": 3}}}}
    assert spec.check_request("indices-create", bad_mapping)
