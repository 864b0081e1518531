"""Both Qdrant connectors, for real: Qdrant Edge in a temp folder and qdrant-client local mode in memory."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from qdrant_client import QdrantClient
from qdrant_testdata import (
    SPEC,
    assert_same_ranking,
    brute_dense,
    brute_sparse,
    make_docs,
    query_dense,
    query_sparse,
)

from spladebridge.connectors.base import Connector, ConnectorError, Document, IndexSpec, UnsupportedOperation
from spladebridge.connectors.filters import Filter, Range, Term, Terms
from spladebridge.connectors.qdrant import QdrantConnector
from spladebridge.connectors.qdrant_edge import QdrantEdgeConnector
from spladebridge.encoder.sparse_vector import SparseVector

Factory = Callable[[IndexSpec], Connector]


@pytest.fixture(params=["edge", "client"])
def make(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Factory]:
    made: list[Connector] = []

    def factory(spec: IndexSpec) -> Connector:
        conn: Connector
        if request.param == "edge":
            conn = QdrantEdgeConnector(tmp_path / f"shard{len(made)}", spec)
        else:
            conn = QdrantConnector(QdrantClient(":memory:"), spec)
        made.append(conn)
        return conn

    yield factory
    for conn in made:
        conn.close()


@pytest.fixture
def loaded(make: Factory) -> tuple[Connector, list[Document]]:
    docs = make_docs()
    conn = make(SPEC)
    report = conn.upsert(docs)
    assert report.ok, report.failures()
    return conn, docs


def test_documents_round_trip_through_get_and_scan(loaded: tuple[Connector, list[Document]]) -> None:
    conn, docs = loaded
    assert conn.count() == len(docs)
    wanted = [docs[0].id, docs[4].id, "absent", 10**6]
    got = conn.get(wanted)
    assert got[2] is None and got[3] is None
    for doc, back in zip([docs[0], docs[4]], got[:2], strict=True):
        assert back is not None
        assert back.id == doc.id and type(back.id) is type(doc.id)
        assert back.fields == doc.fields
        assert back.metadata == doc.metadata
        assert back.sparse is not None and doc.sparse is not None
        np.testing.assert_array_equal(back.sparse.indices, doc.sparse.indices)
        np.testing.assert_allclose(back.sparse.values, doc.sparse.values, rtol=1e-6)
        assert doc.dense is not None and back.dense is not None
        np.testing.assert_allclose(back.dense, doc.dense / np.linalg.norm(doc.dense), rtol=1e-5)  # cosine
    scanned = list(conn.scan(batch_size=7))
    assert sorted(map(str, (d.id for d in scanned))) == sorted(map(str, (d.id for d in docs)))
    by_id = {d.id: d for d in docs}
    for doc in scanned:
        assert doc.fields == by_id[doc.id].fields and doc.sparse == by_id[doc.id].sparse


def test_ids_of_every_kind_round_trip_exactly(make: Factory) -> None:
    conn = make(SPEC)
    sparse = SparseVector([1], [1.0])
    ids: list[Any] = [0, 2**64 - 1, "42", 42, "ünïcödé id", "550e8400-e29b-41d4-a716-446655440000"]
    report = conn.upsert(Document(id=i, fields={"text": str(i)}, sparse=sparse) for i in ids)
    assert report.ok and len(report) == len(ids)
    assert conn.count() == len(ids)  # "42" and 42 are two documents
    back = conn.get(ids)
    assert [d.id if d else None for d in back] == ids
    assert [type(d.id) for d in back if d] == [type(i) for i in ids]
    hits = conn.search_sparse(sparse, k=10)
    assert sorted(map(repr, (h.id for h in hits))) == sorted(map(repr, ids))


def test_upsert_reports_each_document_in_input_order(make: Factory) -> None:
    conn = make(SPEC)
    good = make_docs(3)
    items: list[Any] = [
        good[0],
        Document(id=-1, sparse=SparseVector([1], [1.0])),
        good[1],
        Document(id="no-sparse"),
        Document(id="bad-dim", sparse=SparseVector([1], [1.0]), dense=np.ones(3, np.float32)),
        "not a document",
        good[2],
    ]
    report = conn.upsert(items)
    assert [o.ok for o in report.outcomes] == [True, False, True, False, False, False, True]
    assert [o.id for o in report.outcomes][:5] == [good[0].id, -1, good[1].id, "no-sparse", "bad-dim"]
    assert all(not o.retryable and o.status == "invalid" for o in report.failures())
    assert "document 1 (id -1)" in (report.outcomes[1].error or "")
    assert "item 5" in (report.outcomes[5].error or "")
    assert conn.count() == 3


def test_upsert_replaces_by_id_and_batches(make: Factory) -> None:
    conn = make(SPEC)
    docs = make_docs(10)
    conn.upsert(docs)
    changed = Document(id=docs[1].id, fields={"text": "replaced"}, sparse=SparseVector([5], [2.0]))
    assert conn.upsert([changed]).ok
    assert conn.count() == 10
    back = conn.get([docs[1].id])[0]
    assert back is not None and back.fields == {"text": "replaced"} and back.dense is None
    assert back.metadata == {}


def test_delete_succeeds_for_absent_ids_and_fails_invalid_ones(
    loaded: tuple[Connector, list[Document]],
) -> None:
    conn, docs = loaded
    report = conn.delete([docs[0].id, "never-there", -5, docs[1].id])
    assert [o.ok for o in report.outcomes] == [True, True, False, True]
    assert conn.count() == len(docs) - 2
    assert conn.get([docs[0].id, docs[2].id])[0] is None


def test_sparse_search_is_the_exact_dot_product(loaded: tuple[Connector, list[Document]]) -> None:
    conn, docs = loaded
    q = query_sparse()
    hits = conn.search_sparse(q, k=10)
    assert [h.rank for h in hits] == list(range(1, 11))
    assert_same_ranking([(h.id, h.score) for h in hits], brute_sparse(docs, q), 10)
    assert hits[0].fields["title"].startswith("title ")
    assert "_sb_id" not in hits[0].fields
    assert conn.search_sparse(SparseVector.empty(), k=5) == []


def test_sparse_idf_modifier_weights_terms_by_idf(make: Factory) -> None:
    docs = make_docs(40)
    conn = make(IndexSpec(name="idf", dense_dim=8, sparse_idf=True))
    conn.upsert(docs)
    q = query_sparse(3)
    n = len(docs)
    df = {
        t: sum(1 for d in docs if d.sparse is not None and t in set(d.sparse.indices.tolist()))
        for t in range(200)
    }
    idf = {t: math.log((n - df[t] + 0.5) / (df[t] + 0.5) + 1) for t in df}
    want = []
    for d in docs:
        assert d.sparse is not None
        dq = q.to_dict()
        s = sum(idf[t] * dq[t] * w for t, w in d.sparse.to_dict().items() if t in dq)
        if s > 0:
            want.append((d.id, s))
    want.sort(key=lambda x: -x[1])
    hits = conn.search_sparse(q, k=8)
    assert_same_ranking([(h.id, h.score) for h in hits], want, 8, rel=1e-4)


def test_dense_search_is_cosine(loaded: tuple[Connector, list[Document]]) -> None:
    conn, docs = loaded
    q = query_dense()
    hits = conn.search_dense(q, k=5)
    assert_same_ranking([(h.id, h.score) for h in hits], brute_dense(docs, q), 5)
    with pytest.raises(ValueError, match="shape"):
        conn.search_dense(np.ones(3, np.float32), k=5)


@pytest.mark.parametrize(
    ("flt", "keep"),
    [
        (Term("lang", "de"), lambda d: d.metadata["lang"] == "de"),
        (Terms("lang", ["de", "fr"]), lambda d: d.metadata["lang"] in ("de", "fr")),
        (Range("year", gte=2000, lt=2010), lambda d: 2000 <= d.metadata["year"] < 2010),
        (Term("score", 1.5), lambda d: d.metadata["score"] == 1.5),
        (
            Filter(Term("lang", "en"), Range("year", gt=1995)),
            lambda d: d.metadata["lang"] == "en" and d.metadata["year"] > 1995,
        ),
    ],
)
def test_filters_restrict_results(
    loaded: tuple[Connector, list[Document]], flt: Any, keep: Callable[[Document], bool]
) -> None:
    conn, docs = loaded
    q = query_sparse(2)
    hits = conn.search_sparse(q, k=100, filter=flt)
    want = brute_sparse(docs, q, keep)
    assert want, "the filter should leave some documents"
    assert_same_ranking([(h.id, h.score) for h in hits], want)


def test_text_search_finds_the_rare_word(make: Factory) -> None:
    conn = make(SPEC)
    docs = make_docs(20)
    docs[5].fields["text"] += " zeppelin"
    conn.upsert(docs)
    hits = conn.search_text("Zeppelin cat", k=3)
    assert hits[0].id == docs[5].id
    assert conn.search_text("the of and", k=3) == []  # English stopwords only: an empty BM25 query
    assert conn.search_text("zeppelin", k=3, filter=Term("lang", "xx")) == []
    no_lex = make(IndexSpec(name="nolex", dense_dim=8, lexical=False))
    with pytest.raises(UnsupportedOperation, match="lexical"):
        no_lex.search_text("cat", k=3)


def test_operations_before_ensure_index_or_after_close_are_clear_errors(make: Factory) -> None:
    conn = make(SPEC)
    conn.close()
    conn.close()  # twice is fine
    with pytest.raises(ConnectorError, match="closed"):
        conn.upsert(make_docs(1))


def test_capabilities_describe_qdrant(loaded: tuple[Connector, list[Document]]) -> None:
    conn, _ = loaded
    caps = conn.capabilities()
    assert caps.engine in ("qdrant", "qdrant-edge")
    assert caps.server_fusion == frozenset({"rrf", "dbsf"})
    assert caps.weighted_fusion and caps.lexical and caps.dense
