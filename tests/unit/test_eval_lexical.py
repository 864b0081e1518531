"""The in-process BM25 baseline: Lucene-style scoring with stemming and stop words."""

from __future__ import annotations

import math

import pytest

from spladebridge.evaluation.lexical import LexicalBM25


@pytest.fixture(scope="module")
def bm25() -> LexicalBM25:
    index = LexicalBM25()
    index.index(
        ["d1", "d2", "d3", "d4"],
        [
            "the cat sat on the mat",
            "dogs are running in the park",
            "a quantum computer computes",
            "the cat and the dog",
        ],
    )
    return index


def test_rare_term_ranks_its_document_first(bm25: LexicalBM25) -> None:
    run = bm25.search({"q": "quantum"}, k=10)
    assert list(run["q"]) == ["d3"]


def test_stemming_matches_inflections(bm25: LexicalBM25) -> None:
    assert "d2" in bm25.search({"q": "runs dog"}, k=10)["q"]


def test_stop_word_only_query_returns_nothing(bm25: LexicalBM25) -> None:
    assert bm25.search({"q": "the and a"}, k=10) == {"q": {}}


def test_score_follows_lucene_bm25(bm25: LexicalBM25) -> None:
    # "quantum" occurs once in d3 (3 indexed terms after stop words); 4 docs, df=1
    lengths = [3, 3, 3, 2]  # cat sat mat / dog run park / quantum comput comput / cat dog
    avg = sum(lengths) / len(lengths)
    idf = math.log(1 + (4 - 1 + 0.5) / (1 + 0.5))
    tf_part = 1 / (1 + 0.9 * (1 - 0.4 + 0.4 * 3 / avg))
    assert bm25.search({"q": "quantum"}, k=1)["q"]["d3"] == pytest.approx(idf * tf_part, rel=1e-5)


def test_k_larger_than_corpus_and_bad_input(bm25: LexicalBM25) -> None:
    assert len(bm25.search({"q": "cat dog"}, k=100)["q"]) == 3
    with pytest.raises(ValueError, match="k must be positive"):
        bm25.search({"q": "cat"}, k=0)
    with pytest.raises(RuntimeError, match="before index"):
        LexicalBM25().search({"q": "x"}, k=1)
    with pytest.raises(ValueError, match="differ in length"):
        LexicalBM25().index(["a"], [])
