"""IdfTable: BM25 IDF from texts or vectors, JSON round trip, OpenSearch idf.json, clear errors."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from spladebridge.encoder.idf import IdfTable, IdfTableError
from spladebridge.encoder.sparse_vector import SparseVector

VOCAB = ["[PAD]", "apple", "banana", "cherry", "date"]


def whitespace_tokenize(texts: Sequence[str]) -> list[list[int]]:
    return [[VOCAB.index(word) for word in text.split()] for text in texts]


def bm25(n: int, df: int) -> float:
    return math.log(1 + (n - df + 0.5) / (df + 0.5))


def test_fit_on_texts_counts_documents_not_occurrences() -> None:
    corpus = ["apple apple banana", "apple cherry", "apple"]
    table = IdfTable.fit(corpus, vocab=VOCAB, tokenize=whitespace_tokenize, batch_size=2)
    assert table.n_docs == 3
    assert table.weights == pytest.approx({"apple": bm25(3, 3), "banana": bm25(3, 1), "cherry": bm25(3, 1)})
    assert table.default == pytest.approx(bm25(3, 0))
    assert table.weight("date") == pytest.approx(bm25(3, 0))  # never seen: the rarest possible
    assert table.weight("banana") > table.weight("apple") > 0


def test_fit_on_vectors_uses_active_dimensions() -> None:
    vectors = [SparseVector([1, 2], [0.5, 1.0]), SparseVector([2], [3.0]), SparseVector.empty()]
    table = IdfTable.fit(vectors, vocab=VOCAB)
    assert table.weights == pytest.approx({"apple": bm25(3, 1), "banana": bm25(3, 2)})
    assert table.meta["fitted_on"] == "vectors"


def test_to_array_aligns_with_the_vocabulary() -> None:
    table = IdfTable({"banana": 2.0, "zzz": 9.0}, default=0.25)
    np.testing.assert_allclose(table.to_array(VOCAB), [0.25, 0.25, 2.0, 0.25, 0.25])


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    table = IdfTable.fit(["apple banana", "banana"], vocab=VOCAB, tokenize=whitespace_tokenize)
    path = tmp_path / "idf.json"
    table.save(path)
    loaded = IdfTable.load(path)
    assert loaded == table
    obj = json.loads(path.read_text())
    assert obj["format"] == "spladebridge.idf" and obj["n_docs"] == 2


def test_plain_token_weight_map_loads(tmp_path: Path) -> None:
    path = tmp_path / "idf.json"
    path.write_text(json.dumps({"apple": 1.5, "banana": 3}))
    table = IdfTable.load(path)
    assert table.weights == {"apple": 1.5, "banana": 3.0}
    assert table.default == 0.0


@pytest.mark.parametrize(
    ("content", "pattern"),
    [
        ("{not json", r"not valid JSON \(line 1"),
        (b"\x80\x04pickle", r"not UTF-8 text \(byte 0\)"),
        ("[1, 2]", "expected a JSON object"),
        ('{"apple": "high"}', "weight of token 'apple' is not a number"),
        ('{"apple": -1}', "weight of token 'apple' is negative"),
        ('{"format": "spladebridge.idf", "version": 9}', "unsupported version 9"),
        ('{"format": "spladebridge.idf", "version": 1, "idf": {}, "default": 0}', "missing field 'n_docs'"),
    ],
)
def test_bad_files_say_what_is_wrong(tmp_path: Path, content: str | bytes, pattern: str) -> None:
    path = tmp_path / "idf.json"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(IdfTableError, match=pattern):
        IdfTable.load(path)


def test_fit_errors_name_the_item() -> None:
    with pytest.raises(IdfTableError, match="item 1 is a SparseVector but earlier items are str"):
        IdfTable.fit(["apple", SparseVector([1], [1.0])], vocab=VOCAB, tokenize=whitespace_tokenize)  # type: ignore[list-item]
    with pytest.raises(IdfTableError, match="item 0 is a int"):
        IdfTable.fit([3], vocab=VOCAB)  # type: ignore[list-item]
    with pytest.raises(IdfTableError, match="empty corpus"):
        IdfTable.fit([], vocab=VOCAB)
    with pytest.raises(IdfTableError, match="outside the vocabulary"):
        IdfTable.fit([SparseVector([10], [1.0])], vocab=VOCAB)
    with pytest.raises(IdfTableError, match="needs encoder= or tokenize="):
        IdfTable.fit(["apple"], vocab=VOCAB)
    with pytest.raises(IdfTableError, match="single string"):
        IdfTable.fit("apple", vocab=VOCAB)
