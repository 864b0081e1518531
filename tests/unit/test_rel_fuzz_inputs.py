"""Bad input, fuzzed (hypothesis): token-name encoding, SparseVector construction, and the JSONL / CSV readers.

Each property is "a clear, typed error or a valid result, never anything else": no stray exception type, no
half-valid object, no reader that stops on one bad line.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import math
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from spladebridge.connectors.lucene_queries import FeatureNameError, FeatureNamer
from spladebridge.connectors.token_names import TokenNameError, decode_token, encode_token, is_safe_name
from spladebridge.encoder.sparse_vector import SparseVector, SparseVectorError
from spladebridge.readers import ReaderError, RecordParser, iter_records

# -- token names ----------------------------------------------------------------------------------------

_RESERVED = set('.*"\\,%')


def engine_rejects(name: str) -> str | None:
    """Why Elasticsearch / OpenSearch would reject (or misread) `name` as a feature name, or None."""
    if name == "":
        return "empty"
    if name != name.strip():
        return "surrounding whitespace"
    for ch in name:
        code = ord(ch)
        if ch in '.*"\\,' or code < 0x20 or code == 0x7F or ch.isspace():
            return f"reserved character {ch!r}"
        if 0xD800 <= code <= 0xDFFF:
            return "lone surrogate"
    try:
        json.dumps({name: 1.0}, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return "not UTF-8"
    return None


def default_vocabulary() -> list[str]:
    spec = importlib.util.find_spec("cognition")
    assert spec is not None and spec.submodule_search_locations, "the default SPLADE model is not installed"
    path = Path(next(iter(spec.submodule_search_locations))) / "model" / "tokenizer.json"
    vocab: dict[str, int] = json.loads(path.read_text(encoding="utf-8"))["model"]["vocab"]
    return [token for token, _ in sorted(vocab.items(), key=lambda kv: kv[1])]


def test_default_vocabulary_round_trips_through_names_engines_accept() -> None:
    vocab = default_vocabulary()
    names = [encode_token(t) for t in vocab]
    assert len(set(names)) == len(vocab)  # injective over the vocabulary
    assert [decode_token(n) for n in names] == vocab
    assert [n for n in names if engine_rejects(n)] == []
    namer = FeatureNamer(vocab)
    rng = np.random.default_rng(0)
    ids = np.unique(rng.integers(0, len(vocab), 3000))
    vec = SparseVector(ids, rng.uniform(0.01, 5.0, ids.size))
    assert namer.from_features(namer.to_features(vec)) == vec


@given(st.text(alphabet=st.characters(exclude_categories=()), max_size=40))
@example("")
@example("%")
@example("%25")
@example("\ud800")
@example(" lead")
@example("a.b*c")
def test_any_unicode_token_round_trips_to_a_safe_name(token: str) -> None:
    name = encode_token(token)
    assert decode_token(name) == token
    assert is_safe_name(name)
    assert engine_rejects(name) is None, (token, name)


@given(st.lists(st.text(max_size=6), min_size=2, max_size=8, unique=True), st.text(max_size=12))
def test_encoding_never_collides(tokens: list[str], other: str) -> None:
    names = {encode_token(t) for t in [*tokens, other]}
    assert len(names) == len(set([*tokens, other]))


@given(
    st.text(alphabet=st.characters(exclude_categories=()), max_size=30)
    | st.from_regex(r"(%[0-9A-Fa-fu]{0,5}|[a-z.])*")
)
def test_decoding_foreign_names_raises_only_token_name_error(name: str) -> None:
    try:
        token = decode_token(name)
    except TokenNameError:
        assert not is_safe_name(name)
        return
    assert encode_token(token) == name  # whatever decodes is exactly what encoding produced


@given(st.text(max_size=20))
def test_feature_namer_rejects_unknown_names_with_a_typed_error(name: str) -> None:
    namer = FeatureNamer(["[PAD]", "a", "##b", "c.d"])
    try:
        token_id = namer.token_id(name)
    except FeatureNameError:
        return
    assert namer.name(token_id) == name


# -- SparseVector ------------------------------------------------------------------------------------------

finite = st.floats(min_value=0.0, max_value=1e30, allow_nan=False, allow_infinity=False, width=32)
# Finite values beyond float32's range are covered by test_weight_overflowing_float32_is_rejected.
F32_MAX = float(np.finfo(np.float32).max)
any_float = st.floats(allow_nan=True, allow_infinity=True).filter(
    lambda v: not math.isfinite(v) or abs(v) <= F32_MAX
) | st.integers(-(2**70), 2**70).filter(lambda v: v <= F32_MAX)
any_index = st.integers(-(2**40), 2**40) | st.floats(allow_nan=True, allow_infinity=True) | st.booleans()


@given(st.lists(st.tuples(any_index, any_float), max_size=12), st.none() | st.integers(1, 40000))
@example([(1, -0.0)], None)
@example([(3, 1.0), (3, 2.0)], None)
@example([(40000, 1.0)], 30522)
def test_sparse_vector_construction_is_valid_or_a_sparse_vector_error(
    pairs: list[tuple[Any, Any]], vocab_size: int | None
) -> None:
    indices = [i for i, _ in pairs]
    values = [v for _, v in pairs]
    try:
        vec = SparseVector(indices, values, vocab_size=vocab_size)
    except SparseVectorError as exc:
        assert str(exc)
        return
    # whatever was accepted satisfies every invariant the connectors rely on
    assert vec.indices.dtype == np.int32 and vec.values.dtype == np.float32
    assert np.all(np.diff(vec.indices) > 0) and np.all(vec.indices >= 0)
    assert np.all(np.isfinite(vec.values)), f"accepted a non-finite weight from {pairs!r}"
    assert np.all(vec.values > 0)
    if vocab_size is not None and vec.nnz:
        assert int(vec.indices[-1]) < vocab_size
    assert SparseVector.from_json(vec.to_json()) == vec


@pytest.mark.parametrize(
    ("indices", "values", "message"),
    [
        ([1, 2], [1.0, float("nan")], "not finite"),
        ([1, 2], [1.0, float("inf")], "not finite"),
        ([1, 2], [1.0, -0.5], "negative"),
        ([5, 5], [1.0, 2.0], "duplicate index 5"),
        ([-1], [1.0], "int32 id range"),
        ([30522], [1.0], "outside the vocabulary"),
        ([1.5], [1.0], "not an integer"),
        ([1], ["x"], "numbers"),
        ([1, 2], [1.0], "differ in length"),
    ],
)
def test_each_kind_of_bad_sparse_input_names_the_problem(indices: Any, values: Any, message: str) -> None:
    with pytest.raises(SparseVectorError, match=message):
        SparseVector(indices, values, vocab_size=30522)


def test_weight_overflowing_float32_is_rejected() -> None:
    with pytest.raises(SparseVectorError, match="too large for float32"):
        SparseVector([1], [1e300])


def test_string_ids_give_a_sparse_vector_error() -> None:
    with pytest.raises(SparseVectorError):
        SparseVector(["a"], [1.0])


@given(st.dictionaries(st.integers(-5, 40000) | st.text(max_size=3), any_float, max_size=8))
def test_from_dict_is_valid_or_a_sparse_vector_error(weights: dict[Any, Any]) -> None:
    try:
        vec = SparseVector.from_dict(weights, vocab_size=30522)
    except SparseVectorError:
        return
    assert np.all(np.isfinite(vec.values)) and np.all(vec.values > 0)
    assert all(isinstance(k, int) and 0 <= k < 30522 for k in vec.to_dict())


# -- readers -----------------------------------------------------------------------------------------------

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
json_objects = st.dictionaries(
    st.sampled_from(["_id", "id", "title", "text", "year", "tags"]) | st.text(max_size=6),
    json_values,
    max_size=6,
)
bad_lines = st.sampled_from(
    [
        b"{not json",
        b"[1, 2]",
        b'"just a string"',
        b"null",
        b'{"_id": 1, "text": "\xff\xfe invalid utf-8"}',
        b'{"_id": 2, "text": "a", "n": ' + b"9" * 5000 + b"}",
        b"[" * 50_000,
        b'{"_id": "\\ud800", "text": "lone surrogate id"}',
        b'{"_id": 3, "text": "x\\udc80y"}',
        b'{"_id": 4, "text": 12}',
        b'{"_id": true, "text": "bool id"}',
        b'{"_id": -3, "text": "negative id"}',
        b'{"_id": "  ", "text": "blank id"}',
        b'{"_id": 5}',
        b'{"_id": 6, "text": "' + b"x" * 3000 + b'"}',
        b"\xef\xbb\xbf{}",
        b'{"_id": 7, "text": "ok", "n": NaN}',
    ]
)
jsonl_lines = st.lists(
    bad_lines | json_objects.map(lambda o: json.dumps(o).encode()) | st.binary(max_size=40), max_size=15
)


def _check_records(records: list[Any], expected: int) -> None:
    assert [r.position for r in records] == list(range(expected))
    for r in records:
        assert (r.document is None) != (r.error is None)
        if r.error is not None:
            assert r.error.startswith(f"{r.where}: ")
            json.dumps(r.raw, ensure_ascii=False).encode("utf-8")  # dead-letterable as written
        else:
            doc = r.document
            assert isinstance(doc.id, str | int) and not isinstance(doc.id, bool)
            assert doc.fields and all(isinstance(v, str) for v in doc.fields.values())
            assert sum(len(v) for v in doc.fields.values()) <= 1000
            json.dumps({"id": doc.id, **doc.fields}, ensure_ascii=False).encode("utf-8")


@settings(max_examples=120, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(jsonl_lines)
def test_jsonl_reader_yields_one_record_per_line_whatever_the_bytes(lines: list[bytes]) -> None:
    lines = [line.replace(b"\n", b" ").replace(b"\r", b" ") for line in lines]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.jsonl"
        path.write_bytes(b"".join(line + b"\n" for line in lines))
        records = list(iter_records(path, RecordParser(max_text_chars=1000)))
    non_blank = [line for line in lines if line.strip()]
    _check_records(records, len(non_blank))


cells = st.text(max_size=12) | st.sampled_from(["", '"', '""', "a,b", "x\ny", "\x00", "\ufeff", "9" * 5000])


@settings(max_examples=80)
@given(
    st.lists(st.lists(cells, min_size=1, max_size=4), max_size=8),
    st.sampled_from([None, b"\xff", b"\xc3", b"\xed\xa0\x80"]),
    st.integers(0, 7),
)
def test_csv_reader_yields_a_record_per_row_and_never_raises_on_rows(
    rows: list[list[str]], junk: bytes | None, junk_row: int
) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["_id", "title", "text"])
    for i, row in enumerate(rows):
        writer.writerow([f"r{i}", *row][:3] if len(row) >= 2 else [f"r{i}", *row])
    data = buffer.getvalue().encode("utf-8", "surrogatepass")
    if junk is not None and rows:
        lines = data.split(b"\n")
        target = 1 + junk_row % len(rows)
        lines[target] = lines[target] + junk
        data = b"\n".join(lines)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.csv"
        path.write_bytes(data)
        try:
            records = list(iter_records(path, RecordParser(max_text_chars=1000)))
        except ReaderError as exc:  # only the header can make the whole file unreadable
            pytest.fail(f"the header is fine, but: {exc}")
    assert [r.position for r in records] == list(range(len(records)))
    for r in records:
        assert (r.document is None) != (r.error is None)
        if r.error is not None:
            assert r.error.startswith(f"{r.where}: ")
        else:
            assert not any("\udc80" <= ch <= "\udcff" for v in r.document.fields.values() for ch in v)
    if junk is not None and rows and junk != b"\xed\xa0\x80":
        assert any(r.error and "UTF-8" in r.error for r in records) or len(records) < len(rows)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"_id,text\n1,ok\n2,\xff\xfebad\n3,fine\n", [None, "line 3: not valid UTF-8", None]),
        (b"_id,text\n1,ok\n2,a,extra\n3,fine\n", [None, "line 3: 3 columns, the header has 2", None]),
        (b"_id,text\n1,ok\n,no id\n", [None, "line 3: field '_id': id is an empty string"]),
    ],
)
def test_csv_bad_rows_fail_alone(tmp_path: Path, content: bytes, expected: list[str | None]) -> None:
    path = tmp_path / "in.csv"
    path.write_bytes(content)
    records = list(iter_records(path, RecordParser()))
    assert [r.error is None for r in records] == [e is None for e in expected]
    for record, error in zip(records, expected, strict=True):
        assert error is None or (record.error or "").startswith(error), record.error


def test_csv_header_that_is_not_utf8_is_a_reader_error(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_bytes(b"_id,te\xffxt\n1,ok\n")
    with pytest.raises(ReaderError, match="not valid UTF-8"):
        list(iter_records(path, RecordParser()))


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        (b'{"_id": 2, "n": ' + b"9" * 5000 + b', "text": "a"}', "unreadable JSON (Exceeds the limit"),
        (b"[" * 100_000, "unreadable JSON (nested too deeply)"),
        (b'{"_id": "\\ud800", "text": "x"}', "field '_id' holds a lone surrogate"),
        (b'{"_id": 1, "text": "a\\udc80"}', "field 'text' holds a lone surrogate"),
        (
            b'{"_id": 1, "text": "a", "meta": {"deep": ["\\ud83d"]}}',
            "field 'meta'.deep[0] holds a lone surrogate",
        ),
        (b'{"_id": 1, "text": "\xff"}', "not valid UTF-8"),
    ],
)
def test_jsonl_lines_that_used_to_stop_the_reader_now_fail_alone(
    tmp_path: Path, line: bytes, fragment: str
) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(b'{"_id": "a", "text": "before"}\n' + line + b'\n{"_id": "b", "text": "after"}\n')
    records = list(iter_records(path, RecordParser()))
    assert [r.id for r in records if r.document is not None] == ["a", "b"]
    assert records[1].error is not None and fragment in records[1].error, records[1].error
    json.dumps(records[1].raw, ensure_ascii=False).encode("utf-8")


def test_huge_text_field_is_refused_with_its_size(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl"
    path.write_text(json.dumps({"_id": "big", "text": "x" * 2_000_001}) + "\n", encoding="utf-8")
    (record,) = list(iter_records(path, RecordParser()))
    assert record.document is None and "2,000,001 characters" in (record.error or "")
    assert record.raw["_id"] == "big"  # the dead letter keeps the record, to fix and ingest again


@given(st.text(alphabet=st.characters(exclude_categories=()), max_size=30))
def test_parser_accepts_any_unicode_text_and_rejects_surrogates(text: str) -> None:
    record = RecordParser().parse({"_id": "x", "text": text}, 0, "item 0")
    has_surrogate = any(0xD800 <= ord(c) <= 0xDFFF for c in text)
    assert (record.document is None) == has_surrogate


# -- query translation -------------------------------------------------------------------------------------

sparse_vectors = st.dictionaries(
    st.integers(0, 30521), st.floats(min_value=0.0009765625, max_value=65536.0, width=32), max_size=300
).map(SparseVector.from_dict)


@given(sparse_vectors, st.none() | st.integers(1, 200), st.none() | st.floats(min_value=1e-3, max_value=1e4))
def test_sparse_queries_translate_to_finite_json_engines_accept(
    vec: SparseVector, max_terms: int | None, max_weight: float | None
) -> None:
    from spladebridge.connectors.es_bodies import sparse_vector_query
    from spladebridge.connectors.lucene import clean_query_vector
    from spladebridge.connectors.lucene_queries import rank_features_query

    cleaned = clean_query_vector(vec, max_terms=max_terms, max_weight=max_weight).vector
    assert max_terms is None or cleaned.nnz <= max_terms
    assert max_weight is None or not cleaned.nnz or cleaned.max_weight() <= max_weight
    namer = FeatureNamer(default_vocabulary_cached())
    features = namer.to_features(cleaned)
    for body in (sparse_vector_query("splade", features), rank_features_query("splade", features)):
        text = json.dumps(body, allow_nan=False)  # NaN / inf would be rejected by the engine
        assert json.loads(text) == body
    assert all(engine_rejects(name) is None and 0 < w < math.inf for name, w in features.items())
    assert namer.from_features(features) == cleaned


_VOCAB: list[str] = []


def default_vocabulary_cached() -> list[str]:
    if not _VOCAB:
        _VOCAB.extend(default_vocabulary())
    return _VOCAB
