"""The ingest pipeline with fake encoders and an in-memory connector: counts, bad input, stops, resume."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from ingest_fakes import (
    HashDenseEncoder,
    HashSparseEncoder,
    MemoryConnector,
    corpus,
    write_jsonl,
)

from spladebridge.checkpoint import CheckpointError
from spladebridge.connectors.base import Document, ItemOutcome
from spladebridge.ingest import IngestInterrupted, ingest
from spladebridge.readers import ReaderError


def run(source: Any, connector: MemoryConnector, tmp_path: Path, **kw: Any) -> Any:
    kw.setdefault("checkpoint", tmp_path / "ckpt.json")
    kw.setdefault("dead_letter", tmp_path / "dead.jsonl")
    return ingest(source, connector, kw.pop("sparse", HashSparseEncoder()), kw.pop("dense", None), **kw)


def dead_letters(tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "dead.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_jsonl_lands_with_fields_metadata_and_vectors(tmp_path: Path) -> None:
    src = write_jsonl(tmp_path / "c.jsonl", corpus(25))
    conn = MemoryConnector()
    dense = HashDenseEncoder(dim=8)
    report = run(src, conn, tmp_path, dense=dense, batch_size=4)
    assert (report.read, report.encoded, report.written, report.failed) == (25, 25, 25, 0)
    assert report.ok and report.complete and report.docs_per_s > 0
    doc = conn.store["d3"]
    assert doc.fields == {"title": "title 3", "text": "document number 3 about topic 3"}
    assert doc.metadata == {"year": 2003}
    assert doc.sparse is not None and doc.sparse.nnz > 0
    assert doc.dense is not None and doc.dense.shape == (8,)
    assert conn.spec is not None and conn.spec.dense_dim == 8 and conn.spec.text_fields == ("title", "text")
    assert conn.flushes >= 1
    assert not (tmp_path / "dead.jsonl").exists()  # a clean run leaves no dead-letter file


def test_bad_lines_are_reported_with_line_numbers_and_the_rest_goes_on(tmp_path: Path) -> None:
    rows: list[Any] = corpus(3)
    rows.insert(1, '{"_id": "broken", "text": ')  # line 2: malformed JSON
    rows.insert(2, {"title": "no id here", "text": "x"})  # line 3: missing id
    rows.insert(3, {"_id": "notext", "year": 1})  # line 4: no text field
    rows.insert(4, {"_id": "numtext", "text": 42})  # line 5: text not a string
    rows.insert(5, {"_id": "huge", "text": "word " * 3000})  # line 6: over max_text_chars
    src = write_jsonl(tmp_path / "c.jsonl", rows)
    with src.open("a") as handle:
        handle.write("\n   \n")  # blank lines are not items
    conn = MemoryConnector()
    report = run(src, conn, tmp_path, max_text_chars=10_000)
    assert report.read == 8 and report.written == 3 and report.failed == 5
    assert report.complete and not report.ok
    errors = {f.where: f.error for f in report.failures}
    assert "malformed JSON" in errors["line 2"]
    assert "missing id field '_id' or 'id'" in errors["line 3"]
    assert "none of the text fields 'title', 'text'" in errors["line 4"]
    assert "must be a string, got int" in errors["line 5"]
    assert "over the limit of 10,000" in errors["line 6"]
    assert set(conn.store) == {"d0", "d1", "d2"}
    entries = dead_letters(tmp_path)
    assert [e["where"] for e in entries] == ["line 2", "line 3", "line 4", "line 5", "line 6"]
    assert entries[0]["record"] == '{"_id": "broken", "text": '  # the raw line, to fix and re-ingest
    assert entries[1]["record"] == {"title": "no id here", "text": "x"}
    assert all(e["stage"] == "read" for e in entries)


def test_empty_file_is_a_complete_run_that_writes_nothing(tmp_path: Path) -> None:
    src = tmp_path / "empty.jsonl"
    src.write_text("")
    conn = MemoryConnector()
    report = run(src, conn, tmp_path)
    assert (report.read, report.written, report.failed) == (0, 0, 0)
    assert report.complete and report.ok and conn.upsert_calls == 0
    assert json.loads((tmp_path / "ckpt.json").read_text())["complete"] is True


def test_missing_file_and_unknown_format_fail_before_any_work(tmp_path: Path) -> None:
    conn = MemoryConnector()
    with pytest.raises(ReaderError, match="not found"):
        run(tmp_path / "nope.jsonl", conn, tmp_path)
    odd = tmp_path / "data.txt"
    odd.write_text("x")
    with pytest.raises(ReaderError, match="cannot tell the format"):
        run(odd, conn, tmp_path)
    assert conn.spec is None  # the index was not touched


def test_duplicate_ids_last_occurrence_wins_and_are_counted(tmp_path: Path) -> None:
    rows = corpus(6)
    rows.append({"_id": "d1", "text": "d1 again, later batch"})  # later batch
    rows.append({"_id": "d6", "text": "first d6"})
    rows.append({"_id": "d6", "text": "second d6 same batch"})
    src = write_jsonl(tmp_path / "c.jsonl", rows)
    conn = MemoryConnector()
    report = run(src, conn, tmp_path, batch_size=3)
    assert report.duplicates == 2
    assert conn.store["d1"].fields == {"text": "d1 again, later batch"}
    assert conn.store["d6"].fields == {"text": "second d6 same batch"}
    assert report.skipped == 1  # "first d6" was superseded inside its batch, never encoded
    assert report.written == 8 and report.read == 9 and report.complete
    assert conn.upserted_ids.count("d6") == 1


def test_engine_failing_mid_run_stops_resumably_without_resending(tmp_path: Path) -> None:
    src = write_jsonl(tmp_path / "c.jsonl", corpus(40))

    def down_after_three(call: int, docs: list[Document]) -> list[ItemOutcome] | None:
        if call > 3:
            raise ConnectionError("engine unreachable")
        return None

    conn = MemoryConnector(fail=down_after_three)
    report = run(src, conn, tmp_path, batch_size=5)
    assert report.stopped is not None and "ConnectionError: engine unreachable" in report.stopped
    assert "5 documents of this batch were not written" in report.stopped
    assert not report.complete and not report.ok
    assert report.written == 15 and conn.upsert_calls == 3 + 1  # the connector retries; ingest never
    ckpt = json.loads((tmp_path / "ckpt.json").read_text())
    assert ckpt["watermark"] == 15 and ckpt["above"] == [] and ckpt["complete"] is False

    # resume against a healthy engine: only the rest is encoded, and the final state is the full corpus
    conn.fail = None
    sparse = HashSparseEncoder()
    resumed = run(src, conn, tmp_path, batch_size=5, sparse=sparse)
    assert resumed.complete and resumed.skipped == 15 and resumed.written == 25
    assert len(sparse.texts) == 25
    reference = MemoryConnector()
    run(write_jsonl(tmp_path / "ref.jsonl", corpus(40)), reference, tmp_path / "ref", batch_size=7)
    assert conn.state() == reference.state()


def test_retryable_outcomes_stop_the_run_and_permanent_ones_are_dead_lettered(tmp_path: Path) -> None:
    """A retryable outcome is what is left after the connector's own retries: ingest does not send it again,
    it dead-letters the rejected item, keeps what landed, and stops; a resume sends only what is missing."""
    src = write_jsonl(tmp_path / "c.jsonl", corpus(6))
    seen: dict[str, int] = {}

    def per_item(call: int, docs: list[Document]) -> list[ItemOutcome]:
        out = []
        for d in docs:
            seen[str(d.id)] = seen.get(str(d.id), 0) + 1
            if d.id == "d2":
                out.append(ItemOutcome(d.id, ok=False, status="400", error="mapper_parsing_exception"))
            elif d.id == "d4" and seen["d4"] == 1:
                out.append(
                    ItemOutcome(
                        d.id, ok=False, status="429", error="too many requests", retryable=True, attempts=5
                    )
                )
            else:
                out.append(ItemOutcome(d.id, ok=True, status="ok"))
        return out

    conn = MemoryConnector(fail=per_item)
    report = run(src, conn, tmp_path, batch_size=6)
    assert report.stopped == (
        "the engine still fails after 5 attempts (too many requests); 1 documents of this batch were not written"
    )
    assert report.written == 4 and report.failed == 1 and not report.complete and report.pending == 1
    assert seen == {f"d{i}": 1 for i in range(6)} and conn.upsert_calls == 1  # nothing was sent twice
    [entry] = dead_letters(tmp_path)
    assert entry["id"] == "d2" and entry["stage"] == "write" and "mapper_parsing" in entry["error"]
    assert entry["record"]["text"] == "document number 2 about topic 2"

    resumed = run(src, conn, tmp_path, batch_size=6)
    assert resumed.complete and resumed.written == 1 and resumed.skipped == 5
    assert seen["d4"] == 2 and seen["d2"] == 1 and seen["d0"] == 1  # only the unwritten item went again
    assert len(dead_letters(tmp_path)) == 1 and "d4" in conn.store


def test_retry_settings_are_refused_with_where_the_policy_lives(tmp_path: Path) -> None:
    src = write_jsonl(tmp_path / "c.jsonl", corpus(3))
    for name, value in (("max_retries", 3), ("retry_backoff_s", 0.5), ("max_backoff_s", 30.0)):
        with pytest.raises(TypeError, match=f"no longer retries writes, so it takes no {name}") as info:
            ingest(src, MemoryConnector(), HashSparseEncoder(), **{name: value})
        assert "RetryPolicy(max_retries=" in str(info.value)
    assert not (tmp_path / "ckpt.json").exists()


def test_one_unencodable_document_fails_alone(tmp_path: Path) -> None:
    src = write_jsonl(tmp_path / "c.jsonl", corpus(8))
    sparse = HashSparseEncoder(fail_on="number 5 ")
    conn = MemoryConnector()
    report = run(src, conn, tmp_path, sparse=sparse, batch_size=4)
    assert report.written == 7 and report.failed == 1 and report.encoded == 7
    [failure] = report.failures
    assert failure.id == "d5" and failure.stage == "encode" and "cannot encode" in failure.error


def test_ctrl_c_then_resume_reaches_the_uninterrupted_state(tmp_path: Path) -> None:
    rows = corpus(30)
    rows[7] = {"_id": "d1", "text": "duplicate of d1"}  # a duplicate id spanning the interruption
    src = write_jsonl(tmp_path / "c.jsonl", rows)
    conn = MemoryConnector()
    with pytest.raises(IngestInterrupted) as info:
        run(src, conn, tmp_path, batch_size=4, sparse=HashSparseEncoder(interrupt_on_call=4))
    partial = info.value.report
    assert partial.interrupted and not partial.complete and partial.written == 12
    assert isinstance(info.value, KeyboardInterrupt)

    sparse = HashSparseEncoder()
    resumed = run(src, conn, tmp_path, batch_size=4, sparse=sparse)
    assert resumed.complete and resumed.skipped == 12 and len(sparse.texts) == 18
    reference = MemoryConnector()
    run(src, reference, tmp_path / "ref", batch_size=4)
    assert conn.state() == reference.state()
    assert conn.store["d1"].fields == {"text": "duplicate of d1"}


def test_completed_checkpoint_makes_a_rerun_a_no_op(tmp_path: Path) -> None:
    src = write_jsonl(tmp_path / "c.jsonl", corpus(12))
    conn = MemoryConnector()
    run(src, conn, tmp_path)
    sparse = HashSparseEncoder()
    again = run(src, conn, tmp_path, sparse=sparse)
    assert again.skipped == 12 and again.written == 0 and sparse.calls == 0 and again.complete
    restarted = run(src, conn, tmp_path, sparse=HashSparseEncoder(), restart=True)
    assert restarted.written == 12 and restarted.skipped == 0


def test_checkpoint_for_another_input_is_refused(tmp_path: Path) -> None:
    src = write_jsonl(tmp_path / "c.jsonl", corpus(5))
    run(src, MemoryConnector(), tmp_path)
    write_jsonl(src, corpus(6))
    with pytest.raises(CheckpointError, match="another input"):
        run(src, MemoryConnector(), tmp_path)
    with pytest.raises(CheckpointError, match="another target"):
        run(write_jsonl(src, corpus(5)), MemoryConnector(), tmp_path, text_fields=("text",))


def test_writer_bug_is_surfaced_not_lost(tmp_path: Path) -> None:
    src = write_jsonl(tmp_path / "c.jsonl", corpus(10))

    def short(call: int, docs: list[Document]) -> list[ItemOutcome]:
        return [ItemOutcome(docs[0].id, ok=True, status="ok")]  # one outcome for many documents

    report = run(src, MemoryConnector(fail=short), tmp_path, batch_size=5)
    assert report.stopped is not None and "1 outcomes for 5 documents" in report.stopped
    assert not report.complete and report.written == 0


def test_reader_never_runs_more_than_the_queue_ahead_of_the_writer(tmp_path: Path) -> None:
    src = write_jsonl(tmp_path / "c.jsonl", corpus(60))
    sparse = HashSparseEncoder()
    ahead: list[int] = []
    lock = threading.Lock()

    class Watching(MemoryConnector):
        def upsert(self, documents: Any) -> Any:
            with lock:
                ahead.append(len(sparse.texts) - len(self.store))
            return super().upsert(documents)

    conn = Watching(write_delay_s=0.01)
    report = run(src, conn, tmp_path, sparse=sparse, batch_size=3, queue_size=2)
    assert report.written == 60
    # encoded but not yet written: at most the queue, the batch being written and the one being put
    assert max(ahead) <= (2 + 2) * 3


def test_iterable_of_dicts_and_documents(tmp_path: Path) -> None:
    items: list[Any] = [{"id": 1, "text": "one"}, Document(id=2, fields={"text": "two"}, metadata={"k": "v"})]
    items.append({"id": -3, "text": "bad id"})
    conn = MemoryConnector()
    report = ingest(iter(items), conn, HashSparseEncoder(), text_fields=("text",), progress=False)
    assert set(conn.store) == {1, 2} and conn.store[2].metadata == {"k": "v"}
    assert report.failed == 1 and report.failures[0].where == "item 2"
    assert "non-negative integer" in report.failures[0].error


def test_dense_encoder_must_fit_the_index(tmp_path: Path) -> None:
    from spladebridge.connectors.base import IndexSpec

    src = write_jsonl(tmp_path / "c.jsonl", corpus(2))
    spec = IndexSpec(name="x", dense_field=None)
    with pytest.raises(ValueError, match="no dense field"):
        run(src, MemoryConnector(), tmp_path, spec=spec, dense=HashDenseEncoder())
    spec = IndexSpec(name="x", dense_dim=16)
    with pytest.raises(ValueError, match="8-dimensional"):
        run(src, MemoryConnector(), tmp_path, spec=spec, dense=HashDenseEncoder(dim=8))
    with pytest.raises(ValueError, match="holds 16-dimensional dense vectors"):
        run(src, MemoryConnector(), tmp_path, spec=spec)


def test_package_level_ingest_is_callable_whatever_the_import_order(tmp_path: Path) -> None:
    import spladebridge
    import spladebridge.ingest as module  # binds the submodule onto the package

    assert module.IngestReport is not None
    conn = MemoryConnector()
    report = spladebridge.ingest(
        write_jsonl(tmp_path / "c.jsonl", corpus(3)), conn, HashSparseEncoder(), progress=False
    )
    assert report.written == 3 and set(conn.store) == {"d0", "d1", "d2"}


def test_progress_bar_draws_only_when_asked_or_on_a_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = write_jsonl(tmp_path / "c.jsonl", corpus(5))
    ingest(src, MemoryConnector(), HashSparseEncoder())  # progress=None: stderr is not a TTY under pytest
    assert capsys.readouterr().err == ""
    ingest(src, MemoryConnector(), HashSparseEncoder(), progress=True)
    err = capsys.readouterr().err
    assert "ingest" in err and "5/5" in err
