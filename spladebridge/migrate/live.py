"""Migrating an index that keeps taking writes: change capture, catch-up passes, a short freeze, the swap.

During the copy every document is read with its `(seq_no, primary_term)` and the target's versions are kept
(`KnownVersions`). Then catch-up passes scan the source's ids and versions (no `_source`), re-read and
re-encode what changed, and delete from the target what was deleted, until a pass finds at most `freeze_at`
changes (or `max_passes` ran). Then the freeze: a write block on the source (the engine waits for writes in
flight), one last pass, a verification against the now static source, the alias swap (or the target's own
finalize), and the block lifted (or kept: the old index stays read-only). The freeze lasts one id/version
scan (metadata only: fast, but proportional to the index size; deletions leave nothing else to find them by)
plus the last delta's encoding and writing; the length of the copy does not enter it.

In place the source is the target, so it cannot be blocked while vectors are written to it: each update is
conditional on the version its text was read at (`if_seq_no` / `if_primary_term`), a document changed under
the update answers 409 and is re-read in the next pass, and passes run until one finds nothing changed. The
sparse field is emptied (conditionally) before it is written, since a partial update merges objects.

Every step is recorded in the checkpoint (`MigrationState.live`, phases `catch-up` and `frozen`), and the
versions beside it, so a run killed anywhere resumes: a pass is simply repeated (writes are by id), and a run
killed during the freeze finds the block still on and finishes the freeze.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from spladebridge.connectors.base import DocId, Document, ItemOutcome, WriteReport
from spladebridge.connectors.lucene_client import DocVersion
from spladebridge.ingest import DenseEncoderLike, Failure, SparseEncoderLike

from .capture import PassReport, diff_versions
from .core import MigrationError
from .lucene_cluster import InPlaceTarget, LuceneIndexSource
from .sources import MigrationTarget
from .stage import EncodeWrite, encode_and_write
from .state import MigrationState
from .verify import VerificationReport, check_samples, field_digests
from .versions import KnownVersions

__all__ = ["AfterSwap", "LiveError", "LiveMigration", "LiveOptions", "LiveReport", "LiveSettings"]

log = logging.getLogger("spladebridge.migrate")
AfterSwap = Literal["lift", "read-only"]


class LiveError(MigrationError):
    """A live migration cannot go on (the target keeps refusing writes); the checkpoint says where it is."""


@dataclass(frozen=True, slots=True)
class LiveOptions:
    """When to freeze, what to do with the old index afterwards, and the stage that encodes and writes."""

    freeze_at: int = 1000
    max_passes: int = 10
    after_swap: AfterSwap = "lift"
    scan_batch: int = 10_000
    stage: EncodeWrite = encode_and_write
    on_pass: Callable[[PassReport], None] | None = None

    def __post_init__(self) -> None:
        if self.freeze_at < 0:
            raise ValueError(f"freeze_at must be >= 0, got {self.freeze_at}")
        if self.max_passes < 1:
            raise ValueError(f"max_passes must be >= 1, got {self.max_passes}")
        if self.after_swap not in ("lift", "read-only"):
            raise ValueError(f"after_swap must be 'lift' or 'read-only', got {self.after_swap!r}")


@dataclass(frozen=True, slots=True)
class LiveSettings:
    """What the catch-up needs of the migration around it: fields, encoders, batch size, verification."""

    text_fields: tuple[str, ...]
    sparse_encoder: SparseEncoderLike
    dense_encoder: DenseEncoderLike | None
    batch_size: int
    sample_size: int
    sample_seed: int
    require_verified: bool
    finalize: bool
    on_failures: Callable[[list[tuple[Failure, Any]]], None]


@dataclass(slots=True)
class LiveReport:
    """The catch-up passes and the freeze, measured: what the migration report shows under `live`."""

    passes: list[PassReport] = field(default_factory=list)
    conflicts: int = 0
    freeze_s: float | None = None
    block_s: float | None = None
    block_request_s: float | None = None
    final_pass_s: float | None = None
    verify_s: float | None = None
    finalize_s: float | None = None
    final_delta: int | None = None
    write_block: str = "not set"
    resumed_in_freeze: bool = False
    notes: list[str] = field(default_factory=list)

    def to_json_obj(self) -> dict[str, Any]:
        out = asdict(self)
        out["passes"] = [p.to_json_obj() for p in self.passes]
        return out


class _RecordingTarget:
    """The migration's target, recording the source version of every document it writes (in place: the
    version its conditional update produced); a document changed since it was read is left to the next pass."""

    def __init__(self, inner: MigrationTarget, source: LuceneIndexSource, live: LiveMigration) -> None:
        self.inner = inner
        self.source = source
        self.live = live
        self.in_place = isinstance(inner, InPlaceTarget)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def describe(self) -> dict[str, Any]:
        return self.inner.describe()

    def prepare(self) -> list[str]:
        return self.inner.prepare()

    def write(self, documents: Sequence[Document]) -> WriteReport:
        """Write, then record each document's version durably (conflicts: dropped, re-read next pass)."""
        read = dict(self.source.read_versions)
        if isinstance(self.inner, InPlaceTarget):
            report = self._write_in_place(self.inner, documents, read)
        else:
            report = self.inner.write(documents)
        updates: dict[str, DocVersion] = {}
        drops: list[str] = []
        outcomes: list[ItemOutcome] = []
        for doc, outcome in zip(documents, report.outcomes, strict=True):
            key = str(doc.id)
            if self.in_place and not outcome.ok and outcome.status in ("409", "404"):
                drops.append(key)
                self.live.report.conflicts += 1
                what = "changed" if outcome.status == "409" else "deleted"
                outcome = ItemOutcome(
                    doc.id,
                    ok=True,
                    status=f"{what} since it was read ({outcome.status}): left to the next pass",
                )
            elif outcome.ok or not outcome.retryable:
                version = outcome.version if self.in_place and outcome.version is not None else read.get(key)
                if version is not None:
                    updates[key] = version
            outcomes.append(outcome)
        self.live.known.record(updates, drops)
        return WriteReport(outcomes)

    def _write_in_place(
        self, inner: InPlaceTarget, documents: Sequence[Document], read: dict[str, DocVersion]
    ) -> WriteReport:
        """Conditional updates at the versions read. A partial update merges sparse weights into the old
        ones, and a document may carry vectors of an older text (a partial update of its text keeps them;
        a conflict or a kill may have come between), so each one's sparse field is emptied first, at the
        version read, and then written at the version that produced."""
        ids = [str(d.id) for d in documents if str(d.id) in read]
        cleared: dict[str, ItemOutcome] = {}
        if ids:
            outcomes = inner.clear_vectors(ids, {i: read[i] for i in ids}).outcomes
            for doc_id, outcome in zip(ids, outcomes, strict=True):
                if outcome.ok and outcome.version is not None:
                    read[doc_id] = outcome.version
                else:
                    cleared[doc_id] = outcome
        todo = [d for d in documents if str(d.id) not in cleared]
        wanted = {str(d.id): read[str(d.id)] for d in todo if str(d.id) in read}
        written = iter(inner.write_versioned(todo, wanted).outcomes)
        return WriteReport([cleared.get(str(d.id)) or next(written) for d in documents])

    def flush(self) -> None:
        self.inner.flush()

    def count(self) -> int:
        return self.inner.count()

    def get(self, ids: Sequence[DocId]) -> list[Document | None]:
        return self.inner.get(ids)

    def search_connector(self) -> Any:
        return self.inner.search_connector()

    def delete(self, ids: Sequence[DocId]) -> WriteReport:
        report: WriteReport = self.inner.delete(ids)  # type: ignore[attr-defined]
        self.live.known.record({}, [str(i) for i, o in zip(ids, report.outcomes, strict=True) if o.ok])
        return report

    def finalize(self) -> list[str]:
        return self.inner.finalize()

    def close(self) -> None:
        self.inner.close()


class LiveMigration:
    """The live part of a migration of `source` (read with versions); `migrate(..., live=...)` runs it."""

    def __init__(self, source: LuceneIndexSource, options: LiveOptions | None = None) -> None:
        if not source.track_versions:
            raise ValueError(
                "a live migration reads its source with versions: LuceneIndexSource(track_versions=True)"
            )
        self.source = source
        self.options = options or LiveOptions()
        self.known = KnownVersions(None)
        self.report = LiveReport()
        self.target: _RecordingTarget | None = None
        self._current: dict[str, DocVersion] = {}

    def describe(self) -> dict[str, Any]:
        return {"after_swap": self.options.after_swap}

    def wrap(self, target: MigrationTarget) -> MigrationTarget:
        """The target the copy writes through (it records versions)."""
        if not callable(getattr(target, "delete", None)):
            raise ValueError(f"a live migration deletes from its target; {type(target).__name__} cannot")
        self.target = _RecordingTarget(target, self.source, self)
        return self.target

    def attach(self, state: MigrationState, existed: bool) -> None:
        """Open the versions beside the checkpoint (a fresh migration starts from none)."""
        path = state.path.with_name(state.path.name + ".versions") if state.path is not None else None
        self.known = KnownVersions(path)
        if existed:
            self.known.load()
        else:
            self.known.remove()

    # -- catch-up ---------------------------------------------------------------------------------------

    def finish(
        self, state: MigrationState, run: LiveSettings
    ) -> tuple[list[str], VerificationReport | None, str | None]:
        """Catch up, freeze, verify, finalize; returns (finalized actions, verification, why it stopped)."""
        assert self.target is not None
        if state.phase in ("copied", "verified"):
            state.phase = "catch-up"
            state.save()
        if state.phase == "catch-up":
            self._catch_up(state, run)
            if self.target.in_place:
                return self._finish_in_place(state, run)
            state.phase = "frozen"
            state.live["blocked_at"] = time.time()
            state.save()  # before the block: a run killed from here on knows the block may be on
        else:
            self.report.resumed_in_freeze = True
            self.report.notes.append(
                "an earlier run was killed during the freeze: the source stayed write-blocked until this run"
            )
        return self._freeze(state, run)

    def _catch_up(self, state: MigrationState, run: LiveSettings) -> None:
        """Passes until the delta is small enough to freeze (in place: until a pass finds nothing)."""
        in_place = self.target_in_place
        previous: int | None = None
        for _ in range(self.options.max_passes):
            delta = self._run_pass(state, run, frozen=False).delta
            if delta == 0 or (not in_place and delta <= self.options.freeze_at):
                return
            if not in_place and previous is not None and delta >= previous:
                self.report.notes.append(
                    f"the delta stopped shrinking ({previous} -> {delta}): writes arrive as fast as they are "
                    "caught up, so the freeze came now"
                )
                return
            previous = delta
        self.report.notes.append(
            f"{self.options.max_passes} catch-up passes ran; the migration went on after them"
        )

    @property
    def target_in_place(self) -> bool:
        return self.target is not None and self.target.in_place

    def _run_pass(self, state: MigrationState, run: LiveSettings, *, frozen: bool) -> PassReport:
        """One pass: scan ids and versions, delete what is gone, re-read and re-encode what changed."""
        assert self.target is not None
        number = int(state.live.get("passes", 0)) + 1
        done = PassReport(number=number, frozen=frozen)
        started = time.perf_counter()
        conflicts_before = self.report.conflicts
        self._current = self.source.scan_versions(self.options.scan_batch)
        done.scan_s = time.perf_counter() - started
        done.scanned = len(self._current)
        delta = diff_versions(self.known.versions, self._current)
        done.changed, done.deleted = len(delta.changed), len(delta.deleted)
        if delta.deleted:
            self._delete(delta.deleted, run, done)
        for start in range(0, len(delta.changed), run.batch_size):
            chunk = delta.changed[start : start + run.batch_size]
            docs = self.source.fetch(chunk)
            gone = [doc_id for doc_id, doc in zip(chunk, docs, strict=True) if doc is None]
            if gone:
                self._delete(gone, run, done)
            present = [doc for doc in docs if doc is not None]
            if not present:
                continue
            result = self.options.stage(
                present, self.target.write, run.text_fields, run.sparse_encoder, run.dense_encoder
            )
            done.encode_s += result.encode_s
            done.write_s += result.write_s
            done.written += result.written
            if result.failures:
                done.failed += len(result.failures)
                run.on_failures(result.failures)
            if result.unwritten:
                raise LiveError(
                    f"{result.unwritten}; the checkpoint stays at catch-up pass {number}, run again with resume"
                )
        done.conflicts = self.report.conflicts - conflicts_before
        if not frozen:  # in the freeze the log alone keeps the pass (its time is the writers' wait)
            self.known.compact()
        done.seconds = time.perf_counter() - started
        state.live["passes"] = number
        state.live["last_delta"] = done.delta
        state.save()
        self.report.passes.append(done)
        log.info(
            "catch-up pass %d%s: %d changed, %d deleted (%.2fs)",
            number,
            " (frozen)" if frozen else "",
            done.changed,
            done.deleted,
            done.seconds,
        )
        if self.options.on_pass is not None:
            self.options.on_pass(done)
        return done

    def _delete(self, ids: list[str], run: LiveSettings, done: PassReport) -> None:
        assert self.target is not None
        report = self.target.delete(ids)
        failed = [(i, o) for i, o in zip(ids, report.outcomes, strict=True) if not o.ok]
        if failed:
            done.failed += len(failed)
            run.on_failures(
                [
                    (
                        Failure(-1, f"delete of {i!r}", i, "write", o.error or f"engine answered {o.status}"),
                        None,
                    )
                    for i, o in failed
                ]
            )

    # -- the end ----------------------------------------------------------------------------------------

    def _freeze(
        self, state: MigrationState, run: LiveSettings
    ) -> tuple[list[str], VerificationReport | None, str | None]:
        assert self.target is not None
        started = time.perf_counter()
        self.source.block_writes()
        self.report.block_request_s = time.perf_counter() - started
        finalized: list[str] = []
        stopped: str | None = None
        verification: VerificationReport | None = None
        swapped = False
        try:
            t0 = time.perf_counter()
            final = self._run_pass(state, run, frozen=True)
            self.report.final_pass_s = time.perf_counter() - t0
            self.report.final_delta = final.delta
            t1 = time.perf_counter()
            verification = self._verify(run)
            self.report.verify_s = time.perf_counter() - t1
            if not verification.ok and run.require_verified and run.finalize:
                stopped = "verification failed; not finalized: " + "; ".join(verification.problems()[:5])
            elif run.finalize:
                t2 = time.perf_counter()
                finalized = self.target.finalize()
                self.report.finalize_s = time.perf_counter() - t2
                swapped = True
            self.report.freeze_s = time.perf_counter() - started
        finally:
            if swapped and not self.source.exists():
                self.report.write_block = f"gone with {self.source.index!r} (deleted by the swap)"
            elif swapped and self.options.after_swap == "read-only":
                self.report.write_block = f"kept: {self.source.index!r} stays read-only"
                finalized.append(f"kept the write block on {self.source.index!r} (read-only)")
            else:
                self.source.lift_write_block()
                self.report.block_s = time.perf_counter() - started
                self.report.write_block = "lifted"
                if swapped:
                    finalized.append(f"lifted the write block on {self.source.index!r}")
                else:  # stopped, failed or not finalizing: a later run catches up again, then freezes
                    state.phase = "catch-up"
                    state.save()
        if swapped:
            state.finalized.extend(finalized)
            state.phase = "finished"
            state.live["freeze_s"] = self.report.freeze_s
            state.save()
            self.known.remove()
        return finalized, verification, stopped

    def _finish_in_place(
        self, state: MigrationState, run: LiveSettings
    ) -> tuple[list[str], VerificationReport | None, str | None]:
        """In place: no block (the vectors are written into the source); the last pass found nothing left."""
        assert self.target is not None
        last = self.report.passes[-1].delta if self.report.passes else None
        self.report.write_block = "none (in place: updates are conditional on the version read)"
        if last:
            self.report.notes.append(
                f"the last pass still found {last} changed documents: writes that arrive after the migration "
                "must bring their own vectors (spladebridge ingest), as every write after an in-place one must"
            )
        verification = self._verify(run)
        if not verification.ok and run.require_verified and run.finalize:
            return [], verification, "verification failed: " + "; ".join(verification.problems()[:5])
        finalized = self.target.finalize() if run.finalize else []
        if run.finalize:
            state.finalized.extend(finalized)
            state.phase = "finished"
            state.save()
            self.known.remove()
        return finalized, verification, None

    def _verify(self, run: LiveSettings) -> VerificationReport:
        """Counts and a sample compared field by field against the source as it is now (frozen: final)."""
        assert self.target is not None
        self.target.flush()
        source_count = len(self._current)
        report = VerificationReport(
            source_count=source_count, target_count=self.target.count(), expected_count=source_count
        )
        if self.target.in_place:
            report.target_count = source_count  # one index: the count is the source's
        ids = sorted(self._current)
        picked = random.Random(run.sample_seed).sample(ids, min(run.sample_size, len(ids)))
        docs = [d for d in self.source.fetch(picked) if d is not None]
        items = [
            {"id": d.id, "fields": field_digests(d), "has_text": bool(d.text(run.text_fields))} for d in docs
        ]
        report.samples = check_samples(self.target, items)
        report.notes.append(
            f"counts and {len(items)} sampled documents checked against the source as the last pass left it"
        )
        return report
