"""`ingest()`: stream documents from a source through the encoders into an engine, resumably.

The calling thread reads and encodes in batches; a writer thread takes encoded batches from a bounded queue
and writes them, so engine writes overlap encoding and memory holds at most `queue_size + 2` batches
whatever the corpus size (plus the set of ids seen, a few dozen bytes per document, to count duplicates). The writer alone owns the checkpoint and the dead-letter file: after each batch it
records the failures, makes them durable, then marks the batch's positions settled and saves the checkpoint,
so a crash never marks an unwritten document as done. Ingest never re-sends a document: the connector
retries transient failures under its own `RetryPolicy` (spladebridge.connectors.retry), so one document is
sent at most `max_retries + 1` times. Items the engine rejects for good go to the dead-letter file; items
still failing after the connector's retries (or a whole write that fails) stop the run in a resumable state
and the report says why.
"""

from __future__ import annotations

import logging
import os
import queue
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, TypeAlias, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from spladebridge._callable_module import make_module_callable
from spladebridge.checkpoint import Checkpoint, SettledPositions
from spladebridge.connectors.base import Connector, DocId, Document, IndexSpec, WriteReport
from spladebridge.connectors.retry import RetryPolicy
from spladebridge.dead_letter import DeadLetterFile
from spladebridge.encoder.sparse_vector import SparseVector
from spladebridge.readers import (
    DEFAULT_TEXT_FIELDS,
    Record,
    RecordParser,
    Source,
    check_source,
    count_items,
    fingerprint,
    iter_records,
)

__all__ = [
    "DenseEncoderLike",
    "Failure",
    "IngestInterrupted",
    "IngestReport",
    "SparseEncoderLike",
    "Stage",
    "WrittenBatch",
    "encode_batch",
    "ingest",
    "refuse_retry_settings",
    "write_batch",
]

log = logging.getLogger("spladebridge.ingest")

Stage: TypeAlias = Literal["read", "encode", "write"]
#: How many failures an IngestReport lists when a dead-letter file holds them all anyway.
MAX_LISTED_FAILURES = 1000


@runtime_checkable
class SparseEncoderLike(Protocol):
    """What ingest needs from a sparse encoder (`spladebridge.encoder.splade.SpladeEncoder` fits)."""

    def encode_documents(self, texts: Sequence[str]) -> Sequence[SparseVector]: ...


@runtime_checkable
class DenseEncoderLike(Protocol):
    """What ingest needs from a dense encoder (`spladebridge.encoder.dense.DenseEncoder` fits)."""

    @property
    def dim(self) -> int: ...

    def encode(self, texts: Sequence[str]) -> NDArray[np.float32]: ...


@dataclass(frozen=True, slots=True)
class Failure:
    """One item that was not ingested: where it was in the input, its id if known, the stage, the reason."""

    position: int
    where: str
    id: DocId | None
    stage: Stage
    error: str


@dataclass(slots=True)
class IngestReport:
    """What one `ingest()` run did.

    `read` counts every input item seen this run; `skipped` those not processed (settled by an earlier run,
    or an earlier occurrence of an id superseded inside the same batch); `duplicates` the items whose id
    appeared earlier in the input (the last occurrence wins); `pending` items read but neither written nor failed
    because the run stopped. `docs_per_s` is written documents per wall-clock second.
    """

    read: int = 0
    encoded: int = 0
    written: int = 0
    failed: int = 0
    skipped: int = 0
    duplicates: int = 0
    duration_s: float = 0.0
    docs_per_s: float = 0.0
    encode_s: float = 0.0
    write_s: float = 0.0
    failures: list[Failure] = field(default_factory=list)
    failures_listed_all: bool = True
    dead_letter: Path | None = None
    checkpoint: Path | None = None
    complete: bool = False
    stopped: str | None = None
    interrupted: bool = False
    index: str | None = None

    @property
    def pending(self) -> int:
        return max(self.read - self.skipped - self.written - self.failed, 0)

    @property
    def ok(self) -> bool:
        """True when the whole input is settled and nothing failed in this run."""
        return self.complete and self.failed == 0 and self.stopped is None

    def to_json_obj(self) -> dict[str, Any]:
        out = asdict(self)
        out["pending"] = self.pending
        out["ok"] = self.ok
        out["dead_letter"] = str(self.dead_letter) if self.dead_letter else None
        out["checkpoint"] = str(self.checkpoint) if self.checkpoint else None
        return out

    def summary(self) -> str:
        """A few human-readable lines."""
        lines = [
            f"read {self.read}, encoded {self.encoded}, written {self.written}, failed {self.failed}, "
            f"skipped {self.skipped}, duplicates {self.duplicates} in {self.duration_s:.1f}s "
            f"({self.docs_per_s:.1f} docs/s)"
        ]
        if self.failed and self.dead_letter is not None:
            lines.append(f"failed documents and their errors: {self.dead_letter}")
        if self.stopped:
            lines.append(f"stopped: {self.stopped}")
        if self.interrupted:
            lines.append("interrupted")
        if not self.complete and self.checkpoint is not None:
            lines.append(f"not finished ({self.pending} pending); run again to resume from {self.checkpoint}")
        return "\n".join(lines)


class IngestInterrupted(KeyboardInterrupt):
    """Ctrl-C during `ingest()`: the checkpoint was saved; `report` says what landed before the stop."""

    def __init__(self, report: IngestReport) -> None:
        super().__init__("ingest interrupted")
        self.report = report


class _EngineStop(Exception):
    """The engine kept failing after the connector's retries: stop, resumably."""


@dataclass(slots=True)
class WrittenBatch:
    """One batch after its single write: positions that landed, documents rejected for good (dead letters),
    and positions still unwritten (failing transiently after the connector's retries, or the call failed)."""

    written: list[int] = field(default_factory=list)
    rejected: list[tuple[Failure, Any]] = field(default_factory=list)
    unwritten: list[int] = field(default_factory=list)
    reason: str = ""
    attempts: int = 0
    #: Documents that landed only after the connector re-sent them.
    retried: int = 0

    @property
    def settled(self) -> list[int]:
        """Positions a checkpoint may mark done: landed or dead-lettered."""
        return self.written + [failure.position for failure, _ in self.rejected]

    def stop_reason(self, who: str) -> str:
        """Why the run cannot go on, e.g. `the engine still fails after 5 attempts (429: busy)`."""
        after = f" after {self.attempts} attempt{'s' if self.attempts != 1 else ''}" if self.attempts else ""
        return f"{who} still fails{after} ({self.reason})"


def write_batch(
    write: Callable[[list[Document]], WriteReport], docs: list[tuple[int, Document]]
) -> WrittenBatch:
    """Write `(position, document)` pairs with one call of `write` (the connector retries, never this) and
    sort the outcomes: landed, rejected for good, or still unwritten. Shared by ingest and migrate."""
    result = WrittenBatch()
    try:
        outcomes = write([doc for _, doc in docs]).outcomes
    except Exception as exc:
        result.unwritten = [position for position, _ in docs]
        result.reason = f"{type(exc).__name__}: {exc}"
        return result
    if len(outcomes) != len(docs):
        result.unwritten = [position for position, _ in docs]
        result.reason = f"the connector returned {len(outcomes)} outcomes for {len(docs)} documents"
        return result
    for (position, doc), outcome in zip(docs, outcomes, strict=True):
        if outcome.ok:
            result.written.append(position)
            result.retried += outcome.attempts > 1
        elif outcome.retryable:
            result.unwritten.append(position)
            result.reason = outcome.error or f"engine answered {outcome.status}"
            result.attempts = max(result.attempts, outcome.attempts)
        else:
            error = outcome.error or f"engine answered {outcome.status}"
            failure = Failure(position, _where(position, doc), doc.id, "write", error)
            result.rejected.append((failure, _doc_raw(doc)))
    return result


def refuse_retry_settings(caller: str, **settings: object) -> None:
    """TypeError for the retry settings `ingest()` and `migrate()` no longer take: the connector retries."""
    given = sorted(name for name, value in settings.items() if value is not None)
    if given:
        raise TypeError(
            f"{caller} no longer retries writes, so it takes no {', '.join(given)}: the connector re-sends "
            "transient failures under its own RetryPolicy (a document is sent at most max_retries + 1 "
            "times). Configure it there, e.g. BulkConfig(retry=RetryPolicy(max_retries=8)) for "
            "Elasticsearch / OpenSearch or QdrantConnector(client, retry=RetryPolicy(max_retries=8)); "
            "RetryPolicy is in spladebridge.connectors.retry"
        )


@dataclass(slots=True)
class _Batch:
    """Positions and documents travelling from the reader/encoder to the writer."""

    docs: list[tuple[int, Document]] = field(default_factory=list)
    failures: list[tuple[Failure, Any]] = field(default_factory=list)
    superseded: list[int] = field(default_factory=list)
    by_id: dict[tuple[type, DocId], int] = field(default_factory=dict)

    def size(self) -> int:
        return len(self.docs) + len(self.failures) + len(self.superseded)


class _Run:
    """The state one ingest run shares between the reading thread and the writer thread."""

    def __init__(
        self,
        connector: Connector,
        report: IngestReport,
        checkpoint: Checkpoint | None,
        dead_letter: DeadLetterFile | None,
        *,
        queue_size: int,
        on_settled: Callable[[int], None],
    ) -> None:
        self.connector = connector
        self.report = report
        self.checkpoint = checkpoint
        self.settled = checkpoint.settled if checkpoint is not None else SettledPositions()
        self.dead_letter = dead_letter
        self.queue: queue.Queue[_Batch | None] = queue.Queue(maxsize=queue_size)
        self.stop = threading.Event()
        self.discard = threading.Event()
        self.lock = threading.Lock()
        self.error: BaseException | None = None
        self.on_settled = on_settled
        self.base_totals = dict(checkpoint.totals) if checkpoint is not None else {}
        self.thread = threading.Thread(target=self._writer, name="spladebridge-ingest-writer", daemon=True)
        # The connector waits between its retries; an interrupted run must not sit out that wait: for the
        # run, its policy sleeps on `discard` (restored by `finish`).
        self.policy: RetryPolicy | None = None
        policy = getattr(connector, "retry", None)
        if isinstance(policy, RetryPolicy):
            self.policy = policy
            connector.retry = policy.with_sleep(self._retry_wait)  # type: ignore[attr-defined]

    def _retry_wait(self, seconds: float) -> None:
        if self.discard.wait(seconds):
            raise _EngineStop("interrupted while the engine's write was waiting to be retried")

    # -- called from the reading thread ---------------------------------------------------------------

    def put(self, batch: _Batch) -> bool:
        """Hand a batch to the writer; False when the writer has stopped (the batch is dropped, unsettled)."""
        while not self.stop.is_set():
            try:
                self.queue.put(batch, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def finish(self, *, discard: bool) -> None:
        """Tell the writer no more batches come (dropping queued ones when `discard`), and wait for it."""
        if discard:
            self.discard.set()
            while True:
                try:
                    self.queue.get_nowait()
                except queue.Empty:
                    break
        while self.thread.is_alive():
            try:
                self.queue.put(None, timeout=0.1)
                break
            except queue.Full:
                continue
        self.thread.join()
        if self.policy is not None:
            self.connector.retry = self.policy  # type: ignore[attr-defined]

    # -- the writer thread ----------------------------------------------------------------------------

    def _writer(self) -> None:
        while True:
            batch = self.queue.get()
            if batch is None:
                return
            if self.stop.is_set() or self.discard.is_set():
                continue
            try:
                self._handle(batch)
            except _EngineStop as exc:
                self.report.stopped = str(exc)
                self.stop.set()
            except BaseException as exc:  # surfaced in the report, never lost with the thread
                self.error = exc
                self.report.stopped = f"writer failed: {type(exc).__name__}: {exc}"
                log.error("ingest writer failed\n%s", "".join(traceback.format_exception(exc)))
                self.stop.set()

    def _handle(self, batch: _Batch) -> None:
        settled: list[int] = list(batch.superseded)
        for failure, raw in batch.failures:
            self.record_failure(failure, raw)
            settled.append(failure.position)
        try:
            if batch.docs:
                settled.extend(self._write(batch.docs))
        finally:
            self.commit(settled)

    def _write(self, docs: list[tuple[int, Document]]) -> list[int]:
        """Write once (the connector retries); returns the positions settled (landed or dead-lettered).
        Documents still unwritten stop the run, after what did land is committed."""
        started = time.perf_counter()
        try:
            result = write_batch(self.connector.upsert, docs)
        finally:
            self.report.write_s += time.perf_counter() - started
        self.report.written += len(result.written)
        for failure, raw in result.rejected:
            self.record_failure(failure, raw)
        if result.unwritten:
            self.commit(result.settled)
            raise _EngineStop(
                f"{result.stop_reason('the engine')}; {len(result.unwritten)} documents of this batch "
                "were not written"
            )
        return result.settled

    def record_failure(self, failure: Failure, raw: Any) -> None:
        report = self.report
        report.failed += 1
        if report.dead_letter is None or len(report.failures) < MAX_LISTED_FAILURES:
            report.failures.append(failure)
        else:
            report.failures_listed_all = False
        log.debug("failed (%s) %s", failure.stage, failure.error)
        if self.dead_letter is not None:
            self.dead_letter.write(
                {
                    "position": failure.position,
                    "where": failure.where,
                    "id": failure.id,
                    "stage": failure.stage,
                    "error": failure.error,
                    "record": raw,
                }
            )

    def commit(self, positions: list[int]) -> None:
        """Dead letters to disk first, then mark `positions` settled and save the checkpoint."""
        if not positions:
            return
        with self.lock:
            if self.dead_letter is not None:
                self.dead_letter.sync()
            self.settled.update(positions)
            self.save_checkpoint()
        self.on_settled(len(positions))

    def save_checkpoint(self, *, complete: bool = False) -> None:
        if self.checkpoint is None:
            return
        r = self.report
        run = {"written": r.written, "failed": r.failed, "encoded": r.encoded, "duplicates": r.duplicates}
        self.checkpoint.totals = {k: self.base_totals.get(k, 0) + v for k, v in run.items()}
        self.checkpoint.complete = complete
        self.checkpoint.save()


def _where(position: int, doc: Document) -> str:
    return f"position {position} (id {doc.id!r})"


def _doc_raw(doc: Document) -> dict[str, Any]:
    return {"id": doc.id, **doc.fields, **doc.metadata}


def encode_batch(
    docs: list[tuple[int, Document]],
    text_fields: Sequence[str],
    sparse_encoder: SparseEncoderLike,
    dense_encoder: DenseEncoderLike | None,
) -> tuple[list[tuple[int, Document]], list[tuple[Failure, Any]]]:
    """Encode a batch in one call; when that fails, item by item so that one bad document fails alone."""
    try:
        _encode_into([d for _, d in docs], text_fields, sparse_encoder, dense_encoder)
        return docs, []
    except Exception as batch_exc:
        if len(docs) == 1:
            position, doc = docs[0]
            error = f"{type(batch_exc).__name__}: {batch_exc}"
            return [], [(Failure(position, _where(position, doc), doc.id, "encode", error), _doc_raw(doc))]
    ok: list[tuple[int, Document]] = []
    failed: list[tuple[Failure, Any]] = []
    for position, doc in docs:
        try:
            _encode_into([doc], text_fields, sparse_encoder, dense_encoder)
            ok.append((position, doc))
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            failed.append((Failure(position, _where(position, doc), doc.id, "encode", error), _doc_raw(doc)))
    return ok, failed


def _encode_into(
    docs: list[Document],
    text_fields: Sequence[str],
    sparse_encoder: SparseEncoderLike,
    dense_encoder: DenseEncoderLike | None,
) -> None:
    texts = [doc.text(text_fields) for doc in docs]
    sparse = list(sparse_encoder.encode_documents(texts))
    if len(sparse) != len(texts):
        raise RuntimeError(f"sparse encoder returned {len(sparse)} vectors for {len(texts)} texts")
    dense: NDArray[np.float32] | None = None
    if dense_encoder is not None:
        dense = np.asarray(dense_encoder.encode(texts), dtype=np.float32)
        if dense.ndim != 2 or dense.shape[0] != len(texts):
            raise RuntimeError(f"dense encoder returned shape {dense.shape} for {len(texts)} texts")
        if not np.all(np.isfinite(dense)):
            raise ValueError("dense encoder returned a non-finite value")
    for i, doc in enumerate(docs):
        if not isinstance(sparse[i], SparseVector):
            raise TypeError(f"sparse encoder returned {type(sparse[i]).__name__}, expected SparseVector")
        doc.sparse = sparse[i]
        doc.dense = dense[i] if dense is not None else None


def _resolve_spec(
    connector: Connector,
    spec: IndexSpec | None,
    index: str | None,
    text_fields: tuple[str, ...],
    dense_encoder: DenseEncoderLike | None,
) -> IndexSpec:
    if spec is None and connector.spec is not None and index in (None, connector.spec.name):
        spec = connector.spec
    if spec is None:
        dense_dim = int(dense_encoder.dim) if dense_encoder is not None else None
        spec = IndexSpec(
            name=index or "spladebridge",
            dense_field="dense" if dense_encoder is not None else None,
            dense_dim=dense_dim,
            text_fields=text_fields,
        )
    if dense_encoder is None and spec.dense_field is not None:
        raise ValueError(
            f"index {spec.name!r} holds {spec.dense_dim}-dimensional dense vectors in {spec.dense_field!r}; "
            "give a dense encoder (or use a sparse-only index) so that every document gets one"
        )
    if dense_encoder is not None:
        if spec.dense_field is None:
            raise ValueError(f"index {spec.name!r} has no dense field, but a dense encoder was given")
        if spec.dense_dim is not None and int(dense_encoder.dim) != spec.dense_dim:
            raise ValueError(
                f"dense encoder makes {dense_encoder.dim}-dimensional vectors, index {spec.name!r} holds "
                f"{spec.dense_dim}-dimensional ones"
            )
    return spec


def ingest(
    source: Source,
    connector: Connector,
    sparse_encoder: SparseEncoderLike,
    dense_encoder: DenseEncoderLike | None = None,
    *,
    id_field: str | None = None,
    text_fields: Sequence[str] = DEFAULT_TEXT_FIELDS,
    format: str | None = None,
    spec: IndexSpec | None = None,
    index: str | None = None,
    create_index: bool = True,
    batch_size: int = 64,
    queue_size: int = 4,
    checkpoint: str | os.PathLike[str] | None = None,
    restart: bool = False,
    dead_letter: str | os.PathLike[str] | None = None,
    max_text_chars: int = 1_000_000,
    progress: bool | None = None,
    max_retries: None = None,
    retry_backoff_s: None = None,
    max_backoff_s: None = None,
) -> IngestReport:
    """Read, encode (sparse, and dense when `dense_encoder` is given) and write every document of `source`.

    `source`: a JSONL / CSV / Parquet path (format from the suffix, or `format=`) or an iterable of mappings
    or `Document`s. Each item needs an id (`id_field`, by default `_id` then `id`) and at least one of
    `text_fields`; every other field is kept as metadata. Writes are upserts by id (a re-run is idempotent;
    for an id repeated in the input the last occurrence wins). With `checkpoint`, a re-run resumes where the
    last one stopped without re-encoding what landed; `restart=True` ignores an existing checkpoint. Items
    that fail go to `dead_letter` (JSONL) and `IngestReport.failures`. Ctrl-C raises `IngestInterrupted` (a
    KeyboardInterrupt) carrying the report, after saving the checkpoint.

    Each batch is written once: the connector retries transient failures under its `RetryPolicy`, and
    documents still failing after that stop the run, resumably. `max_retries`, `retry_backoff_s` and
    `max_backoff_s` were removed (a TypeError says where the policy lives now).
    """
    refuse_retry_settings(
        "ingest()", max_retries=max_retries, retry_backoff_s=retry_backoff_s, max_backoff_s=max_backoff_s
    )
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if queue_size <= 0:
        raise ValueError(f"queue_size must be positive, got {queue_size}")
    fields = tuple(text_fields)
    if isinstance(source, str | os.PathLike):
        check_source(source, format)
    parser = RecordParser(id_field=id_field, text_fields=fields, max_text_chars=max_text_chars)
    resolved = _resolve_spec(connector, spec, index, fields, dense_encoder)

    ckpt: Checkpoint | None = None
    if checkpoint is not None:
        target = {
            "index": resolved.name,
            "connector": type(connector).__name__,
            "id_field": id_field,
            "text_fields": list(fields),
            "dense": dense_encoder is not None,
        }
        ckpt = Checkpoint.open(checkpoint, fingerprint(source), target, restart=restart)
        ckpt.runs += 1
    if create_index:
        connector.ensure_index(resolved)

    report = IngestReport(
        dead_letter=Path(dead_letter) if dead_letter is not None else None,
        checkpoint=Path(checkpoint) if checkpoint is not None else None,
        index=resolved.name,
    )
    show = sys.stderr.isatty() if progress is None else progress
    bar = _progress_bar(count_items(source, format) if show else None, show)
    dlq = DeadLetterFile(dead_letter) if dead_letter is not None else None
    run = _Run(
        connector,
        report,
        ckpt,
        dlq,
        queue_size=queue_size,
        on_settled=bar.update,
    )
    started = time.perf_counter()
    run.thread.start()
    interrupted = False
    exhausted = False
    try:
        exhausted = _read_and_encode(
            source, format, parser, fields, sparse_encoder, dense_encoder, batch_size, run, bar
        )
    except KeyboardInterrupt:
        interrupted = True
    finally:
        # On Ctrl-C the batches already encoded are still written (at most `queue_size`); a second Ctrl-C
        # drops them. When the writer stopped, nothing more is written.
        try:
            run.finish(discard=run.stop.is_set())
        except KeyboardInterrupt:
            interrupted = True
            run.finish(discard=True)
        if run.error is None:
            try:
                connector.flush()
            except Exception as exc:
                report.stopped = report.stopped or f"flush failed: {type(exc).__name__}: {exc}"
        report.duration_s = time.perf_counter() - started
        report.docs_per_s = report.written / report.duration_s if report.duration_s > 0 else 0.0
        report.interrupted = interrupted
        report.complete = (
            exhausted and not interrupted and report.stopped is None and len(run.settled) >= report.read
        )
        with run.lock:
            run.save_checkpoint(complete=report.complete)
        if dlq is not None:
            dlq.close()
        bar.close()
    if interrupted:
        raise IngestInterrupted(report)
    log.info("ingest into %s: %s", resolved.name, report.summary())
    return report


def _read_and_encode(
    source: Source,
    fmt: str | None,
    parser: RecordParser,
    text_fields: tuple[str, ...],
    sparse_encoder: SparseEncoderLike,
    dense_encoder: DenseEncoderLike | None,
    batch_size: int,
    run: _Run,
    bar: Any,
) -> bool:
    """The reading thread's loop; True when the source was read to its end (False when the writer stopped)."""
    report = run.report
    seen: set[tuple[type, DocId]] = set()
    batch = _Batch()
    skipped_since_update = 0

    def emit(current: _Batch) -> bool:
        if current.docs:
            started = time.perf_counter()
            current.docs, failed = encode_batch(current.docs, text_fields, sparse_encoder, dense_encoder)
            report.encode_s += time.perf_counter() - started
            report.encoded += len(current.docs)
            current.failures.extend(failed)
        current.by_id.clear()
        return run.put(current)

    for record in iter_records(source, parser, fmt=fmt):
        if run.stop.is_set():
            return False
        report.read += 1
        key = (type(record.id), record.id) if record.id is not None else None
        duplicate = key is not None and key in seen
        if key is not None:
            seen.add(key)
        with run.lock:
            already = record.position in run.settled
        if already:
            report.skipped += 1
            report.duplicates += duplicate
            skipped_since_update += 1
            if skipped_since_update >= 1000:
                bar.update(skipped_since_update)
                skipped_since_update = 0
            continue
        _add(batch, record, duplicate, report)
        if len(batch.docs) >= batch_size or batch.size() >= 4 * batch_size:
            if not emit(batch):
                return False
            batch = _Batch()
    if skipped_since_update:
        bar.update(skipped_since_update)
    if batch.size() and not emit(batch):
        return False
    return not run.stop.is_set()


def _add(batch: _Batch, record: Record, duplicate: bool, report: IngestReport) -> None:
    if record.document is None:
        error = record.error or f"{record.where}: unreadable"
        batch.failures.append((Failure(record.position, record.where, record.id, "read", error), record.raw))
        return
    doc = record.document
    if duplicate:
        report.duplicates += 1
        log.info("%s: id %r appeared earlier in the input; the last occurrence wins", record.where, doc.id)
    key = (type(doc.id), doc.id)
    earlier = batch.by_id.get(key)
    if earlier is not None:
        # Same id twice in one engine request: keep only the later one (what a sequential write would leave).
        batch.superseded.append(batch.docs[earlier][0])
        batch.docs[earlier] = (record.position, doc)
        report.skipped += 1
        return
    batch.by_id[key] = len(batch.docs)
    batch.docs.append((record.position, doc))


class _NoBar:
    def update(self, n: int = 1) -> None:
        return None

    def close(self) -> None:
        return None


def _progress_bar(total: int | None, show: bool) -> Any:
    if not show:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="doc", desc="ingest", dynamic_ncols=True, leave=True)


# `spladebridge.ingest(...)` keeps working after `spladebridge.ingest` the module was imported (the submodule
# shadows the function the package re-exports).
make_module_callable(__name__, "ingest")
