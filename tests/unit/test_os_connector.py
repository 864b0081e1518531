"""OpenSearchConnector against a fake node (real opensearch-py client and streaming_bulk, in-memory index)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from os_fake import Request
from test_os_node_fake import NodeFake as FakeOpenSearch

from spladebridge.connectors.base import (
    ConnectorError,
    Document,
    HybridRequest,
    IndexSpec,
    ServerFusion,
    UnsupportedOperation,
)
from spladebridge.connectors.bulk import BulkConfig
from spladebridge.connectors.filters import Term
from spladebridge.connectors.http_settings import HttpSettings, Secret
from spladebridge.connectors.lucene import lucene_dot
from spladebridge.connectors.lucene_documents import META_FIELD
from spladebridge.connectors.opensearch import (
    OpenSearchConnector,
    OpenSearchOptions,
)
from spladebridge.encoder.sparse_vector import SparseVector
from spladebridge.hybrid import RRF, HybridSearcher
from spladebridge.hybrid import fusion as fuse

SPEC = IndexSpec(name="docs", dense_dim=3)
FAST = BulkConfig(initial_backoff=0.0, max_attempts=4, chunk_size=3)


def _connector(fake: FakeOpenSearch, **opts: Any) -> OpenSearchConnector:
    options = OpenSearchOptions(bulk=opts.pop("bulk", FAST), **opts)
    conn = OpenSearchConnector(client=fake.client(), options=options)
    conn.ensure_index(SPEC)
    return conn


def _docs(n: int = 8) -> list[Document]:
    rng = np.random.default_rng(7)
    docs = []
    for i in range(n):
        ids = rng.choice(40, size=6, replace=False)
        docs.append(
            Document(
                id=i if i % 2 else f"doc-{i}",
                fields={"title": f"title {i}", "text": f"text {i}"},
                metadata={"lang": "en" if i % 3 else "de", "n": i},
                sparse=SparseVector(ids, rng.uniform(0.05, 3.0, size=6)),
                dense=rng.normal(size=3).astype(np.float32),
            )
        )
    return docs


def test_ensure_index_creates_the_mapping_then_accepts_the_existing_index() -> None:
    fake = FakeOpenSearch()
    _connector(fake)
    assert fake.index_bodies["docs"]["mappings"]["properties"]["splade"] == {"type": "rank_features"}
    _connector(fake)  # second time: exists, compatible
    assert len(fake.calls("PUT", "/docs")) == 1
    other = OpenSearchConnector(client=fake.client())
    with pytest.raises(ConnectorError, match="dimension 4"):
        other.ensure_index(IndexSpec(name="docs", dense_dim=4))


def test_an_index_reopens_by_name_from_the_spec_in_its_mapping_meta() -> None:
    fake = FakeOpenSearch()
    first = OpenSearchConnector(client=fake.client(), spec=SPEC, options=OpenSearchOptions(bulk=FAST))
    assert first.upsert(_docs(3)).ok  # the pending spec is created on first use
    again = OpenSearchConnector(client=fake.client(), index="docs")
    assert again.count() == 3 and again.spec == SPEC
    (doc,) = again.get([1])
    assert doc is not None and doc.metadata["n"] == 1


def test_reopening_with_a_different_scale_or_naming_is_refused() -> None:
    fake = FakeOpenSearch()
    _connector(fake, sparse_scale=0.5)
    with pytest.raises(ConnectorError, match=r"sparse_scale=0\.5"):
        OpenSearchConnector(client=fake.client(), index="docs").count()
    with pytest.raises(ConnectorError, match="feature names are 'ids'"):
        _connector(fake, sparse_scale=0.5, vocab=["a", "b"])
    with pytest.raises(ConnectorError, match="not a spladebridge index spec"):
        fake.indices["plain"] = {}
        fake.index_bodies["plain"] = {"mappings": {"properties": {}}}
        OpenSearchConnector(client=fake.client(), index="plain").count()


def test_client_and_connection_settings_are_exclusive() -> None:
    with pytest.raises(ValueError, match="not both"):
        OpenSearchConnector("http://localhost:9200", client=FakeOpenSearch().client())


def test_upsert_retries_per_item_429s_and_reports_every_item_in_input_order() -> None:
    fake = FakeOpenSearch(fail_plan={"3": [429, 429], "doc-4": [429]})
    conn = _connector(fake)
    docs = _docs()
    docs.insert(2, Document(id="bad", dense=np.zeros(5, np.float32)))
    report = conn.upsert(docs)
    assert [o.id for o in report.outcomes] == [d.id for d in docs]
    by_id = {o.id: o for o in report.outcomes}
    assert by_id[3].ok and by_id[3].attempts == 3
    assert by_id["doc-4"].ok and by_id["doc-4"].attempts == 2
    assert (
        not by_id["bad"].ok
        and by_id["bad"].status == "invalid"
        and "document 2" in (by_id["bad"].error or "")
    )
    assert report.succeeded == 8 and report.failed == 1
    assert conn.count() == 8


def test_retries_stop_after_max_attempts_and_say_the_item_was_retryable() -> None:
    fake = FakeOpenSearch(fail_plan={"1": [429, 429, 429, 429, 429]})
    conn = _connector(fake, bulk=BulkConfig(initial_backoff=0.0, max_attempts=2))
    report = conn.upsert(_docs(3))
    failed = report.failures()
    assert [o.id for o in failed] == [1]
    assert failed[0].status == "429" and failed[0].retryable and failed[0].attempts == 2


def test_a_whole_request_429_is_retried_for_every_item_of_the_chunk() -> None:
    fake = FakeOpenSearch(bulk_status_plan=[429])
    conn = _connector(fake)
    report = conn.upsert(_docs(3))
    assert report.ok and [o.attempts for o in report.outcomes] == [2, 2, 2]
    assert len(fake.calls("POST", "/_bulk")) == 2 and conn.count() == 3


def test_a_mapping_rejection_fails_that_item_once_without_retry() -> None:
    fake = FakeOpenSearch(
        reject=lambda src: "failed to parse field [splade]" if src[META_FIELD]["id"] == 5 else None
    )
    conn = _connector(fake)
    report = conn.upsert(_docs(7))
    (failed,) = report.failures()
    assert failed.id == 5 and failed.status == "400" and failed.attempts == 1 and not failed.retryable
    assert "mapper_parsing_exception" in (failed.error or "")
    assert report.succeeded == 6


def test_get_returns_documents_in_order_with_exact_ids_and_none_for_absent() -> None:
    fake = FakeOpenSearch()
    conn = _connector(fake)
    docs = _docs(4)
    conn.upsert(docs)
    got = conn.get([3, "missing", "doc-0"])
    assert got[1] is None
    assert got[0] is not None and got[0].id == 3 and got[0].sparse == docs[3].sparse
    assert got[2] is not None and got[2].id == "doc-0" and got[2].metadata == docs[0].metadata


def test_delete_counts_absent_ids_as_success() -> None:
    fake = FakeOpenSearch()
    conn = _connector(fake)
    conn.upsert(_docs(3))
    report = conn.delete([1, "never-there"])
    assert report.ok and conn.count() == 2


def test_scan_pages_through_a_point_in_time_and_deletes_it() -> None:
    fake = FakeOpenSearch()
    conn = _connector(fake)
    docs = _docs(7)
    conn.upsert(docs)
    seen = list(conn.scan(batch_size=3))
    assert sorted(str(d.id) for d in seen) == sorted(str(d.id) for d in docs)
    searches = [r for r in fake.requests if r.path == "/_search"]
    assert len(searches) == 3 and all(r.body["pit"]["keep_alive"] == "2m" for r in searches)
    assert searches[1].body["search_after"] is not None
    assert fake.pits == {}


def test_scan_falls_back_to_scroll_before_2_4(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeOpenSearch(version="2.3.0")
    conn = _connector(fake)
    calls: list[dict[str, Any]] = []

    def fake_scan(client: Any, **kwargs: Any) -> Any:
        calls.append(kwargs)
        yield {"_id": "x", "_source": {META_FIELD: {"id": "x", "fields": ["title"]}, "title": "t"}}

    monkeypatch.setattr("opensearchpy.helpers.scan", fake_scan)
    (doc,) = list(conn.scan(batch_size=10))
    assert doc.id == "x" and calls[0]["index"] == "docs" and calls[0]["size"] == 10


def test_search_sparse_returns_the_lucene_dot_product_even_for_weights_above_64() -> None:
    fake = FakeOpenSearch()
    conn = _connector(fake)
    docs = _docs(10)
    conn.upsert(docs)
    query = SparseVector([int(i) for i in docs[4].sparse.indices[:3]] + [39], [200.0, 30.0, 1.0, 5.0])  # type: ignore[union-attr]
    hits = conn.search_sparse(query, k=5)
    expected = sorted(((lucene_dot(query, d.sparse), str(d.id)) for d in docs if d.sparse), reverse=True)  # type: ignore[arg-type]
    expected = [e for e in expected if e[0] > 0][:5]
    assert [str(h.id) for h in hits] == [e[1] for e in expected]
    for hit, (score, _) in zip(hits, expected, strict=True):
        assert hit.score == pytest.approx(score, rel=1e-5)
    sent = fake.calls("POST", "/docs/_search")[-1].body["query"]["neural_sparse"]["splade"]["query_tokens"]
    assert max(sent.values()) == 64.0
    assert [h.rank for h in hits] == [1, 2, 3, 4, 5] and "splade" not in hits[0].fields


def test_sparse_search_without_query_tokens_support_uses_rank_feature_and_agrees(
    caplog: pytest.LogCaptureFixture,
) -> None:
    docs = _docs(10)
    query = SparseVector([int(i) for i in docs[2].sparse.indices[:4]], [90.0, 3.0, 1.0, 0.5])  # type: ignore[union-attr]
    results = []
    for version in ("2.19.0", "2.13.0"):
        fake = FakeOpenSearch(version=version)
        conn = _connector(fake)
        conn.upsert(docs)
        with caplog.at_level(logging.WARNING):
            results.append(conn.search_sparse(query, k=4, filter=Term("lang", "en")))
        body = fake.calls("POST", "/docs/_search")[-1].body["query"]
        assert ("rank_feature" in str(body)) == (version == "2.13.0")
    assert [(h.id, round(h.score, 4)) for h in results[0]] == [(h.id, round(h.score, 4)) for h in results[1]]
    assert all(h.fields["lang"] == "en" for h in results[0])
    assert "rank_feature linear clauses" in caplog.text


def test_text_field_filters_match_the_exact_text() -> None:
    fake = FakeOpenSearch()
    conn = _connector(fake)
    docs = _docs(6)
    conn.upsert(docs)
    hits = conn.search_dense(np.ones(3, np.float32), k=6, filter=Term("title", "title 4"))
    assert [h.id for h in hits] == ["doc-4"]


def test_search_dense_filters_inside_knn() -> None:
    fake = FakeOpenSearch()
    conn = _connector(fake)
    docs = _docs(9)
    conn.upsert(docs)
    q = np.array([1.0, 0.0, 0.0], np.float32)
    hits = conn.search_dense(q, k=3, filter=Term("lang", "de"))
    de = [d for d in docs if d.metadata["lang"] == "de"]
    best = sorted(de, key=lambda d: -float(np.dot(d.dense, q)))[:3]  # type: ignore[arg-type]
    assert [h.id for h in hits] == [d.id for d in best]
    body = fake.calls("POST", "/docs/_search")[-1].body
    assert body["query"]["knn"]["dense"]["filter"] == {
        "bool": {"filter": [{"term": {"lang": {"value": "de"}}}]}
    }


def _hybrid(fusion: ServerFusion) -> HybridRequest:
    return HybridRequest(
        k=2,
        candidates=20,
        fusion=fusion,
        sparse=SparseVector([1, 2], [1.0, 0.5]),
        dense=np.ones(3, np.float32),
        text="hello",
    )


def test_server_side_hybrid_creates_the_pipeline_once_and_scales_weighted_rrf_scores() -> None:
    fake = FakeOpenSearch()

    def answer(req: Request) -> dict[str, Any]:
        hits = [
            {"_id": str(i), "_score": 0.01 * (5 - i), "_source": {META_FIELD: {"id": i, "fields": []}}}
            for i in range(4)
        ]
        return {"hits": {"hits": hits}}

    fake.search_handler = answer
    conn = _connector(fake)
    fusion = ServerFusion(method="rrf", rank_constant=60, weights=(2.0, 1.0, 1.0))
    hits = conn.search_hybrid(_hybrid(fusion))
    conn.search_hybrid(_hybrid(fusion))
    assert len(fake.pipelines) == 1
    ((name, body),) = fake.pipelines.items()
    assert body["phase_results_processors"][0]["score-ranker-processor"]["combination"]["parameters"] == {
        "weights": [0.5, 0.25, 0.25]
    }
    search = fake.calls("POST", "/docs/_search")[-1]
    assert search.params["search_pipeline"] == name
    assert search.body["size"] == 20
    queries = search.body["query"]["hybrid"]["queries"]
    assert [next(iter(q)) for q in queries] == ["neural_sparse", "knn", "multi_match"]
    assert queries[1]["knn"]["dense"]["k"] == conn.num_candidates(20) == 1000  # HNSW explores 50 x the depth
    assert [h.id for h in hits] == [0, 1] and hits[0].score == pytest.approx(0.05 * 4.0)


class _QueryEncoder:
    """Sparse and dense query encoder for HybridSearcher: fixed vectors, whatever the text."""

    def __init__(self, sparse: SparseVector, dense: np.ndarray[Any, np.dtype[np.float32]]) -> None:
        self.sparse, self.dense = sparse, dense

    def encode_queries(self, texts: Sequence[str]) -> list[SparseVector]:
        return [self.sparse for _ in texts]

    def encode(self, texts: Sequence[str]) -> np.ndarray[Any, np.dtype[np.float32]]:
        return np.stack([self.dense for _ in texts])


def test_hybrid_without_the_plugin_raises_and_the_searcher_fuses_client_side() -> None:
    fake = FakeOpenSearch(plugins=("opensearch-knn",))
    conn = _connector(fake)
    docs = _docs(10)
    conn.upsert(docs)
    assert docs[1].sparse is not None and docs[5].dense is not None
    request = HybridRequest(
        k=3, candidates=6, fusion=ServerFusion(method="rrf"), sparse=docs[1].sparse, dense=docs[5].dense
    )
    with pytest.raises(UnsupportedOperation, match="neural-search plugin is not installed"):
        conn.search_hybrid(request)
    assert fake.pipelines == {}
    encoder = _QueryEncoder(docs[1].sparse, docs[5].dense)
    searcher = HybridSearcher(conn, encoder, encoder, signals=("sparse", "dense"), fusion=RRF(), candidates=6)
    assert not searcher.uses_server_fusion
    assert "does not offer server-side rrf" in (searcher.server_fusion_problem or "")
    hits = searcher.search("anything", k=3)
    sparse = [(h.id, h.score) for h in conn.search_sparse(docs[1].sparse, 6)]
    dense = [(h.id, h.score) for h in conn.search_dense(docs[5].dense, 6)]
    expected = fuse.rrf([sparse, dense], k=60, limit=3)
    assert [h.id for h in hits] == [i for i, _ in expected]
    assert [h.score for h in hits] == pytest.approx([score for _, score in expected])
    assert fake.pipelines == {}


def test_a_fusion_opensearch_lacks_is_refused_server_side() -> None:
    fake = FakeOpenSearch()
    conn = _connector(fake)
    conn.upsert(_docs(6))
    fusion = ServerFusion(method="dbsf")
    request = HybridRequest(
        k=3, candidates=6, fusion=fusion, sparse=SparseVector([1], [1.0]), dense=np.ones(3, np.float32)
    )
    problem = conn.server_fusion_problem(fusion, 2)
    assert problem is not None and "dbsf" in problem
    with pytest.raises(UnsupportedOperation) as raised:
        conn.search_hybrid(request)
    assert problem in str(raised.value) and isinstance(raised.value, ConnectorError)
    assert fake.pipelines == {}
    assert all("hybrid" not in str(r.body) for r in fake.calls("POST", "/docs/_search"))


@pytest.mark.parametrize(
    ("version", "plugins", "fusion", "weighted", "types"),
    [
        # weighted linear since 2.10 (weighted RRF needs 3.1: refused per fusion by server_fusion_problem)
        ("2.11.0", ("opensearch-neural-search", "opensearch-knn"), {"linear"}, True, ("rank_features",)),
        (
            "2.19.0",
            ("opensearch-neural-search", "opensearch-knn"),
            {"linear", "rrf"},
            True,
            ("rank_features",),
        ),
        (
            "3.3.0",
            ("opensearch-neural-search", "opensearch-knn"),
            {"linear", "rrf"},
            True,
            ("rank_features", "sparse_vector"),
        ),
        ("3.3.0", ("opensearch-knn",), set(), False, ("rank_features",)),
    ],
)
def test_capabilities_follow_version_and_plugins(
    version: str, plugins: tuple[str, ...], fusion: set[str], weighted: bool, types: tuple[str, ...]
) -> None:
    caps = OpenSearchConnector(
        client=FakeOpenSearch(version=version, plugins=plugins).client()
    ).capabilities()
    assert caps.engine == "opensearch" and caps.version == version
    assert caps.server_fusion == frozenset(fusion) and caps.weighted_fusion is weighted
    assert caps.sparse_field_types == types and caps.lexical and caps.max_query_terms == 1024


def test_server_fusion_problem_names_the_version_needed() -> None:
    conn = OpenSearchConnector(client=FakeOpenSearch(version="2.19.0").client())
    problem = conn.server_fusion_problem(ServerFusion(method="rrf", weights=(2.0, 1.0)), 2)
    assert problem is not None and "3.1" in problem
    assert conn.server_fusion_problem(ServerFusion(method="rrf"), 2) is None


def test_seismic_needs_3_3_and_neural_search() -> None:
    conn = OpenSearchConnector(
        client=FakeOpenSearch(version="2.19.0").client(),
        options=OpenSearchOptions(sparse_type="sparse_vector"),
    )
    with pytest.raises(UnsupportedOperation, match=r"3\.3"):
        conn.ensure_index(SPEC)


def test_seismic_index_round_trip_with_scale() -> None:
    fake = FakeOpenSearch(version="3.3.0")
    conn = _connector(fake, sparse_type="sparse_vector", sparse_scale=0.5)
    assert fake.index_bodies["docs"]["settings"]["index"]["sparse"] is True
    doc = Document(id="s", fields={"title": "t"}, sparse=SparseVector([3, 100], [5.0, 1.0]))
    too_big = Document(id="b", sparse=SparseVector([3], [9.0]))
    report = conn.upsert([doc, too_big])
    assert (
        report.outcomes[0].ok and not report.outcomes[1].ok and "ceiling" in (report.outcomes[1].error or "")
    )
    assert fake.indices["docs"]["s"]["splade"] == {"3": 2.5, "100": 0.5}
    (back,) = conn.get(["s"])
    assert back is not None and back.sparse == doc.sparse


def test_connector_built_from_settings_never_logs_the_password(caplog: pytest.LogCaptureFixture) -> None:
    settings = HttpSettings(urls=("https://os.example:9200",), username="admin", password=Secret("s3cr3t-pw"))
    with caplog.at_level(logging.DEBUG):
        conn = OpenSearchConnector(settings=settings)
    assert "s3cr3t-pw" not in caplog.text and "os.example" in caplog.text
    transport_conn = conn.client.transport.connection_pool.connections[0]
    assert transport_conn.use_ssl and transport_conn.pool.cert_reqs == "CERT_REQUIRED"
    conn.close()
    conn.close()
