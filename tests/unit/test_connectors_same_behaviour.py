"""Every connector behaves the same way where the engines differ: a fusion the engine cannot run exactly is
refused by `search_hybrid` with the same error and the reason `server_fusion_problem` gives (and the searcher
fuses client-side instead, saying why); `lexical=False` refuses BM25 everywhere; the Lucene engines refuse
`sparse_idf` alike; connectors import nothing from `hybrid`.

Elasticsearch and OpenSearch run against HTTP-level fakes (the official clients run for real); the claims
about the real engines are in tests/live. Qdrant Edge is the real engine, in-process."""

from __future__ import annotations

import ast
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from es_fake import MiniES
from os_fake import FakeOpenSearch

from spladebridge.connectors.base import (
    Connector,
    ConnectorError,
    Document,
    HybridRequest,
    IndexNotFound,
    IndexSpec,
    ServerFusion,
    UnsupportedOperation,
)
from spladebridge.connectors.elasticsearch import ElasticsearchConnector
from spladebridge.connectors.index_meta import spec_to_json
from spladebridge.connectors.lucene_connector import LuceneConnector
from spladebridge.connectors.opensearch import OpenSearchConnector
from spladebridge.connectors.qdrant_edge import QdrantEdgeConnector
from spladebridge.encoder.sparse_vector import SparseVector
from spladebridge.hybrid import HybridSearcher, WeightedSum

SPEC = IndexSpec(name="docs", dense_dim=3)
ROOT = Path(__file__).resolve().parents[2]


def _es(spec: IndexSpec, tmp: Path) -> Connector:
    return ElasticsearchConnector(client=MiniES("9.1.0").client(), spec=spec)


def _os(spec: IndexSpec, tmp: Path) -> Connector:
    return OpenSearchConnector(client=FakeOpenSearch().client(), spec=spec)


def _edge(spec: IndexSpec, tmp: Path) -> Connector:
    return QdrantEdgeConnector(tmp / spec.name, spec)


ENGINES: dict[str, Callable[[IndexSpec, Path], Connector]] = {
    "elasticsearch": _es,
    "opensearch": _os,
    "qdrant-edge": _edge,
}
#: A fusion no engine runs server-side with the hybrid module's meaning: z-score normalisation.
UNFUSABLE = ServerFusion("linear", normalizer="zscore")


@pytest.fixture(params=sorted(ENGINES))
def connector(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Connector]:
    conn = ENGINES[request.param](SPEC, tmp_path)
    docs = [
        Document(
            i,
            {"title": f"doc {i}", "text": "apple banana" if i % 2 else "cherry"},
            {},
            SparseVector([1, 2 + i], [0.7371, 0.4123]),  # not exact in 9 bits: explanations must truncate
            _unit(np.array([1.0, 0.1 * i, 0.0], np.float32)),  # as DenseEncoder writes them
        )
        for i in range(4)
    ]
    report = conn.upsert(docs)
    assert report.ok
    conn.flush()
    yield conn
    conn.close()


def _unit(vector: np.ndarray) -> np.ndarray:  # type: ignore[type-arg]
    return (vector / np.linalg.norm(vector)).astype(np.float32)


def _request(fusion: ServerFusion) -> HybridRequest:
    return HybridRequest(
        k=3,
        candidates=10,
        fusion=fusion,
        sparse=SparseVector([1], [1.0]),
        dense=np.array([1.0, 0.0, 0.0], np.float32),
        text="apple",
    )


def test_an_unfusable_request_is_refused_the_same_way_with_the_engines_reason(connector: Connector) -> None:
    problem = connector.server_fusion_problem(UNFUSABLE, 3)
    assert problem is not None
    with pytest.raises(UnsupportedOperation, match="cannot fuse this request server-side") as info:
        connector.search_hybrid(_request(UNFUSABLE))
    assert problem in str(info.value)


def test_the_searcher_falls_back_client_side_and_says_why(connector: Connector) -> None:
    class Encoder:
        def encode_query(self, text: str) -> SparseVector:
            return SparseVector([1], [1.0])

        def encode_queries(self, texts: list[str]) -> list[SparseVector]:
            return [self.encode_query(t) for t in texts]

    searcher = HybridSearcher(connector, Encoder(), fusion=WeightedSum(normalize="zscore"))
    hits = searcher.search("apple", k=3)
    problem = connector.server_fusion_problem(UNFUSABLE, len(searcher.signals))
    assert hits and problem is not None and searcher.server_fusion_problem == problem


@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_lexical_false_refuses_bm25_on_every_engine(engine: str, tmp_path: Path) -> None:
    spec = IndexSpec(name="nolex", dense_field=None, lexical=False)
    conn = ENGINES[engine](spec, tmp_path)
    try:
        conn.upsert([Document(1, {"title": "t", "text": "x"}, {}, SparseVector([1], [1.0]))])
        with pytest.raises(UnsupportedOperation, match="lexical=False"):
            conn.search_text("x", 3)
    finally:
        conn.close()


@pytest.mark.parametrize("engine", ["elasticsearch", "opensearch"])
def test_the_lucene_engines_refuse_sparse_idf_alike(engine: str, tmp_path: Path) -> None:
    conn = ENGINES[engine](IndexSpec(name="idf", sparse_idf=True), tmp_path)
    with pytest.raises(UnsupportedOperation, match=r"sparse_idf=True.*dot product"):
        conn.count()  # the spec is ensured on first use, and refused before anything is created
    conn.close()


def test_connectors_import_nothing_from_hybrid() -> None:
    """Connectors know engines, not fusion: no module of connectors/ imports spladebridge.hybrid."""
    offenders = []
    for path in sorted((ROOT / "connectors").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            offenders += [f"{path.name}: {n}" for n in names if n.startswith("spladebridge.hybrid")]
    assert offenders == []


@pytest.mark.parametrize("engine", ["elasticsearch", "opensearch"])
def test_existing_spec_never_creates_the_index_it_was_given_a_spec_for(engine: str, tmp_path: Path) -> None:
    conn = ENGINES[engine](IndexSpec(name="fresh", dense_field=None), tmp_path)
    assert isinstance(conn, LuceneConnector)
    with pytest.raises(IndexNotFound, match="fresh"):
        conn.existing_spec()
    assert not conn.cluster.exists("fresh")
    conn.close()


def test_an_opensearch_index_in_the_old_layout_is_refused_with_what_to_do() -> None:
    fake = FakeOpenSearch()
    stored = spec_to_json(IndexSpec(name="old", dense_field=None), sparse_type="rank_features")
    fake.indices["old"] = {}
    fake.index_bodies["old"] = {
        "mappings": {
            "_meta": {"spladebridge": stored},
            "properties": {
                "sb_id": {"type": "keyword"},
                "metadata": {"type": "object"},
                "splade": {"type": "rank_features"},
                "title": {"type": "text"},
                "text": {"type": "text"},
            },
        }
    }
    with pytest.raises(
        ConnectorError, match=r"before OpenSearch shared the Lucene document layout.*re-index"
    ):
        OpenSearchConnector(client=fake.client(), index="old").count()


def test_elasticsearch_linear_fusion_sums_the_same_sparse_scores_search_sparse_reports() -> None:
    """A query rescaled under `max_query_weight` is scaled back in `search_sparse`; in a linear retriever
    its weight is divided by the same factor, so `normalizer="none"` adds up the same scores."""
    conn = ElasticsearchConnector(client=MiniES("9.1.0").client(), spec=SPEC, max_query_weight=1.0)
    request = HybridRequest(
        k=3,
        candidates=10,
        fusion=ServerFusion("linear", normalizer="none", weights=(2.0, 1.0), signals=("sparse", "bm25")),
        sparse=SparseVector([1, 2], [4.0, 2.0]),
        text="apple",
    )
    body = conn.hybrid_search_body(request)
    assert body is not None
    sparse_sub, text_sub = body["retriever"]["linear"]["retrievers"]
    sent = sparse_sub["retriever"]["standard"]["query"]["sparse_vector"]["query_vector"]
    assert sent == {"1": 1.0, "2": 0.5}  # rescaled by 0.25 to fit max_query_weight
    assert sparse_sub["weight"] == pytest.approx(2.0 / 0.25) and text_sub["weight"] == 1.0


def test_dense_scores_are_the_cosine_on_every_engine(connector: Connector) -> None:
    """Lucene reports (1 + cos) / 2 or its inner-product transform; every connector reports the cosine (for the
    unit vectors DenseEncoder writes, the inner product is the cosine)."""
    query = np.array([0.6, 0.8, 0.0], np.float32)
    hits = connector.search_dense(query, 4)
    (stored,) = [connector.get([h.id])[0] for h in hits[:1]]
    assert stored is not None and stored.dense is not None
    assert hits[0].score == pytest.approx(float(query @ stored.dense), abs=1e-4)


def test_explanations_add_up_to_the_engines_sparse_score(connector: Connector) -> None:
    """The terms of an explanation use the weights the engine scores with (9 bits on Lucene)."""

    class Encoder:
        def encode_queries(self, texts: list[str]) -> list[SparseVector]:
            return [SparseVector([1, 3], [0.731, 1.117]) for _ in texts]

    searcher = HybridSearcher(connector, Encoder(), signals=("sparse",), explain_top_k=None)
    hits = searcher.search("q", k=4, explain=True)
    assert hits
    for hit in hits:
        assert hit.explanation is not None
        total = sum(value for _, value in hit.explanation)
        assert total == pytest.approx(hit.signals["sparse"].score, rel=1e-6, abs=1e-6)


def test_qdrant_says_what_sparse_idf_does_to_the_score(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spec = IndexSpec(name="idf", dense_field=None, sparse_idf=True)
    with caplog.at_level(logging.WARNING):
        conn = QdrantEdgeConnector(tmp_path / "idf", spec)
        conn.ensure_index(spec)
    conn.close()
    assert "no longer the model's dot product" in caplog.text
