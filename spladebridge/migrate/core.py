"""`migrate()`: the engine-neutral loop source -> encode -> target, checkpointed, resumable, verified.

Per batch: read from the source's cursor, encode the text fields (sparse, and dense when asked; a failing
document fails alone), write, record failures in the dead-letter file, then save the checkpoint with the
cursor after that batch. Writes are upserts / updates by id, so a batch written again after a kill (written,
but killed before the checkpoint was saved) leaves no duplicate. After the copy: verify, then `finalize`
(e.g. the alias swap), then mark the checkpoint finished, which makes any re-run a no-op. Each batch is
written once: the target's connector retries transient failures under its `RetryPolicy`; documents still
failing after that raise `MigrationError` with the checkpoint at the last written batch.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spladebridge.dead_letter import DeadLetterFile
from spladebridge.ingest import (
    DenseEncoderLike,
    Failure,
    SparseEncoderLike,
    encode_batch,
    refuse_retry_settings,
    write_batch,
)

from .sources import MigrationSource, MigrationTarget, SourceBatch
from .state import MigrationState
from .verify import Sampler, VerificationReport, verify

if TYPE_CHECKING:
    from .live import LiveMigration

__all__ = ["MigrationError", "MigrationReport", "migrate"]

log = logging.getLogger("spladebridge.migrate")
MAX_LISTED_FAILURES = 1000


class MigrationError(RuntimeError):
    """The migration cannot start or go on (existing checkpoint without resume, engine keeps failing)."""


@dataclass(slots=True)
class MigrationReport:
    """What one `migrate()` run did, plus the totals of every run of this migration (from the checkpoint)."""

    mode: str = "copy"
    read: int = 0
    encoded: int = 0
    written: int = 0
    failed: int = 0
    duration_s: float = 0.0
    docs_per_s: float = 0.0
    encode_s: float = 0.0
    write_s: float = 0.0
    totals: dict[str, int] = field(default_factory=dict)
    resumed: bool = False
    runs: int = 1
    already_finished: bool = False
    complete: bool = False
    finished: bool = False
    finalize_requested: bool = True
    prepared: list[str] = field(default_factory=list)
    finalized: list[str] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    verification: VerificationReport | None = None
    stopped: str | None = None
    checkpoint: Path | None = None
    dead_letter: Path | None = None
    live: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        """True when all was copied (and finalized, unless not asked), verification passed, nothing failed."""
        done = self.finished or (self.complete and not self.finalize_requested)
        verified = self.verification is None or self.verification.ok
        return done and verified and self.totals.get("failed", 0) == 0 and self.stopped is None

    def to_json_obj(self) -> dict[str, Any]:
        out = asdict(self)
        out["verification"] = self.verification.to_json_obj() if self.verification is not None else None
        out["checkpoint"] = str(self.checkpoint) if self.checkpoint else None
        out["dead_letter"] = str(self.dead_letter) if self.dead_letter else None
        out["ok"] = self.ok
        return out

    def summary(self) -> str:
        if self.already_finished:
            return f"this migration already finished (checkpoint {self.checkpoint}); nothing was changed"
        lines = [
            f"{self.mode}: read {self.read}, encoded {self.encoded}, written {self.written}, "
            f"failed {self.failed} in {self.duration_s:.1f}s ({self.docs_per_s:.1f} docs/s)"
            + (" [resumed]" if self.resumed else "")
        ]
        if self.resumed or self.runs > 1:
            lines.append(f"all runs: {self.totals}")
        lines.extend(f"prepared: {a}" for a in self.prepared)
        if self.failed and self.dead_letter is not None:
            lines.append(f"failed documents and their errors: {self.dead_letter}")
        if self.verification is not None:
            lines.append(self.verification.summary())
        if self.live is not None:
            lines.extend(_live_lines(self.live))
        lines.extend(f"finalized: {a}" for a in self.finalized)
        if self.stopped:
            lines.append(f"stopped: {self.stopped}")
        if not self.finished and self.checkpoint is not None:
            lines.append(f"not finished; run again with resume to continue from {self.checkpoint}")
        return "\n".join(lines)


def _live_lines(live: dict[str, Any]) -> list[str]:
    lines = [
        f"catch-up pass {p['number']}{' (frozen)' if p['frozen'] else ''}: scanned {p['scanned']}, changed "
        f"{p['changed']}, deleted {p['deleted']}, written {p['written']} in {p['seconds']:.2f}s"
        for p in live.get("passes", [])
    ]
    if live.get("freeze_s") is not None:
        lines.append(
            f"freeze: {live['freeze_s']:.2f}s (last delta {live.get('final_delta')}); write block "
            f"{live.get('write_block')}"
        )
    lines.extend(f"note: {n}" for n in live.get("notes", []))
    return lines


def _failure_from_read(f: Any) -> Failure:
    return Failure(f.position, f.where, f.id, "read", f.error)


def migrate(
    source: MigrationSource,
    target: MigrationTarget,
    sparse_encoder: SparseEncoderLike,
    dense_encoder: DenseEncoderLike | None = None,
    *,
    text_fields: Sequence[str] | None = None,
    batch_size: int = 64,
    checkpoint: str | os.PathLike[str] | None = None,
    resume: bool = False,
    restart: bool = False,
    dead_letter: str | os.PathLike[str] | None = None,
    verify_after: bool = True,
    sample_size: int = 20,
    sample_seed: int = 0,
    sample_queries: Sequence[str] = (),
    auto_queries: int = 3,
    query_encoder: Any = None,
    k: int = 10,
    finalize: bool = True,
    require_verified: bool = True,
    identity: dict[str, Any] | None = None,
    mode: str = "copy",
    max_retries: None = None,
    retry_backoff_s: None = None,
    live: LiveMigration | None = None,
) -> MigrationReport:
    """Copy every document of `source` into `target` with freshly encoded vectors, then verify and finalize.

    `checkpoint`: a JSON file saved after every batch. When it exists, `resume=True` continues after the
    last saved batch (no duplicates: writes are by id); `restart=True` starts over; a finished checkpoint
    makes the call a no-op. `sample_queries` are run BM25-only and hybrid (with `query_encoder`, by default
    `sparse_encoder` when it can encode queries) for the side-by-side comparison; without them the first
    words of `auto_queries` sampled documents serve as queries. With `require_verified`,
    `finalize` (an alias swap, for example) only happens when verification passed. Writes are not retried
    here: the target retries under its `RetryPolicy` (`max_retries` and `retry_backoff_s` were removed).

    `live` (a `LiveMigration`): the source keeps taking writes; after the copy, catch-up passes and a short
    write freeze make the target equal to the source's final state before `finalize` (see
    `spladebridge.migrate.live`); the verification then runs inside the freeze, against that final state.
    """
    refuse_retry_settings("migrate()", max_retries=max_retries, retry_backoff_s=retry_backoff_s)
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    fields = tuple(text_fields) if text_fields is not None else tuple(source.text_fields)
    if live is not None:
        target = live.wrap(target)
    ident = {
        "mode": mode,
        "source": source.describe(),
        "target": target.describe(),
        "text_fields": list(fields),
        "dense": dense_encoder is not None,
        **({"live": live.describe()} if live is not None else {}),
        **(identity or {}),
    }
    state, existed = MigrationState.open(checkpoint, ident, restart=restart)
    report = MigrationReport(
        mode=mode,
        finalize_requested=finalize,
        checkpoint=Path(checkpoint) if checkpoint is not None else None,
        dead_letter=Path(dead_letter) if dead_letter is not None else None,
    )
    if existed and state.finished:
        report.already_finished = True
        report.complete = report.finished = True
        report.totals = dict(state.counts)
        report.runs = state.runs
        report.finalized = list(state.finalized)
        log.info("migration already finished per %s; nothing to do", checkpoint)
        return report
    if existed and not resume:
        raise MigrationError(
            f"checkpoint {checkpoint} holds an unfinished migration "
            f"({state.counts.get('written', 0)} documents written); pass resume=True (--resume) to continue "
            "it or restart=True (--restart) to start over"
        )
    report.resumed = existed
    if live is not None:
        live.attach(state, existed)
    state.runs += 1
    report.runs = state.runs
    if query_encoder is None and hasattr(sparse_encoder, "encode_queries"):
        query_encoder = sparse_encoder

    started = time.perf_counter()
    dlq = DeadLetterFile(dead_letter) if dead_letter is not None else None
    sampler = Sampler(sample_size, sample_seed, state.sample or None)
    try:
        if state.phase == "copy":
            report.prepared = target.prepare()
            state.save()
            _copy(
                source,
                target,
                fields,
                sparse_encoder,
                dense_encoder,
                batch_size,
                state,
                sampler,
                dlq,
                report,
            )
            target.flush()
            state.phase = "copied"
            state.save()
        report.complete = True
        if live is not None:
            _finish_live(
                live,
                state,
                report,
                fields,
                sparse_encoder,
                dense_encoder,
                batch_size,
                dlq,
                sample_size,
                sample_seed,
                require_verified,
                finalize,
            )
        elif verify_after and state.phase == "copied":
            failed_total = state.counts.get("failed", 0)
            queries = list(sample_queries) if sample_queries else sampler.probes(auto_queries)
            report.verification = verify(
                source,
                target,
                sampler.items,
                queries=queries,
                query_encoder=query_encoder,
                dense_encoder=dense_encoder,
                k=k,
            )
            if failed_total:
                report.verification.notes.append(
                    f"{failed_total} documents failed during the copy (dead-letter file: {dead_letter})"
                )
            if report.verification.ok:
                state.phase = "verified"
                state.save()
            elif require_verified and finalize:
                report.stopped = "verification failed; not finalized: " + "; ".join(
                    report.verification.problems()[:5]
                )
        elif not verify_after and state.phase == "copied":
            state.phase = "verified"
        if live is None and finalize and state.phase == "verified" and report.stopped is None:
            report.finalized = target.finalize()
            state.finalized.extend(report.finalized)
            state.phase = "finished"
            state.save()
            report.finished = True
    except KeyboardInterrupt:
        report.stopped = "interrupted"
        raise
    finally:
        if live is not None:
            report.live = live.report.to_json_obj()
            live.known.close()
        report.duration_s = time.perf_counter() - started
        report.docs_per_s = report.written / report.duration_s if report.duration_s > 0 else 0.0
        report.totals = dict(state.counts)
        if dlq is not None:
            dlq.close()
    log.info("migration: %s", report.summary())
    return report


def _copy(
    source: MigrationSource,
    target: MigrationTarget,
    fields: tuple[str, ...],
    sparse_encoder: SparseEncoderLike,
    dense_encoder: DenseEncoderLike | None,
    batch_size: int,
    state: MigrationState,
    sampler: Sampler,
    dlq: DeadLetterFile | None,
    report: MigrationReport,
) -> None:
    show = sys.stderr.isatty()
    bar: Any = None
    if show:
        from tqdm.auto import tqdm

        bar = tqdm(
            total=None, unit="doc", desc="migrate", dynamic_ncols=True, initial=state.counts.get("read", 0)
        )
    try:
        for batch in source.read(state.cursor, batch_size):
            _one_batch(
                batch,
                target,
                fields,
                sparse_encoder,
                dense_encoder,
                state,
                sampler,
                dlq,
                report,
            )
            if bar is not None:
                bar.update(len(batch.documents) + len(batch.failures))
    finally:
        if bar is not None:
            bar.close()


def _one_batch(
    batch: SourceBatch,
    target: MigrationTarget,
    fields: tuple[str, ...],
    sparse_encoder: SparseEncoderLike,
    dense_encoder: DenseEncoderLike | None,
    state: MigrationState,
    sampler: Sampler,
    dlq: DeadLetterFile | None,
    report: MigrationReport,
) -> None:
    failures: list[tuple[Failure, Any]] = [(_failure_from_read(f), f.raw) for f in batch.failures]
    positioned = [(batch.first_position + i, doc) for i, doc in enumerate(batch.documents)]
    for _, doc in positioned:
        sampler.offer(doc, fields)  # digests of the source fields, taken before anything is written
    t0 = time.perf_counter()
    encoded, encode_failures = (
        encode_batch(positioned, fields, sparse_encoder, dense_encoder) if positioned else ([], [])
    )
    report.encode_s += time.perf_counter() - t0
    report.encoded += len(encoded)
    failures.extend(encode_failures)
    t1 = time.perf_counter()
    result = write_batch(target.write, encoded)
    report.write_s += time.perf_counter() - t1
    if result.unwritten:
        raise MigrationError(
            f"{result.stop_reason('the target')}; the checkpoint stays at the last written batch, "
            "run again with resume"
        )
    written = len(result.written)
    failures.extend(result.rejected)
    record_failures(failures, report, dlq)
    n_read = len(batch.documents) + len(batch.failures)
    report.read += n_read
    report.written += written
    report.failed += len(failures)
    state.add(read=n_read, encoded=len(encoded), written=written, failed=len(failures))
    state.cursor = batch.cursor
    state.sample = sampler.state()
    state.save()


def record_failures(
    failures: Sequence[tuple[Failure, Any]], report: MigrationReport, dlq: DeadLetterFile | None
) -> None:
    """List failures in the report (up to `MAX_LISTED_FAILURES`) and write them to the dead-letter file."""
    for failure, raw in failures:
        if len(report.failures) < MAX_LISTED_FAILURES:
            report.failures.append(failure)
        if dlq is not None:
            dlq.write(
                {
                    "position": failure.position,
                    "where": failure.where,
                    "id": failure.id,
                    "stage": failure.stage,
                    "error": failure.error,
                    "record": raw,
                }
            )
    if dlq is not None:
        dlq.sync()


def _finish_live(
    live: LiveMigration,
    state: MigrationState,
    report: MigrationReport,
    fields: tuple[str, ...],
    sparse_encoder: SparseEncoderLike,
    dense_encoder: DenseEncoderLike | None,
    batch_size: int,
    dlq: DeadLetterFile | None,
    sample_size: int,
    sample_seed: int,
    require_verified: bool,
    finalize: bool,
) -> None:
    """Catch up, freeze, verify and finalize a live migration (its verification replaces the copy's)."""
    from .live import LiveSettings

    def on_failures(failures: list[tuple[Failure, Any]]) -> None:
        report.failed += len(failures)
        state.add(failed=len(failures))
        record_failures(failures, report, dlq)

    settings = LiveSettings(
        text_fields=fields,
        sparse_encoder=sparse_encoder,
        dense_encoder=dense_encoder,
        batch_size=batch_size,
        sample_size=sample_size,
        sample_seed=sample_seed,
        require_verified=require_verified,
        finalize=finalize,
        on_failures=on_failures,
    )
    finalized, verification, stopped = live.finish(state, settings)
    report.verification = verification
    report.finalized = finalized
    report.stopped = stopped
    report.finished = state.finished
