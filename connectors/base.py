"""The connector interface: the one small contract every engine implements.

Connectors know engines, not models: they take `SparseVector`s and dense arrays that the encoder made, write
them in the engine's native format, and return `Hit`s. Hybrid fusion lives in `spladebridge.hybrid`; a
connector only offers the engine's own server-side fusion, described engine-neutrally by `ServerFusion`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal, Self, TypeAlias

import numpy as np
from numpy.typing import NDArray

from spladebridge.connectors.filters import FilterLike
from spladebridge.encoder.sparse_vector import SparseVector

__all__ = [
    "Capabilities",
    "Connector",
    "ConnectorError",
    "DocId",
    "Document",
    "Hit",
    "HybridRequest",
    "IndexNotFound",
    "IndexSpec",
    "ItemOutcome",
    "ServerFusion",
    "Signal",
    "UnsupportedOperation",
    "WriteReport",
]

DocId: TypeAlias = str | int
Signal: TypeAlias = Literal["sparse", "dense", "bm25"]
SIGNALS: tuple[Signal, ...] = ("sparse", "dense", "bm25")
#: The dense field's name when a spec gives `dense_dim` but no `dense_field`.
DEFAULT_DENSE_FIELD = "dense"


class ConnectorError(RuntimeError):
    """An engine call failed in a way the caller should see (bad config, engine unreachable, locked path).

    Where an engine answered, the same fields are set on every engine: `operation` (what was being done),
    `index`, the HTTP `status`, the engine's `error_type` and `reason`."""

    def __init__(
        self,
        message: str,
        *,
        operation: str | None = None,
        index: str | None = None,
        status: int | None = None,
        error_type: str | None = None,
        reason: str | None = None,
    ) -> None:
        super().__init__(message)
        self.operation = operation
        self.index = index
        self.status = status
        self.error_type = error_type
        self.reason = reason

    @property
    def detail(self) -> str:
        """`STATUS type: reason` of the engine's answer (the message's last part where there is none)."""
        if self.status is None and self.error_type is None and self.reason is None:
            return str(self)
        head = " ".join(str(p) for p in (self.status, self.error_type and f"{self.error_type}:") if p)
        return f"{head} {self.reason or ''}".strip()


class UnsupportedOperation(ConnectorError):
    """The engine (or this version of it) cannot do what was asked; the message says why."""


class IndexNotFound(ConnectorError):
    """The index a connector was opened on does not exist (nothing was created)."""


@dataclass(frozen=True, slots=True)
class IndexSpec:
    """What an index holds: the sparse field, an optional dense field, the stored text fields.

    A dense field exists when `dense_dim` is given; it is called `dense` unless `dense_field` names it
    (so `IndexSpec()` is a valid sparse-only spec and `IndexSpec(dense_dim=384)` a sparse + dense one).
    `sparse_idf` (Qdrant only; Elasticsearch and OpenSearch refuse it) multiplies each stored weight by its
    term's IDF at search time, so the score becomes sum_i q_i * idf_i * w_i: no longer the model's dot
    product. It is meant for vectors without IDF of their own (term counts, some inference-free document
    encoders), not for SPLADE's learned weights, which already carry it.
    `lexical` asks for a BM25 signal over `text_fields` where the engine has one.
    """

    name: str = "spladebridge"
    sparse_field: str = "splade"
    dense_field: str | None = None
    dense_dim: int | None = None
    text_fields: tuple[str, ...] = ("title", "text")
    sparse_idf: bool = False
    lexical: bool = True
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.name or not isinstance(self.name, str):
            raise ValueError(f"index name must be a non-empty string, got {self.name!r}")
        if not self.sparse_field:
            raise ValueError("sparse_field must be a non-empty string")
        if self.dense_field is None and self.dense_dim is not None:
            object.__setattr__(self, "dense_field", DEFAULT_DENSE_FIELD)
        if self.dense_field is not None and (self.dense_dim is None or self.dense_dim <= 0):
            raise ValueError(
                f"dense field {self.dense_field!r} needs a positive dense_dim (got {self.dense_dim!r}); "
                "pass dense_field=None for a sparse-only index"
            )
        if not self.text_fields:
            raise ValueError("text_fields must name at least one field")


@dataclass(slots=True)
class Document:
    """One document to write or read back: id, text fields, metadata, and its vectors.

    `fields` holds the text that was encoded (and is searched lexically); `metadata` holds everything else
    (filterable, returned with hits). Ids are strings or non-negative integers and round-trip exactly.
    """

    id: DocId
    fields: dict[str, str] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    sparse: SparseVector | None = None
    dense: NDArray[np.float32] | None = None

    def text(self, text_fields: Sequence[str] | None = None, sep: str = "\n") -> str:
        """The encoded text: the named fields (all, by default), non-empty ones joined by `sep`."""
        names = list(text_fields) if text_fields is not None else list(self.fields)
        return sep.join(self.fields[n] for n in names if self.fields.get(n))


@dataclass(slots=True)
class Hit:
    """One search result. `rank` is 1-based; `fields` has the stored text fields and metadata."""

    id: DocId
    score: float
    rank: int
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ItemOutcome:
    """What happened to one item of a write: ok or failed, why, whether retrying could help, attempts."""

    id: DocId
    ok: bool
    status: str
    error: str | None = None
    retryable: bool = False
    attempts: int = 1
    #: `(seq_no, primary_term)` of the document after the write, where the engine reports one (Lucene
    #: engines); a migration's optimistic-concurrency updates continue from it.
    version: tuple[int, int] | None = None


@dataclass(slots=True)
class WriteReport:
    """Per-item outcomes of a write, in input order, with counts."""

    outcomes: list[ItemOutcome] = field(default_factory=list)

    @property
    def succeeded(self) -> int:
        return sum(1 for o in self.outcomes if o.ok)

    @property
    def failed(self) -> int:
        return sum(1 for o in self.outcomes if not o.ok)

    @property
    def ok(self) -> bool:
        """True when every item succeeded."""
        return all(o.ok for o in self.outcomes)

    def failures(self) -> list[ItemOutcome]:
        return [o for o in self.outcomes if not o.ok]

    def extend(self, other: WriteReport) -> None:
        self.outcomes.extend(other.outcomes)

    def __len__(self) -> int:
        return len(self.outcomes)


@dataclass(frozen=True, slots=True)
class ServerFusion:
    """Engine-neutral description of a server-side fusion, in the hybrid module's conventions.

    `method="rrf"`: score = sum_i w_i / (rank_constant + rank_i), rank_i 1-based, absent contributes 0.
    `method="dbsf"`: Qdrant's distribution-based score fusion (mean +/- 3 sigma), weighted sum.
    `method="linear"`: sum_i w_i * normalize(score_i) with `normalizer` ("none", "minmax", "l2", "zscore").
    `weights` line up with the signals of the request in `SIGNALS` order; None means all 1. `signals` names
    them where the caller knows them (empty: not said), so an engine can tell whether a score scale matters.
    """

    method: Literal["rrf", "dbsf", "linear"] = "rrf"
    rank_constant: int = 60
    weights: tuple[float, ...] | None = None
    normalizer: str = "minmax"
    missing: Literal["zero", "exclude"] = "zero"
    signals: tuple[Signal, ...] = ()


@dataclass(frozen=True, slots=True)
class HybridRequest:
    """One server-side hybrid query: the per-signal inputs, how deep each goes, and the fusion."""

    k: int
    candidates: int
    fusion: ServerFusion
    sparse: SparseVector | None = None
    dense: NDArray[np.float32] | None = None
    text: str | None = None
    filter: FilterLike = None

    def signals(self) -> tuple[Signal, ...]:
        """The signals this request carries, in `SIGNALS` order (the order `fusion.weights` follows)."""
        present = {
            "sparse": self.sparse is not None,
            "dense": self.dense is not None,
            "bm25": self.text is not None,
        }
        return tuple(s for s in SIGNALS if present[s])


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a connected engine can do, as found out from the engine itself."""

    engine: str
    version: str | None = None
    sparse: bool = True
    dense: bool = True
    lexical: bool = False
    sparse_field_types: tuple[str, ...] = ()
    server_fusion: frozenset[str] = frozenset()
    weighted_fusion: bool = False
    max_query_terms: int | None = None
    notes: tuple[str, ...] = ()

    def supports_server_fusion(self, fusion: ServerFusion) -> bool:
        """True when the engine fuses server-side with exactly these semantics."""
        if fusion.method not in self.server_fusion:
            return False
        weighted = fusion.weights is not None and any(w != 1.0 for w in fusion.weights)
        return not weighted or self.weighted_fusion


class Connector(ABC):
    """One engine, one index. Use as a context manager or call `close()`."""

    #: The spec given to `ensure_index`, or read back from the engine when the index already existed.
    spec: IndexSpec | None = None

    @abstractmethod
    def ensure_index(self, spec: IndexSpec) -> None:
        """Create the index for `spec`, or check that the existing one is compatible with it."""

    def existing_spec(self) -> IndexSpec:
        """The spec of the existing index this connector was opened on, as stored in the engine; never
        creates anything. IndexNotFound when there is no such index (connectors that open an index
        lazily override this to look it up)."""
        if self.spec is None:
            raise IndexNotFound(f"{type(self).__name__} has no index open")
        return self.spec

    @abstractmethod
    def upsert(self, documents: Iterable[Document]) -> WriteReport:
        """Insert or replace documents by id, in batches; the report has one outcome per document."""

    @abstractmethod
    def delete(self, ids: Iterable[DocId]) -> WriteReport:
        """Delete documents by id; deleting an absent id is a success."""

    @abstractmethod
    def get(self, ids: Sequence[DocId]) -> list[Document | None]:
        """Read documents back by id, in the order asked; None where an id is absent."""

    @abstractmethod
    def scan(self, batch_size: int = 500) -> Iterator[Document]:
        """Every stored document with its fields and vectors (used by migration and re-encoding)."""

    @abstractmethod
    def count(self) -> int:
        """Number of documents in the index."""

    @abstractmethod
    def search_sparse(self, vector: SparseVector, k: int, filter: FilterLike = None) -> list[Hit]:
        """Top-k documents by sparse dot product."""

    @abstractmethod
    def search_dense(self, vector: NDArray[np.float32], k: int, filter: FilterLike = None) -> list[Hit]:
        """Top-k documents by dense similarity."""

    def search_text(self, text: str, k: int, filter: FilterLike = None) -> list[Hit]:
        """Top-k documents by the engine's own lexical scorer (BM25)."""
        raise UnsupportedOperation(f"{type(self).__name__} has no lexical scorer")

    def search_hybrid(self, request: HybridRequest) -> list[Hit]:
        """Top-k documents fused server-side; check `capabilities().supports_server_fusion` first."""
        raise UnsupportedOperation(f"{type(self).__name__} does not fuse server-side")

    @abstractmethod
    def capabilities(self) -> Capabilities:
        """What this engine can do."""

    def server_fusion_problem(self, fusion: ServerFusion, sub_queries: int) -> str | None:
        """Why the engine cannot run `fusion` over `sub_queries` signals with exactly the hybrid module's
        semantics, or None when it can. Connectors refine this (normaliser, version, licence, plugins)."""
        caps = self.capabilities()
        if not caps.supports_server_fusion(fusion):
            weighted = " with these weights" if fusion.weights is not None else ""
            return f"{caps.engine} does not offer server-side {fusion.method}{weighted}"
        if fusion.missing != "zero":
            return f"{caps.engine} counts a document missing from a list as 0 (missing='zero')"
        return None

    def refuse_unfusable(self, fusion: ServerFusion, sub_queries: int) -> None:
        """The one way every connector's `search_hybrid` refuses a fusion it cannot run exactly:
        UnsupportedOperation carrying `server_fusion_problem`, so callers (HybridSearcher) fall back
        client-side and say why."""
        problem = self.server_fusion_problem(fusion, sub_queries)
        if problem is not None:
            engine = self.capabilities().engine
            raise UnsupportedOperation(f"{engine} cannot fuse this request server-side: {problem}")

    def stored_sparse(self, vector: SparseVector) -> SparseVector:
        """The weights the engine scores a stored document vector with (Lucene keeps 9 significant bits), so
        that explanations add up to the engine's score."""
        return vector

    def flush(self) -> None:  # noqa: B027 - optional hook, a no-op where writes are immediately durable
        """Make written documents durable and searchable."""

    @abstractmethod
    def close(self) -> None:
        """Release the engine connection or files. Safe to call twice."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
