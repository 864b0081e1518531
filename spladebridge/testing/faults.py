"""`FaultyConnector`: wraps any connector and injects the failures real engines produce, deterministically.

Per write item it can answer a retryable failure (HTTP 429, connection reset, timeout) or a non-retryable one
(a mapping rejection), and it can make the whole engine unavailable for a window of calls, raising
`InjectedOutage` (a `ConnectorError`). Every decision is a hash of (seed, document id, attempt), so a run is
reproducible whatever the batching, a rejected document is rejected on every attempt (as a real mapping
rejection is), and a retried document eventually gets through. With `ambiguous_timeouts` a "timeout" item is
written to the engine before it is reported failed, the way a real timeout can land a write whose
acknowledgement was lost, so retries must be idempotent to leave no duplicate.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
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
    HybridRequest,
    IndexSpec,
    ItemOutcome,
    WriteReport,
)
from spladebridge.connectors.filters import FilterLike
from spladebridge.encoder.sparse_vector import SparseVector

__all__ = [
    "FATAL_STATUS",
    "RETRYABLE_STATUSES",
    "FaultStats",
    "FaultyConnector",
    "InjectedOutage",
    "rejects",
]

#: The retryable statuses injected, chosen per item from the hash.
RETRYABLE_STATUSES: tuple[str, ...] = ("429", "connection reset", "timeout")
#: The non-retryable status injected.
FATAL_STATUS = "mapping rejection"

_RETRYABLE_ERRORS = {
    "429": "injected: 429 Too Many Requests (es_rejected_execution_exception)",
    "connection reset": "injected: connection reset by peer",
    "timeout": "injected: read timed out",
}


class InjectedOutage(ConnectorError):
    """The injected outage: the engine does not answer at all during the outage window."""


@dataclass(slots=True)
class FaultStats:
    """What the wrapper injected so far (for assertions and reports)."""

    calls: int = 0
    outage_calls: int = 0
    retryable: int = 0
    fatal: int = 0
    ambiguous_writes: int = 0
    fatal_ids: set[DocId] = field(default_factory=set)
    by_status: dict[str, int] = field(default_factory=dict)


def _unit(*parts: object) -> float:
    """A uniform number in [0, 1) from the parts, stable across processes (no `hash()` randomisation)."""
    text = "\x1f".join(f"{type(p).__name__}:{p}" for p in parts)
    digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def rejects(doc_id: DocId, *, seed: int, fatal_rate: float) -> bool:
    """Whether a `FaultyConnector` with this seed and fatal rate rejects `doc_id` (for expected states)."""
    return fatal_rate > 0 and _unit(seed, "fatal", doc_id) < fatal_rate


class FaultyConnector(Connector):
    """`inner` with injected faults. Safe to share between threads (decisions and counters are locked).

    `retryable_rate`: the chance that one attempt at one item fails retryably (independently per attempt).
    `fatal_rate`: the share of document ids that are always rejected ("mapping rejection", non-retryable).
    `outage=(start_call, n_calls)`: calls number 0, 1, 2, ... over every engine operation (writes, reads,
    searches, flush, count); calls `start_call` to `start_call + n_calls - 1` raise `InjectedOutage`.
    `ambiguous_timeouts`: write "timeout" items to `inner` before reporting them failed.
    Attributes the wrapper does not define (`path`, `optimize`, ...) are the inner connector's.
    """

    def __init__(
        self,
        inner: Connector,
        *,
        retryable_rate: float = 0.0,
        fatal_rate: float = 0.0,
        seed: int = 0,
        outage: tuple[int, int] | None = None,
        ambiguous_timeouts: bool = False,
        fail_deletes: bool = True,
    ) -> None:
        for name, rate in (("retryable_rate", retryable_rate), ("fatal_rate", fatal_rate)):
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {rate!r}")
        if retryable_rate >= 1.0:
            raise ValueError("retryable_rate must be below 1, or no item could ever be written")
        if outage is not None and (len(outage) != 2 or outage[0] < 0 or outage[1] < 0):
            raise ValueError(f"outage must be (start_call, n_calls) with both >= 0, got {outage!r}")
        self.inner = inner
        self.retryable_rate = retryable_rate
        self.fatal_rate = fatal_rate
        self.seed = seed
        self.outage = outage
        self.ambiguous_timeouts = ambiguous_timeouts
        self.fail_deletes = fail_deletes
        self.stats = FaultStats()
        self._attempts: dict[tuple[type, DocId], int] = {}
        self._lock = threading.Lock()

    # -- delegation -----------------------------------------------------------------------------------

    @property  # type: ignore[override]
    def spec(self) -> IndexSpec | None:
        return self.inner.spec

    @spec.setter
    def spec(self, value: IndexSpec | None) -> None:
        self.inner.spec = value

    def __getattr__(self, name: str) -> Any:
        if name == "inner":  # not yet set (during unpickling or a failed __init__): never recurse
            raise AttributeError(name)
        return getattr(self.inner, name)

    def __repr__(self) -> str:
        return (
            f"FaultyConnector({self.inner!r}, retryable_rate={self.retryable_rate}, "
            f"fatal_rate={self.fatal_rate}, seed={self.seed}, outage={self.outage})"
        )

    # -- decisions ------------------------------------------------------------------------------------

    def _tick(self, what: str) -> None:
        """Count one engine call; raise `InjectedOutage` inside the outage window."""
        with self._lock:
            call = self.stats.calls
            self.stats.calls += 1
            if self.outage is not None and self.outage[0] <= call < self.outage[0] + self.outage[1]:
                self.stats.outage_calls += 1
                raise InjectedOutage(f"injected outage: the engine is unavailable ({what}, call {call})")

    def is_fatal(self, doc_id: DocId) -> bool:
        """True when this id is always rejected (decided by the seed alone)."""
        return rejects(doc_id, seed=self.seed, fatal_rate=self.fatal_rate)

    def _decide(self, doc_id: DocId, op: str) -> str | None:
        """The injected status for one attempt at one item, or None to pass it through."""
        if op == "upsert" and self.is_fatal(doc_id):
            return FATAL_STATUS
        key = (type(doc_id), doc_id)
        attempt = self._attempts.get(key, 0)
        self._attempts[key] = attempt + 1
        u = _unit(self.seed, op, doc_id, attempt)
        if u < self.retryable_rate:
            return RETRYABLE_STATUSES[int(u / self.retryable_rate * len(RETRYABLE_STATUSES)) % 3]
        return None

    def _count(self, status: str, doc_id: DocId) -> None:
        self.stats.by_status[status] = self.stats.by_status.get(status, 0) + 1
        if status == FATAL_STATUS:
            self.stats.fatal += 1
            self.stats.fatal_ids.add(doc_id)
        else:
            self.stats.retryable += 1

    # -- writes ---------------------------------------------------------------------------------------

    def upsert(self, documents: Iterable[Document]) -> WriteReport:
        """Upsert through `inner`, failing the chosen items; outcomes in input order."""
        docs = list(documents)
        self._tick("upsert")
        injected: list[str | None] = []
        with self._lock:
            for doc in docs:
                status = self._decide(doc.id, "upsert")
                injected.append(status)
                if status is not None:
                    self._count(status, doc.id)
        passed = [d for d, s in zip(docs, injected, strict=True) if s is None]
        ambiguous = [d for d, s in zip(docs, injected, strict=True) if s == "timeout"]
        if self.ambiguous_timeouts and ambiguous:
            landed = self.inner.upsert(ambiguous)  # the write lands, the acknowledgement is "lost"
            with self._lock:
                self.stats.ambiguous_writes += landed.succeeded
        inner_outcomes = iter(self.inner.upsert(passed).outcomes if passed else [])
        outcomes: list[ItemOutcome] = []
        for doc, status in zip(docs, injected, strict=True):
            if status is None:
                outcomes.append(next(inner_outcomes))
            elif status == FATAL_STATUS:
                outcomes.append(
                    ItemOutcome(
                        doc.id,
                        ok=False,
                        status=FATAL_STATUS,
                        error=f"injected: mapping rejection (document {doc.id!r} does not fit the mapping)",
                        retryable=False,
                    )
                )
            else:
                outcomes.append(
                    ItemOutcome(
                        doc.id, ok=False, status=status, error=_RETRYABLE_ERRORS[status], retryable=True
                    )
                )
        return WriteReport(outcomes)

    def delete(self, ids: Iterable[DocId]) -> WriteReport:
        """Delete through `inner`; with `fail_deletes`, chosen items fail retryably (never fatally)."""
        id_list = list(ids)
        self._tick("delete")
        injected: list[str | None] = []
        with self._lock:
            for doc_id in id_list:
                status = self._decide(doc_id, "delete") if self.fail_deletes else None
                injected.append(status)
                if status is not None:
                    self._count(status, doc_id)
        passed = [i for i, s in zip(id_list, injected, strict=True) if s is None]
        inner_outcomes = iter(self.inner.delete(passed).outcomes if passed else [])
        outcomes = [
            next(inner_outcomes)
            if status is None
            else ItemOutcome(doc_id, ok=False, status=status, error=_RETRYABLE_ERRORS[status], retryable=True)
            for doc_id, status in zip(id_list, injected, strict=True)
        ]
        return WriteReport(outcomes)

    # -- everything else: pass through, but fail during the outage ------------------------------------

    def ensure_index(self, spec: IndexSpec) -> None:
        self._tick("ensure_index")
        self.inner.ensure_index(spec)

    def get(self, ids: Sequence[DocId]) -> list[Document | None]:
        self._tick("get")
        return self.inner.get(ids)

    def scan(self, batch_size: int = 500) -> Iterator[Document]:
        self._tick("scan")
        return self.inner.scan(batch_size)

    def count(self) -> int:
        self._tick("count")
        return self.inner.count()

    def search_sparse(self, vector: SparseVector, k: int, filter: FilterLike = None) -> list[Hit]:
        self._tick("search_sparse")
        return self.inner.search_sparse(vector, k, filter)

    def search_dense(self, vector: NDArray[np.float32], k: int, filter: FilterLike = None) -> list[Hit]:
        self._tick("search_dense")
        return self.inner.search_dense(vector, k, filter)

    def search_text(self, text: str, k: int, filter: FilterLike = None) -> list[Hit]:
        self._tick("search_text")
        return self.inner.search_text(text, k, filter)

    def search_hybrid(self, request: HybridRequest) -> list[Hit]:
        self._tick("search_hybrid")
        return self.inner.search_hybrid(request)

    def capabilities(self) -> Capabilities:
        return self.inner.capabilities()

    def flush(self) -> None:
        self._tick("flush")
        self.inner.flush()

    def close(self) -> None:
        self.inner.close()
