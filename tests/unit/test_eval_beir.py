"""BEIR loader: what it reads, and that each malformed input names its file and line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from spladebridge.evaluation.beir import DatasetError, load_beir, read_qrels


def write_beir(
    root: Path,
    docs: list[dict[str, object]] | None = None,
    queries: list[dict[str, object]] | None = None,
    qrels: dict[str, str] | None = None,
) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    docs = (
        docs
        if docs is not None
        else [{"_id": "d1", "title": "T1", "text": "one"}, {"_id": "d2", "text": "two"}]
    )
    queries = (
        queries if queries is not None else [{"_id": "q1", "text": "one?"}, {"_id": "q2", "text": "two?"}]
    )
    qrels = qrels if qrels is not None else {"test": "query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t2\n"}
    (root / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    (root / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    (root / "qrels").mkdir(exist_ok=True)
    for split, text in qrels.items():
        (root / "qrels" / f"{split}.tsv").write_text(text)
    return root


def test_loads_corpus_queries_and_splits(tmp_path: Path) -> None:
    root = write_beir(
        tmp_path / "mini",
        qrels={"test": "query-id\tcorpus-id\tscore\nq1\td1\t1\n", "train": "q2\td2\t2\n"},
    )
    ds = load_beir(root)
    assert ds.name == "mini"
    assert ds.corpus["d1"] == {"title": "T1", "text": "one"}
    assert ds.corpus["d2"]["title"] == ""
    assert ds.qrels["test"] == {"q1": {"d1": 1}}
    assert ds.qrels["train"] == {"q2": {"d2": 2}}
    assert ds.judged_queries("test") == {"q1": "one?"}
    assert ds.doc_text("d1") == "T1 one"
    assert ds.doc_text("d2") == "two"


def test_tuning_split_prefers_dev_and_never_returns_test(tmp_path: Path) -> None:
    only_test = load_beir(write_beir(tmp_path / "a"))
    assert only_test.tuning_split() is None
    both = load_beir(
        write_beir(
            tmp_path / "b", qrels={"test": "q1\td1\t1\n", "train": "q1\td1\t1\n", "dev": "q2\td2\t1\n"}
        )
    )
    assert both.tuning_split() == "dev"


def test_fingerprint_follows_content(tmp_path: Path) -> None:
    first = load_beir(write_beir(tmp_path / "a")).fingerprint
    same = load_beir(write_beir(tmp_path / "b")).fingerprint
    changed = load_beir(
        write_beir(tmp_path / "c", docs=[{"_id": "d1", "text": "other"}, {"_id": "d2", "text": "two"}])
    )
    assert first == same
    assert changed.fingerprint != first


def test_integer_ids_become_strings(tmp_path: Path) -> None:
    ds = load_beir(
        write_beir(
            tmp_path / "a",
            docs=[{"_id": 7, "text": "x"}],
            queries=[{"_id": 1, "text": "x"}],
            qrels={"test": "1\t7\t1\n"},
        )
    )
    assert list(ds.corpus) == ["7"]
    assert ds.qrels["test"] == {"1": {"7": 1}}


def test_missing_folder_and_files(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="not a directory"):
        load_beir(tmp_path / "nope")
    root = write_beir(tmp_path / "a")
    (root / "queries.jsonl").unlink()
    with pytest.raises(DatasetError, match=r"queries\.jsonl: file not found"):
        load_beir(root)
    root = write_beir(tmp_path / "b")
    (root / "qrels" / "test.tsv").unlink()
    with pytest.raises(DatasetError, match=r"test\.tsv: file not found"):
        load_beir(root)


def test_bad_json_line_is_named(tmp_path: Path) -> None:
    root = write_beir(tmp_path / "a")
    with (root / "corpus.jsonl").open("a") as handle:
        handle.write("{not json\n")
    with pytest.raises(DatasetError, match=r"corpus\.jsonl:3: invalid JSON"):
        load_beir(root)


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"title": "x", "text": "y"}, r"corpus\.jsonl:2: missing field '_id'"),
        ({"_id": "d3"}, r"corpus\.jsonl:2: missing field 'text'"),
        ({"_id": "d3", "text": ["list"]}, r"corpus\.jsonl:2: field 'text' must be a string"),
        ({"_id": "d1", "text": "dup"}, r"corpus\.jsonl:2: duplicate document id 'd1'"),
    ],
)
def test_bad_documents(tmp_path: Path, doc: dict[str, object], message: str) -> None:
    root = write_beir(tmp_path / "a", docs=[{"_id": "d1", "text": "one"}, doc])
    with pytest.raises(DatasetError, match=message):
        load_beir(root)


def test_qrels_errors_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "q.tsv"
    path.write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td2\n")
    with pytest.raises(DatasetError, match=r"q\.tsv:3: expected 3 tab-separated columns, got 2"):
        read_qrels(path)
    path.write_text("q1\td1\thigh\n")
    with pytest.raises(DatasetError, match=r"q\.tsv:1: relevance 'high' is not an integer"):
        read_qrels(path)


def test_judged_query_missing_from_queries_is_an_error(tmp_path: Path) -> None:
    root = write_beir(tmp_path / "a", qrels={"test": "q9\td1\t1\n"})
    with pytest.raises(DatasetError, match=r"1 judged query id.*'q9'"):
        load_beir(root)


def test_judged_document_missing_from_corpus_is_noted(tmp_path: Path) -> None:
    ds = load_beir(write_beir(tmp_path / "a", qrels={"test": "q1\td1\t1\nq1\tgone\t1\n"}))
    assert ds.qrels["test"]["q1"] == {"d1": 1, "gone": 1}
    assert ds.notes == ("test: 1 judged document id(s) are not in the corpus",)


def test_unknown_split_lists_the_existing_ones(tmp_path: Path) -> None:
    ds = load_beir(write_beir(tmp_path / "a"))
    with pytest.raises(DatasetError, match=r"no qrels split 'dev' \(found: test\)"):
        ds.split("dev")
