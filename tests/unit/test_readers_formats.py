"""Readers: JSONL, CSV and Parquet give the same documents; bad items become error records, never exceptions."""

from __future__ import annotations

import csv
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from ingest_fakes import corpus, write_jsonl

from spladebridge.readers import (
    ReaderError,
    RecordParser,
    count_items,
    detect_format,
    fingerprint,
    iter_records,
)

PARSER = RecordParser()


def docs_of(
    path: Path, parser: RecordParser = PARSER
) -> list[tuple[object, dict[str, str], dict[str, object]]]:
    out = []
    for rec in iter_records(path, parser):
        assert rec.document is not None, rec.error
        out.append((rec.document.id, rec.document.fields, rec.document.metadata))
    return out


def test_jsonl_csv_and_parquet_read_the_same_documents(tmp_path: Path) -> None:
    rows = [{"_id": f"d{i}", "title": f"t{i}", "text": f"body {i}", "lang": "en"} for i in range(5)]
    jsonl = write_jsonl(tmp_path / "c.jsonl", rows)
    with (tmp_path / "c.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["_id", "title", "text", "lang"])
        writer.writeheader()
        writer.writerows(rows)
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "c.parquet")
    expected = [(r["_id"], {"title": r["title"], "text": r["text"]}, {"lang": "en"}) for r in rows]
    assert docs_of(jsonl) == expected
    assert docs_of(tmp_path / "c.csv") == expected
    assert docs_of(tmp_path / "c.parquet") == expected
    assert count_items(jsonl) == count_items(tmp_path / "c.csv") == count_items(tmp_path / "c.parquet") == 5


def test_csv_quoted_newlines_and_bad_rows_keep_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text('id,text\n1,"first\nspans two lines"\n2,a,extra\n3,third\n,no id\n')
    records = list(iter_records(path, PARSER))
    assert [r.position for r in records] == [0, 1, 2, 3]
    assert records[0].document is not None and records[0].document.fields["text"] == "first\nspans two lines"
    assert records[1].error == "line 4: 3 columns, the header has 2"
    assert records[2].document is not None and records[2].document.id == "3"
    assert records[3].error is not None and records[3].error.startswith(
        "line 6: field 'id': id is an empty string"
    )


def test_csv_field_over_the_default_csv_limit_is_judged_by_max_text_chars(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text("id,text\n1," + "w" * 200_000 + "\n2,ok\n")
    records = list(iter_records(path, RecordParser(max_text_chars=100_000)))
    assert records[0].error is not None and "200,000 characters" in records[0].error
    assert records[1].document is not None and records[1].document.fields == {"text": "ok"}
    accepted = list(iter_records(path, RecordParser(max_text_chars=300_000)))
    assert accepted[0].document is not None and len(accepted[0].document.fields["text"]) == 200_000


def test_parquet_integer_ids_and_nulls(tmp_path: Path) -> None:
    table = pa.table({"id": [1, 2, None], "text": ["a", None, "c"], "score": [0.5, 1.5, 2.5]})
    pq.write_table(table, tmp_path / "p.parquet")
    records = list(iter_records(tmp_path / "p.parquet", RecordParser(text_fields=("text",))))
    assert records[0].document is not None and records[0].document.id == 1
    assert records[0].document.metadata == {"score": 0.5}
    assert records[1].error == "row 2: document 2 has none of the text fields 'text'"
    assert records[2].error == "row 3: missing id field '_id' or 'id'"


def test_jsonl_problems_each_become_a_record(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "c.jsonl",
        [
            '{"_id": 1, "text": "ok"}',
            "[1, 2]",
            '{"_id": true, "text": "x"}',
            '{"_id": 2.0, "text": "float id"}',
        ],
    )
    with path.open("ab") as handle:
        handle.write(b'{"_id": "bin", "text": "\xff\xfe"}\n')
    records = list(iter_records(path, PARSER))
    assert records[0].document is not None and records[0].document.id == 1
    assert records[1].error == "line 2: expected an object, got list"
    assert records[2].error is not None and "got bool True" in records[2].error
    assert records[3].document is not None and records[3].document.id == 2
    assert records[4].error is not None and records[4].error.startswith("line 5: not valid UTF-8")


def test_named_id_field_and_text_fields(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "c.jsonl", [{"doc": "a", "_id": "ignored", "body": "b", "title": "t"}])
    parser = RecordParser(id_field="doc", text_fields=("body",))
    [(doc_id, fields, metadata)] = docs_of(path, parser)
    assert doc_id == "a" and fields == {"body": "b"} and metadata == {"_id": "ignored", "title": "t"}


def test_format_detection_and_fingerprint(tmp_path: Path) -> None:
    assert detect_format("x.ndjson") == "jsonl" and detect_format("x.PQ") == "parquet"
    assert detect_format("x.data", "csv") == "csv"
    with pytest.raises(ReaderError, match="compressed"):
        detect_format("x.jsonl.gz")
    with pytest.raises(ReaderError, match="unknown input format"):
        detect_format("x.jsonl", "xml")
    path = write_jsonl(tmp_path / "c.jsonl", corpus(3))
    before = fingerprint(path)
    assert before == fingerprint(path) and before["size"] == path.stat().st_size
    write_jsonl(path, corpus(3, start=1))
    assert fingerprint(path) != before
