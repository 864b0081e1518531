"""The `--dry-run` plan: what would be created or added, how long encoding takes, how much the index grows.

Nothing is written. The encode rate is measured by encoding the first `sample_size` documents of the source
(timed after one warm-up call, so model loading is not counted); the growth estimate is

    sparse bytes = documents x mean active dims (of the sample's vectors) x bytes per posting
    dense bytes  = documents x (dense_dim x 4 + 2 x m x 4)        (float32 vector + HNSW links, m = 16)

with bytes per posting per engine in `BYTES_PER_POSTING`: Qdrant keeps each active dim twice, in the vector
storage and in the inverted index (u32 id + f32 weight each: 16 bytes); Lucene keeps one posting (doc delta +
the 9-bit feature value as a term frequency, block-compressed: about 3 bytes) plus the `"id": weight` text in
`_source` (about 9 bytes after stored-field compression): 12 bytes. These are estimates, good to a factor of
about 2; the report prints the formula next to the numbers.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from spladebridge.ingest import DenseEncoderLike, SparseEncoderLike

from .sources import MigrationSource

__all__ = ["BYTES_PER_POSTING", "HNSW_M", "MigrationPlan", "plan_migration"]

BYTES_PER_POSTING: dict[str, float] = {"qdrant": 16.0, "elasticsearch": 12.0, "opensearch": 12.0}
HNSW_M = 16


@dataclass(slots=True)
class MigrationPlan:
    """What a migration would do and cost, from a measured sample."""

    mode: str
    engine: str
    documents: int
    actions: list[str] = field(default_factory=list)
    mappings: dict[str, Any] = field(default_factory=dict)
    sample_docs: int = 0
    encode_docs_per_s: float = 0.0
    estimated_seconds: float = 0.0
    mean_active_dims: float = 0.0
    bytes_per_posting: float = 0.0
    dense_dim: int | None = None
    estimated_sparse_bytes: int = 0
    estimated_dense_bytes: int = 0
    notes: list[str] = field(default_factory=list)
    #: a live migration's expected freeze (`spladebridge.migrate.freeze_plan.FreezeEstimate`), measured
    freeze: dict[str, Any] | None = None
    freeze_summary: str | None = None

    @property
    def estimated_growth_bytes(self) -> int:
        return self.estimated_sparse_bytes + self.estimated_dense_bytes

    def formula(self) -> str:
        text = (
            f"sparse = {self.documents} docs x {self.mean_active_dims:.1f} mean active dims x "
            f"{self.bytes_per_posting:g} bytes/posting"
        )
        if self.dense_dim:
            text += f"; dense = {self.documents} docs x ({self.dense_dim} x 4 + 2 x {HNSW_M} x 4) bytes"
        return text

    def to_json_obj(self) -> dict[str, Any]:
        out = asdict(self)
        out["estimated_growth_bytes"] = self.estimated_growth_bytes
        out["formula"] = self.formula()
        return out

    def summary(self) -> str:
        import json

        lines = [f"dry run ({self.mode}, {self.engine}): nothing was written", f"documents: {self.documents}"]
        lines.extend(f"would: {a}" for a in self.actions)
        if self.mappings:
            lines.append("mappings to add: " + json.dumps(self.mappings, sort_keys=True))
        lines.append(
            f"encode rate: {self.encode_docs_per_s:.1f} docs/s on a sample of {self.sample_docs} -> "
            f"estimated time {_duration(self.estimated_seconds)}"
        )
        lines.append(
            f"estimated index growth: {_size(self.estimated_growth_bytes)} "
            f"(sparse {_size(self.estimated_sparse_bytes)}, dense {_size(self.estimated_dense_bytes)})"
        )
        lines.append(f"  formula: {self.formula()}")
        if self.freeze_summary:
            lines.append(self.freeze_summary)
        lines.extend(f"note: {n}" for n in self.notes)
        return "\n".join(lines)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.1f} {unit}" if unit != "B" else f"{int(value)} B"
        value /= 1024
    return f"{value:.1f} TiB"  # pragma: no cover - the loop always returns


def plan_migration(
    source: MigrationSource,
    sparse_encoder: SparseEncoderLike,
    dense_encoder: DenseEncoderLike | None = None,
    *,
    mode: str = "copy",
    engine: str = "qdrant",
    text_fields: Sequence[str] | None = None,
    sample_size: int = 32,
    actions: Sequence[str] = (),
    mappings: Mapping[str, Any] | None = None,
    bytes_per_posting: float | None = None,
) -> MigrationPlan:
    """Measure an encode rate and the mean active dims on a sample of the source; estimate time and growth."""
    if sample_size <= 0:
        raise ValueError(f"sample_size must be positive, got {sample_size}")
    fields = tuple(text_fields) if text_fields is not None else tuple(source.text_fields)
    per_posting = BYTES_PER_POSTING.get(engine, 16.0) if bytes_per_posting is None else bytes_per_posting
    documents = source.count()
    plan = MigrationPlan(
        mode=mode,
        engine=engine,
        documents=documents,
        actions=list(actions),
        mappings=dict(mappings or {}),
        bytes_per_posting=per_posting,
    )
    texts: list[str] = []
    batches = source.read(None, sample_size)
    for batch in batches:
        texts.extend(doc.text(fields) for doc in batch.documents)
        if len(texts) >= sample_size:
            break
    close = getattr(batches, "close", None)
    if callable(close):
        close()
    release = getattr(source, "release", None)
    if callable(release):
        release()  # an early-stopped scan holds a point in time
    texts = texts[:sample_size]
    plan.sample_docs = len(texts)
    if not texts:
        plan.notes.append("the source yielded no readable document to measure")
        return plan
    sparse_encoder.encode_documents(texts[:1])  # warm-up: loading and first-call costs are not the rate
    started = time.perf_counter()
    vectors = list(sparse_encoder.encode_documents(texts))
    if dense_encoder is not None:
        dense_encoder.encode(texts)
        plan.dense_dim = int(dense_encoder.dim)
    elapsed = max(time.perf_counter() - started, 1e-9)
    plan.encode_docs_per_s = len(texts) / elapsed
    plan.estimated_seconds = documents / plan.encode_docs_per_s
    plan.mean_active_dims = float(np.mean([v.nnz for v in vectors])) if vectors else 0.0
    plan.estimated_sparse_bytes = round(documents * plan.mean_active_dims * per_posting)
    if plan.dense_dim:
        plan.estimated_dense_bytes = int(documents * (plan.dense_dim * 4 + 2 * HNSW_M * 4))
    plan.notes.append(
        f"the sample is the first {len(texts)} documents of the source; encoding dominates the run time "
        "(writes overlap it), so the estimate leaves engine time out"
    )
    return plan
