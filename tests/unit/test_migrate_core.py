"""The engine-neutral migration loop on an in-memory target: checkpoint, resume, failures, no-op re-run."""

from __future__ import annotations

import contextlib
import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from migrate_fakes import HashSparseEncoder, MemoryTarget

from spladebridge.connectors.base import Document
from spladebridge.migrate import (
    MigrationError,
    RecordFileSource,
    SourceChanged,
    StateError,
    migrate,
)
from spladebridge.migrate.state import MigrationState
from spladebridge.migrate.verify import Sampler, field_digests


def _corpus(path: Path, n: int, *, bad_lines: tuple[int, ...] = ()) -> Path:
    lines = []
    for i in range(n):
        if i in bad_lines:
            lines.append("{not json")
            continue
        lines.append(
            json.dumps(
                {
                    "_id": f"d{i}",
                    "title": f"title {i}",
                    "text": f"word{i % 7} shared text {i}",
                    "year": 2000 + i,
                }
            )
        )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_copies_every_document_with_vectors_and_metadata(tmp_path: Path) -> None:
    source = RecordFileSource(_corpus(tmp_path / "c.jsonl", 23))
    target = MemoryTarget()
    report = migrate(source, target, HashSparseEncoder(), batch_size=5, checkpoint=tmp_path / "ck.json")
    assert report.ok and report.finished
    assert (report.read, report.written, report.failed) == (23, 23, 0)
    assert len(target.writes) == 5  # ceil(23 / 5) batches
    doc = target.docs["d3"]
    assert doc.fields == {"title": "title 3", "text": "word3 shared text 3"}
    assert doc.metadata == {"year": 2003}
    assert doc.sparse is not None and doc.sparse.nnz == 5  # "3" appears twice
    assert report.verification is not None and report.verification.ok
    assert report.verification.target_count == 23
    assert len(report.verification.samples) == 20
    saved = json.loads((tmp_path / "ck.json").read_text())
    assert saved["phase"] == "finished" and saved["counts"]["written"] == 23
    assert saved["cursor"] == {"position": 23, "last_id": "d22"}


def test_checkpoint_after_every_batch_and_resume_without_rewriting(tmp_path: Path) -> None:
    corpus = _corpus(tmp_path / "c.jsonl", 20)
    ck = tmp_path / "ck.json"
    saved: list[dict[str, Any]] = []

    class Stop(ConnectionError):
        pass

    class StoppingTarget(MemoryTarget):
        def write(self, documents: Any) -> Any:
            if len(self.writes) == 2:  # the third batch dies before it is written
                saved.append(json.loads(ck.read_text()))
                raise Stop
            return super().write(documents)

    first = StoppingTarget()
    with pytest.raises(MigrationError, match="checkpoint stays at the last written batch"):
        migrate(RecordFileSource(corpus), first, HashSparseEncoder(), batch_size=6, checkpoint=ck)
    assert saved[0]["cursor"] == {"position": 12, "last_id": "d11"} and saved[0]["phase"] == "copy"
    # a second target that already holds what the first run wrote (same engine, reopened)
    second = MemoryTarget()
    second.docs.update(first.docs)
    with pytest.raises(MigrationError, match="resume"):
        migrate(RecordFileSource(corpus), second, HashSparseEncoder(), batch_size=6, checkpoint=ck)
    encoder = HashSparseEncoder()
    report = migrate(RecordFileSource(corpus), second, encoder, batch_size=6, checkpoint=ck, resume=True)
    assert report.resumed and report.ok
    assert report.read == 8 and len(encoder.texts) == 8  # only d12..d19 were read and encoded again
    assert [ids[0] for ids in second.writes] == ["d12", "d18"]
    assert sorted(second.docs) == sorted(f"d{i}" for i in range(20))
    assert report.totals["written"] == 20 and report.runs == 2


def test_finished_migration_rerun_changes_nothing(tmp_path: Path) -> None:
    corpus = _corpus(tmp_path / "c.jsonl", 8)
    ck = tmp_path / "ck.json"
    target = MemoryTarget()
    migrate(RecordFileSource(corpus), target, HashSparseEncoder(), batch_size=4, checkpoint=ck)
    before = ck.read_text()
    writes = len(target.writes)
    again = migrate(
        RecordFileSource(corpus), target, HashSparseEncoder(), batch_size=4, checkpoint=ck, resume=True
    )
    assert again.already_finished and again.read == 0
    assert len(target.writes) == writes and target.prepared == 1 and target.finalized == 1
    assert ck.read_text() == before
    assert "nothing was changed" in again.summary()


def test_failures_are_dead_lettered_and_block_finalize(tmp_path: Path) -> None:
    corpus = _corpus(tmp_path / "c.jsonl", 10, bad_lines=(4,))
    lines = corpus.read_text().splitlines()
    lines[6] = json.dumps({"_id": "d6", "title": "t", "text": "POISON here"})
    corpus.write_text("\n".join(lines) + "\n")
    target = MemoryTarget(fail_ids=["d8"])
    dlq = tmp_path / "dead.jsonl"
    report = migrate(
        RecordFileSource(corpus),
        target,
        HashSparseEncoder(fail_on="POISON"),
        batch_size=3,
        checkpoint=tmp_path / "ck.json",
        dead_letter=dlq,
    )
    stages = {f.stage: f for f in report.failures}
    assert set(stages) == {"read", "encode", "write"}
    assert stages["read"].where == "line 5"
    assert stages["encode"].id == "d6" and "POISON" in stages["encode"].error
    assert stages["write"].id == "d8" and "mapper_parsing" in stages["write"].error
    entries = [json.loads(line) for line in dlq.read_text().splitlines()]
    assert sorted(e["stage"] for e in entries) == ["encode", "read", "write"]
    assert report.written == 7 and report.failed == 3
    assert report.verification is not None and not report.verification.counts_ok
    assert report.stopped is not None and "verification failed" in report.stopped
    assert target.finalized == 0 and not report.finished and not report.ok


def test_engine_that_keeps_failing_stops_resumably(tmp_path: Path) -> None:
    corpus = _corpus(tmp_path / "c.jsonl", 6)
    ck = tmp_path / "ck.json"
    target = MemoryTarget(raise_times=10)
    with pytest.raises(MigrationError, match=r"still fails \(ConnectionError: engine unreachable\)"):
        migrate(RecordFileSource(corpus), target, HashSparseEncoder(), batch_size=3, checkpoint=ck)
    assert target.raise_times == 9  # one call: the target retries, migrate never re-sends
    assert json.loads(ck.read_text())["cursor"] is None
    target.raise_times = 0
    report = migrate(
        RecordFileSource(corpus), target, HashSparseEncoder(), batch_size=3, checkpoint=ck, resume=True
    )
    assert report.ok and target.count() == 6


def test_a_still_retryable_item_stops_the_copy_before_its_batch_is_checkpointed(tmp_path: Path) -> None:
    """What the target still reports retryable after its own retries is not sent again here: the batch is
    not checkpointed, and a resume writes it again (by id, so what landed is not duplicated)."""
    corpus = _corpus(tmp_path / "c.jsonl", 9)
    ck, dlq = tmp_path / "ck.json", tmp_path / "dead.jsonl"
    target = MemoryTarget(fail_ids=["d8"], flaky=["d4"])
    with pytest.raises(
        MigrationError, match=r"the target still fails after 1 attempt \(busy\); the checkpoint stays"
    ):
        migrate(RecordFileSource(corpus), target, HashSparseEncoder(), batch_size=3, checkpoint=ck,
                dead_letter=dlq)  # fmt: skip
    assert target.writes == [["d0", "d1", "d2"], ["d3", "d4", "d5"]]
    assert json.loads(ck.read_text())["cursor"] == {"position": 3, "last_id": "d2"}
    assert sorted(target.docs) == ["d0", "d1", "d2", "d3", "d5"]
    report = migrate(
        RecordFileSource(corpus), target, HashSparseEncoder(), batch_size=3, checkpoint=ck, resume=True,
        dead_letter=dlq,
    )  # fmt: skip
    assert target.writes[2:] == [["d3", "d4", "d5"], ["d6", "d7", "d8"]]
    assert sorted(target.docs) == [f"d{i}" for i in range(8)]
    assert report.totals["written"] == 8 and report.totals["failed"] == 1
    assert [json.loads(line)["id"] for line in dlq.read_text().splitlines()] == ["d8"]


def test_retry_settings_are_refused(tmp_path: Path) -> None:
    corpus = _corpus(tmp_path / "c.jsonl", 3)
    refused = r"migrate\(\) no longer retries writes, so it takes no max_retries"
    with pytest.raises(TypeError, match=refused):
        migrate(RecordFileSource(corpus), MemoryTarget(), HashSparseEncoder(), max_retries=2)  # type: ignore[arg-type]


def test_changed_source_is_detected_on_resume(tmp_path: Path) -> None:
    corpus = _corpus(tmp_path / "c.jsonl", 10)
    source = RecordFileSource(corpus)
    batches = list(source.read(None, 4))
    cursor = batches[0].cursor
    assert cursor == {"position": 4, "last_id": "d3"}
    assert [d.id for d in next(iter(source.read(cursor, 4))).documents] == ["d4", "d5", "d6", "d7"]
    with pytest.raises(SourceChanged, match="'d3'"):
        next(iter(source.read({"position": 4, "last_id": "other"}, 4)))
    with pytest.raises(SourceChanged, match="fewer than 50"):
        list(source.read({"position": 50, "last_id": "d49"}, 4))


def test_checkpoint_for_another_migration_is_refused(tmp_path: Path) -> None:
    corpus = _corpus(tmp_path / "c.jsonl", 4)
    ck = tmp_path / "ck.json"
    migrate(RecordFileSource(corpus), MemoryTarget(), HashSparseEncoder(), checkpoint=ck, finalize=False)
    with pytest.raises(StateError, match="another migration"):
        migrate(
            RecordFileSource(corpus, text_fields=("text",)),
            MemoryTarget(),
            HashSparseEncoder(),
            checkpoint=ck,
            resume=True,
        )
    ck.write_text("{broken")
    with pytest.raises(StateError, match="unreadable"):
        MigrationState.open(ck, {"x": 1})


def test_restart_ignores_the_old_checkpoint(tmp_path: Path) -> None:
    corpus = _corpus(tmp_path / "c.jsonl", 5)
    ck = tmp_path / "ck.json"
    migrate(RecordFileSource(corpus), MemoryTarget(), HashSparseEncoder(), checkpoint=ck)
    target = MemoryTarget()
    report = migrate(RecordFileSource(corpus), target, HashSparseEncoder(), checkpoint=ck, restart=True)
    assert report.ok and report.read == 5 and target.count() == 5 and report.runs == 1


def test_sampler_is_independent_of_interruptions() -> None:
    docs = [Document(id=i, fields={"text": f"t{i}"}, metadata={"n": i}) for i in range(200)]
    whole = Sampler(7, seed=3)
    for d in docs:
        whole.offer(d, ("text",))
    split = Sampler(7, seed=3)
    for d in docs[:90]:
        split.offer(d, ("text",))
    resumed = Sampler(7, seed=3, state=json.loads(json.dumps(split.state())))
    for d in docs[90:]:
        resumed.offer(d, ("text",))
    assert whole.items == resumed.items
    ids = [item["id"] for item in whole.items]
    assert len(set(ids)) == 7 and max(ids) >= 90  # later documents get in, not just the first 7


def test_verification_names_changed_fields_and_missing_vectors(tmp_path: Path) -> None:
    corpus = _corpus(tmp_path / "c.jsonl", 6)
    target = MemoryTarget()

    class Tampering(MemoryTarget):
        pass

    report = migrate(RecordFileSource(corpus), target, HashSparseEncoder(), finalize=False, sample_size=6)
    assert report.verification is not None and report.verification.ok
    target.docs["d1"].metadata["year"] = 1999
    target.docs["d2"].sparse = None
    del target.docs["d3"]
    from spladebridge.migrate.verify import verify

    again = verify(
        RecordFileSource(corpus),
        target,
        [
            {
                "id": f"d{i}",
                "fields": field_digests(
                    Document(
                        id=f"d{i}",
                        fields={"title": f"title {i}", "text": f"word{i % 7} shared text {i}"},
                        metadata={"year": 2000 + i},
                    )
                ),
                "has_text": True,
            }
            for i in range(6)
        ],
    )
    problems = again.problems()
    assert any("5 documents, expected 6" in p for p in problems)
    assert any("'d1'" in p and "fields changed: year" in p for p in problems)
    assert any("'d2'" in p and "sparse vector" in p for p in problems)
    assert any("'d3'" in p and "missing" in p for p in problems)
    assert "MISMATCH" in again.summary()


def test_digests_treat_integral_floats_as_ints() -> None:
    a = Document(id=1, fields={"t": "x"}, metadata={"n": 3, "m": {"b": 1.0, "a": [2]}})
    b = Document(id=1, fields={"t": "x"}, metadata={"n": 3.0, "m": {"a": [2.0], "b": 1}})
    assert field_digests(a) == field_digests(b)
    c = Document(id=1, fields={"t": "y"}, metadata={"n": 3})
    assert field_digests(a)["t"] != field_digests(c)["t"] and field_digests(a)["n"] == field_digests(c)["n"]


def test_sampler_keeps_the_last_version_of_a_repeated_id() -> None:
    sampler = Sampler(3)
    sampler.offer(Document(id="a", fields={"text": "old words here"}), ("text",))
    sampler.offer(Document(id="b", fields={"text": "bee"}), ("text",))
    sampler.offer(Document(id="a", fields={"text": "new words"}), ("text",))
    assert [i["id"] for i in sampler.items] == ["a", "b"]
    assert sampler.items[0]["fields"] == field_digests(Document(id="a", fields={"text": "new words"}))
    assert sampler.probes(5) == ["new words", "bee"]


def test_finalize_can_wait_for_a_later_run(tmp_path: Path) -> None:
    corpus = _corpus(tmp_path / "c.jsonl", 7)
    ck = tmp_path / "ck.json"
    target = MemoryTarget()
    first = migrate(RecordFileSource(corpus), target, HashSparseEncoder(), checkpoint=ck, finalize=False)
    assert first.ok and not first.finished and target.finalized == 0
    assert json.loads(ck.read_text())["phase"] == "verified"
    encoder = HashSparseEncoder()
    later = migrate(RecordFileSource(corpus), target, encoder, checkpoint=ck, resume=True)
    assert later.ok and later.finished and target.finalized == 1
    assert encoder.texts == [] and later.read == 0  # nothing copied again, only finalized


def test_top_level_migrate_is_callable_whatever_was_imported_first(tmp_path: Path) -> None:
    import spladebridge
    import spladebridge.migrate as package

    corpus = _corpus(tmp_path / "c.jsonl", 3)
    target = MemoryTarget()
    report = spladebridge.migrate(RecordFileSource(corpus), target, HashSparseEncoder())
    assert report.ok and target.count() == 3
    assert callable(package) and package.RecordFileSource is RecordFileSource


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 30), batch=st.integers(1, 7), kills=st.lists(st.integers(0, 8), max_size=3))
def test_any_sequence_of_kills_ends_like_one_uninterrupted_run(n: int, batch: int, kills: list[int]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        corpus = _corpus(Path(tmp) / "c.jsonl", n)
        ck = Path(tmp) / "ck.json"
        target = MemoryTarget()
        encoded = 0
        for kill_at in kills:  # each run dies when it reaches its kill_at-th write
            dying = _DyingTarget(target, kill_at)
            encoder = HashSparseEncoder()
            with contextlib.suppress(MigrationError):  # the run dies at its kill point
                migrate(
                    RecordFileSource(corpus),
                    dying,
                    encoder,
                    batch_size=batch,
                    checkpoint=ck,
                    resume=True,
                    sample_size=5,
                )
            encoded += len(encoder.texts)
        final_encoder = HashSparseEncoder()
        report = migrate(
            RecordFileSource(corpus),
            target,
            final_encoder,
            batch_size=batch,
            checkpoint=ck,
            resume=True,
            sample_size=5,
        )
        encoded += len(final_encoder.texts)
        reference = MemoryTarget()
        migrate(RecordFileSource(corpus), reference, HashSparseEncoder(), batch_size=batch, sample_size=5)
        assert report.ok or report.already_finished
        assert sorted(target.docs) == sorted(reference.docs)
        assert all(target.docs[i].sparse == reference.docs[i].sparse for i in reference.docs)
        assert encoded <= n + len(kills) * batch  # at most the killed batch is encoded again per kill
        assert json.loads(ck.read_text())["counts"]["written"] == n


class _DyingTarget(MemoryTarget):
    """Shares `inner`'s documents; its `kill_at`-th write raises before writing anything."""

    def __init__(self, inner: MemoryTarget, kill_at: int) -> None:
        super().__init__()
        self.docs = inner.docs
        self.kill_at = kill_at

    def write(self, documents: Any) -> Any:
        if len(self.writes) == self.kill_at:
            raise ConnectionError("killed")
        return super().write(documents)
