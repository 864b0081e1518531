"""The one document layout of the Lucene engines: Elasticsearch and OpenSearch write the same `_source` for
the same document, read back what they wrote, and read documents they did not write (a migrated BM25 index)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spladebridge.connectors.base import Document, IndexSpec
from spladebridge.connectors.elasticsearch import ElasticsearchConnector
from spladebridge.connectors.lucene_documents import (
    META_FIELD,
    DocumentError,
    Layout,
    document_from_source,
    document_source,
)
from spladebridge.connectors.lucene_queries import FeatureNamer
from spladebridge.connectors.opensearch import OpenSearchConnector
from spladebridge.connectors.token_names import decode_token
from spladebridge.encoder.sparse_vector import SparseVector

SPEC = IndexSpec(name="docs", dense_dim=3)


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


def _layouts(stamp: bool = True) -> list[Layout]:
    """The layout each dialect uses for an index of SPEC (bodies only: no request is sent)."""
    es = ElasticsearchConnector(client=_NoClient())  # type: ignore[arg-type]
    os_ = OpenSearchConnector(client=_NoClient())
    return [es.layout_for(SPEC, stamp), os_.layout_for(SPEC, stamp)]


class _NoClient:
    """Stands where a client goes; building a layout sends nothing."""

    transport = None

    def close(self) -> None:
        return None


def test_both_engines_write_the_same_source_and_read_it_back() -> None:
    doc = _doc()
    sources = [document_source(doc, 0, layout).source for layout in _layouts()]
    assert sources[0] == sources[1]
    source = sources[0]
    assert source["title"] == "A" and source["lang"] == "en" and source["year"] == 2020
    assert source["splade"] == {"3": 0.5, "9": 1.25}
    assert source[META_FIELD] == {"id": 7, "fields": ["title", "text"]}
    for layout in _layouts():
        back = document_from_source("7", source, layout)
        assert back.id == 7 and back.fields == doc.fields and back.metadata == doc.metadata
        assert back.sparse == doc.sparse
        assert back.dense is not None and doc.dense is not None and np.array_equal(back.dense, doc.dense)


def test_an_index_without_sb_meta_gets_none_written_and_reads_ids_and_text_from_the_spec() -> None:
    layout = _layouts(stamp=False)[0]
    source = document_source(_doc(id="x-1"), 0, layout).source
    assert META_FIELD not in source
    back = document_from_source("x-1", source, layout)
    assert back.id == "x-1" and back.fields == {"title": "A", "text": "b"}
    assert back.metadata == {"lang": "en", "year": 2020}


def test_a_foreign_list_valued_text_field_reads_as_text_and_writes_back_as_the_list() -> None:
    layout = Layout(IndexSpec(name="m", text_fields=("title", "body")), FeatureNamer(), stamp=False)
    foreign: dict[str, Any] = {"title": "T", "body": ["first part", "second part"], "tag": "t1", "n": 3}
    doc = document_from_source("9", foreign, layout, vectors=False)
    assert doc.id == "9" and doc.fields == {"title": "T", "body": "first part\nsecond part"}
    assert doc.metadata == {"body": ["first part", "second part"], "tag": "t1", "n": 3}
    doc.sparse = SparseVector([1], [0.5])
    written = document_source(doc, 0, layout).source
    assert {k: v for k, v in written.items() if k != "splade"} == foreign
    tampered = Document("9", dict(doc.fields), {"body": ["other"]}, SparseVector([1], [0.5]))
    with pytest.raises(DocumentError, match="also a text field name"):
        document_source(tampered, 0, layout)


def test_vocab_names_are_encoded_tokens_and_decode_back() -> None:
    layout = Layout(SPEC, FeatureNamer(["[PAD]", "a.b", "##ing", "*"]))
    source = document_source(_doc(sparse=SparseVector([1, 2, 3], [1.0, 2.0, 3.0])), 0, layout).source
    names = list(source["splade"])
    assert all("." not in n for n in names)
    assert [decode_token(n) for n in names] == ["a.b", "##ing", "*"]
    assert document_from_source("7", source, layout).sparse == SparseVector([1, 2, 3], [1.0, 2.0, 3.0])


@pytest.mark.parametrize(
    ("doc", "fragment"),
    [
        (_doc(id=-1), "integer id must be >= 0"),
        (_doc(id=""), "must not be empty"),
        (_doc(id=True), "string or a non-negative integer"),
        (_doc(dense=np.zeros(4, np.float32)), r"shape \(4,\)"),
        (_doc(dense=np.array([1.0, np.nan, 0.0], np.float32)), "position 1 is not finite"),
        (_doc(fields={"splade": "x"}), "reserved"),
        (_doc(metadata={"_id": 1}), "engine metadata field"),
        (_doc(metadata={"x": float("nan")}), "not finite"),
        (_doc(fields={"title": 3}), "must be a string"),
        (_doc(sparse=None), "needs a SparseVector"),
    ],
)
def test_invalid_documents_name_the_document_and_the_problem(doc: Document, fragment: str) -> None:
    for layout in _layouts():
        with pytest.raises(DocumentError, match=fragment) as info:
            document_source(doc, 4, layout)
        assert "4" in str(info.value)  # the input position


@settings(max_examples=40, deadline=None)
@given(
    st.dictionaries(st.integers(0, 30_000), st.floats(1e-3, 50.0), min_size=0, max_size=40),
    st.one_of(st.integers(0, 2**40), st.text(min_size=1, max_size=20).filter(lambda s: s.strip())),
    st.dictionaries(
        st.text("abcxyz", min_size=1, max_size=6),
        st.one_of(st.integers(), st.text(max_size=10), st.booleans()),
        max_size=4,
    ),
)
def test_any_document_round_trips_on_both_engines(
    weights: dict[int, float], doc_id: int | str, metadata: dict[str, Any]
) -> None:
    metadata = {k: v for k, v in metadata.items() if k not in ("title", "text")}
    doc = Document(doc_id, {"title": "t"}, metadata, SparseVector.from_dict(weights), None)
    for layout in _layouts():
        back = document_from_source(str(doc_id), document_source(doc, 0, layout).source, layout)
        assert back.id == doc_id and back.fields == doc.fields and back.metadata == metadata
        assert back.sparse == doc.sparse


def test_a_migration_reads_ids_and_text_fields_from_the_index_not_from_sb_meta() -> None:
    """A source index written by spladebridge still migrates by `_id` and the migration's text fields."""
    spec = IndexSpec(name="src", text_fields=("title", "body"))
    source = {"title": "t", "body": "b", META_FIELD: {"id": 5, "fields": ["title"]}}
    trusted = document_from_source("5", source, Layout(spec, FeatureNamer()), vectors=False)
    assert trusted.id == 5 and trusted.fields == {"title": "t"}
    as_source = document_from_source(
        "5", source, Layout(spec, FeatureNamer(), trust_meta=False), vectors=False
    )
    assert as_source.id == "5" and as_source.fields == {"title": "t", "body": "b"}
    assert META_FIELD not in as_source.metadata
