"""Verification of a migration: equal counts, a sample compared field by field, BM25 vs hybrid side by side.

The sample is drawn while documents stream past (reservoir sampling with a per-position seeded draw, so a
resumed run draws exactly as an uninterrupted one would) and kept in the checkpoint as one digest per field,
taken from the source *before* the write. Comparing digests against what the target holds afterwards checks
that source fields came through unchanged even for in-place migrations, where the source is overwritten.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from spladebridge.connectors.base import DocId, Document, Hit
from spladebridge.hybrid.searcher import HybridSearcher
from spladebridge.hybrid.settings import RRF

from .sources import MigrationSource, MigrationTarget

__all__ = [
    "QueryComparison",
    "SampleCheck",
    "Sampler",
    "VerificationReport",
    "compare_queries",
    "field_digests",
    "verify",
]


def _canonical(value: Any) -> Any:
    """JSON-stable form: integral floats as ints (engines may turn 3 into 3.0), keys sorted by json.dumps."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, float):
        return int(value) if math.isfinite(value) and value.is_integer() else value
    if isinstance(value, int):
        return value
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    return str(value)


def _digest(value: Any) -> str:
    text = json.dumps(_canonical(value), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


def field_digests(doc: Document) -> dict[str, str]:
    """One digest per source field (text fields and metadata alike, by name)."""
    values: dict[str, Any] = {**doc.metadata, **doc.fields}
    return {name: _digest(value) for name, value in values.items()}


def _probe(doc: Document, text_fields: Sequence[str], words: int = 8) -> str:
    """The first words of the document's first non-empty text field: a query it should rank well for."""
    for name in text_fields:
        text = doc.fields.get(name)
        if text and text.strip():
            return " ".join(text.split()[:words])
    return ""


class Sampler:
    """A uniform sample of `size` documents over the whole stream, resumable from its JSON state.

    Item `n` (0-based) replaces a random slot with probability size/(n+1), its draw seeded by (seed, n), so
    the sample depends only on the stream, not on where runs were interrupted.
    """

    def __init__(self, size: int, seed: int = 0, state: Mapping[str, Any] | None = None) -> None:
        if size < 0:
            raise ValueError(f"sample size must be >= 0, got {size}")
        self.size = size
        self.seed = seed
        self.seen = 0
        self.items: list[dict[str, Any]] = []
        if state:
            self.seen = int(state.get("seen", 0))
            self.items = [dict(i) for i in state.get("items", [])]

    def offer(self, doc: Document, text_fields: Sequence[str]) -> None:
        n = self.seen
        self.seen += 1
        if self.size == 0:
            return
        entry = {
            "id": doc.id,
            "fields": field_digests(doc),
            "has_text": bool(doc.text(text_fields)),
            "probe": _probe(doc, text_fields),
        }
        for i, item in enumerate(self.items):  # a repeated id: the later version is what the target keeps
            if item.get("id") == doc.id and type(item.get("id")) is type(doc.id):
                self.items[i] = entry
                return
        if len(self.items) < self.size:
            self.items.append(entry)
            return
        slot = random.Random(f"{self.seed}:{n}").randrange(n + 1)
        if slot < self.size:
            self.items[slot] = entry

    def probes(self, count: int) -> list[str]:
        """Up to `count` distinct query texts taken from sampled documents (for a default comparison)."""
        out: list[str] = []
        for item in self.items:
            probe = item.get("probe")
            if probe and probe not in out:
                out.append(str(probe))
            if len(out) >= count:
                break
        return out

    def state(self) -> dict[str, Any]:
        return {"seen": self.seen, "size": self.size, "seed": self.seed, "items": self.items}


@dataclass(slots=True)
class SampleCheck:
    """One sampled id: found in the target, which source fields differ, whether its sparse vector is there."""

    id: DocId
    found: bool
    changed_fields: list[str] = field(default_factory=list)
    missing_fields: list[str] = field(default_factory=list)
    has_text: bool = False
    sparse_nnz: int | None = None

    @property
    def ok(self) -> bool:
        sparse_ok = not self.has_text or (self.sparse_nnz is not None and self.sparse_nnz > 0)
        return self.found and not self.changed_fields and not self.missing_fields and sparse_ok

    def problem(self) -> str | None:
        if self.ok:
            return None
        if not self.found:
            return f"id {self.id!r}: missing from the target"
        parts = []
        if self.changed_fields:
            parts.append(f"fields changed: {', '.join(self.changed_fields)}")
        if self.missing_fields:
            parts.append(f"fields missing: {', '.join(self.missing_fields)}")
        if self.has_text and not self.sparse_nnz:
            parts.append("text is non-empty but the sparse vector is missing or empty")
        return f"id {self.id!r}: " + "; ".join(parts)


@dataclass(slots=True)
class QueryComparison:
    """One sample query: the BM25-only top k (before) and the hybrid top k (after), with their overlap."""

    query: str
    bm25: list[tuple[DocId, float]] = field(default_factory=list)
    hybrid: list[tuple[DocId, float]] = field(default_factory=list)
    bm25_from: str = "source"
    error: str | None = None

    @property
    def overlap(self) -> int:
        return len({i for i, _ in self.bm25} & {i for i, _ in self.hybrid})


@dataclass(slots=True)
class VerificationReport:
    """Counts, the field-by-field sample and the query comparison."""

    source_count: int
    target_count: int
    expected_count: int
    samples: list[SampleCheck] = field(default_factory=list)
    queries: list[QueryComparison] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def counts_ok(self) -> bool:
        return self.target_count == self.expected_count

    @property
    def samples_ok(self) -> bool:
        return all(s.ok for s in self.samples)

    @property
    def ok(self) -> bool:
        return self.counts_ok and self.samples_ok

    def problems(self) -> list[str]:
        out: list[str] = []
        if not self.counts_ok:
            out.append(
                f"target holds {self.target_count} documents, expected {self.expected_count} "
                f"(source {self.source_count})"
            )
        out.extend(p for s in self.samples if (p := s.problem()) is not None)
        return out

    def to_json_obj(self) -> dict[str, Any]:
        out = asdict(self)
        out["counts_ok"] = self.counts_ok
        out["samples_ok"] = self.samples_ok
        out["ok"] = self.ok
        out["problems"] = self.problems()
        for q, obj in zip(self.queries, out["queries"], strict=True):
            obj["overlap"] = q.overlap
        return out

    def summary(self, width: int = 46) -> str:
        """Counts, sample result, and each query's BM25 and hybrid lists side by side."""
        lines = [
            f"counts: source {self.source_count}, target {self.target_count}, expected {self.expected_count} "
            f"-> {'ok' if self.counts_ok else 'MISMATCH'}",
            f"sample: {sum(s.ok for s in self.samples)}/{len(self.samples)} documents match field by field"
            + ("" if self.samples_ok else " (see problems)"),
        ]
        lines.extend(f"  problem: {p}" for p in self.problems())
        lines.extend(f"  note: {n}" for n in self.notes)
        for q in self.queries:
            lines.append(f"query {q.query!r}: overlap {q.overlap} of top {max(len(q.bm25), len(q.hybrid))}")
            if q.error:
                lines.append(f"  error: {q.error}")
                continue
            head = f"BM25 only ({q.bm25_from})"
            lines.append(f"  {'#':>3}  {head:<{width}}  hybrid (after)")
            for rank in range(max(len(q.bm25), len(q.hybrid))):
                left = _cell(q.bm25, rank, width)
                right = _cell(q.hybrid, rank, width)
                lines.append(f"  {rank + 1:>3}  {left:<{width}}  {right}")
        return "\n".join(lines)


def _cell(hits: list[tuple[DocId, float]], rank: int, width: int) -> str:
    if rank >= len(hits):
        return ""
    doc_id, score = hits[rank]
    text = f"{doc_id} ({score:.4g})"
    return text if len(text) <= width else text[: width - 1] + "…"


def check_samples(target: MigrationTarget, items: Sequence[Mapping[str, Any]]) -> list[SampleCheck]:
    """Fetch the sampled ids from the target and compare digests field by field."""
    if not items:
        return []
    ids: list[DocId] = [item["id"] for item in items]
    docs = target.get(ids)
    checks: list[SampleCheck] = []
    for item, doc in zip(items, docs, strict=True):
        check = SampleCheck(id=item["id"], found=doc is not None, has_text=bool(item.get("has_text")))
        if doc is not None:
            now = field_digests(doc)
            before: Mapping[str, str] = item.get("fields", {})
            check.changed_fields = sorted(n for n, d in before.items() if n in now and now[n] != d)
            check.missing_fields = sorted(n for n in before if n not in now)
            check.sparse_nnz = doc.sparse.nnz if doc.sparse is not None else None
        checks.append(check)
    return checks


def compare_queries(
    source: MigrationSource,
    target: MigrationTarget,
    queries: Sequence[str],
    query_encoder: Any,
    dense_encoder: Any = None,
    k: int = 10,
) -> tuple[list[QueryComparison], list[str]]:
    """BM25-only (from the source when it has a lexical scorer, else the target's) vs hybrid on the target."""
    notes: list[str] = []
    if not queries:
        return [], notes
    connector = target.search_connector()
    searcher: HybridSearcher | None = None
    target_lexical = False
    if connector is None:
        notes.append("the target offers no search connector; hybrid results are not compared")
    else:
        try:
            searcher = HybridSearcher(
                connector, query_encoder, dense_encoder, fusion=RRF(k=60), candidates=max(k, 50)
            )
            target_lexical = connector.capabilities().lexical
            notes.append(
                f"hybrid scores are RRF (k=60) over {', '.join(searcher.signals)}; BM25 scores are the raw ones"
            )
        except (TypeError, ValueError) as exc:
            notes.append(f"hybrid search unavailable: {exc}")
    out: list[QueryComparison] = []
    for text in queries:
        comparison = QueryComparison(query=text)
        try:
            before: list[Hit] | None = source.search_text(text, k)
            if before is None and connector is not None and target_lexical:
                comparison.bm25_from = "target"
                comparison.bm25 = [(h.id, h.score) for h in connector.search_text(text, k)]
            elif before is not None:
                comparison.bm25 = [(h.id, h.score) for h in before]
            else:
                comparison.bm25_from = "unavailable"
            if searcher is not None:
                comparison.hybrid = [(h.id, h.score) for h in searcher.search(text, k)]
        except Exception as exc:  # one failing query is reported, the others still run
            comparison.error = f"{type(exc).__name__}: {exc}"
        out.append(comparison)
    return out, notes


def verify(
    source: MigrationSource,
    target: MigrationTarget,
    sample: Sequence[Mapping[str, Any]],
    *,
    queries: Sequence[str] = (),
    query_encoder: Any = None,
    dense_encoder: Any = None,
    k: int = 10,
    expected_count: int | None = None,
) -> VerificationReport:
    """Counts (target against `expected_count`, by default the source's count), samples, and queries."""
    target.flush()
    source_count = source.count()
    report = VerificationReport(
        source_count=source_count,
        target_count=target.count(),
        expected_count=source_count if expected_count is None else expected_count,
    )
    report.samples = check_samples(target, sample)
    if queries and query_encoder is not None:
        report.queries, notes = compare_queries(source, target, queries, query_encoder, dense_encoder, k)
        report.notes.extend(notes)
    elif queries:
        report.notes.append("no query encoder: sample queries were not compared")
    return report
