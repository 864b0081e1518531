"""ElasticsearchConnector against real Elasticsearch 8.19 and 9.x nodes (tests/live/conftest.py: `es_node`).

The tests index a small random corpus and check each signal, hybrid, bulk with an injected per-item failure,
and scan. What a node's distribution lacks (rank_features, the rrf retriever) is skipped with that reason.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from conftest import LiveNode

from spladebridge.connectors.base import Document, HybridRequest, IndexSpec, ServerFusion
from spladebridge.connectors.elasticsearch import ElasticsearchConnector
from spladebridge.connectors.filters import Term
from spladebridge.connectors.lucene import lucene_dot
from spladebridge.encoder.sparse_vector import SparseVector


@pytest.fixture(scope="module")
def es_url(es_node: LiveNode) -> str:
    return es_node.url


def _note(notes: tuple[str, ...], topic: str) -> str:
    return next((n for n in notes if topic in n), "; ".join(notes))


def _corpus(n: int = 40) -> list[Document]:
    rng = np.random.default_rng(11)
    words = ["alpha", "beta", "gamma", "delta", "omega"]
    return [
        Document(
            id=i if i % 2 else f"doc-{i}",
            fields={"title": f"title {i}", "text": " ".join(rng.choice(words, 4))},
            metadata={"lang": "en" if i % 3 else "de", "year": 1990 + i},
            sparse=SparseVector(rng.choice(200, 12, replace=False), rng.uniform(0.05, 3.0, 12)),
            dense=rng.normal(size=8).astype(np.float32),
        )
        for i in range(n)
    ]


@pytest.fixture(scope="module", params=["auto", "rank_features"])
def loaded(
    es_url: str, request: pytest.FixtureRequest
) -> Iterator[tuple[ElasticsearchConnector, list[Document]]]:
    name = f"sb-live-{request.param.replace('_', '-')}"
    conn = ElasticsearchConnector(es_url, sparse_type=request.param, refresh="wait_for")
    caps = conn.capabilities()
    if request.param == "rank_features" and "rank_features" not in caps.sparse_field_types:
        conn.close()
        pytest.skip(f"Elasticsearch {caps.version} here: {_note(caps.notes, 'rank_features')}")
    conn.client.indices.delete(index=name, ignore_unavailable=True)
    conn.ensure_index(IndexSpec(name=name, dense_field="dense", dense_dim=8))
    docs = _corpus()
    report = conn.upsert(docs)
    assert report.ok, report.failures()[:3]
    conn.flush()
    yield conn, docs
    conn.client.indices.delete(index=name, ignore_unavailable=True)
    conn.close()


def test_sparse_ranking_matches_the_lucene_model(loaded: Any) -> None:
    conn, docs = loaded
    query = SparseVector([3, 17, 42, 99, 150, 199], [0.8, 1.5, 0.3, 2.2, 0.9, 1.1])
    hits = conn.search_sparse(query, k=10)
    expected = sorted(((lucene_dot(query, d.sparse), str(d.id)) for d in docs), key=lambda t: (-t[0], t[1]))
    expected = [t for t in expected if t[0] > 0][:10]
    assert [h.score for h in hits] == pytest.approx([s for s, _ in expected], rel=1e-5)
    assert {str(h.id) for h in hits} == {d for _, d in expected}


def test_dense_text_and_filters(loaded: Any) -> None:
    conn, docs = loaded
    dense_hits = conn.search_dense(docs[5].dense, k=3)
    assert dense_hits[0].id == docs[5].id
    text_hits = conn.search_text("alpha", k=50, filter=Term("lang", "de"))
    assert text_hits and all(h.fields["lang"] == "de" for h in text_hits)


def test_server_side_hybrid_with_a_trial_licence(loaded: Any) -> None:
    conn, docs = loaded
    caps = conn.capabilities()
    if "rrf" not in caps.server_fusion:
        pytest.skip(f"Elasticsearch {caps.version} here: {_note(caps.notes, 'rrf')}")
    request = HybridRequest(
        k=5,
        candidates=40,
        fusion=ServerFusion("rrf", rank_constant=60),
        sparse=docs[7].sparse,
        dense=docs[7].dense,
        text=docs[7].fields["text"],
    )
    hits = conn.search_hybrid(request)
    assert hits[0].id == docs[7].id and len(hits) == 5


def test_bulk_reports_an_injected_per_item_failure(loaded: Any) -> None:
    conn, _ = loaded
    good = Document(
        id="late-ok", fields={"title": "t"}, sparse=SparseVector([1], [1.0]), metadata={"year": 5}
    )
    bad = Document(
        id="late-bad", fields={"title": "t"}, sparse=SparseVector([1], [1.0]), metadata={"year": "x"}
    )
    report = conn.upsert([good, bad])
    assert [o.ok for o in report.outcomes] == [True, False]
    assert report.outcomes[1].status == "400" and "year" in (report.outcomes[1].error or "")
    assert conn.delete(["late-ok", "late-bad"]).ok


def test_scan_returns_every_document_with_its_vectors(loaded: Any) -> None:
    conn, docs = loaded
    scanned = {str(d.id): d for d in conn.scan(batch_size=7)}
    assert set(scanned) == {str(d.id) for d in docs}
    for doc in docs:
        back = scanned[str(doc.id)]
        assert back.id == doc.id and back.sparse == doc.sparse
        assert back.dense is not None and np.array_equal(back.dense, doc.dense)
