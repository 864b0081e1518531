"""Server-side fusion in Qdrant Edge and qdrant-client gives the hybrid module's client-side fusion.

Each engine's own single-signal results (the candidate lists its prefetches see) are fused with
`spladebridge.hybrid.fusion`; `search_hybrid` must return the same documents, scores and order.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from qdrant_client import QdrantClient
from qdrant_testdata import SPEC, assert_same_ranking, make_docs, query_dense, query_sparse

from spladebridge.connectors.base import Connector, HybridRequest, ServerFusion
from spladebridge.connectors.filters import FilterLike, Range, Terms
from spladebridge.connectors.qdrant import QdrantConnector
from spladebridge.connectors.qdrant_edge import QdrantEdgeConnector
from spladebridge.hybrid.fusion import rrf, weighted_sum

CANDIDATES = 25
K = 10
TEXT = "cat river snow"


@pytest.fixture(scope="module", params=["edge", "client"])
def conn(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Connector]:
    connector: Connector
    if request.param == "edge":
        connector = QdrantEdgeConnector(tmp_path_factory.mktemp("parity") / "shard", SPEC)
    else:
        connector = QdrantConnector(QdrantClient(":memory:"), SPEC)
    assert connector.upsert(make_docs(120, seed=11)).ok
    yield connector
    connector.close()


def _lists(
    conn: Connector, signals: tuple[str, ...], flt: FilterLike, seed: int
) -> list[list[tuple[Any, float]]]:
    out = []
    for signal in signals:
        if signal == "sparse":
            hits = conn.search_sparse(query_sparse(seed), CANDIDATES, flt)
        elif signal == "dense":
            hits = conn.search_dense(query_dense(seed), CANDIDATES, flt)
        else:
            hits = conn.search_text(TEXT, CANDIDATES, flt)
        out.append([(h.id, h.score) for h in hits])
    return out


def _request(signals: tuple[str, ...], fusion: ServerFusion, flt: FilterLike, seed: int) -> HybridRequest:
    return HybridRequest(
        k=K,
        candidates=CANDIDATES,
        fusion=fusion,
        sparse=query_sparse(seed) if "sparse" in signals else None,
        dense=query_dense(seed) if "dense" in signals else None,
        text=TEXT if "bm25" in signals else None,
        filter=flt,
    )


CASES = [
    pytest.param(("sparse", "dense"), None, 60, None, id="rrf-2"),
    pytest.param(("sparse", "dense", "bm25"), None, 60, None, id="rrf-3"),
    pytest.param(("sparse", "dense", "bm25"), (2.0, 1.0, 0.5), 60, None, id="rrf-weighted"),
    pytest.param(("sparse", "dense"), (0.3, 1.0), 5, Range("year", gte=2000), id="rrf-k5-weighted-filtered"),
    pytest.param(("sparse", "dense"), None, 1, Terms("lang", ["en", "fr"]), id="rrf-k1-filtered"),
]


@pytest.mark.parametrize(("signals", "weights", "rank_constant", "flt"), CASES)
def test_rrf_matches_the_hybrid_module(
    conn: Connector,
    signals: tuple[str, ...],
    weights: tuple[float, ...] | None,
    rank_constant: int,
    flt: FilterLike,
) -> None:
    for seed in (1, 2, 3):
        lists = _lists(conn, signals, flt, seed)
        want = rrf(lists, k=rank_constant, weights=weights)
        fusion = ServerFusion(method="rrf", rank_constant=rank_constant, weights=weights)
        hits = conn.search_hybrid(_request(signals, fusion, flt, seed))
        assert [h.rank for h in hits] == list(range(1, len(hits) + 1))
        assert_same_ranking([(h.id, h.score) for h in hits], want, K)


DBSF_CASES = [
    pytest.param(("sparse", "dense"), None, None, id="dbsf-2"),
    pytest.param(("sparse", "dense", "bm25"), None, None, id="dbsf-3"),
    pytest.param(("sparse", "dense", "bm25"), (0.7, 0.2, 0.1), None, id="dbsf-weighted"),
    pytest.param(("sparse", "dense"), (1.0, 3.0), Range("year", lt=2010), id="dbsf-weighted-filtered"),
]


@pytest.mark.parametrize(("signals", "weights", "flt"), DBSF_CASES)
def test_dbsf_matches_the_hybrid_module(
    conn: Connector, signals: tuple[str, ...], weights: tuple[float, ...] | None, flt: FilterLike
) -> None:
    for seed in (1, 2, 3):
        lists = _lists(conn, signals, flt, seed)
        want = weighted_sum(lists, weights=weights, normalize="dbsf", missing="zero")
        hits = conn.search_hybrid(_request(signals, ServerFusion(method="dbsf", weights=weights), flt, seed))
        assert_same_ranking([(h.id, h.score) for h in hits], want, K, rel=1e-4)


def test_the_two_engines_fuse_identically(tmp_path: Path) -> None:
    docs = make_docs(50, seed=5)
    with (
        QdrantEdgeConnector(tmp_path / "edge", SPEC) as edge,
        QdrantConnector(QdrantClient(":memory:"), SPEC) as local,
    ):
        edge.upsert(docs)
        local.upsert(docs)
        # sparse and dense only: BM25 scores tie often, and engines may order tied documents differently
        for fusion in (ServerFusion(), ServerFusion(method="dbsf"), ServerFusion(weights=(1.0, 2.5))):
            request = _request(("sparse", "dense"), fusion, None, 4)
            a = [(h.id, h.score) for h in edge.search_hybrid(request)]
            b = [(h.id, h.score) for h in local.search_hybrid(request)]
            assert_same_ranking(a, b, rel=1e-4)  # b is a top-k as well: same length


def test_an_empty_signal_is_left_out_of_the_fusion(conn: Connector) -> None:
    from spladebridge.encoder.sparse_vector import SparseVector

    request = HybridRequest(
        k=K, candidates=CANDIDATES, fusion=ServerFusion(weights=(5.0, 1.0)), sparse=SparseVector.empty(),
        dense=query_dense(1),
    )  # fmt: skip
    want = rrf([[(h.id, h.score) for h in conn.search_dense(query_dense(1), CANDIDATES)]], weights=[1.0])
    assert_same_ranking([(h.id, h.score) for h in conn.search_hybrid(request)], want, K)
