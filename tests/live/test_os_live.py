"""The OpenSearch connector against real OpenSearch nodes (tests/live/conftest.py: `os_node`).

Each node is started once per session from what `make engines` fetched (or named by SPLADEBRIDGE_TEST_*_URL).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from conftest import LiveNode

from spladebridge.connectors.base import (
    Document,
    HybridRequest,
    IndexSpec,
    ServerFusion,
    UnsupportedOperation,
)
from spladebridge.connectors.bulk import BulkConfig
from spladebridge.connectors.filters import Term
from spladebridge.connectors.http_settings import HttpSettings
from spladebridge.connectors.lucene import lucene_dot
from spladebridge.connectors.opensearch import OpenSearchConnector, OpenSearchOptions, SeismicIndexParams
from spladebridge.encoder.sparse_vector import SparseVector
from spladebridge.hybrid import fusion as fuse

DIM = 8


@pytest.fixture(scope="module")
def os_url(os_node: LiveNode) -> str:
    return os_node.url


def _corpus(n: int = 40) -> list[Document]:
    rng = np.random.default_rng(11)
    words = ["apple", "banana", "cherry", "date", "elder", "fig", "grape", "honey"]
    raw = rng.normal(size=(n, DIM)).astype(np.float32)
    unit = raw / np.linalg.norm(raw, axis=1, keepdims=True)  # unit length: a vector is its own nearest
    docs = []
    for i in range(n):
        ids = rng.choice(300, size=12, replace=False)
        docs.append(
            Document(
                id=i if i % 2 else f"d{i}",
                fields={"title": words[i % 8], "text": f"{words[i % 8]} {words[(i * 3) % 8]} number {i}"},
                metadata={"lang": "en" if i % 3 else "de", "n": i},
                sparse=SparseVector(ids, rng.uniform(0.05, 2.9, size=12)),
                dense=unit[i],
            )
        )
    return docs


@pytest.fixture(scope="module")
def loaded(os_url: str) -> Iterator[tuple[OpenSearchConnector, list[Document]]]:
    conn = OpenSearchConnector(os_url, options=OpenSearchOptions(bulk=BulkConfig(initial_backoff=0.2)))
    spec = IndexSpec(name="sb-live", dense_dim=DIM)
    conn.client.indices.delete(index=spec.name, ignore_unavailable=True)
    conn.ensure_index(spec)
    docs = _corpus()
    report = conn.upsert(docs)
    assert report.ok, report.failures()[:3]
    conn.flush()
    yield conn, docs
    conn.client.indices.delete(index=spec.name)
    conn.close()


def test_round_trip_count_get_scan(loaded: tuple[OpenSearchConnector, list[Document]]) -> None:
    conn, docs = loaded
    assert conn.count() == len(docs)
    got = conn.get([docs[3].id, "nope", docs[4].id])
    assert got[1] is None and got[0] is not None and got[0].sparse == docs[3].sparse
    assert got[2] is not None and got[2].id == docs[4].id and got[2].metadata == docs[4].metadata
    scanned = {str(d.id) for d in conn.scan(batch_size=7)}
    assert scanned == {str(d.id) for d in docs}


def test_sparse_search_is_the_lucene_dot_product(loaded: tuple[OpenSearchConnector, list[Document]]) -> None:
    conn, docs = loaded
    query = SparseVector(docs[5].sparse.indices[:6], [120.0, 20.0, 3.0, 1.0, 0.5, 0.2])  # type: ignore[union-attr]
    hits = conn.search_sparse(query, 10)
    model = sorted(((lucene_dot(query, d.sparse), str(d.id)) for d in docs), reverse=True)  # type: ignore[arg-type]
    model = [m for m in model if m[0] > 0][:10]
    assert [str(h.id) for h in hits] == [m[1] for m in model]
    for hit, (score, _) in zip(hits, model, strict=True):
        assert hit.score == pytest.approx(score, rel=1e-4)


def test_dense_and_text_search_with_filters(loaded: tuple[OpenSearchConnector, list[Document]]) -> None:
    conn, docs = loaded
    q = docs[7].dense
    assert q is not None
    hits = conn.search_dense(q, 5, filter=Term("lang", "en"))
    assert hits[0].id == docs[7].id and all(h.fields["lang"] == "en" for h in hits)
    text_hits = conn.search_text("cherry", 5)
    assert text_hits and all("cherry" in h.fields["text"] for h in text_hits)


@pytest.mark.parametrize(
    "fusion",
    [
        ServerFusion(method="rrf", rank_constant=60),
        ServerFusion(method="linear", normalizer="minmax", missing="zero", weights=(0.3, 0.7)),
        # l2 is not blind to Lucene's (1 + cos) / 2 dense transform: server-side only without a dense signal
        ServerFusion(method="linear", normalizer="l2", missing="zero", signals=("sparse", "bm25")),
    ],
)
def test_server_side_hybrid_agrees_with_the_client_side_twin(
    loaded: tuple[OpenSearchConnector, list[Document]], fusion: ServerFusion
) -> None:
    conn, docs = loaded
    sparse = docs[2].sparse
    dense = docs[9].dense
    assert sparse is not None and dense is not None
    problem = conn.server_fusion_problem(fusion, 2)
    assert problem is None, problem  # every case here runs server-side on OpenSearch 2.19 and 3.6
    with_text = "bm25" in fusion.signals
    text = docs[2].fields["text"] if with_text else None
    request = HybridRequest(
        k=10, candidates=20, fusion=fusion, sparse=sparse, dense=None if with_text else dense, text=text
    )
    server = conn.search_hybrid(request)
    second = conn.search_text(text, 20) if text is not None else conn.search_dense(dense, 20)
    lists = [
        [(h.id, h.score) for h in conn.search_sparse(sparse, 20)],
        [(h.id, h.score) for h in second],
    ]
    if fusion.method == "rrf":
        twin = fuse.rrf(lists, k=fusion.rank_constant, weights=fusion.weights)
        tolerance = 1e-6
    else:
        normalizer: fuse.Normalizer = "minmax" if fusion.normalizer == "minmax" else "l2"
        twin = fuse.weighted_sum(lists, fusion.weights, normalize=normalizer, missing="zero")
        tolerance = 1.5e-3 * sum(fusion.weights or (1.0, 1.0))  # min_max floor (0.001), float32
    twin_scores = dict(twin)
    for hit in server:
        assert hit.id in twin_scores
        assert hit.score == pytest.approx(twin_scores[hit.id], abs=tolerance)


def test_a_mapping_rejection_is_reported_per_item(loaded: tuple[OpenSearchConnector, list[Document]]) -> None:
    conn, _ = loaded
    one = SparseVector([1], [1.0])  # every engine stores a document with its sparse vector
    bad = Document(id="bad-n", fields={"title": "x"}, metadata={"n": "not a number"}, sparse=one)
    good = Document(id="good-n", fields={"title": "y"}, metadata={"n": 3}, sparse=one)
    report = conn.upsert([bad, good])
    assert [o.ok for o in report.outcomes] == [False, True]
    assert report.outcomes[0].status == "400" and "mapper_parsing_exception" in (
        report.outcomes[0].error or ""
    )
    assert conn.delete(["good-n", "bad-n"]).ok


def test_an_existing_index_reopens_by_name_from_its_stored_spec(
    loaded: tuple[OpenSearchConnector, list[Document]], os_url: str
) -> None:
    conn, _ = loaded
    assert conn.spec is not None
    with OpenSearchConnector(os_url, index=conn.spec.name) as again:
        assert again.count() == conn.count()
        assert again.spec == conn.spec


def test_capabilities_detect_the_plugins(loaded: tuple[OpenSearchConnector, list[Document]]) -> None:
    conn, _ = loaded
    caps = conn.capabilities()
    assert caps.engine == "opensearch" and caps.dense and "linear" in caps.server_fusion


def test_seismic_sparse_vector_needs_3_3_and_searches_there(os_url: str) -> None:
    conn = OpenSearchConnector(
        settings=HttpSettings(urls=(os_url,)),
        options=OpenSearchOptions(
            sparse_type="sparse_vector", seismic=SeismicIndexParams(quantization_ceiling_ingest=3.0)
        ),
    )
    spec = IndexSpec(name="sb-live-seismic", dense_field=None)
    conn.client.indices.delete(index=spec.name, ignore_unavailable=True)
    if conn.server_info().version < (3, 3):
        with pytest.raises(UnsupportedOperation, match=r"3\.3"):
            conn.ensure_index(spec)
        assert not conn.client.indices.exists(index=spec.name)
        conn.close()
        return
    conn.ensure_index(spec)
    docs = [d for d in _corpus(20)]
    for d in docs:
        d.dense = None
    assert conn.upsert(docs).ok
    conn.flush()
    query = docs[4].sparse
    assert query is not None
    hits = conn.search_sparse(query, 5)
    assert hits and hits[0].id == docs[4].id  # below approximate_threshold, segments are searched exactly
    conn.client.indices.delete(index=spec.name)
    conn.close()
