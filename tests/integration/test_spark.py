"""spladebridge.spark on a real local Spark (local[2,3], the machine's Java) and Qdrant Edge.

The vectors Spark computes are those of SpladeEncoder / DenseEncoder; writes land exactly once even when a task
fails half-way and Spark retries it; rows that cannot be written reach the dead letters with their reason; the
CLI's `--spark` runs ingest's encode stage on Spark with ingest's own checkpoint.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import spladebridge as sb
from spladebridge.cli import main
from spladebridge.testing.spark import fail_first_attempt

pytestmark = pytest.mark.slow

ADI = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "adi" / "corpus.jsonl"


@pytest.fixture(scope="module")
def corpus() -> list[dict[str, Any]]:
    if not ADI.is_file():
        pytest.skip(f"the adi collection is not at {ADI}")
    return [json.loads(line) for line in ADI.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def frame(spark: Any, corpus: list[dict[str, Any]]) -> Any:
    rows = [(int(d["_id"]), d["title"], d["text"], int(d["_id"]) % 3) for d in corpus]
    return spark.createDataFrame(rows, "id long, title string, text string, shard int").repartition(3)


@pytest.fixture(scope="module")
def encoded(frame: Any) -> list[Any]:
    from spladebridge.spark import encode

    return sorted(encode(frame, ["title", "text"]).collect(), key=lambda row: row["id"])


def test_spark_vectors_equal_the_encoders(encoded: list[Any], corpus: list[dict[str, Any]]) -> None:
    texts = [f"{d['title']}\n{d['text']}" for d in sorted(corpus, key=lambda d: int(d["_id"]))]
    sparse = sb.SpladeEncoder().encode_documents(texts)
    dense = sb.DenseEncoder().encode(texts)
    assert len(encoded) == len(texts) == 82
    worst_sparse, worst_cos = 0.0, 1.0
    for row, vector, reference in zip(encoded, sparse, dense, strict=True):
        assert row["encode_error"] is None
        assert list(row["sparse_indices"]) == vector.indices.tolist()
        worst_sparse = max(
            worst_sparse, float(np.abs(np.asarray(row["sparse_values"]) - vector.values).max())
        )
        got = np.asarray(row["dense"], dtype=np.float64)
        worst_cos = min(worst_cos, float(got @ reference / np.linalg.norm(got) / np.linalg.norm(reference)))
    assert worst_sparse <= 1e-5
    assert worst_cos >= 0.9999


def test_encode_refuses_bad_columns(frame: Any) -> None:
    from spladebridge.spark import encode

    with pytest.raises(ValueError, match="body"):
        encode(frame, ["title", "body"])
    with pytest.raises(ValueError, match="must be strings: shard"):
        encode(frame, ["shard"])


def test_write_to_qdrant_edge_from_the_driver_exactly_once(
    spark: Any, frame: Any, corpus: list[dict[str, Any]], tmp_path: Path
) -> None:
    from spladebridge.spark import encode, write

    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", "8")
    try:
        report = write(
            fail_first_attempt(encode(frame, ["title", "text"])), f"qdrant-edge://{tmp_path}", index="adi"
        )
    finally:
        spark.conf.unset("spark.sql.execution.arrow.maxRecordsPerBatch")
    assert report.written_from == "driver"
    assert (report.written, report.failed) == (82, 0)
    with sb.connect(f"qdrant-edge://{tmp_path}", index="adi") as conn:
        assert conn.count() == 82
        assert sorted(d.id for d in conn.scan()) == sorted(int(d["_id"]) for d in corpus)
        doc = conn.get([5])[0]
        assert doc is not None
        source = next(d for d in corpus if d["_id"] == "5")
        assert doc.fields == {"title": source["title"], "text": source["text"]}
        assert doc.metadata == {"shard": 2}
        expected = sb.SpladeEncoder().encode_documents([f"{source['title']}\n{source['text']}"])[0]
        assert doc.sparse is not None and doc.sparse.indices.tolist() == expected.indices.tolist()
        hits = conn.search_sparse(expected, k=1)
        assert hits[0].id == 5


def test_bad_rows_reach_the_dead_letters_with_their_reason(spark: Any, tmp_path: Path) -> None:
    from spladebridge.spark import encode, write

    rows = [
        ("a", "fine text about retrieval"),
        (None, "a row without an id"),
        ("c", None),
        ("d", "   "),
        ("e", "another fine text"),
    ]
    df = spark.createDataFrame(rows, "id string, text string")
    dead_file = tmp_path / "dead.jsonl"
    report = write(
        encode(df, ["text"], dense=False),
        f"qdrant-edge://{tmp_path}",
        index="bad",
        text_cols=["text"],
        dead_letter=dead_file,
    )
    assert (report.written, report.failed) == (2, 3)
    assert report.dead_letters is not None
    dead = {row["where"]: row for row in report.dead_letters.collect()}
    reasons = sorted((row["id"] or "", row["stage"], row["error"].split(": ", 1)[1]) for row in dead.values())
    assert reasons == [
        ("", "read", "id column 'id' is null"),
        ("c", "encode", "no text in column(s) text"),
        ("d", "encode", "no text in column(s) text"),
    ]
    lines = [json.loads(line) for line in dead_file.read_text().splitlines()]
    assert sorted(line["record"]["text"] or "" for line in lines) == ["", "   ", "a row without an id"]
    with sb.connect(f"qdrant-edge://{tmp_path}", index="bad") as conn:
        assert sorted(d.id for d in conn.scan()) == ["a", "e"]


def test_write_refuses_a_frame_that_was_not_encoded(frame: Any, tmp_path: Path) -> None:
    from spladebridge.spark import write

    with pytest.raises(ValueError, match=r"encode it first with spladebridge\.spark\.encode"):
        write(frame, f"qdrant-edge://{tmp_path}", index="x")


def test_cli_index_encodes_on_spark_with_the_ingest_checkpoint(
    spark: Any, corpus: list[dict[str, Any]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "adi.jsonl"
    source.write_text("".join(json.dumps(d) + "\n" for d in corpus[:40]))
    url = f"qdrant-edge://{tmp_path / 'engine'}"
    argv = [
        "index",
        str(source),
        "--url",
        url,
        "--index",
        "adi",
        "--spark",
        "local[2,3]",
        "--batch-size",
        "8",
    ]
    argv += ["--state-dir", str(tmp_path / "state"), "--json", "--quiet"]
    assert main(argv) == 0
    first = json.loads(capsys.readouterr().out)
    assert (first["written"], first["failed"], first["complete"]) == (40, 0, True)
    with sb.connect(url, index="adi") as conn:
        assert conn.count() == 40
        doc = conn.get(["7"])[0]
    source_doc = corpus[6]
    assert source_doc["_id"] == "7" and doc is not None
    reference = sb.SpladeEncoder().encode_documents([f"{source_doc['title']}\n{source_doc['text']}"])[0]
    assert doc.sparse is not None and doc.sparse.indices.tolist() == reference.indices.tolist()
    # a second run finds the checkpoint complete: nothing is encoded or written again
    assert main(argv) == 0
    second = json.loads(capsys.readouterr().out)
    assert (second["written"], second["encoded"], second["skipped"]) == (0, 0, 40)


def test_cli_migrate_copy_encodes_on_spark_and_verifies(
    spark: Any, corpus: list[dict[str, Any]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "adi.jsonl"
    source.write_text("".join(json.dumps(d) + "\n" for d in corpus[:30]))
    url = f"qdrant-edge://{tmp_path / 'engine'}"
    argv = ["migrate", str(source), "--mode", "copy", "--to", url, "--target-index", "adi", "--dense"]
    argv += [
        "--spark",
        "local[2,3]",
        "--batch-size",
        "8",
        "--state-dir",
        str(tmp_path / "state"),
        "--json",
        "-q",
    ]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["written"] == 30 and report["failed"] == 0
    assert report["verification"]["ok"] is True
    with sb.connect(url, index="adi") as conn:
        assert conn.count() == 30
        doc = conn.get(["3"])[0]
    text = f"{corpus[2]['title']}\n{corpus[2]['text']}"
    assert doc is not None and doc.dense is not None
    assert float(doc.dense @ sb.DenseEncoder().encode([text])[0]) >= 0.9999
