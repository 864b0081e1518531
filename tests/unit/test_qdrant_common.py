"""The engine-independent half of the Qdrant connectors: fusion plans, filters, documents, stored specs."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from spladebridge.connectors.base import (
    Document,
    HybridRequest,
    IndexSpec,
    ServerFusion,
    UnsupportedOperation,
)
from spladebridge.connectors.filters import Filter, Range, Term, Terms
from spladebridge.connectors.ids import ID_KEY, ID_TYPE_KEY
from spladebridge.connectors.qdrant_common import (
    FIELDS_KEY,
    LUCENE_ENGLISH_STOP_WORDS,
    Bm25Stats,
    DocumentError,
    bm25_settings,
    bm25_vector_name,
    document_from_payload,
    hit_fields,
    plan_fusion,
    prepare_document,
    spec_differences,
    spec_from_json,
    spec_to_json,
    translate_filter,
)
from spladebridge.encoder.sparse_vector import SparseVector

SPEC = IndexSpec(dense_dim=3)
SPARSE = SparseVector([1, 5], [0.5, 1.0])
DENSE = np.array([0.1, 0.2, 0.3], np.float32)


def _request(fusion: ServerFusion, **signals: Any) -> HybridRequest:
    return HybridRequest(k=5, candidates=50, fusion=fusion, **signals)


# -- fusion plans -------------------------------------------------------------------------------------


def test_rrf_rank_constant_60_becomes_qdrant_k_61() -> None:
    plan = plan_fusion(_request(ServerFusion(rank_constant=60), sparse=SPARSE, dense=DENSE))
    assert plan.qdrant_k == 61
    assert plan.native
    assert plan.signals == ("sparse", "dense")
    assert plan.limit == 5 and plan.candidates == 50


def test_unequal_weights_use_the_formula_path_with_weights_in_signal_order() -> None:
    fusion = ServerFusion(method="dbsf", weights=(0.2, 0.0, 3.0))
    plan = plan_fusion(_request(fusion, sparse=SPARSE, dense=DENSE, text="cats"))
    assert not plan.native
    assert plan.signals == ("sparse", "dense", "bm25")
    assert plan.weights == (0.2, 0.0, 3.0)


def test_signals_with_an_empty_query_are_dropped_with_their_weight() -> None:
    fusion = ServerFusion(weights=(2.0, 1.0))
    plan = plan_fusion(_request(fusion, sparse=SPARSE, text="the"), empty=["bm25"])
    assert plan.signals == ("sparse",)
    assert plan.weights == (2.0,)


def test_candidates_are_at_least_k() -> None:
    plan = plan_fusion(HybridRequest(k=20, candidates=5, fusion=ServerFusion(), sparse=SPARSE))
    assert plan.candidates == 20


@pytest.mark.parametrize(
    ("fusion", "error", "message"),
    [
        (ServerFusion(method="linear"), UnsupportedOperation, "linear"),
        (ServerFusion(missing="exclude"), UnsupportedOperation, "missing"),
        (ServerFusion(weights=(1.0,)), ValueError, "1 weights for 2 signals"),
        (ServerFusion(weights=(1.0, -1.0)), ValueError, "'dense'.*>= 0"),
        (ServerFusion(weights=(1.0, float("nan"))), ValueError, "finite"),
    ],
)
def test_bad_fusion_requests_say_why(fusion: ServerFusion, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        plan_fusion(_request(fusion, sparse=SPARSE, dense=DENSE))


def test_a_request_without_signals_is_rejected() -> None:
    with pytest.raises(ValueError, match="at least one"):
        plan_fusion(_request(ServerFusion()))


# -- filters ------------------------------------------------------------------------------------------


class RecordingBuilder:
    """Builds plain tuples so the translation can be read back."""

    def match_value(self, key: str, value: str | int | bool) -> Any:
        return ("match", key, value)

    def match_any(self, key: str, values: list[str] | list[int]) -> Any:
        return ("any", key, tuple(values))

    def range(self, key: str, bounds: dict[str, float]) -> Any:
        return ("range", key, tuple(sorted(bounds.items())))

    def any_of(self, conditions: list[Any]) -> Any:
        return ("should", tuple(conditions))


def test_no_filter_translates_to_none() -> None:
    assert translate_filter(None, RecordingBuilder()) is None
    assert translate_filter(Filter(), RecordingBuilder()) is None


def test_conditions_translate_to_must_clauses() -> None:
    flt = Filter(Term("lang", "en"), Term("flag", True), Range("year", gte=2000, lt=2010))
    out = translate_filter(flt, RecordingBuilder())
    assert out is not None
    assert out.must == [
        ("match", "lang", "en"),
        ("match", "flag", True),
        ("range", "year", (("gte", 2000.0), ("lt", 2010.0))),
    ]


def test_float_terms_become_point_ranges_and_mixed_terms_an_any_of() -> None:
    out = translate_filter(Terms("v", ["a", 1, "b", 2.5, False]), RecordingBuilder())
    assert out is not None
    assert out.must == [
        (
            "should",
            (
                ("any", "v", ("a", "b")),
                ("range", "v", (("gte", 1.0), ("lte", 1.0))),  # 1 matches the payloads 1 and 1.0
                ("range", "v", (("gte", 2.5), ("lte", 2.5))),
                ("match", "v", False),
            ),
        )
    ]
    single = translate_filter(Term("score", 0.5), RecordingBuilder())
    assert single is not None and single.must == [("range", "score", (("gte", 0.5), ("lte", 0.5)))]


# -- documents ----------------------------------------------------------------------------------------


def test_prepared_payload_keeps_fields_metadata_and_the_original_id() -> None:
    doc = Document(
        id=7, fields={"title": "T", "text": "body"}, metadata={"year": 2020}, sparse=SPARSE, dense=DENSE
    )
    prepared = prepare_document(doc, 0, SPEC)
    assert prepared.point_id == 7
    assert prepared.payload == {
        "title": "T",
        "text": "body",
        "year": 2020,
        ID_KEY: "7",
        ID_TYPE_KEY: "int",
        FIELDS_KEY: ["title", "text"],
    }
    assert prepared.text == "T\nbody"
    assert prepared.dense == pytest.approx([0.1, 0.2, 0.3])
    back = document_from_payload(prepared.payload, 7, SPARSE, DENSE)
    assert (back.id, back.fields, back.metadata) == (7, doc.fields, doc.metadata)
    assert hit_fields(prepared.payload) == {"title": "T", "text": "body", "year": 2020}


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (Document(id=-3, sparse=SPARSE), r"document 4 \(id -3\): integer document id"),
        (Document(id="a"), r"document 4 \(id 'a'\): field 'splade' needs a SparseVector, got no sparse"),
        (Document(id="a", sparse=SPARSE, dense=np.ones(4, np.float32)), r"shape \(4,\), index wants \(3,\)"),
        (
            Document(id="a", sparse=SPARSE, dense=np.array([1, np.nan, 0], np.float32)),
            "position 1 is not finite",
        ),
        (Document(id="a", sparse=SPARSE, metadata={"_sb_x": 1}), "reserved prefix"),
        (Document(id="a", sparse=SPARSE, fields={"t": "x"}, metadata={"t": 1}), "also a text field"),
        (Document(id="a", sparse=SPARSE, metadata={"x": {1, 2}}), "not JSON-serialisable"),
        (Document(id="a", sparse=SPARSE, metadata={"x": float("inf")}), "not JSON-serialisable"),
        (Document(id="a", sparse=SPARSE, fields={"t": 3}), "text field 't' must be a string"),  # type: ignore[dict-item]
    ],
)
def test_bad_documents_are_rejected_naming_index_id_and_field(doc: Document, message: str) -> None:
    with pytest.raises(DocumentError, match=message):
        prepare_document(doc, 4, SPEC)


def test_dense_vector_on_a_sparse_only_index_is_rejected() -> None:
    spec = IndexSpec(dense_field=None)
    with pytest.raises(DocumentError, match="no dense field"):
        prepare_document(Document(id="a", sparse=SPARSE, dense=DENSE), 0, spec)


# -- stored spec --------------------------------------------------------------------------------------


def test_spec_round_trips_through_json() -> None:
    spec = IndexSpec(
        name="x", dense_dim=384, text_fields=("body",), sparse_idf=True, options={"bm25": {"k": 1.5}}
    )
    assert spec_from_json(spec_to_json(spec)) == spec


def test_spec_differences_list_every_layout_change_but_ignore_the_name() -> None:
    a = IndexSpec(name="a", dense_dim=3)
    assert spec_differences(IndexSpec(name="b", dense_dim=3), a) == []
    diffs = spec_differences(IndexSpec(dense_dim=4, sparse_idf=True), a)
    assert any(d.startswith("dense_dim: wanted 4") for d in diffs)
    assert any(d.startswith("sparse_idf: wanted True") for d in diffs)
    assert len(diffs) == 2


def test_foreign_json_is_not_a_spec() -> None:
    with pytest.raises(ValueError, match="not a spladebridge index spec"):
        spec_from_json({"name": "x"})


def test_bm25_options_are_checked() -> None:
    with pytest.raises(ValueError, match="unknown keys"):
        bm25_settings(IndexSpec(dense_dim=3, options={"bm25": {"kk": 1}}))
    with pytest.raises(ValueError, match="collides"):
        bm25_vector_name(IndexSpec(dense_dim=3, options={"bm25_field": "dense"}))
    settings = bm25_settings(IndexSpec(dense_dim=3, options={"bm25": {"k": 1.2, "stopwords": ["b", "a"]}}))
    assert (settings.k, settings.b, settings.avg_len) == (1.2, 0.4, None)
    assert settings.stop_words == frozenset({"a", "b"})
    assert settings.stemmer_language == "english"
    with pytest.raises(ValueError, match="within"):
        bm25_settings(IndexSpec(dense_dim=3, options={"bm25": {"b": 2}}))
    assert bm25_settings(IndexSpec()).stop_words == LUCENE_ENGLISH_STOP_WORDS  # Lucene's list for English
    assert bm25_settings(IndexSpec(options={"bm25": {"language": "german"}})).stop_words == "german"
    assert bm25_settings(IndexSpec(options={"bm25": {"stemmer": "none"}})).stemmer_language is None


def test_bm25_stats_count_documents_with_a_token() -> None:
    stats = Bm25Stats().changed(added=[4, 0, 2])  # a document without a token is no BM25 document
    assert stats == Bm25Stats(documents=2, tokens=6) and stats.avg_len == 3.0
    assert stats.changed(added=[5], removed=[4, 0]) == Bm25Stats(documents=2, tokens=7)
    assert stats.changed(removed=[4, 2, 9]) == Bm25Stats()  # never below empty
    assert Bm25Stats.from_json(stats.to_json()) == stats
    with pytest.raises(ValueError, match="lack"):
        Bm25Stats.from_json({"documents": 1})
    with pytest.raises(ValueError, match="integer"):
        Bm25Stats.from_json({"documents": -1, "tokens": 3})
