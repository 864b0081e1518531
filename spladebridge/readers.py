"""Read documents for ingestion from an iterable, JSONL, CSV or Parquet, one `Record` per input item.

Every input item becomes exactly one `Record` with a stable 0-based `position` (the checkpoint's unit) and a
human-readable `where` ("line 12", "row 5", "item 3"). A bad item (malformed JSON, missing id, missing text
field, oversized text) is yielded with `error` set instead of raising, so one bad line never stops a run.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeAlias

from spladebridge.connectors.base import DocId, Document

__all__ = [
    "DEFAULT_ID_FIELDS",
    "DEFAULT_TEXT_FIELDS",
    "FORMATS",
    "Format",
    "ReaderError",
    "Record",
    "RecordParser",
    "Source",
    "check_source",
    "count_items",
    "detect_format",
    "fingerprint",
    "iter_records",
]

Format: TypeAlias = Literal["jsonl", "csv", "parquet"]
FORMATS: tuple[Format, ...] = ("jsonl", "csv", "parquet")
Source: TypeAlias = "str | os.PathLike[str] | Iterable[Mapping[str, Any] | Document]"

#: Tried in order when no id field is named: BEIR's `_id`, then `id`.
DEFAULT_ID_FIELDS: tuple[str, ...] = ("_id", "id")
DEFAULT_TEXT_FIELDS: tuple[str, ...] = ("title", "text")

_SUFFIXES: dict[str, Format] = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
}


class ReaderError(ValueError):
    """The source as a whole cannot be read (missing file, unknown format); item problems are `Record`s."""


@dataclass(slots=True)
class Record:
    """One input item: a parsed `Document`, or the reason it could not become one.

    `raw` keeps what was read (the decoded object, or the line text when it was not valid JSON) so that a
    dead-letter entry can be re-ingested after a fix.
    """

    position: int
    where: str
    document: Document | None = None
    error: str | None = None
    raw: Any = None
    id: DocId | None = field(default=None)


@dataclass(frozen=True, slots=True)
class RecordParser:
    """Turns one decoded mapping into a `Document`: id field, text fields, every other field as metadata."""

    id_field: str | None = None
    text_fields: tuple[str, ...] = DEFAULT_TEXT_FIELDS
    max_text_chars: int = 1_000_000

    def __post_init__(self) -> None:
        if not self.text_fields:
            raise ValueError("text_fields must name at least one field")
        if self.max_text_chars <= 0:
            raise ValueError(f"max_text_chars must be positive, got {self.max_text_chars}")

    def parse(self, obj: object, position: int, where: str) -> Record:
        """Validate `obj` into a Record; problems land in `Record.error`, never raise."""
        if isinstance(obj, Document):
            return self._check_document(obj, position, where)
        if not isinstance(obj, Mapping):
            return Record(
                position, where, error=f"{where}: expected an object, got {type(obj).__name__}", raw=obj
            )
        id_key, doc_id, id_error = self._find_id(obj)
        if id_error is not None:
            return Record(position, where, error=f"{where}: {id_error}", raw=_jsonable(obj))
        assert doc_id is not None
        fields: dict[str, str] = {}
        for name in self.text_fields:
            value = obj.get(name)
            if value is None or (isinstance(value, float) and math.isnan(value)):
                continue
            if not isinstance(value, str):
                return Record(
                    position,
                    where,
                    error=f"{where}: text field {name!r} must be a string, got {type(value).__name__}",
                    raw=_jsonable(obj),
                    id=doc_id,
                )
            fields[name] = value
        metadata = {k: v for k, v in obj.items() if k != id_key and k not in self.text_fields}
        bad = _lone_surrogate(obj)
        if bad is not None:  # no engine (nor the dead-letter file) can encode it as UTF-8
            return Record(
                position,
                where,
                error=f"{where}: {bad} holds a lone surrogate (invalid Unicode)",
                raw=_jsonable(_replace_surrogates(obj)),
                id=None if isinstance(doc_id, str) and _SURROGATE.search(doc_id) else doc_id,
            )
        doc = Document(id=doc_id, fields=fields, metadata=metadata)
        return self._check_document(doc, position, where, raw=obj)

    def _check_document(self, doc: Document, position: int, where: str, raw: object = None) -> Record:
        raw_obj = _jsonable(raw) if raw is not None else _document_raw(doc)
        id_error = _id_problem(doc.id)
        if id_error is not None:
            return Record(position, where, error=f"{where}: {id_error}", raw=raw_obj)
        present = [n for n in self.text_fields if doc.fields.get(n) is not None]
        if not present:
            names = ", ".join(repr(n) for n in self.text_fields)
            return Record(
                position,
                where,
                error=f"{where}: document {doc.id!r} has none of the text fields {names}",
                raw=raw_obj,
                id=doc.id,
            )
        size = sum(len(doc.fields[n]) for n in present)
        if size > self.max_text_chars:
            return Record(
                position,
                where,
                error=(
                    f"{where}: document {doc.id!r} has {size:,} characters of text, over the limit of "
                    f"{self.max_text_chars:,} (raise max_text_chars / --max-text-chars to accept it)"
                ),
                raw=raw_obj,
                id=doc.id,
            )
        return Record(position, where, document=doc, raw=raw_obj, id=doc.id)

    def _find_id(self, obj: Mapping[str, Any]) -> tuple[str | None, DocId | None, str | None]:
        keys = (self.id_field,) if self.id_field is not None else DEFAULT_ID_FIELDS
        for key in keys:
            if key in obj and obj[key] is not None:
                value = obj[key]
                if isinstance(value, float) and value.is_integer():
                    value = int(value)
                problem = _id_problem(value)
                if problem is not None:
                    return key, None, f"field {key!r}: {problem}"
                return key, value, None
        names = " or ".join(repr(k) for k in keys)
        return None, None, f"missing id field {names}"


_SURROGATE = re.compile("[\ud800-\udfff]")


def _lone_surrogate(obj: object, path: str = "", depth: int = 0) -> str | None:
    """Where in a decoded item a string holds a lone surrogate (a JSON "\\ud800" escape), or None."""
    if isinstance(obj, str):
        return (path or "the item") if not obj.isascii() and _SURROGATE.search(obj) else None
    if depth > 50:
        return None
    if isinstance(obj, Mapping):
        for key, value in obj.items():
            name = f"{path}.{key}" if path else f"field {key!r}"
            found = _lone_surrogate(key, name, depth + 1) or _lone_surrogate(value, name, depth + 1)
            if found is not None:
                return found
    elif isinstance(obj, list | tuple):
        for i, value in enumerate(obj):
            found = _lone_surrogate(value, f"{path}[{i}]", depth + 1)
            if found is not None:
                return found
    return None


def _replace_surrogates(obj: object) -> Any:
    """`obj` with lone surrogates replaced by U+FFFD, so it can be written to the dead-letter file."""
    if isinstance(obj, str):
        return _SURROGATE.sub("\ufffd", obj)
    if isinstance(obj, Mapping):
        return {_replace_surrogates(k): _replace_surrogates(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_replace_surrogates(v) for v in obj]
    return obj


def _id_problem(value: object) -> str | None:
    if isinstance(value, bool) or not isinstance(value, str | int):
        return f"id must be a string or a non-negative integer, got {type(value).__name__} {value!r}"
    if isinstance(value, int) and value < 0:
        return f"id must be a string or a non-negative integer, got {value}"
    if isinstance(value, str) and not value.strip():
        return "id is an empty string"
    return None


def _jsonable(obj: object) -> Any:
    """`obj` if it survives JSON encoding, else its JSON text with non-serialisable values as strings."""
    try:
        json.dumps(obj)
    except (TypeError, ValueError):
        return json.loads(json.dumps(obj, default=str))
    return obj


def _document_raw(doc: Document) -> dict[str, Any]:
    return _jsonable({"id": doc.id, **doc.fields, **doc.metadata})  # type: ignore[no-any-return]


def detect_format(path: str | os.PathLike[str], fmt: str | None = None) -> Format:
    """The format named by `fmt`, else the one the file suffix says (.jsonl/.ndjson/.json, .csv, .parquet)."""
    if fmt is not None:
        lowered = fmt.lower()
        if lowered not in FORMATS:
            raise ReaderError(f"unknown input format {fmt!r}; expected one of {', '.join(FORMATS)}")
        return lowered
    suffixes = [s.lower() for s in Path(path).suffixes]
    if suffixes and suffixes[-1] == ".gz":
        raise ReaderError(f"{path}: compressed input is not supported; decompress it first")
    for suffix in reversed(suffixes):
        if suffix in _SUFFIXES:
            return _SUFFIXES[suffix]
    raise ReaderError(
        f"{path}: cannot tell the format from the file name; pass format= / --format (jsonl, csv, parquet)"
    )


def _check_file(path: Path) -> None:
    if not path.exists():
        raise ReaderError(f"input file not found: {path}")
    if not path.is_file():
        raise ReaderError(f"input is not a regular file: {path}")


def check_source(path: str | os.PathLike[str], fmt: str | None = None) -> Format:
    """Fail early, with a clear `ReaderError`, when a path source is missing or its format is unknown."""
    _check_file(Path(path))
    return detect_format(path, fmt)


def iter_records(
    source: Source,
    parser: RecordParser,
    *,
    fmt: str | None = None,
) -> Iterator[Record]:
    """Yield one `Record` per input item, in input order, with positions 0, 1, 2, ..."""
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        _check_file(path)
        kind = detect_format(path, fmt)
        if kind == "jsonl":
            yield from _iter_jsonl(path, parser)
        elif kind == "csv":
            yield from _iter_csv(path, parser)
        else:
            yield from _iter_parquet(path, parser)
        return
    if isinstance(source, Mapping | bytes):
        raise ReaderError("source must be a path or an iterable of documents, got a single mapping")
    for position, item in enumerate(source):
        yield parser.parse(item, position, f"item {position}")


def _iter_jsonl(path: Path, parser: RecordParser) -> Iterator[Record]:
    position = 0
    with path.open("rb") as handle:
        for line_no, raw_line in enumerate(handle, start=1):
            if not raw_line.strip():
                continue
            where = f"line {line_no}"
            try:
                text = raw_line.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield Record(
                    position,
                    where,
                    error=f"{where}: not valid UTF-8 ({exc.reason} at byte {exc.start})",
                    raw=raw_line.decode("utf-8", errors="replace").rstrip("\r\n"),
                )
                position += 1
                continue
            if line_no == 1:
                text = text.lstrip("\ufeff")
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as exc:
                yield Record(
                    position,
                    where,
                    error=f"{where}: malformed JSON ({exc.msg} at column {exc.colno})",
                    raw=text.rstrip("\r\n"),
                )
            except (ValueError, RecursionError) as exc:  # an integer of over 4300 digits; nesting too deep
                reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc).split(";")[0]
                yield Record(
                    position,
                    where,
                    error=f"{where}: unreadable JSON ({reason})",
                    raw=text[:1000].rstrip("\r\n"),
                )
            else:
                yield parser.parse(obj, position, where)
            position += 1


def _iter_csv(path: Path, parser: RecordParser) -> Iterator[Record]:
    # The csv module caps a field at 128 KiB by default (a process-wide setting); raise it so that the
    # reader's own max_text_chars decides what is too big, with a clear message, instead of a csv.Error.
    limit = max(csv.field_size_limit(), parser.max_text_chars * 4 + 1024)
    csv.field_size_limit(min(limit, 2**31 - 1))
    # Undecodable bytes become lone surrogates (surrogateescape), so that one bad byte fails its own row
    # instead of the decoder failing the whole file at its first read.
    with path.open("r", encoding="utf-8-sig", errors="surrogateescape", newline="") as handle:
        reader = csv.reader(handle)
        try:
            header = next(reader)
        except StopIteration:
            return
        except (csv.Error, UnicodeDecodeError) as exc:
            raise ReaderError(f"{path}: cannot read the CSV header: {exc}") from None
        if any(_undecodable(h) for h in header):
            raise ReaderError(f"{path}: the CSV header is not valid UTF-8")
        if len(set(header)) != len(header):
            dupes = sorted({h for h in header if header.count(h) > 1})
            raise ReaderError(f"{path}: the CSV header repeats column(s) {', '.join(map(repr, dupes))}")
        position = 0
        while True:
            where = f"line {reader.line_num + 1}"
            try:
                row = next(reader)
            except StopIteration:
                return
            except (csv.Error, UnicodeDecodeError) as exc:
                yield Record(position, where, error=f"{where}: malformed CSV ({exc})")
                position += 1
                continue
            if not row:
                continue
            if any(_undecodable(cell) for cell in row):
                yield Record(
                    position,
                    where,
                    error=f"{where}: not valid UTF-8",
                    raw=[c.encode("utf-8", "surrogateescape").decode("utf-8", "replace") for c in row],
                )
            elif len(row) != len(header):
                yield Record(
                    position,
                    where,
                    error=f"{where}: {len(row)} columns, the header has {len(header)}",
                    raw=row,
                )
            else:
                obj = dict(zip(header, row, strict=True))
                yield parser.parse(obj, position, where)
            position += 1


def _undecodable(text: str) -> bool:
    """True when `text` holds bytes that were not UTF-8 (decoded with surrogateescape as U+DC80..U+DCFF)."""
    return any("\udc80" <= ch <= "\udcff" for ch in text)


def _iter_parquet(path: Path, parser: RecordParser) -> Iterator[Record]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ReaderError("reading Parquet needs pyarrow: pip install 'spladebridge[parquet]'") from None
    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises ArrowInvalid and friends for a file that is not Parquet
        raise ReaderError(f"{path}: not a readable Parquet file ({exc})") from None
    position = 0
    for batch in parquet.iter_batches(batch_size=1024):
        for obj in batch.to_pylist():
            yield parser.parse(obj, position, f"row {position + 1}")
            position += 1


def count_items(source: Source, fmt: str | None = None) -> int | None:
    """How many items a file holds (non-blank lines, CSV rows, Parquet rows), cheaply; None when unknown."""
    if not isinstance(source, str | os.PathLike):
        return len(source) if isinstance(source, Sequence) else None
    path = Path(source)
    try:
        kind = detect_format(path, fmt)
        if kind == "parquet":
            import pyarrow.parquet as pq

            return int(pq.ParquetFile(path).metadata.num_rows)
        lines = 0
        last = b"\n"
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                lines += chunk.count(b"\n")
                last = chunk[-1:]
        if last != b"\n":
            lines += 1
        return max(lines - 1, 0) if kind == "csv" else lines
    except (OSError, ReaderError, ImportError):
        return None


def fingerprint(source: Source) -> dict[str, Any]:
    """What identifies an input across runs: path, size and a hash of its first MiB."""
    if not isinstance(source, str | os.PathLike):
        return {"kind": "iterable"}
    path = Path(source)
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        digest.update(handle.read(1 << 20))
    return {
        "kind": "file",
        "path": str(path.resolve()),
        "size": path.stat().st_size,
        "head_sha256": digest.hexdigest(),
    }
