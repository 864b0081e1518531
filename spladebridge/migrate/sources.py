"""Where a migration reads from and writes to, engine-neutrally: the `MigrationSource` / `MigrationTarget`
protocols, plus sources over record files (JSONL / CSV / Parquet, via `spladebridge.readers`) and over any
connector's `scan()`, and a target over any connector's `upsert()`.

A source yields batches with a JSON-able *cursor* saying where to continue after that batch; the core saves
it in the checkpoint once the batch is written, and hands it back to `read()` on resume. File and connector
scans are in a stable order (line order; Qdrant's point-id order), so their cursor is a position plus the
last id read, which a resumed run checks so that a changed source is noticed instead of silently skipped.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from spladebridge.connectors.base import Connector, DocId, Document, Hit, IndexSpec, WriteReport
from spladebridge.readers import (
    DEFAULT_TEXT_FIELDS,
    RecordParser,
    check_source,
    fingerprint,
    iter_records,
)

__all__ = [
    "ConnectorSource",
    "ConnectorTarget",
    "MigrationSource",
    "MigrationTarget",
    "ReadFailure",
    "RecordFileSource",
    "SourceBatch",
    "SourceChanged",
]


class SourceChanged(RuntimeError):
    """A resumed scan found a different document where the checkpoint says it stopped."""


@dataclass(frozen=True, slots=True)
class ReadFailure:
    """An input item the source could not turn into a document (bad JSON line, missing id, ...)."""

    position: int
    where: str
    id: DocId | None
    error: str
    raw: Any = None


@dataclass(slots=True)
class SourceBatch:
    """Documents read (text in `fields`, everything else in `metadata`), failures, and where to go on."""

    documents: list[Document]
    cursor: dict[str, Any]
    failures: list[ReadFailure] = field(default_factory=list)
    first_position: int = 0


@runtime_checkable
class MigrationSource(Protocol):
    """What the migration reads: batches with resumable cursors, a count, and (optionally) BM25 search."""

    text_fields: tuple[str, ...]

    def describe(self) -> dict[str, Any]:
        """What identifies this source across runs (kept in the checkpoint)."""
        ...

    def count(self) -> int: ...

    def read(self, cursor: Mapping[str, Any] | None, batch_size: int) -> Iterator[SourceBatch]:
        """Batches from `cursor` (None: the beginning) to the end."""
        ...

    def search_text(self, text: str, k: int) -> list[Hit] | None:
        """BM25 hits for the before/after comparison; None when the source has no lexical scorer."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class MigrationTarget(Protocol):
    """Where encoded documents go: prepare (create index / add mappings), write, read back, finalize."""

    def describe(self) -> dict[str, Any]: ...

    def prepare(self) -> list[str]:
        """Create what the documents need (idempotent); returns the actions taken, for the report."""
        ...

    def write(self, documents: Sequence[Document]) -> WriteReport:
        """Write encoded documents; one outcome per document, in order."""
        ...

    def flush(self) -> None: ...

    def count(self) -> int: ...

    def get(self, ids: Sequence[DocId]) -> list[Document | None]: ...

    def search_connector(self) -> Connector | None:
        """A connector that searches the migrated data (for the hybrid side of verification), or None."""
        ...

    def finalize(self) -> list[str]:
        """Make the migration live (e.g. swap an alias); returns the actions taken."""
        ...

    def close(self) -> None: ...


def _check_cursor_position(cursor: Mapping[str, Any] | None) -> tuple[int, Any]:
    if cursor is None:
        return 0, None
    position = cursor.get("position")
    if isinstance(position, bool) or not isinstance(position, int) or position < 0:
        raise ValueError(f"cursor position must be a non-negative integer, got {position!r}")
    return position, cursor.get("last_id")


def _check_resume_id(where: str, found: Any, expected: Any) -> None:
    if found != expected:
        raise SourceChanged(
            f"{where} has id {found!r} where the checkpoint recorded {expected!r}: the source changed since "
            "the last run (restart the migration)"
        )


class RecordFileSource:
    """A JSONL / CSV / Parquet file (or a list of mappings) read with `spladebridge.readers`.

    Each item needs an id (`id_field`, by default `_id` then `id`); `text_fields` are encoded, every other
    field is metadata. Bad items become `ReadFailure`s (dead-lettered), never stop the run.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | Sequence[Mapping[str, Any]],
        *,
        id_field: str | None = None,
        text_fields: Sequence[str] = DEFAULT_TEXT_FIELDS,
        format: str | None = None,
        max_text_chars: int = 1_000_000,
    ) -> None:
        self.text_fields = tuple(text_fields)
        self.format = format
        if isinstance(path, str | os.PathLike):
            check_source(path, format)
            self.source: Any = Path(path)
        else:
            self.source = list(path)
        self.parser = RecordParser(
            id_field=id_field, text_fields=self.text_fields, max_text_chars=max_text_chars
        )

    def describe(self) -> dict[str, Any]:
        if isinstance(self.source, Path):
            return {"kind": "records", **fingerprint(self.source)}
        return {"kind": "records", "items": len(self.source)}

    def count(self) -> int:
        """Distinct ids among the readable items (what the target should hold afterwards)."""
        ids = {
            (type(r.id), r.id)
            for r in iter_records(self.source, self.parser, fmt=self.format)
            if r.document is not None
        }
        return len(ids)

    def read(self, cursor: Mapping[str, Any] | None, batch_size: int) -> Iterator[SourceBatch]:
        start, last_id = _check_cursor_position(cursor)
        checked = start == 0
        batch = SourceBatch([], {}, first_position=start)
        for record in iter_records(self.source, self.parser, fmt=self.format):
            if record.position < start:
                if record.position == start - 1:
                    _check_resume_id(record.where, record.id, last_id)
                    checked = True
                continue
            if record.document is None:
                batch.failures.append(
                    ReadFailure(
                        record.position, record.where, record.id, record.error or "unreadable", record.raw
                    )
                )
            else:
                batch.documents.append(record.document)
            batch.cursor = {"position": record.position + 1, "last_id": record.id}
            if len(batch.documents) + len(batch.failures) >= batch_size:
                yield batch
                batch = SourceBatch([], {}, first_position=record.position + 1)
        if not checked:
            raise SourceChanged(
                f"the input has fewer than {start} items, the checkpoint's position; it changed since the "
                "last run (restart the migration)"
            )
        if batch.documents or batch.failures:
            yield batch

    def search_text(self, text: str, k: int) -> list[Hit] | None:
        return None

    def close(self) -> None:
        return None


class ConnectorSource:
    """Any connector's `scan()` (e.g. re-encoding a Qdrant collection with a new model).

    The scan's stored vectors are dropped (the migration re-encodes); `text_fields` default to the
    connector's spec. Resuming skips the first `position` documents of a fresh scan, checking the id.
    """

    def __init__(
        self, connector: Connector, *, text_fields: Sequence[str] | None = None, name: str = ""
    ) -> None:
        if text_fields is None:
            if connector.spec is None:
                raise ValueError("the source connector has no index spec; pass text_fields")
            text_fields = connector.spec.text_fields
        self.connector = connector
        self.text_fields = tuple(text_fields)
        self.name = name or (connector.spec.name if connector.spec is not None else "")

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": "connector",
            "connector": type(self.connector).__name__,
            "index": self.name,
        }
        path = getattr(self.connector, "path", None)
        if path is not None:
            out["path"] = str(Path(path).resolve())
        return out

    def count(self) -> int:
        return self.connector.count()

    def read(self, cursor: Mapping[str, Any] | None, batch_size: int) -> Iterator[SourceBatch]:
        start, last_id = _check_cursor_position(cursor)
        checked = start == 0
        batch = SourceBatch([], {}, first_position=start)
        for position, doc in enumerate(self.connector.scan(batch_size)):
            if position < start:
                if position == start - 1:
                    _check_resume_id(f"document {position} of the scan", doc.id, last_id)
                    checked = True
                continue
            batch.documents.append(Document(id=doc.id, fields=dict(doc.fields), metadata=dict(doc.metadata)))
            batch.cursor = {"position": position + 1, "last_id": doc.id}
            if len(batch.documents) >= batch_size:
                yield batch
                batch = SourceBatch([], {}, first_position=position + 1)
        if not checked:
            raise SourceChanged(
                f"the source now holds fewer than {start} documents, the checkpoint's position; it changed "
                "since the last run (restart the migration)"
            )
        if batch.documents:
            yield batch

    def search_text(self, text: str, k: int) -> list[Hit] | None:
        if not self.connector.capabilities().lexical:
            return None
        return self.connector.search_text(text, k)

    def close(self) -> None:
        self.connector.close()


class ConnectorTarget:
    """Any connector as the target: `ensure_index(spec)`, then upserts by id (a repeated batch is harmless).

    `flush_each_batch` makes every batch durable before the checkpoint says it is written (needed for
    embedded engines such as Qdrant Edge, whose writes sit in memory until flushed).
    """

    def __init__(self, connector: Connector, spec: IndexSpec, *, flush_each_batch: bool = True) -> None:
        self.connector = connector
        self.spec = spec
        self.flush_each_batch = flush_each_batch

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": "connector",
            "connector": type(self.connector).__name__,
            "index": self.spec.name,
            "sparse_field": self.spec.sparse_field,
            "dense_field": self.spec.dense_field,
        }
        path = getattr(self.connector, "path", None)
        if path is not None:
            out["path"] = str(Path(path).resolve())
        return out

    def prepare(self) -> list[str]:
        self.connector.ensure_index(self.spec)
        return [f"ensure index {self.spec.name!r} ({type(self.connector).__name__})"]

    def write(self, documents: Sequence[Document]) -> WriteReport:
        report = self.connector.upsert(documents)
        if self.flush_each_batch:
            self.connector.flush()
        return report

    def flush(self) -> None:
        self.connector.flush()

    def count(self) -> int:
        return self.connector.count()

    def get(self, ids: Sequence[DocId]) -> list[Document | None]:
        return self.connector.get(ids)

    def search_connector(self) -> Connector | None:
        return self.connector

    def delete(self, ids: Sequence[DocId]) -> WriteReport:
        """Delete documents by id (a live migration's deletions), made durable like a written batch."""
        report = self.connector.delete(list(ids))
        if self.flush_each_batch:
            self.connector.flush()
        return report

    def finalize(self) -> list[str]:
        optimize = getattr(self.connector, "optimize", None)
        if callable(optimize):
            optimize()
            return [f"optimized {self.spec.name!r}"]
        return []

    def close(self) -> None:
        self.connector.close()
