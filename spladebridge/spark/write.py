"""`write()`: an encoded DataFrame -> an engine index, per partition, exactly once.

Each Spark task opens its own connector from a `Connection` the driver resolved (engine detected, credentials
read once) and writes its rows in bulk batches with the same semantics as `ingest()`: one write per batch, the
connector re-sending transient failures under its `RetryPolicy`, per-item outcomes. Documents are upserts by
a deterministic id (the id column, or a hash of the row's content), so a task that fails half-way and is
retried, or a speculative second attempt, rewrites the same documents instead of adding new ones; documents
still failing transiently after the connector's retries fail the task, and Spark retries it (the next layer).
Rows that can never be written (no text, a bad id or vector, an engine rejection) become dead letters. The
written / failed / retried counts come from accumulators, which Spark applies once per successful task.

Qdrant Edge is a folder only one process may open: the rows are encoded on the executors, kept there
(`localCheckpoint`), and written from the driver.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
from pyspark import Accumulator, TaskContext
from pyspark.sql import DataFrame

from spladebridge.connectors.base import Connector, Document, IndexSpec
from spladebridge.dead_letter import DeadLetterFile
from spladebridge.engines import Connection, resolve_connection
from spladebridge.ingest import write_batch
from spladebridge.spark.columns import DENSE, DIM_KEY, SPARSE_INDICES, SPARSE_VALUES
from spladebridge.spark.rows import RowLayout, RowProblem, metadata_columns, plain, row_to_document

__all__ = ["DEAD_LETTER_SCHEMA", "SparkWriteError", "SparkWriteReport", "write"]

DEAD_LETTER_SCHEMA = "id string, where string, stage string, error string, record string"
_DEAD_LETTER_COLUMNS = ["id", "where", "stage", "error", "record"]


class SparkWriteError(RuntimeError):
    """Documents still failing after the connector's retries (and, on executors, Spark's task retries)."""


@dataclass(slots=True)
class SparkWriteReport:
    """What one `write()` did: documents written, failed (dead letters), re-sent by the connector, and written
    by a retried Spark task attempt; where the writes ran; the dead letters as a DataFrame."""

    index: str
    written: int = 0
    failed: int = 0
    retried: int = 0
    task_retries: int = 0
    duration_s: float = 0.0
    written_from: str = "executors"
    dead_letters: DataFrame | None = field(default=None, repr=False)
    dead_letter_path: Path | None = None

    @property
    def ok(self) -> bool:
        return self.failed == 0

    @property
    def docs_per_s(self) -> float:
        return self.written / self.duration_s if self.duration_s > 0 else 0.0

    def to_json_obj(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "written": self.written,
            "failed": self.failed,
            "retried": self.retried,
            "task_retries": self.task_retries,
            "duration_s": round(self.duration_s, 3),
            "docs_per_s": round(self.docs_per_s, 2),
            "written_from": self.written_from,
            "dead_letter": str(self.dead_letter_path) if self.dead_letter_path else None,
            "ok": self.ok,
        }

    def summary(self) -> str:
        line = (
            f"wrote {self.written} documents to {self.index} from the {self.written_from} in {self.duration_s:.1f}s "
            f"({self.docs_per_s:.1f} docs/s); failed {self.failed}, re-sent {self.retried}"
        )
        if self.failed and self.dead_letter_path is not None:
            line += f"; failed documents and their errors: {self.dead_letter_path}"
        return line


@dataclass(slots=True)
class _Counts:
    written: int = 0
    failed: int = 0
    retried: int = 0


class _BatchWriter:
    """Turns rows into documents and writes them `batch_size` at a time; collects dead-letter rows."""

    def __init__(self, connector: Connector, layout: RowLayout, batch_size: int) -> None:
        self.connector = connector
        self.layout = layout
        self.batch_size = batch_size
        self.pending: list[tuple[int, Document]] = []
        self.wheres: dict[int, str] = {}
        self.records: dict[int, Mapping[str, Any]] = {}
        self.dead: list[dict[str, Any]] = []
        self.counts = _Counts()
        self.row = 0

    def add(self, record: Mapping[str, Any], where: str) -> None:
        position = self.row
        self.row += 1
        try:
            doc = row_to_document(record, self.layout, where)
        except RowProblem as problem:
            self._dead(problem.doc_id, where, problem.stage, str(problem), record)
            return
        self.pending.append((position, doc))
        self.wheres[position] = where
        self.records[position] = record
        if len(self.pending) >= self.batch_size:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        result = write_batch(self.connector.upsert, self.pending)
        if result.unwritten:
            first = self.wheres[result.unwritten[0]]
            raise SparkWriteError(
                f"{len(result.unwritten)} documents (first: {first}) were not written: {result.stop_reason('the engine')}"
            )
        self.counts.written += len(result.written)
        self.counts.retried += result.retried
        for failure, _ in result.rejected:
            where = self.wheres[failure.position]
            self._dead(
                failure.id, where, "write", f"{where}: {failure.error}", self.records[failure.position]
            )
        self.pending.clear()
        self.wheres.clear()
        self.records.clear()

    def _dead(self, doc_id: object, where: str, stage: str, error: str, record: Mapping[str, Any]) -> None:
        self.counts.failed += 1
        kept = {k: plain(v) for k, v in record.items() if k not in (SPARSE_INDICES, SPARSE_VALUES, DENSE)}
        self.dead.append(
            {
                "id": None if doc_id is None else str(doc_id),
                "where": where,
                "stage": stage,
                "error": error,
                "record": json.dumps(kept, ensure_ascii=False, default=str),
            }
        )


def write(
    df: DataFrame,
    url: str | None = None,
    *,
    index: str | None = None,
    spec: IndexSpec | None = None,
    id_col: str | None = "id",
    text_cols: Sequence[str] = ("title", "text"),
    metadata_cols: Sequence[str] | None = None,
    create_index: bool = True,
    batch_size: int = 256,
    dead_letter: str | Path | None = None,
    engine: str | None = None,
    api_key: str | None = None,
    username: str | None = None,
    password: str | None = None,
    ca_certs: str | None = None,
    verify_certs: bool | None = None,
    timeout: float | None = None,
) -> SparkWriteReport:
    """Write the rows of `df` (encoded by `spladebridge.spark.encode`) to index `index` at `url`.

    `id_col` holds each document's id (strings or non-negative integers); `id_col=None` derives the id from
    the row's content (identical rows become one document). Do not use `monotonically_increasing_id()` as
    the id: it can change when Spark recomputes a partition. `text_cols` are stored as the text fields;
    `metadata_cols` (default: every other column) as metadata. The index is created from `spec`, else from
    the DataFrame (its dense size is in the `dense` column's metadata). Credentials: as in `connect()`, read
    on the driver and shipped to the tasks. Returns a `SparkWriteReport`; dead letters are gathered on the
    driver (and appended to `dead_letter`, JSONL, when given).
    """
    started = time.perf_counter()
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    texts = tuple(text_cols)
    _check_columns(df, id_col, texts)
    connection = resolve_connection(
        url,
        index=index or (spec.name if spec is not None else None),
        engine=engine,
        api_key=api_key,
        username=username,
        password=password,
        ca_certs=ca_certs,
        verify_certs=verify_certs,
        timeout=timeout,
    )
    wanted = (
        spec if spec is not None else _spec_from_frame(df, connection.index, texts) if create_index else None
    )
    meta = tuple(metadata_cols) if metadata_cols is not None else metadata_columns(df.columns, id_col, texts)
    connector = connection.open(wanted)
    try:
        if create_index and wanted is not None:
            connector.ensure_index(wanted)
        layout = RowLayout(connector.existing_spec(), id_col, texts, meta)
        if connection.kind == "qdrant-edge":  # one process at a time: this one
            report, dead = _write_from_driver(df, connector, layout, batch_size)
    finally:
        connector.close()
    if connection.kind != "qdrant-edge":
        report, dead = _write_from_executors(df, connection, layout, batch_size)
    report.duration_s = time.perf_counter() - started
    if dead:
        report.dead_letters = df.sparkSession.createDataFrame(
            pd.DataFrame(dead, columns=_DEAD_LETTER_COLUMNS), DEAD_LETTER_SCHEMA
        )
        if dead_letter is not None:
            report.dead_letter_path = Path(dead_letter)
            with DeadLetterFile(dead_letter) as dlq:
                for entry in dead:
                    dlq.write({**entry, "record": json.loads(entry["record"])})
    return report


def _check_columns(df: DataFrame, id_col: str | None, text_cols: tuple[str, ...]) -> None:
    missing = [c for c in (SPARSE_INDICES, SPARSE_VALUES) if c not in df.columns]
    if missing:
        raise ValueError(
            f"the DataFrame has no {' / '.join(missing)} column: encode it first with spladebridge.spark.encode(df, ...)"
        )
    if id_col is not None and id_col not in df.columns:
        raise ValueError(
            f"id column {id_col!r} is not in the DataFrame (columns: {', '.join(df.columns)}); pass id_col="
        )
    absent = [c for c in text_cols if c not in df.columns]
    if absent:
        raise ValueError(f"text column(s) {', '.join(absent)} not in the DataFrame")


def _spec_from_frame(df: DataFrame, name: str, text_cols: tuple[str, ...]) -> IndexSpec:
    """A sparse (+ dense) spec for `df`: the dense size from the column's metadata, else from one row."""
    if DENSE not in df.columns:
        return IndexSpec(name=name, text_fields=text_cols)
    info = df.schema[DENSE].metadata.get(DIM_KEY, {})
    dim = info.get("dim") if isinstance(info, dict) else None
    if dim is None:
        row = df.where(df[DENSE].isNotNull()).select(DENSE).first()
        if row is None:
            raise ValueError("no row has a dense vector to size the index from; pass spec=IndexSpec(...)")
        dim = len(row[0])
    return IndexSpec(name=name, dense_dim=int(dim), text_fields=text_cols)


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as plain Python values (Arrow turns numpy arrays into lists, timestamps into datetimes)."""
    rows: list[dict[str, Any]] = pa.Table.from_pandas(frame, preserve_index=False).to_pylist()
    return rows


def _write_from_executors(
    df: DataFrame, connection: Connection, layout: RowLayout, batch_size: int
) -> tuple[SparkWriteReport, list[dict[str, Any]]]:
    context = df.sparkSession.sparkContext
    counters = tuple(context.accumulator(0) for _ in range(4))
    task = functools.partial(_write_partition, connection, layout, batch_size, counters)
    # one action: only successful task attempts contribute rows and accumulator updates
    rows = df.mapInPandas(task, DEAD_LETTER_SCHEMA).collect()
    written, failed, retried, task_retries = (int(c.value) for c in counters)
    report = SparkWriteReport(
        connection.index, written=written, failed=failed, retried=retried, task_retries=task_retries
    )
    return report, [row.asDict() for row in rows]


def _write_partition(
    connection: Connection,
    layout: RowLayout,
    batch_size: int,
    counters: tuple[Accumulator[int], ...],
    batches: Iterator[pd.DataFrame],
) -> Iterator[pd.DataFrame]:
    context = TaskContext.get()
    partition = context.partitionId() if context is not None else 0
    with connection.open() as connector:
        writer = _BatchWriter(connector, layout, batch_size)
        for frame in batches:
            for record in _records(frame):
                writer.add(record, f"partition {partition} row {writer.row}")
        writer.flush()
    written, failed, retried, task_retries = counters
    written.add(writer.counts.written)
    failed.add(writer.counts.failed)
    retried.add(writer.counts.retried)
    if context is not None and context.attemptNumber() > 0:
        task_retries.add(writer.counts.written)
    yield pd.DataFrame(writer.dead, columns=_DEAD_LETTER_COLUMNS)


def _write_from_driver(
    df: DataFrame, connector: Connector, layout: RowLayout, batch_size: int
) -> tuple[SparkWriteReport, list[dict[str, Any]]]:
    encoded = df.localCheckpoint(eager=True)  # encode on every executor at once; keep the rows there
    writer = _BatchWriter(connector, layout, batch_size)
    for row in encoded.toLocalIterator(prefetchPartitions=True):
        writer.add(row.asDict(recursive=True), f"row {writer.row}")
    writer.flush()
    connector.flush()
    counts = writer.counts
    report = SparkWriteReport(
        layout.spec.name,
        written=counts.written,
        failed=counts.failed,
        retried=counts.retried,
        written_from="driver",
    )
    return report, writer.dead
