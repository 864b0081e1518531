"""What `HybridSearcher` and `AsyncHybridSearcher` share, written once: settings checks, the choice of
signals, the server-side fusion plan, and every search as steps (`hybrid.steps`) over named connector calls.

Fusion runs server-side when the engine fuses with exactly the same semantics (`to_server_fusion` plus the
connector's `Capabilities.supports_server_fusion` and `server_fusion_problem`), else client-side with
`spladebridge.hybrid.fusion`; either way the results are the same. No method here does I/O: the searchers
drive the steps, one synchronously, one on asyncio.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from spladebridge.connectors.base import (
    SIGNALS,
    Capabilities,
    DocId,
    Document,
    Hit,
    HybridRequest,
    IndexSpec,
    ServerFusion,
    Signal,
)
from spladebridge.connectors.filters import FilterLike
from spladebridge.encoder.sparse_vector import SparseVector
from spladebridge.hybrid.fusion import FusedTable
from spladebridge.hybrid.hits import FusedHit, SignalResult, fields_by_id
from spladebridge.hybrid.protocols import (
    DenseTextEncoder,
    ExplainingSparseEncoder,
    SparseDocumentEncoder,
    SparseQueryEncoder,
)
from spladebridge.hybrid.query_encoding import EncodedQuery
from spladebridge.hybrid.settings import (
    RRF,
    FusionSetting,
    TwoStage,
    WeightedSum,
    fuse_table,
    to_server_fusion,
)
from spladebridge.hybrid.steps import Call, Steps
from spladebridge.hybrid.two_stage import rescore

__all__ = ["DEFAULT_FUSION", "SERVER_FUSION_WITH_DETAILS", "ConnectorFacts", "SearchCore"]

#: The default fusion: an equal-weight min-max weighted sum.
#: Chosen on evidence (benchmarks/fusion_defaults.py, five test collections, product path, untuned): the
#: equal-weight min-max sum had the best mean nDCG@10 (0.488; DBSF 0.487, z-score 0.485, RRF 0.477) and never
#: fell below the best single signal, where RRF fell 0.015 below dense on cisi.
DEFAULT_FUSION: FusionSetting = WeightedSum(normalize="minmax")


#: Why `server_fusion=None` fuses client-side while `signal_details` is on (measured in
#: benchmarks/query_latency.py --searcher: 3 requests against 2; on Qdrant Edge, p50 13.4 ms against 9.4 ms).
SERVER_FUSION_WITH_DETAILS = (
    "signal_details=True: the per-signal searches run anyway, and fusing their results client-side saves the "
    "engine's fused request (set signal_details=False, or server_fusion=True, to fuse on the engine)"
)


class ConnectorFacts(Protocol):
    """What the search steps read from a connector directly (no I/O): its spec and stored-weight model."""

    @property
    def spec(self) -> IndexSpec | None: ...

    def stored_sparse(self, vector: SparseVector) -> SparseVector: ...


class SearchCore:
    """Settings, plans and search steps of a hybrid searcher; subclasses only run the steps (see module doc).

    `signals`: which of "sparse", "dense", "bm25" to run; None runs every one available (dense when a dense
    encoder is given and the index has a dense field, BM25 when the engine has a lexical scorer).
    `fusion`: `RRF`, `WeightedSum` (weights follow `signals`) or `TwoStage`; by default an equal-weight
    min-max weighted sum (`DEFAULT_FUSION`, chosen on five test collections). `candidates`: how deep each
    signal goes before fusion. `signal_details` (default on): every hit reports each signal's rank and
    score, which takes one search per signal (always done with `explain=True`). `server_fusion`: None uses
    the engine's fusion when it has the same semantics and `signal_details` is off (with details on, the
    per-signal searches run anyway and fusing them client-side saves the fused request: 2 requests instead
    of 3); False never does; True requires it (with details on, 1 fused request plus one per signal).
    `explain_top_k`: how many expansion terms an explanation lists (None: all).
    """

    def __init__(
        self,
        connector: ConnectorFacts,
        sparse_encoder: SparseQueryEncoder,
        dense_encoder: DenseTextEncoder | None = None,
        signals: Sequence[Signal] | None = None,
        fusion: FusionSetting = DEFAULT_FUSION,
        candidates: int = 100,
        *,
        server_fusion: bool | None = None,
        signal_details: bool = True,
        explain_top_k: int | None = 10,
    ) -> None:
        if not isinstance(sparse_encoder, SparseQueryEncoder):
            raise TypeError(
                f"sparse_encoder needs an encode_queries(texts) method, got {type(sparse_encoder)!r}"
            )
        if dense_encoder is not None and not isinstance(dense_encoder, DenseTextEncoder):
            raise TypeError(f"dense_encoder needs an encode(texts) method, got {type(dense_encoder)!r}")
        if isinstance(candidates, bool) or not isinstance(candidates, int) or candidates < 1:
            raise ValueError(f"candidates must be a positive integer, got {candidates!r}")
        if explain_top_k is not None and (isinstance(explain_top_k, bool) or explain_top_k < 0):
            raise ValueError(f"explain_top_k must be >= 0 or None, got {explain_top_k!r}")
        if not isinstance(fusion, RRF | WeightedSum | TwoStage):
            raise TypeError(f"fusion must be RRF, WeightedSum or TwoStage, got {type(fusion).__name__}")
        if isinstance(signals, str):
            raise TypeError(f"signals must be a sequence of signal names, got the string {signals!r}")
        self.connector = connector
        self.sparse_encoder = sparse_encoder
        self.dense_encoder = dense_encoder
        self.fusion = fusion
        self.candidates = candidates
        self.signal_details = signal_details
        self.explain_top_k = explain_top_k
        self._asked_signals = None if signals is None else tuple(signals)
        self._asked_server_fusion = server_fusion
        self.signals: tuple[Signal, ...] = ()
        self._server: ServerFusion | None = None
        #: Why fusion runs client-side (None when the engine fuses, or when never asked to).
        self.server_fusion_problem: str | None = None

    @property
    def uses_server_fusion(self) -> bool:
        """True when searches are fused by the engine."""
        return self._server is not None

    # -- configuration (steps: reads the engine's capabilities, asks it about server-side fusion) -------

    def configure_steps(self) -> Steps[None]:
        """Choose the signals and plan server-side fusion from what the engine says it can do."""
        (caps,) = yield [Call("capabilities")]
        self.signals = self._choose_signals(self._asked_signals, caps.dense, caps.lexical)
        fusion = self.fusion
        if isinstance(fusion, TwoStage):
            self._check_two_stage(fusion)
            self.server_fusion_problem = "two-stage rescoring runs client-side"
        else:
            if fusion.weights is not None and len(fusion.weights) != len(self.signals):
                raise ValueError(
                    f"fusion has {len(fusion.weights)} weights for {len(self.signals)} signals "
                    f"{self.signals}; weights follow the signals"
                )
            if self._asked_server_fusion is not False:
                self._server, self.server_fusion_problem = yield from self._plan_server(fusion, caps)
            if self._server is not None and self._asked_server_fusion is None and self.signal_details:
                # the per-signal searches must run anyway: fusing them here saves the fused request
                self._server = None
                self.server_fusion_problem = SERVER_FUSION_WITH_DETAILS
        if self._asked_server_fusion is True and self._server is None:
            raise ValueError(
                f"{caps.engine} cannot fuse {fusion!r} server-side with the same semantics "
                f"({self.server_fusion_problem}); use server_fusion=None to fuse client-side"
            )

    def _choose_signals(
        self, signals: tuple[Signal, ...] | None, has_dense: bool, has_lexical: bool
    ) -> tuple[Signal, ...]:
        if signals is None:
            chosen: list[Signal] = ["sparse"]
            if self.dense_encoder is not None and has_dense:
                chosen.append("dense")
            if has_lexical:
                chosen.append("bm25")
            return tuple(chosen)
        out = signals
        if not out:
            raise ValueError("signals must name at least one of 'sparse', 'dense', 'bm25'")
        for i, s in enumerate(out):
            if s not in SIGNALS:
                raise ValueError(f"signals[{i}] is {s!r}; choose from {', '.join(SIGNALS)}")
        if len(set(out)) != len(out):
            raise ValueError(f"signals name a signal twice: {out}")
        if "dense" in out and self.dense_encoder is None:
            raise ValueError("the 'dense' signal needs a dense_encoder")
        if "dense" in out and not has_dense:
            raise ValueError("the 'dense' signal needs an index with a dense field")
        if "bm25" in out and not has_lexical:
            raise ValueError(
                "the 'bm25' signal needs an engine with a lexical scorer (capabilities().lexical)"
            )
        return out

    def _plan_server(
        self, fusion: RRF | WeightedSum, caps: Capabilities
    ) -> Steps[tuple[ServerFusion | None, str | None]]:
        """The `ServerFusion` to send, or None and why not.

        Besides `Capabilities.supports_server_fusion` (method and weights), the connector's
        `server_fusion_problem(fusion, sub_queries)` is consulted (Elasticsearch and OpenSearch check
        normaliser, missing-document rule, version and licence there).
        """
        if len(self.signals) < 2:
            return None, "a single signal needs no fusion"
        wanted = to_server_fusion(fusion, self.signals)
        if wanted is None:
            return None, "this setting exists only client-side"
        if wanted.method not in caps.server_fusion:
            why = [note for note in caps.notes if wanted.method in note]
            return None, f"{caps.engine} does not offer server-side {wanted.method}" + (
                f" ({'; '.join(why)})" if why else ""
            )
        if not caps.supports_server_fusion(wanted):
            return None, f"{caps.engine} does not offer server-side {wanted.method} with unequal weights"
        (problem,) = yield [Call("server_fusion_problem", (wanted, len(self.signals)))]
        if problem:
            return None, str(problem)
        return wanted, None

    def _check_two_stage(self, setting: TwoStage) -> None:
        if "dense" in (setting.first, setting.rescore) and self.dense_encoder is None:
            raise ValueError(f"two-stage {setting.first}->{setting.rescore} needs a dense_encoder")
        if (
            setting.rescore == "sparse"
            and setting.source == "encode"
            and not isinstance(self.sparse_encoder, SparseDocumentEncoder)
        ):
            raise ValueError("rescoring with encoded sparse vectors needs an encode_documents(texts) method")

    # -- request checks and encoders --------------------------------------------------------------------

    @staticmethod
    def check_request(queries: Sequence[str], k: int) -> list[str]:
        """The query texts of a batch, after checking them and `k` (TypeError / ValueError)."""
        if isinstance(queries, str):
            raise TypeError("search_batch takes a sequence of query strings; use search() for one query")
        texts = list(queries)
        for i, q in enumerate(texts):
            if not isinstance(q, str):
                raise TypeError(f"query {i} must be a string, got {type(q).__name__}")
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        return texts

    def needed(self) -> set[Signal]:
        """The signals a search runs (two-stage: its first and rescoring signals)."""
        if isinstance(self.fusion, TwoStage):
            return {self.fusion.first, self.fusion.rescore}
        return set(self.signals)

    def query_encoders(self, explain: bool) -> tuple[SparseQueryEncoder | None, DenseTextEncoder | None]:
        """The encoders a query needs: sparse for the sparse signal or an explanation, dense for dense."""
        needed = self.needed()
        sparse = self.sparse_encoder if "sparse" in needed or explain else None
        dense = self.dense_encoder if "dense" in needed else None
        return sparse, dense

    # -- one search, as steps -----------------------------------------------------------------------------

    def search_steps(
        self, query: EncodedQuery, k: int, filter: FilterLike, explain: bool
    ) -> Steps[list[FusedHit]]:
        """The top `k` fused hits of one encoded query."""
        depth = max(self.candidates, k)
        if isinstance(self.fusion, TwoStage):
            hits = yield from self._two_stage(self.fusion, query, k, depth, filter)
        elif self._server is not None:
            hits = yield from self._server_fused(self._server, query, k, depth, filter, explain)
        else:
            results = yield [self._signal_call(s, query, depth, filter) for s in self.signals]
            lists: dict[Signal, list[Hit]] = dict(zip(self.signals, results, strict=True))
            table = fuse_table(
                [[(h.id, h.score) for h in lists[s]] for s in self.signals], self.fusion, limit=k
            )
            hits = self._from_table(table, lists)
        if explain:
            yield from self._explain(query, hits)
        return hits

    def _signal_call(self, signal: Signal, query: EncodedQuery, depth: int, filter: FilterLike) -> Call:
        if signal == "sparse":
            assert query.sparse is not None
            return Call("search_sparse", (query.sparse, depth, filter))
        if signal == "dense":
            assert query.dense is not None
            return Call("search_dense", (query.dense, depth, filter))
        return Call("search_text", (query.text, depth, filter))

    def _from_table(self, table: FusedTable, lists: dict[Signal, list[Hit]]) -> list[FusedHit]:
        fields_of = fields_by_id(lists[s] for s in self.signals)
        out: list[FusedHit] = []
        ranks, raw = table.ranks.tolist(), table.raw.tolist()
        for j, (doc_id, score) in enumerate(table.pairs()):
            signals: dict[str, SignalResult] = {
                s: SignalResult(ranks[i][j], raw[i][j]) for i, s in enumerate(self.signals) if ranks[i][j] > 0
            }
            out.append(FusedHit(doc_id, score, j + 1, fields_of.get(doc_id, {}), signals))
        return out

    def _server_fused(
        self,
        fusion: ServerFusion,
        query: EncodedQuery,
        k: int,
        depth: int,
        filter: FilterLike,
        explain: bool,
    ) -> Steps[list[FusedHit]]:
        request = HybridRequest(
            k=k,
            candidates=depth,
            fusion=fusion,
            sparse=query.sparse if "sparse" in self.signals else None,
            dense=query.dense if "dense" in self.signals else None,
            text=query.text if "bm25" in self.signals else None,
            filter=filter,
        )
        detailed = self.signal_details or explain
        calls = [Call("search_hybrid", (request,))]
        if detailed:
            calls += [self._signal_call(s, query, depth, filter) for s in self.signals]
        fused, *lists = yield calls
        details: dict[Signal, dict[DocId, SignalResult]] = {
            s: {h.id: SignalResult(rank, h.score) for rank, h in enumerate(hits, start=1)}
            for s, hits in zip(self.signals, lists, strict=False)
        }
        out: list[FusedHit] = []
        for rank, hit in enumerate(fused[:k], start=1):
            signals: dict[str, SignalResult] = {s: d[hit.id] for s, d in details.items() if hit.id in d}
            out.append(FusedHit(hit.id, hit.score, rank, dict(hit.fields), signals))
        return out

    def _two_stage(
        self, setting: TwoStage, query: EncodedQuery, k: int, depth: int, filter: FilterLike
    ) -> Steps[list[FusedHit]]:
        (first,) = yield [self._signal_call(setting.first, query, depth, filter)]
        if not first:
            return []
        ids = [h.id for h in first]
        (docs,) = yield [Call("get", (ids,))]
        scores = yield from self._rescore_scores(setting, query, ids, docs)
        ranked = rescore([(h.id, h.score) for h in first], scores, limit=k)
        by_id = {h.id: (rank, h) for rank, h in enumerate(first, start=1)}
        second_rank = {doc_id: r for r, (doc_id, _) in enumerate(rescore([(i, 0.0) for i in ids], scores), 1)}
        out: list[FusedHit] = []
        for rank, (doc_id, score) in enumerate(ranked, start=1):
            first_rank, hit = by_id[doc_id]
            signals: dict[str, SignalResult] = {setting.first: SignalResult(first_rank, hit.score)}
            if doc_id in scores:
                signals[setting.rescore] = SignalResult(second_rank[doc_id], scores[doc_id])
            out.append(FusedHit(doc_id, score, rank, dict(hit.fields), signals))
        return out

    def _rescore_scores(
        self, setting: TwoStage, query: EncodedQuery, ids: list[DocId], docs: list[Document | None]
    ) -> Steps[dict[DocId, float]]:
        """Rescoring score of each candidate that has (or, with source="encode", gets) a rescoring vector."""
        if setting.source == "encode":
            spec = self.connector.spec
            text_fields = spec.text_fields if spec is not None else None
            present = [(i, d) for i, d in zip(ids, docs, strict=True) if d is not None]
            texts = [d.text(text_fields) for _, d in present]
            if not texts:
                return {}
            if setting.rescore == "dense":
                assert self.dense_encoder is not None and query.dense is not None
                (encoded,) = yield [Call("encode", (texts,), target="dense_encoder")]
                sims = np.asarray(encoded, dtype=np.float64) @ query.dense.astype(np.float64)
                return {doc_id: float(s) for (doc_id, _), s in zip(present, sims.tolist(), strict=True)}
            assert isinstance(self.sparse_encoder, SparseDocumentEncoder) and query.sparse is not None
            (vecs,) = yield [Call("encode_documents", (texts,), target="sparse_encoder")]
            return {doc_id: query.sparse.dot(v) for (doc_id, _), v in zip(present, vecs, strict=True)}
        out: dict[DocId, float] = {}
        if setting.rescore == "dense":
            assert query.dense is not None
            q = query.dense.astype(np.float64)
            for doc_id, doc in zip(ids, docs, strict=True):
                if doc is not None and doc.dense is not None:
                    out[doc_id] = float(np.dot(np.asarray(doc.dense, dtype=np.float64), q))
        else:
            assert query.sparse is not None
            for doc_id, doc in zip(ids, docs, strict=True):
                if doc is not None and doc.sparse is not None:
                    out[doc_id] = query.sparse.dot(doc.sparse)
        return out

    def _explain(self, query: EncodedQuery, hits: list[FusedHit]) -> Steps[None]:
        """Fill each hit's `explanation` from its stored sparse vector (read back with `connector.get`)."""
        if not hits or query.sparse is None:
            return
        (docs,) = yield [Call("get", ([h.id for h in hits],))]
        for hit, doc in zip(hits, docs, strict=True):
            if doc is None or doc.sparse is None:
                continue
            # the weights the engine scores with (9 bits on Lucene), so the terms add up to its score
            hit.explanation = self._terms(query.sparse, self.connector.stored_sparse(doc.sparse))

    def _terms(self, query_vec: SparseVector, doc_vec: SparseVector) -> list[tuple[str, float]]:
        if isinstance(self.sparse_encoder, ExplainingSparseEncoder):
            return list(self.sparse_encoder.explain(query_vec, doc_vec, self.explain_top_k))
        terms = query_vec.contributions(doc_vec)
        if self.explain_top_k is not None:
            terms = terms[: self.explain_top_k]
        return [(str(token_id), value) for token_id, value in terms]
