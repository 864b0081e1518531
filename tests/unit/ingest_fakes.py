"""Small deterministic fakes for ingest tests: hashing encoders and connectors kept in memory or in a JSON file.

The fakes are real implementations of the interfaces (a hashing bag-of-words encoder, a dict-backed connector),
so the pipeline's behaviour is tested end to end without models or engines.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from spladebridge.connectors.base import (
    Capabilities,
    Connector,
    ConnectorError,
    DocId,
    Document,
    Hit,
    IndexSpec,
    ItemOutcome,
    WriteReport,
)
from spladebridge.connectors.filters import FilterLike
from spladebridge.connectors.retry import RetryPolicy
from spladebridge.encoder.sparse_vector import SparseVector
from spladebridge.testing import FaultyConnector

VOCAB = 30522


def _token_id(word: str) -> int:
    return int.from_bytes(hashlib.blake2b(word.encode(), digest_size=4).digest(), "big") % VOCAB


class HashSparseEncoder:
    """Bag of lower-cased words hashed into a 30522-id space, weight = 1 + log(count)."""

    def __init__(
        self,
        fail_on: str | None = None,
        interrupt_on_call: int | None = None,
        delay_s: float = 0.0,
    ) -> None:
        self.fail_on = fail_on
        self.interrupt_on_call = interrupt_on_call
        self.delay_s = delay_s
        self.calls = 0
        self.texts: list[str] = []

    def encode_documents(self, texts: Sequence[str]) -> list[SparseVector]:
        self.calls += 1
        if self.interrupt_on_call is not None and self.calls == self.interrupt_on_call:
            raise KeyboardInterrupt
        if self.delay_s:
            time.sleep(self.delay_s)
        out = []
        for text in texts:
            if self.fail_on is not None and self.fail_on in text:
                raise ValueError(f"cannot encode text containing {self.fail_on!r}")
            counts: dict[int, float] = {}
            for word in text.lower().split():
                tid = _token_id(word)
                counts[tid] = counts.get(tid, 0.0) + 1.0
            out.append(SparseVector.from_dict({k: 1.0 + float(np.log(v)) for k, v in counts.items()}))
        self.texts.extend(texts)
        return out

    def encode_queries(self, texts: Sequence[str]) -> list[SparseVector]:
        return self.encode_documents(texts)

    def decode(self, vec: SparseVector, top_k: int | None = None) -> list[tuple[str, float]]:
        pairs = sorted(
            zip(vec.indices.tolist(), vec.values.tolist(), strict=True), key=lambda t: (-t[1], t[0])
        )
        return [(f"t{i}", w) for i, w in pairs[:top_k]]


class HashDenseEncoder:
    """A unit vector from the text's hash: deterministic, `dim` wide."""

    def __init__(self, dim: int = 8) -> None:
        self._dim = dim
        self.calls = 0

    @property
    def dim(self) -> int:
        return self._dim

    def encode(self, texts: Sequence[str]) -> NDArray[np.float32]:
        self.calls += 1
        rows = []
        for text in texts:
            seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")
            vec = np.random.default_rng(seed).standard_normal(self._dim)
            rows.append(vec / np.linalg.norm(vec))
        return np.asarray(rows, dtype=np.float32).reshape(len(texts), self._dim)


def doc_state(doc: Document) -> dict[str, Any]:
    """A comparable snapshot of a stored document."""
    return {
        "fields": dict(doc.fields),
        "metadata": dict(doc.metadata),
        "sparse": doc.sparse.to_dict() if doc.sparse is not None else None,
        "dense": [round(float(x), 6) for x in doc.dense] if doc.dense is not None else None,
    }


class MemoryConnector(Connector):
    """A dict-backed connector. `fail` decides per upsert call: raise, or return per-item outcomes."""

    def __init__(
        self,
        fail: Callable[[int, list[Document]], list[ItemOutcome] | None] | None = None,
        write_delay_s: float = 0.0,
    ) -> None:
        self.store: dict[DocId, Document] = {}
        self.fail = fail
        self.write_delay_s = write_delay_s
        self.upsert_calls = 0
        self.upserted_ids: list[DocId] = []
        self.flushes = 0
        self.closed = False
        self.lock = threading.Lock()

    def ensure_index(self, spec: IndexSpec) -> None:
        self.spec = spec

    def upsert(self, documents: Iterable[Document]) -> WriteReport:
        docs = list(documents)
        self.upsert_calls += 1
        if self.write_delay_s:
            time.sleep(self.write_delay_s)
        planned = self.fail(self.upsert_calls, docs) if self.fail is not None else None
        outcomes = planned or [ItemOutcome(id=d.id, ok=True, status="ok") for d in docs]
        with self.lock:
            for doc, outcome in zip(docs, outcomes, strict=False):
                if outcome.ok:
                    self.store[doc.id] = doc
                    self.upserted_ids.append(doc.id)
        return WriteReport(outcomes=list(outcomes))

    def delete(self, ids: Iterable[DocId]) -> WriteReport:
        out = []
        for i in ids:
            self.store.pop(i, None)
            out.append(ItemOutcome(id=i, ok=True, status="deleted"))
        return WriteReport(out)

    def get(self, ids: Sequence[DocId]) -> list[Document | None]:
        return [self.store.get(i) for i in ids]

    def scan(self, batch_size: int = 500) -> Iterator[Document]:
        yield from list(self.store.values())

    def count(self) -> int:
        return len(self.store)

    def search_sparse(self, vector: SparseVector, k: int, filter: FilterLike = None) -> list[Hit]:
        scored = sorted(
            ((d.sparse.dot(vector) if d.sparse is not None else 0.0, d.id) for d in self.store.values()),
            key=lambda t: (-t[0], str(t[1])),
        )[:k]
        return [Hit(id=i, score=s, rank=r) for r, (s, i) in enumerate(scored, start=1)]

    def search_dense(self, vector: NDArray[np.float32], k: int, filter: FilterLike = None) -> list[Hit]:
        raise NotImplementedError

    def capabilities(self) -> Capabilities:
        return Capabilities(engine="memory", version="0")

    def flush(self) -> None:
        self.flushes += 1

    def close(self) -> None:
        self.closed = True

    def state(self) -> dict[str, dict[str, Any]]:
        return {str(k): doc_state(v) for k, v in sorted(self.store.items(), key=lambda kv: str(kv[0]))}


class JsonFileConnector(MemoryConnector):
    """A MemoryConnector persisted to a JSON file after every upsert (survives a killed process)."""

    def __init__(self, path: str | os.PathLike[str], write_delay_s: float = 0.0) -> None:
        super().__init__(write_delay_s=write_delay_s)
        self.path = Path(path)
        self.saved: dict[str, dict[str, Any]] = {}
        if self.path.exists():
            self.saved = json.loads(self.path.read_text())

    def upsert(self, documents: Iterable[Document]) -> WriteReport:
        report = super().upsert(documents)
        self.saved.update(self.state())
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.saved, sort_keys=True))
        os.replace(tmp, self.path)
        return report


def write_jsonl(path: Path, rows: Iterable[dict[str, Any] | str]) -> Path:
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write((row if isinstance(row, str) else json.dumps(row)) + "\n")
    return path


def corpus(n: int, start: int = 0) -> list[dict[str, Any]]:
    return [
        {
            "_id": f"d{i}",
            "title": f"title {i}",
            "text": f"document number {i} about topic {i % 7}",
            "year": 2000 + i,
        }
        for i in range(start, start + n)
    ]


class RetriedFaults(FaultyConnector):
    """`FaultyConnector` whose injected faults are retried under `retry`, the way a real connector retries
    its engine's transient failures (ingest and migrate never re-send). An injected outage fails every item
    of the call retryably, as a lost connection does in the bulk runner, and a flush is retried too.
    `sends` counts sends per id."""

    def __init__(self, inner: Connector, *, retry: RetryPolicy, **faults: Any) -> None:
        super().__init__(inner, **faults)
        self.retry = retry
        self.sends: Counter[DocId] = Counter()

    def upsert(self, documents: Iterable[Document]) -> WriteReport:
        docs = list(documents)
        outcomes: list[ItemOutcome | None] = [None] * len(docs)

        def send(pending: list[int], attempt: int) -> list[int]:
            self.sends.update(docs[i].id for i in pending)
            try:
                report = super(RetriedFaults, self).upsert([docs[i] for i in pending])
            except ConnectorError as exc:  # the injected outage: nothing answered
                error = f"{type(exc).__name__}: {exc}"
                for i in pending:
                    outcomes[i] = ItemOutcome(
                        docs[i].id,
                        ok=False,
                        status="unavailable",
                        error=error,
                        retryable=True,
                        attempts=attempt,
                    )
                return pending
            again = []
            for i, outcome in zip(pending, report.outcomes, strict=True):
                outcomes[i] = dataclasses.replace(outcome, attempts=attempt)
                if not outcome.ok and outcome.retryable:
                    again.append(i)
            return again

        self.retry.rounds(list(range(len(docs))), send)
        return WriteReport([o for o in outcomes if o is not None])

    def flush(self) -> None:
        self.retry.call(super().flush, retry_if=lambda exc: isinstance(exc, ConnectorError))
