"""Pure pieces of the Lucene connectors: Elasticsearch version features, index names, feature names, BM25,
retrievers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spladebridge.connectors.es_bodies import (
    EsVersion,
    dense_mapping,
    linear_retriever,
    rrf_retriever,
    sparse_mapping,
)
from spladebridge.connectors.lucene_connector import check_index_name
from spladebridge.connectors.lucene_queries import FeatureNameError, FeatureNamer, bm25_query
from spladebridge.encoder.sparse_vector import SparseVector


@pytest.mark.parametrize(
    ("number", "flavor", "expected"),
    [
        (
            "8.10.4",
            None,
            dict(field=False, query=False, prune=False, rrf=False, linear=False, weighted=False),
        ),
        ("8.11.0", None, dict(field=True, query=False, prune=False, rrf=False, linear=False, weighted=False)),
        ("8.16.1", None, dict(field=True, query=True, prune=False, rrf=True, linear=False, weighted=False)),
        ("8.18.0", None, dict(field=True, query=True, prune=False, rrf=True, linear=True, weighted=False)),
        ("8.19.3", None, dict(field=True, query=True, prune=True, rrf=True, linear=True, weighted=False)),
        ("9.0.0", None, dict(field=True, query=True, prune=False, rrf=True, linear=True, weighted=False)),
        ("9.1.5", None, dict(field=True, query=True, prune=True, rrf=True, linear=True, weighted=False)),
        (
            "9.2.0-SNAPSHOT",
            None,
            dict(field=True, query=True, prune=True, rrf=True, linear=True, weighted=True),
        ),
        (
            "8.11.0",
            "serverless",
            dict(field=True, query=True, prune=True, rrf=True, linear=True, weighted=True),
        ),
    ],
)
def test_version_features(number: str, flavor: str | None, expected: dict[str, bool]) -> None:
    v = EsVersion.parse(number, flavor)
    got = dict(
        field=v.sparse_vector_field,
        query=v.sparse_vector_query,
        prune=v.sparse_index_options,
        rrf=v.rrf_retriever,
        linear=v.linear_retriever,
        weighted=v.weighted_rrf,
    )
    assert got == expected
    assert v.default_sparse_type() == ("sparse_vector" if expected["query"] else "rank_features")


def test_version_parsing_errors_and_opensearch_detection() -> None:
    with pytest.raises(ValueError, match="cannot read"):
        EsVersion.parse("banana")
    with pytest.raises(ValueError, match="OpenSearch"):
        EsVersion.from_info({"version": {"number": "2.11.0", "distribution": "opensearch"}})


@pytest.mark.parametrize(
    ("name", "message"),
    [("", "empty"), ("Upper", "'U'"), ("a b", "' '"), ("_x", "must not start"), ("a" * 256, "255 bytes")],
)
def test_index_name_rules(name: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_index_name(name)
    assert check_index_name("docs-2024.v1") == "docs-2024.v1"


def test_mapping_pieces_reject_what_the_server_would() -> None:
    old = EsVersion.parse("8.10.0")
    with pytest.raises(ValueError, match=r"8\.11"):
        sparse_mapping("sparse_vector", old)
    with pytest.raises(ValueError, match=r"8\.19"):
        sparse_mapping("sparse_vector", EsVersion.parse("9.0.0"), prune=True)
    with pytest.raises(ValueError, match="dims"):
        dense_mapping(5000)
    with pytest.raises(ValueError, match="similarity"):
        dense_mapping(4, "hamming")


def test_retriever_builders_check_their_inputs() -> None:
    subs = [{"standard": {"query": {"match_all": {}}}}, {"standard": {"query": {"match_none": {}}}}]
    with pytest.raises(ValueError, match="rank_constant >= 1"):
        rrf_retriever(subs, rank_constant=0, rank_window_size=10)
    with pytest.raises(ValueError, match="2 weights for 1"):
        linear_retriever(subs[:1], weights=[1.0, 2.0], normalizer="minmax", rank_window_size=10)
    with pytest.raises(ValueError, match="finite"):
        rrf_retriever(subs, rank_constant=60, rank_window_size=10, weights=[1.0, float("nan")])


def test_bm25_query_uses_match_for_one_field() -> None:
    assert bm25_query("q", ["title"], combined=True) == {"match": {"title": {"query": "q"}}}
    assert bm25_query("q", ["a", "b"], combined=True) == {
        "combined_fields": {"query": "q", "fields": ["a", "b"]}
    }
    assert bm25_query("q", ["a", "b"], combined=False) == {
        "multi_match": {"query": "q", "fields": ["a", "b"], "type": "best_fields"}
    }
    with pytest.raises(ValueError, match="at least one text field"):
        bm25_query("q", [], combined=True)


@given(st.dictionaries(st.integers(0, 30521), st.floats(0.5, 50, width=32), max_size=40))
def test_id_names_round_trip(weights: dict[int, float]) -> None:
    namer = FeatureNamer()
    vector = SparseVector.from_dict(weights)
    features = namer.to_features(vector)
    assert all(name.isdigit() for name in features)
    assert namer.from_features(features) == vector


@given(st.lists(st.text(min_size=0, max_size=6), min_size=1, max_size=30, unique=True), st.data())
def test_token_names_round_trip_and_never_contain_dots(vocab: list[str], data: st.DataObject) -> None:
    namer = FeatureNamer(vocab)
    ids = data.draw(st.sets(st.integers(0, len(vocab) - 1), min_size=1))
    vector = SparseVector(sorted(ids), [1.0] * len(ids))
    features = namer.to_features(vector)
    assert not any("." in name for name in features)
    assert namer.from_features(features) == vector


def test_feature_name_errors_are_clear() -> None:
    with pytest.raises(FeatureNameError, match="not a token id"):
        FeatureNamer().token_id("01")
    with pytest.raises(FeatureNameError, match="outside the vocabulary"):
        FeatureNamer(["a"]).to_features(SparseVector([3], [1.0]))
    with pytest.raises(FeatureNameError, match="not in the vocabulary"):
        FeatureNamer(["a"]).token_id("b")
    with pytest.raises(FeatureNameError, match="same token"):
        FeatureNamer(["a", "a"])
