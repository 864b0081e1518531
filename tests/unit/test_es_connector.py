"""ElasticsearchConnector against MiniES (the real client and bulk helper, an in-memory fake node)."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pytest
from es_fake import MiniES as _MiniES

from spladebridge.connectors.base import (
    ConnectorError,
    Document,
    HybridRequest,
    IndexSpec,
    ServerFusion,
    UnsupportedOperation,
)
from spladebridge.connectors.elasticsearch import ElasticsearchConnector
from spladebridge.connectors.filters import Filter, Range, Term, Terms
from spladebridge.connectors.lucene import lucene_dot
from spladebridge.encoder.sparse_vector import SparseVector


class MiniES(_MiniES):
    """MiniES that also scores `combined_fields` (as the same word-overlap stand-in for BM25)."""

    def score(self, query: dict[str, Any], src: dict[str, Any]) -> float | None:
        if "combined_fields" in query:
            return super().score({"multi_match": query["combined_fields"]}, src)
        return super().score(query, src)


SPEC = IndexSpec(name="docs", dense_field="dense", dense_dim=4, options={"dense_similarity": "cosine"})


def _connector(es: MiniES, **kwargs: Any) -> ElasticsearchConnector:
    return ElasticsearchConnector(client=es.client(), **kwargs)


def _random_docs(n: int, seed: int = 0) -> list[Document]:
    rng = np.random.default_rng(seed)
    docs = []
    for i in range(n):
        ids = rng.choice(50, size=8, replace=False)
        weights = rng.uniform(0.05, 3.0, size=8)
        docs.append(
            Document(
                id=i if i % 2 else f"doc-{i}",
                fields={"title": f"title {i}", "text": "alpha beta" if i % 3 == 0 else "gamma"},
                metadata={"lang": "en" if i % 2 else "de", "year": 2000 + i},
                sparse=SparseVector(ids, weights),
                dense=rng.normal(size=4).astype(np.float32),
            )
        )
    return docs


def _index_request(es: MiniES) -> dict[str, Any]:
    (create,) = [r for r in es.cluster.requests if r.method == "PUT" and r.path == "/docs"]
    body: dict[str, Any] = create.body
    return body


@pytest.mark.parametrize(
    ("version", "sparse", "index_options", "exclude_setting"),
    [
        ("9.1.0", "sparse_vector", {"prune": False}, False),
        ("8.19.2", "sparse_vector", {"prune": False}, False),
        ("8.18.1", "sparse_vector", None, False),
        ("8.13.4", "rank_features", None, False),
        ("9.2.0", "sparse_vector", {"prune": False}, True),
    ],
)
def test_mapping_follows_the_server_version(
    version: str, sparse: str, index_options: dict[str, Any] | None, exclude_setting: bool
) -> None:
    es = MiniES(version)
    conn = _connector(es)
    conn.ensure_index(SPEC)
    body = _index_request(es)
    props = body["mappings"]["properties"]
    assert props["splade"]["type"] == sparse
    assert props["splade"].get("index_options") == index_options
    assert props["dense"] == {
        "type": "dense_vector",
        "dims": 4,
        "index": True,
        "similarity": "cosine",
        "index_options": {"type": "hnsw", "m": 32, "ef_construction": 200},  # never quantised by default
    }
    assert props["title"]["type"] == "text" and props["title"]["fields"]["keyword"]["type"] == "keyword"
    assert body["mappings"]["_meta"]["spladebridge"]["sparse_type"] == sparse
    settings = body.get("settings", {})
    assert ("index.mapping.exclude_source_vectors" in settings) == exclude_setting
    assert conn.sparse_type == sparse


def test_rank_features_can_be_chosen_and_pruning_asked_for() -> None:
    es = MiniES("9.1.0")
    _connector(es, sparse_type="rank_features").ensure_index(SPEC)
    assert _index_request(es)["mappings"]["properties"]["splade"] == {"type": "rank_features"}
    es2 = MiniES("9.1.0")
    spec = IndexSpec(name="docs", dense_field=None, options={"sparse_prune": True})
    _connector(es2).ensure_index(spec)
    assert _index_request(es2)["mappings"]["properties"]["splade"]["index_options"] == {"prune": True}
    with pytest.raises(UnsupportedOperation, match=r"8\.15"):
        _connector(MiniES("8.12.0"), sparse_type="sparse_vector").ensure_index(SPEC)


def test_upsert_get_round_trip_keeps_ids_fields_metadata_and_vectors() -> None:
    es = MiniES()
    conn = _connector(es)
    conn.ensure_index(SPEC)
    docs = _random_docs(6)
    report = conn.upsert(docs)
    assert report.ok and [o.id for o in report.outcomes] == [d.id for d in docs]
    got = conn.get([d.id for d in docs] + ["absent"])
    assert got[-1] is None
    for doc, back in zip(docs, got, strict=False):
        assert back is not None
        assert back.id == doc.id and type(back.id) is type(doc.id)
        assert back.fields == doc.fields and back.metadata == doc.metadata
        assert back.sparse == doc.sparse
        assert back.dense is not None and doc.dense is not None and np.array_equal(back.dense, doc.dense)
    stored = es.indices["docs"]["docs"]
    assert set(stored) == {str(d.id) for d in docs}
    assert all(name.isdigit() for src in stored.values() for name in src["splade"])
    assert conn.count() == 6


def test_on_9_2_reads_ask_for_vectors_in_source() -> None:
    es = MiniES("9.2.0")
    conn = _connector(es)
    conn.ensure_index(SPEC)
    conn.upsert(_random_docs(2))
    (doc, _) = conn.get(["doc-0", 1])
    assert doc is not None and doc.sparse is not None and doc.sparse.nnz == 8
    list(conn.scan())
    mget = es.cluster.calls("POST", "/docs/_mget")[-1]
    assert mget.query == {"_source_exclude_vectors": "false"}
    assert es.cluster.calls("POST", "/_search")[-1].query == {"_source_exclude_vectors": "false"}


def test_vocab_mode_stores_reversible_token_names_without_dots() -> None:
    vocab = ["[PAD]", ".", "_", "##ing", "a.b", "*", "café"]
    es = MiniES("8.13.0")  # rank_features: dots would be rejected
    conn = _connector(es, vocab=vocab)
    conn.ensure_index(SPEC)
    doc = Document(id="v", fields={"title": "t"}, sparse=SparseVector([1, 2, 3, 4, 5, 6], [1, 2, 3, 4, 5, 6]))
    assert conn.upsert([doc]).ok
    names = set(es.indices["docs"]["docs"]["v"]["splade"])
    assert names == {"%2E", "_", "##ing", "a%2Eb", "%2A", "café"}
    (back,) = conn.get(["v"])
    assert back is not None and back.sparse == doc.sparse
    hits = conn.search_sparse(SparseVector([1, 4], [1.0, 2.0]), k=3)
    assert [h.id for h in hits] == ["v"]
    should = es.cluster.calls("POST", "/docs/_search")[-1].body["query"]["bool"]["should"]
    assert {c["rank_feature"]["field"] for c in should} == {"splade.%2E", "splade.a%2Eb"}


def test_vocab_mismatch_with_stored_names_is_refused() -> None:
    es = MiniES()
    _connector(es).ensure_index(SPEC)
    with pytest.raises(ConnectorError, match="feature names"):
        _connector(es, vocab=["a", "b"]).ensure_index(SPEC)


@pytest.mark.parametrize(("version", "sparse_type"), [("9.1.0", "auto"), ("9.1.0", "rank_features")])
def test_sparse_ranking_is_the_lucene_dot_product(version: str, sparse_type: Any) -> None:
    es = MiniES(version)
    conn = _connector(es, sparse_type=sparse_type)
    conn.ensure_index(SPEC)
    docs = _random_docs(30, seed=3)
    conn.upsert(docs)
    query = SparseVector([1, 5, 7, 11, 20, 33, 49], [0.7, 1.3, 0.2, 2.5, 0.9, 1.1, 0.4])
    hits = conn.search_sparse(query, k=10)
    expected = sorted(
        ((lucene_dot(query, d.sparse), str(d.id)) for d in docs if d.sparse is not None),
        key=lambda t: (-t[0], t[1]),
    )
    expected = [t for t in expected if t[0] > 0][:10]
    assert [str(h.id) for h in hits] == [d for _, d in expected]
    assert [h.score for h in hits] == pytest.approx([s for s, _ in expected], rel=1e-6)
    assert [h.rank for h in hits] == list(range(1, len(hits) + 1))
    assert "splade" not in hits[0].fields and "dense" not in hits[0].fields and "title" in hits[0].fields


def test_nine_bit_truncation_decides_near_ties_as_the_engine_does() -> None:
    es = MiniES()
    conn = _connector(es)
    conn.ensure_index(IndexSpec(name="docs", dense_field=None))
    # 0.43133 and 0.43122 keep the same 9 bits (0.4306640625): the exact dot product prefers "b", Lucene ties.
    conn.upsert(
        [
            Document(id="a", fields={"title": "a"}, sparse=SparseVector([3], [0.43122])),
            Document(id="b", fields={"title": "b"}, sparse=SparseVector([3], [0.43133])),
        ]
    )
    query = SparseVector([3], [1.0])
    hits = conn.search_sparse(query, k=2)
    assert hits[0].score == hits[1].score == pytest.approx(0.4306640625)
    assert hits[0].score < query.dot(SparseVector([3], [0.43122]))


def test_sparse_query_body_is_exact_and_capped_to_the_clause_budget() -> None:
    es = MiniES()
    conn = _connector(es, max_query_terms=100)
    conn.ensure_index(SPEC)
    rng = np.random.default_rng(1)
    ids = rng.choice(30000, size=300, replace=False)
    query = SparseVector(ids, rng.uniform(0.01, 5, size=300))
    flt = Filter(Term("lang", "en"), Range("year", gte=2001))
    body = conn.sparse_search_body(query, 5, flt)
    assert body is not None
    clause = body["query"]["bool"]["must"][0]["sparse_vector"]
    assert clause["prune"] is False and clause["field"] == "splade"
    assert len(clause["query_vector"]) == 98  # 100 clauses minus the 2 filter clauses
    kept = query.top_k(98).to_dict()
    assert {int(n): w for n, w in clause["query_vector"].items()} == pytest.approx(kept)
    assert body["query"]["bool"]["filter"] == [
        {"term": {"lang": {"value": "en"}}},
        {"range": {"year": {"gte": 2001.0}}},
    ]
    assert body["track_total_hits"] is False and body["_source"] == {"excludes": ["splade", "dense"]}


def test_max_query_weight_rescales_uniformly() -> None:
    es = MiniES()
    conn = _connector(es, max_query_weight=64.0, sparse_type="rank_features")
    conn.ensure_index(SPEC)
    body = conn.sparse_search_body(SparseVector([1, 2], [256.0, 32.0]), 3)
    assert body is not None
    boosts = {c["rank_feature"]["field"]: c["rank_feature"]["boost"] for c in body["query"]["bool"]["should"]}
    assert boosts == {"splade.1": 64.0, "splade.2": 8.0}
    assert all("linear" in c["rank_feature"] for c in body["query"]["bool"]["should"])


def test_empty_query_returns_nothing_without_a_request() -> None:
    es = MiniES()
    conn = _connector(es)
    conn.ensure_index(SPEC)
    before = len(es.cluster.requests)
    assert conn.search_sparse(SparseVector.empty(), 5) == []
    assert len(es.cluster.requests) == before


def test_filters_apply_to_sparse_dense_and_text_search() -> None:
    es = MiniES()
    conn = _connector(es)
    conn.ensure_index(SPEC)
    docs = _random_docs(12, seed=5)
    conn.upsert(docs)
    flt = Filter(Terms("lang", ["en"]), Range("year", lt=2009))
    wanted = {d.id for d in docs if d.metadata["lang"] == "en" and d.metadata["year"] < 2009}
    dense_hits = conn.search_dense(np.ones(4, dtype=np.float32), 12, flt)
    assert {h.id for h in dense_hits} == wanted
    text_hits = conn.search_text("alpha", 12, Term("title", "title 3"))
    assert [h.id for h in text_hits] == [3]
    knn = es.cluster.requests[-2].body["knn"]
    assert knn["k"] == 12 and knn["num_candidates"] == 600 and knn["filter"][0] == {"terms": {"lang": ["en"]}}
    text_query = es.cluster.requests[-1].body["query"]["bool"]
    assert text_query["must"] == [{"combined_fields": {"query": "alpha", "fields": ["title", "text"]}}]
    assert text_query["filter"] == [{"term": {"title.keyword": {"value": "title 3"}}}]


def test_invalid_documents_get_their_own_outcome_and_the_rest_is_written(
    caplog: pytest.LogCaptureFixture,
) -> None:
    es = MiniES()
    conn = _connector(es)
    conn.ensure_index(SPEC)
    good = _random_docs(3)
    tiny = np.float32(1e-40)  # subnormal: Lucene rejects it, the connector drops it and counts
    bad_dense = Document(id="bad-dense", sparse=SparseVector([1], [1.0]), dense=np.ones(3, np.float32))
    bad_meta = Document(id="bad-meta", sparse=SparseVector([1], [1.0]), metadata={"sb_meta": 1})
    nan_meta = Document(id="nan", sparse=SparseVector([1], [1.0]), metadata={"score": float("nan")})
    np_meta = Document(id="np", sparse=SparseVector([1], [1.0]), metadata={"n": np.int64(3), "v": np.ones(2)})
    no_sparse = Document(id="no-sparse")
    subnormal = Document(id="sub", fields={"title": "s"}, sparse=SparseVector([1, 2], [tiny, 1.0]))
    es.reject["1"] = (400, {"type": "document_parsing_exception", "reason": "injected mapping rejection"})
    with caplog.at_level(logging.WARNING):
        items = [good[0], bad_dense, good[1], bad_meta, no_sparse, subnormal, good[2], nan_meta, np_meta]
        report = conn.upsert(items)
    outcome = {o.id: o for o in report.outcomes}
    ids = ["doc-0", "bad-dense", 1, "bad-meta", "no-sparse", "sub", "doc-2", "nan", "np"]
    assert [o.id for o in report.outcomes] == ids
    assert "metadata key 'score' is not finite" in (outcome["nan"].error or "")
    assert outcome["np"].ok and es.indices["docs"]["docs"]["np"]["v"] == [1.0, 1.0]
    assert outcome["bad-dense"].status == "invalid" and "shape (3,)" in (outcome["bad-dense"].error or "")
    assert "reserved" in (outcome["bad-meta"].error or "")
    assert "needs a SparseVector" in (outcome["no-sparse"].error or "")
    assert outcome[1].status == "400" and "injected mapping rejection" in (outcome[1].error or "")
    assert outcome["sub"].ok and es.indices["docs"]["docs"]["sub"]["splade"] == {"2": 1.0}
    assert "dropped 1 sparse weight(s)" in caplog.text
    assert report.succeeded == 4 and report.failed == 5


def test_delete_counts_absent_ids_as_success() -> None:
    es = MiniES()
    conn = _connector(es)
    conn.ensure_index(SPEC)
    conn.upsert(_random_docs(2))
    report = conn.delete(["doc-0", "never-there", 1])
    assert report.ok and [o.status for o in report.outcomes] == ["deleted", "not_found", "deleted"]
    assert conn.count() == 0


def test_scan_pages_through_a_point_in_time_and_closes_it() -> None:
    es = MiniES()
    conn = _connector(es)
    conn.ensure_index(SPEC)
    docs = _random_docs(7)
    conn.upsert(docs)
    scanned = list(conn.scan(batch_size=3))
    assert sorted(str(d.id) for d in scanned) == sorted(str(d.id) for d in docs)
    assert all(d.sparse is not None and d.sparse.nnz == 8 for d in scanned)
    pages = [r.body for r in es.cluster.calls("POST", "/_search")]
    third = sorted(str(d.id) for d in docs)[
        2
    ]  # MiniES sorts by _id; the connector resumes after the page end
    assert len(pages) == 3 and "search_after" not in pages[0] and pages[1]["search_after"] == [third]
    assert pages[0]["sort"] == ["_shard_doc"]
    assert es.pits == set()  # closed
    with pytest.raises(ValueError, match="batch_size"):
        next(conn.scan(batch_size=0))


def test_scan_falls_back_to_scroll_without_point_in_time() -> None:
    es = MiniES()
    conn = _connector(es)
    conn.ensure_index(SPEC)
    docs = _random_docs(5)
    conn.upsert(docs)
    es.pit_supported = False
    scanned = list(conn.scan(batch_size=2))
    assert sorted(str(d.id) for d in scanned) == sorted(str(d.id) for d in docs)
    assert len(es.cluster.calls("POST", "/_search/scroll")) == 3 and es.scrolls == {}


def test_explain_sparse_terms_sum_to_the_hit_score() -> None:
    vocab = [f"tok{i}" for i in range(60)]
    es = MiniES()
    conn = _connector(es, vocab=vocab)
    conn.ensure_index(SPEC)
    docs = _random_docs(10, seed=9)
    conn.upsert(docs)
    query = SparseVector([1, 5, 7, 11, 20, 33, 49], [0.7, 1.3, 0.2, 2.5, 0.9, 1.1, 0.4])
    top = conn.search_sparse(query, k=1)[0]
    terms = conn.explain_sparse(query, top.id)
    assert sum(t for _, _, t in terms) == pytest.approx(top.score, rel=1e-6)
    assert all(label == f"tok{i}" for i, label, _ in terms)
    assert [t for _, _, t in terms] == sorted((t for _, _, t in terms), reverse=True)
    assert conn.explain_sparse(query, "absent") == []


def test_an_8x_server_refusing_the_9x_client_gets_a_clear_error() -> None:
    es = MiniES("8.17.0")
    es.reject_compat = True
    with pytest.raises(ConnectorError, match=r"compatibility headers.*pass url=\.\.\. instead of a client"):
        _connector(es).ensure_index(SPEC)


def test_licence_is_read_once() -> None:
    es = MiniES("9.2.0")
    conn = _connector(es)
    conn.capabilities()
    conn.capabilities()
    assert len(es.cluster.calls("GET", "/_license")) == 1
    conn.refresh_license()
    conn.capabilities()
    assert len(es.cluster.calls("GET", "/_license")) == 2


def test_existing_index_is_read_back_from_its_mapping_meta() -> None:
    es = MiniES()
    _connector(es).ensure_index(SPEC)
    conn = _connector(es, index="docs")
    assert conn.spec is None
    assert conn.count() == 0
    assert conn.spec is not None and conn.spec.dense_dim == 4 and conn.sparse_type == "sparse_vector"
    assert conn.spec.options == dict(SPEC.options)
    with pytest.raises(ConnectorError, match="dims 4, wanted dense_vector with dims 8"):
        _connector(es).ensure_index(IndexSpec(name="docs", dense_dim=8))
    with pytest.raises(ConnectorError, match="ensure_index"):
        _connector(MiniES()).count()


@pytest.mark.parametrize(
    ("version", "licence", "fusion", "weighted"),
    [
        ("9.2.0", "trial", {"rrf", "linear"}, True),
        ("9.1.0", "enterprise", {"rrf", "linear"}, False),
        ("8.17.0", "trial", {"rrf"}, False),
        ("9.1.0", "basic", set(), False),
        ("9.1.0", None, set(), False),
    ],
)
def test_capabilities_report_version_and_licence(
    version: str, licence: str | None, fusion: set[str], weighted: bool, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        caps = _connector(MiniES(version, licence)).capabilities()
    assert caps.engine == "elasticsearch" and caps.version == version
    assert caps.server_fusion == frozenset(fusion) and caps.weighted_fusion is weighted
    if not fusion:
        assert "client-side" in caplog.text


def _hybrid(fusion: ServerFusion, **kwargs: Any) -> HybridRequest:
    return HybridRequest(
        k=5,
        candidates=50,
        fusion=fusion,
        sparse=SparseVector([1, 2], [1.0, 0.5]),
        dense=np.ones(4, np.float32),
        text="alpha",
        **kwargs,
    )


def test_rrf_retriever_body_has_one_retriever_per_signal() -> None:
    es = MiniES("9.1.0")
    conn = _connector(es)
    conn.ensure_index(SPEC)
    conn.upsert(_random_docs(3))
    es.retriever_hits = ["1", "doc-0"]
    hits = conn.search_hybrid(_hybrid(ServerFusion("rrf", rank_constant=20), filter=Term("lang", "en")))
    assert [h.id for h in hits] == [1, "doc-0"]
    body = es.cluster.requests[-1].body
    rrf = body["retriever"]["rrf"]
    assert body["size"] == 5 and rrf["rank_constant"] == 20 and rrf["rank_window_size"] == 50
    sparse, dense, text = rrf["retrievers"]
    assert sparse["standard"]["query"]["bool"]["must"][0]["sparse_vector"]["query_vector"] == {
        "1": 1.0,
        "2": 0.5,
    }
    assert sparse["standard"]["query"]["bool"]["filter"] == [{"term": {"lang": {"value": "en"}}}]
    assert dense["knn"]["k"] == 50 and dense["knn"]["filter"] == [{"term": {"lang": {"value": "en"}}}]
    assert text["standard"]["query"]["bool"]["must"][0]["combined_fields"]["query"] == "alpha"


def test_weighted_rrf_uses_the_wrapped_form_on_9_2_and_falls_back_before() -> None:
    fusion = ServerFusion("rrf", weights=(2.0, 1.0, 0.5))
    es = MiniES("9.2.0")
    conn = _connector(es)
    conn.ensure_index(SPEC)
    body = conn.hybrid_search_body(_hybrid(fusion))
    assert body is not None
    assert [r["weight"] for r in body["retriever"]["rrf"]["retrievers"]] == [2.0, 1.0, 0.5]
    old = _connector(MiniES("9.1.0"))
    old.ensure_index(SPEC)
    with pytest.raises(UnsupportedOperation, match=r"weighted rrf needs Elasticsearch 9\.2"):
        old.search_hybrid(_hybrid(fusion))


def test_linear_retriever_maps_normalisers_and_rejects_zscore() -> None:
    es = MiniES("9.1.0")
    conn = _connector(es)
    conn.ensure_index(SPEC)
    body = conn.hybrid_search_body(_hybrid(ServerFusion("linear", normalizer="minmax")))
    assert body is not None
    subs = body["retriever"]["linear"]["retrievers"]
    assert [(s["weight"], s["normalizer"]) for s in subs] == [(1.0, "minmax")] * 3
    # l2 maps to l2_norm, but not over a dense signal: its (1 + cos) / 2 scores would not sum the cosine
    with pytest.raises(UnsupportedOperation, match="positive transform"):
        conn.hybrid_search_body(_hybrid(ServerFusion("linear", normalizer="l2")))
    with pytest.raises(UnsupportedOperation, match="zscore"):
        conn.hybrid_search_body(_hybrid(ServerFusion("linear", normalizer="zscore")))
    with pytest.raises(UnsupportedOperation, match="missing"):
        conn.hybrid_search_body(_hybrid(ServerFusion("rrf", missing="exclude")))


def test_basic_licence_refuses_server_fusion_with_the_reason() -> None:
    conn = _connector(MiniES("9.2.0", "basic"))
    conn.ensure_index(SPEC)
    with pytest.raises(UnsupportedOperation, match="licence"):
        conn.search_hybrid(_hybrid(ServerFusion("rrf")))


def test_a_spec_given_to_the_constructor_is_ensured_on_first_use() -> None:
    es = MiniES()
    conn = _connector(es, index="docs", spec=SPEC)
    assert es.cluster.requests == []  # nothing happens before the first call
    assert conn.count() == 0 and "docs" in es.indices
    with pytest.raises(ValueError, match="differs"):
        _connector(es, index="other", spec=SPEC)


def test_sparse_idf_is_refused_rather_than_ignored() -> None:
    with pytest.raises(UnsupportedOperation, match="IDF"):
        _connector(MiniES()).ensure_index(IndexSpec(name="docs", dense_field=None, sparse_idf=True))


def test_client_and_settings_are_exclusive_and_ids_are_checked() -> None:
    es = MiniES()
    with pytest.raises(ValueError, match="not both"):
        ElasticsearchConnector("http://localhost:9200", client=es.client())
    conn = _connector(es)
    conn.ensure_index(SPEC)
    report = conn.upsert([Document(id="x" * 600, sparse=SparseVector([1], [1.0]))])
    assert report.outcomes[0].status == "invalid" and "512-byte" in (report.outcomes[0].error or "")
    with pytest.raises(ValueError, match="index name"):
        conn.ensure_index(IndexSpec(name="Bad*Name", dense_field=None))


def test_unreachable_cluster_is_a_connector_error_naming_the_host() -> None:
    conn = ElasticsearchConnector("http://127.0.0.1:1", api_key="k")
    try:
        with pytest.raises(ConnectorError, match=r"127\.0\.0\.1:1 .*unreachable"):
            conn.capabilities()
    finally:
        conn.close()
        conn.close()  # safe twice


def _existing(es: MiniES, props: dict[str, Any], spec: IndexSpec) -> None:
    """An index made elsewhere: `props` as mapped, with the spladebridge spec in `_meta`."""
    from spladebridge.connectors.index_meta import spec_to_json

    mappings = {
        "_meta": {"spladebridge": spec_to_json(spec, sparse_type="sparse_vector", feature_names="ids")},
        "properties": props,
    }
    es.indices[spec.name] = {"mappings": mappings, "docs": {}}


def test_semantic_text_fields_are_refused_as_bm25_fields() -> None:
    es = MiniES("9.1.0")
    spec = IndexSpec(name="docs", text_fields=("title", "body"))
    props = {
        "splade": {"type": "sparse_vector"},
        "title": {"type": "text"},
        "body": {"type": "semantic_text"},
    }
    _existing(es, props, spec)
    with pytest.raises(
        ConnectorError, match=r"'body' is semantic_text, where a match query runs the inference"
    ):
        _connector(es, index="docs").search_text("alpha", 3)
    assert not es.cluster.calls("POST", "/docs/_search")  # no query reached the inference endpoint
    with pytest.raises(ConnectorError, match="semantic_text"):
        _connector(es).ensure_index(spec)


def test_bm25_is_combined_fields_only_where_every_field_is_text_with_one_analyzer() -> None:
    es = MiniES("9.1.0")
    spec = IndexSpec(name="docs", text_fields=("title", "body"))
    _existing(
        es, {"splade": {"type": "sparse_vector"}, "title": {"type": "text"}, "body": {"type": "text"}}, spec
    )
    assert "combined_fields" in _connector(es, index="docs").text_search_body("q", 3)["query"]
    mixed = {
        "splade": {"type": "sparse_vector"},
        "title": {"type": "text", "analyzer": "standard"},
        "body": {"type": "text", "analyzer": "whitespace"},
    }
    es2 = MiniES("9.1.0")
    _existing(es2, mixed, spec)
    query = _connector(es2, index="docs").text_search_body("q", 3)["query"]
    assert query == {"multi_match": {"query": "q", "fields": ["title", "body"], "type": "best_fields"}}
    es3 = MiniES("9.1.0")
    _existing(es3, {**mixed, "body": {"type": "match_only_text"}}, spec)
    assert "multi_match" in _connector(es3, index="docs").text_search_body("q", 3)["query"]


def test_dense_defaults_can_be_overridden() -> None:
    es = MiniES("9.1.0")
    conn = _connector(es, num_candidates_factor=3, min_num_candidates=10)
    conn.ensure_index(
        IndexSpec(name="docs", dense_dim=4, options={"dense_index_options": {"type": "int8_hnsw"}})
    )
    assert _index_request(es)["mappings"]["properties"]["dense"]["index_options"] == {"type": "int8_hnsw"}
    assert (
        conn.num_candidates(10) == 30 and conn.num_candidates(2) == 10 and conn.num_candidates(5000) == 10_000
    )
    es2 = MiniES("9.1.0")
    _connector(es2).ensure_index(IndexSpec(name="docs", dense_dim=4, options={"dense_index_options": None}))
    assert (
        "index_options" not in _index_request(es2)["mappings"]["properties"]["dense"]
    )  # the server's choice
    assert _connector(MiniES()).num_candidates(10) == 500
