"""Load a BEIR-layout test collection (corpus.jsonl, queries.jsonl, qrels/<split>.tsv) with clear errors.

Every malformed line is reported with its file and line number, so a broken collection fails at load time
instead of silently scoring as zero later.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["BeirDataset", "DatasetError", "Qrels", "load_beir", "read_qrels"]

#: qrels as `{query_id: {doc_id: relevance}}`, the layout ir-measures and ranx take directly.
Qrels = dict[str, dict[str, int]]


class DatasetError(ValueError):
    """A BEIR folder that is missing a file or has a malformed line; the message names file and line."""


@dataclass(frozen=True, slots=True)
class BeirDataset:
    """One loaded collection: documents, queries and every qrels split found under `qrels/`."""

    name: str
    path: Path
    corpus: dict[str, dict[str, str]]
    queries: dict[str, str]
    qrels: dict[str, Qrels]
    fingerprint: str
    notes: tuple[str, ...] = field(default_factory=tuple)

    def split(self, name: str) -> Qrels:
        """The qrels of one split (e.g. "test"); raises `DatasetError` naming the splits that exist."""
        if name not in self.qrels:
            raise DatasetError(
                f"{self.path}: no qrels split {name!r} (found: {', '.join(sorted(self.qrels)) or 'none'})"
            )
        return self.qrels[name]

    def judged_queries(self, split: str = "test") -> dict[str, str]:
        """`{query_id: text}` for the queries judged in `split`, in qrels order."""
        return {qid: self.queries[qid] for qid in self.split(split)}

    def tuning_split(self) -> str | None:
        """The split to tune fusion weights on: "dev" if present, else "train", else None (never "test")."""
        for name in ("dev", "train"):
            if name in self.qrels:
                return name
        return None

    def doc_text(self, doc_id: str) -> str:
        """Title and text joined by a space: the text every signal (BM25, SPLADE, dense) sees."""
        doc = self.corpus[doc_id]
        return " ".join(part for part in (doc.get("title", ""), doc.get("text", "")) if part).strip()


def _read_jsonl(path: Path) -> Iterable[tuple[int, dict[str, object]]]:
    if not path.is_file():
        raise DatasetError(f"{path}: file not found (a BEIR folder needs corpus.jsonl and queries.jsonl)")
    with path.open(encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DatasetError(f"{path}:{lineno}: invalid JSON ({exc.msg})") from None
            if not isinstance(obj, dict):
                raise DatasetError(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
            yield lineno, obj


def _string_field(obj: Mapping[str, object], key: str, where: str, *, required: bool) -> str:
    value = obj.get(key)
    if value is None:
        if required:
            raise DatasetError(f"{where}: missing field {key!r}")
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise DatasetError(f"{where}: field {key!r} must be a string, got {type(value).__name__}")
    return str(value)


def _load_corpus(path: Path) -> dict[str, dict[str, str]]:
    corpus: dict[str, dict[str, str]] = {}
    for lineno, obj in _read_jsonl(path):
        where = f"{path}:{lineno}"
        doc_id = _string_field(obj, "_id", where, required=True)
        if not doc_id:
            raise DatasetError(f"{where}: empty '_id'")
        if doc_id in corpus:
            raise DatasetError(f"{where}: duplicate document id {doc_id!r}")
        corpus[doc_id] = {
            "title": _string_field(obj, "title", where, required=False),
            "text": _string_field(obj, "text", where, required=True),
        }
    if not corpus:
        raise DatasetError(f"{path}: no documents")
    return corpus


def _load_queries(path: Path) -> dict[str, str]:
    queries: dict[str, str] = {}
    for lineno, obj in _read_jsonl(path):
        where = f"{path}:{lineno}"
        qid = _string_field(obj, "_id", where, required=True)
        if qid in queries:
            raise DatasetError(f"{where}: duplicate query id {qid!r}")
        queries[qid] = _string_field(obj, "text", where, required=True)
    if not queries:
        raise DatasetError(f"{path}: no queries")
    return queries


def read_qrels(path: Path) -> Qrels:
    """Parse one qrels TSV (header `query-id corpus-id score`); a bad line raises with its line number."""
    if not path.is_file():
        raise DatasetError(f"{path}: file not found")
    qrels: Qrels = {}
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t")
        for lineno, row in enumerate(reader, start=1):
            if not row or not "".join(row).strip():
                continue
            if lineno == 1 and row[0].strip().lower() in {"query-id", "query_id", "qid"}:
                continue
            if len(row) != 3:
                raise DatasetError(f"{path}:{lineno}: expected 3 tab-separated columns, got {len(row)}")
            qid, doc_id, score_text = (cell.strip() for cell in row)
            try:
                score = int(score_text)
            except ValueError:
                raise DatasetError(f"{path}:{lineno}: relevance {score_text!r} is not an integer") from None
            if not qid or not doc_id:
                raise DatasetError(f"{path}:{lineno}: empty query or document id")
            qrels.setdefault(qid, {})[doc_id] = score
    return qrels


def _fingerprint(paths: Iterable[Path]) -> str:
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(path.name.encode())
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def load_beir(path: str | Path, *, name: str | None = None) -> BeirDataset:
    """Load a BEIR folder; requires qrels/test.tsv, loads any other splits beside it (train, dev).

    Judged queries missing from queries.jsonl are an error; judged documents missing from the corpus are
    kept (they count as unretrievable relevant documents, as in trec_eval) and noted in `notes`.
    """
    root = Path(path)
    if not root.is_dir():
        raise DatasetError(f"{root}: not a directory (expected a BEIR folder with corpus.jsonl)")
    corpus = _load_corpus(root / "corpus.jsonl")
    queries = _load_queries(root / "queries.jsonl")
    qrels_dir = root / "qrels"
    if not (qrels_dir / "test.tsv").is_file():
        raise DatasetError(f"{qrels_dir / 'test.tsv'}: file not found (the test qrels are required)")
    splits = {p.stem: p for p in qrels_dir.glob("*.tsv") if p.stem in {"test", "dev", "train"}}
    qrels: dict[str, Qrels] = {}
    notes: list[str] = []
    for split, split_path in sorted(splits.items()):
        loaded = read_qrels(split_path)
        missing_q = [qid for qid in loaded if qid not in queries]
        if missing_q:
            raise DatasetError(
                f"{split_path}: {len(missing_q)} judged query id(s) not in queries.jsonl, "
                f"e.g. {missing_q[0]!r}"
            )
        missing_d = {d for judged in loaded.values() for d in judged if d not in corpus}
        if missing_d:
            notes.append(f"{split}: {len(missing_d)} judged document id(s) are not in the corpus")
        qrels[split] = loaded
    files = [root / "corpus.jsonl", root / "queries.jsonl", *splits.values()]
    return BeirDataset(
        name=name or root.name,
        path=root,
        corpus=corpus,
        queries=queries,
        qrels=qrels,
        fingerprint=_fingerprint(files),
        notes=tuple(notes),
    )
