"""OpenSearch's own bodies: index mappings and settings of the dialect, SEISMIC documents, neural_sparse /
rank_feature / knn clauses. (The document layout both Lucene engines share is tested in
test_lucene_documents.py.)"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spladebridge.connectors.base import Document, IndexSpec
from spladebridge.connectors.filters import Filter, Range, Term, Terms
from spladebridge.connectors.lucene import knn_score_to_similarity, lucene_dot
from spladebridge.connectors.lucene_documents import DocumentError, document_from_source, document_source
from spladebridge.connectors.lucene_queries import FeatureNamer
from spladebridge.connectors.opensearch import (
    KnnParams,
    OpenSearchConnector,
    OpenSearchOptions,
    SeismicIndexParams,
    SeismicQueryParams,
    knn_clause,
    sparse_clause,
    suggest_sparse_scale,
)
from spladebridge.encoder.sparse_vector import SparseVector

SPEC = IndexSpec(name="docs", dense_dim=3)
SEISMIC = OpenSearchOptions(sparse_type="sparse_vector")


def _connector(options: OpenSearchOptions | None = None) -> OpenSearchConnector:
    """A connector that builds bodies only (no request is sent)."""
    return OpenSearchConnector(client=object(), options=options)


def build_index_body(spec: IndexSpec, options: OpenSearchOptions) -> dict:  # type: ignore[type-arg]
    return _connector(options).index_body(spec)


def _filters(value: object, spec: IndexSpec = SPEC) -> list:  # type: ignore[type-arg]
    return _connector().filters(value, spec)  # type: ignore[arg-type]


def test_rank_features_index_body_has_knn_text_sb_meta_and_keyword_metadata() -> None:
    body = build_index_body(SPEC, OpenSearchOptions())
    props = body["mappings"]["properties"]
    assert props["splade"] == {"type": "rank_features"}
    assert props["dense"]["type"] == "knn_vector" and props["dense"]["dimension"] == 3
    assert props["dense"]["method"]["space_type"] == "innerproduct"
    assert props["title"]["type"] == "text" and props["title"]["fields"]["keyword"]["type"] == "keyword"
    assert props["sb_meta"] == {"type": "object", "enabled": False}
    assert props["title"]["analyzer"] == "english"  # stemming and stop words for BM25, by default
    standard = build_index_body(IndexSpec(name="s", options={"text_analyzer": None}), OpenSearchOptions())
    assert "analyzer" not in standard["mappings"]["properties"]["title"]
    assert body["settings"]["index"]["knn"] is True and "sparse" not in body["settings"]["index"]
    template = body["mappings"]["dynamic_templates"][0]["strings_as_keywords"]
    assert template["match_mapping_type"] == "string" and template["mapping"]["type"] == "keyword"
    stored = body["mappings"]["_meta"]["spladebridge"]
    assert stored["sparse_type"] == "rank_features" and stored["opensearch"] == {"sparse_scale": 1.0}


def test_knn_params_go_into_the_hnsw_method() -> None:
    knn = KnnParams(space_type="cosinesimil", engine="faiss", m=32, ef_construction=256, ef_search=100)
    method = build_index_body(SPEC, OpenSearchOptions(knn=knn))["mappings"]["properties"]["dense"]["method"]
    assert method == {
        "name": "hnsw",
        "engine": "faiss",
        "space_type": "cosinesimil",
        "parameters": {"m": 32, "ef_construction": 256, "ef_search": 100},
    }
    with pytest.raises(ValueError, match="faiss"):
        KnnParams(engine="lucene", ef_search=50)


def test_sparse_only_index_has_no_knn_setting() -> None:
    body = build_index_body(IndexSpec(name="s", dense_field=None), OpenSearchOptions())
    assert "knn" not in body["settings"]["index"]
    assert "dense" not in body["mappings"]["properties"]


def test_seismic_index_body_sets_index_sparse_and_method_parameters() -> None:
    params = SeismicIndexParams(n_postings=4000, cluster_ratio=0.2, quantization_ceiling_ingest=5.0)
    body = build_index_body(SPEC, OpenSearchOptions(sparse_type="sparse_vector", seismic=params))
    assert body["settings"]["index"]["sparse"] is True
    method = body["mappings"]["properties"]["splade"]["method"]
    assert method["name"] == "seismic"
    assert method["parameters"]["n_postings"] == 4000
    assert method["parameters"]["quantization_ceiling_ingest"] == 5.0
    assert "summary_prune_ratio" not in method["parameters"]  # left to OpenSearch's default


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"cluster_ratio": 1.5}, "cluster_ratio"),
        ({"quantization_ceiling_ingest": 0.0}, "quantization_ceiling_ingest"),
        ({"n_postings": 0}, "n_postings"),
    ],
)
def test_seismic_params_reject_out_of_range_values(kwargs: dict[str, float], fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        SeismicIndexParams(**kwargs)  # type: ignore[arg-type]


def test_seismic_rejects_vocabularies_that_would_fold() -> None:
    with pytest.raises(ValueError, match="32768"):
        OpenSearchOptions(sparse_type="sparse_vector", vocab=[f"t{i}" for i in range(40_000)])


def _doc(**kw: object) -> Document:
    base: dict[str, object] = {
        "id": 7,
        "fields": {"title": "A", "text": "b"},
        "metadata": {"lang": "en", "year": 2020},
        "sparse": SparseVector([3, 9], [0.5, 1.25]),
        "dense": np.array([0.1, 0.2, 0.3], np.float32),
    }
    base.update(kw)
    return Document(**base)  # type: ignore[arg-type]


def test_seismic_documents_reject_clipping_and_large_token_ids() -> None:
    seismic = _connector(SEISMIC).layout_for(SPEC, stamp=True)
    with pytest.raises(DocumentError, match="quantization ceiling 3"):
        document_source(_doc(sparse=SparseVector([1], [3.5])), 0, seismic)
    with pytest.raises(DocumentError, match="32768"):
        document_source(_doc(sparse=SparseVector([40_000], [1.0])), 0, seismic)
    scaled = _connector(OpenSearchOptions(sparse_type="sparse_vector", sparse_scale=0.5)).layout_for(
        SPEC, True
    )
    source = document_source(_doc(sparse=SparseVector([1], [3.5])), 0, scaled).source
    assert source["splade"] == {"1": 1.75}
    back = document_from_source("7", source, scaled)
    assert back.sparse == SparseVector([1], [3.5])


def test_cosinesimil_refuses_an_all_zero_dense_vector() -> None:
    layout = _connector(OpenSearchOptions(knn=KnnParams(space_type="cosinesimil"))).layout_for(SPEC, True)
    with pytest.raises(DocumentError, match="all-zero"):
        document_source(_doc(dense=np.zeros(3, np.float32)), 0, layout)


def test_suggest_sparse_scale_fits_the_largest_weight_under_the_ceiling() -> None:
    vectors = [SparseVector([1], [2.0]), SparseVector([2, 3], [1.0, 6.0])]
    scale = suggest_sparse_scale(vectors, ceiling=3.0, headroom=1.0)
    assert scale == pytest.approx(0.5)
    assert suggest_sparse_scale([SparseVector([1], [1.0])], ceiling=3.0) == 1.0  # never stretches


def test_filters_address_top_level_fields_as_on_elasticsearch() -> None:
    flt = Filter(Term("lang", "en"), Terms("year", [2020, 2021]), Range("score", gte=0.5), Term("title", "A"))
    clauses = _filters(flt)
    assert [(kind, next(iter(body))) for c in clauses for kind, body in c.items()] == [
        ("term", "lang"),
        ("terms", "year"),
        ("range", "score"),
        ("term", "title.keyword"),  # a text field's exact value: its keyword sub-field
    ]
    assert clauses[1]["terms"]["year"] == [2020, 2021]
    assert clauses[2]["range"]["score"] == {"gte": 0.5}
    assert _filters(None) == []


def test_neural_sparse_clause_rescales_weights_above_64_and_reports_the_scale() -> None:
    vector = SparseVector([1, 2, 3], [128.0, 32.0, 1.0])
    clause = sparse_clause(vector, SPEC, OpenSearchOptions(), FeatureNamer(), k=10)
    assert clause.query is not None
    tokens = clause.query["neural_sparse"]["splade"]["query_tokens"]
    assert max(tokens.values()) <= 64.0
    assert clause.scale == pytest.approx(0.5)
    assert tokens == {"1": 64.0, "2": 16.0, "3": 0.5}


def test_sparse_clause_keeps_the_largest_weights_within_the_clause_budget() -> None:
    rng = np.random.default_rng(1)
    weights = rng.uniform(0.1, 2.0, size=50)
    vector = SparseVector(np.arange(50), weights)
    options = OpenSearchOptions(max_query_terms=8)
    clause = sparse_clause(vector, SPEC, options, FeatureNamer(), k=5)
    assert clause.query is not None and clause.truncated_terms == 42
    kept = clause.query["neural_sparse"]["splade"]["query_tokens"]
    expected = {str(i) for i in np.argsort(-weights)[:8]}
    assert set(kept) == expected


def test_sparse_clause_with_filter_wraps_in_bool() -> None:
    clause = sparse_clause(
        SparseVector([1], [1.0]),
        SPEC,
        OpenSearchOptions(),
        FeatureNamer(),
        k=3,
        filters=_filters(Term("a", 1)),
    )
    assert clause.query == {
        "bool": {
            "must": [{"neural_sparse": {"splade": {"query_tokens": {"1": 1.0}}}}],
            "filter": [{"term": {"a": {"value": 1}}}],
        }
    }


def test_empty_sparse_query_sends_nothing() -> None:
    clause = sparse_clause(SparseVector.empty(), SPEC, OpenSearchOptions(), FeatureNamer(), k=3)
    assert clause.query is None


def test_rank_feature_fallback_has_one_linear_clause_per_token_with_the_weight_as_boost() -> None:
    vector = SparseVector([4, 8], [100.0, 2.0])
    clause = sparse_clause(vector, SPEC, OpenSearchOptions(), FeatureNamer(), k=3, neural=False)
    assert clause.scale == 1.0  # boosts are not capped at 64
    assert clause.query is not None
    should = clause.query["bool"]["should"]
    assert {"rank_feature": {"field": "splade.4", "linear": {}, "boost": 100.0}} in should
    assert len(should) == 2


def test_seismic_clause_carries_method_parameters_filter_and_search_ceiling() -> None:
    options = OpenSearchOptions(
        sparse_type="sparse_vector", seismic_query=SeismicQueryParams(k=50, top_n=12, heap_factor=1.2)
    )
    clause = sparse_clause(
        SparseVector([1, 2], [32.0, 8.0]),
        SPEC,
        options,
        FeatureNamer(),
        k=100,
        filters=_filters(Term("a", "x")),
    )
    assert clause.query is not None
    body = clause.query["neural_sparse"]["splade"]
    assert body["method_parameters"]["k"] == 100  # raised to the hits asked for
    assert body["method_parameters"]["top_n"] == 12 and body["method_parameters"]["heap_factor"] == 1.2
    assert body["method_parameters"]["filter"] == {"bool": {"filter": [{"term": {"a": {"value": "x"}}}]}}
    assert max(body["query_tokens"].values()) <= 16.0 and clause.scale == pytest.approx(0.5)
    with pytest.raises(ValueError, match="32768"):
        sparse_clause(SparseVector([40_000], [1.0]), SPEC, options, FeatureNamer(), k=3)


@settings(max_examples=60, deadline=None)
@given(
    st.dictionaries(st.integers(0, 60), st.floats(0.01, 500.0), min_size=1, max_size=30),
    st.lists(
        st.dictionaries(st.integers(0, 60), st.floats(0.01, 10.0), min_size=1, max_size=20),
        min_size=2,
        max_size=6,
    ),
)
def test_rescaled_query_ranks_documents_as_the_raw_dot_product(
    query: dict[int, float], docs: list[dict[int, float]]
) -> None:
    """Whatever the query weights, the sent query divided by its scale gives the Lucene dot product."""
    vector = SparseVector.from_dict(query)
    clause = sparse_clause(vector, SPEC, OpenSearchOptions(), FeatureNamer(), k=5)
    assert clause.query is not None
    tokens = clause.query["neural_sparse"]["splade"]["query_tokens"]
    assert all(0 < w <= 64.0 for w in tokens.values())
    sent = SparseVector.from_dict({int(k): v for k, v in tokens.items()})
    for d in docs:
        dv = SparseVector.from_dict(d)
        assert lucene_dot(sent, dv) / clause.scale == pytest.approx(
            lucene_dot(vector, dv), rel=1e-5, abs=1e-6
        )


def test_knn_clause_checks_shape_and_puts_filter_inside() -> None:
    q = knn_clause(np.ones(3, np.float32), SPEC, k=5, filters=_filters(Term("lang", "en")))
    assert q == {
        "knn": {
            "dense": {
                "vector": [1.0, 1.0, 1.0],
                "k": 5,
                "filter": {"bool": {"filter": [{"term": {"lang": {"value": "en"}}}]}},
            }
        }
    }
    with pytest.raises(ValueError, match="shape"):
        knn_clause(np.ones(4, np.float32), SPEC, k=5)
    with pytest.raises(ValueError, match="10000"):
        knn_clause(np.ones(3, np.float32), SPEC, k=20_000)


@pytest.mark.parametrize(
    ("space", "sim"), [("innerproduct", 0.7), ("innerproduct", -2.5), ("cosinesimil", -0.3)]
)
def test_knn_score_to_similarity_inverts_opensearch_scores(space: str, sim: float) -> None:
    ip_score = sim + 1 if sim >= 0 else 1 / (1 - sim)
    score = ip_score if space == "innerproduct" else (1 + sim) / 2
    assert knn_score_to_similarity(score, space) == pytest.approx(sim)  # type: ignore[arg-type]
