"""QdrantConnector against a real Qdrant server in a container (skipped with a reason when Docker is absent).

The image is the one in docker/compose.yaml unless SPLADEBRIDGE_QDRANT_IMAGE names another.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

from qdrant_testdata import SPEC, assert_same_ranking, brute_sparse, make_docs, query_dense, query_sparse

from spladebridge.connectors.base import HybridRequest, IndexSpec, ServerFusion
from spladebridge.connectors.filters import Range
from spladebridge.connectors.qdrant import QdrantConnector
from spladebridge.hybrid.fusion import rrf, weighted_sum

pytestmark = pytest.mark.docker  # no Qdrant server is published where our machines can fetch

IMAGE = os.environ.get("SPLADEBRIDGE_QDRANT_IMAGE", "qdrant/qdrant:v1.17.0")


@pytest.fixture(scope="module")
def server() -> Iterator[Any]:
    from testcontainers.community.qdrant import QdrantContainer

    with QdrantContainer(image=IMAGE) as container:
        yield container


@pytest.fixture
def conn(server: Any) -> Iterator[QdrantConnector]:
    spec = IndexSpec(name=f"sb_live_{uuid.uuid4().hex[:8]}", dense_dim=SPEC.dense_dim)
    connector = QdrantConnector(server.get_client(), spec)
    assert connector.upsert(make_docs(80)).ok
    yield connector
    connector.client.delete_collection(spec.name)
    connector.close()


def test_server_round_trip_and_sparse_search(conn: QdrantConnector) -> None:
    docs = make_docs(80)
    assert conn.count() == 80
    back = conn.get([docs[0].id, docs[1].id, "absent"])
    assert back[0] is not None and back[0].id == docs[0].id and back[0].fields == docs[0].fields
    assert back[1] is not None and back[1].sparse == docs[1].sparse
    assert back[2] is None
    assert len(list(conn.scan(batch_size=13))) == 80
    hits = conn.search_sparse(query_sparse(), 10)
    assert_same_ranking([(h.id, h.score) for h in hits], brute_sparse(docs, query_sparse()), 10)
    assert conn.search_text("cat river", 5)


def test_server_capabilities_come_from_its_version(conn: QdrantConnector) -> None:
    caps = conn.capabilities()
    assert caps.version is not None and caps.version.lstrip("v")[:2] == "1."
    assert {"rrf", "dbsf"} <= caps.server_fusion and caps.weighted_fusion


@pytest.mark.parametrize(
    "fusion",
    [
        ServerFusion(),
        ServerFusion(weights=(2.0, 1.0, 0.5)),
        ServerFusion(method="dbsf", weights=(1.0, 0.5, 2.0)),
    ],
)
def test_server_fusion_matches_the_hybrid_module(conn: QdrantConnector, fusion: ServerFusion) -> None:
    flt = Range("year", gte=1995)
    lists = [
        [(h.id, h.score) for h in conn.search_sparse(query_sparse(), 30, flt)],
        [(h.id, h.score) for h in conn.search_dense(query_dense(), 30, flt)],
        [(h.id, h.score) for h in conn.search_text("cat river snow", 30, flt)],
    ]
    if fusion.method == "rrf":
        want = rrf(lists, k=fusion.rank_constant, weights=fusion.weights)
    else:
        want = weighted_sum(lists, weights=fusion.weights, normalize="dbsf")
    request = HybridRequest(
        k=10, candidates=30, fusion=fusion, sparse=query_sparse(), dense=np.asarray(query_dense()),
        text="cat river snow", filter=flt,
    )  # fmt: skip
    hits = conn.search_hybrid(request)
    assert_same_ranking([(h.id, h.score) for h in hits], want, 10, rel=1e-4)
