"""The encode-and-write stage of a live migration's catch-up: one function, so another engine (a Spark job,
say) can stand in for it without touching the passes around it."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from spladebridge.connectors.base import Document, WriteReport
from spladebridge.ingest import DenseEncoderLike, Failure, SparseEncoderLike, encode_batch, write_batch

__all__ = ["EncodeWrite", "StageResult", "encode_and_write"]


@dataclass(slots=True)
class StageResult:
    """Documents written, failures (encode or write, with the raw document), and the time each step took."""

    written: int = 0
    failures: list[tuple[Failure, Any]] = field(default_factory=list)
    unwritten: str | None = None
    encode_s: float = 0.0
    write_s: float = 0.0


class EncodeWrite(Protocol):
    """Encode `documents` (their `text_fields`) and write them with `write`; one outcome per document."""

    def __call__(
        self,
        documents: Sequence[Document],
        write: Callable[[list[Document]], WriteReport],
        text_fields: Sequence[str],
        sparse_encoder: SparseEncoderLike,
        dense_encoder: DenseEncoderLike | None,
    ) -> StageResult: ...


def encode_and_write(
    documents: Sequence[Document],
    write: Callable[[list[Document]], WriteReport],
    text_fields: Sequence[str],
    sparse_encoder: SparseEncoderLike,
    dense_encoder: DenseEncoderLike | None,
) -> StageResult:
    """Encode in one call (a failing document fails alone), then one `write` (the connector retries
    transient failures; what still fails is `unwritten`, and the pass stops there)."""
    result = StageResult()
    positioned = list(enumerate(documents))
    t0 = time.perf_counter()
    encoded, failures = encode_batch(positioned, text_fields, sparse_encoder, dense_encoder)
    result.encode_s = time.perf_counter() - t0
    result.failures.extend(failures)
    if not encoded:
        return result
    t1 = time.perf_counter()
    written = write_batch(write, encoded)
    result.write_s = time.perf_counter() - t1
    if written.unwritten:
        result.unwritten = written.stop_reason("the target")
    result.written = len(written.written)
    result.failures.extend(written.rejected)
    return result
