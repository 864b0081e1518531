"""`HybridSearcher`: encode a query, run sparse / dense / BM25 signals on one connector, fuse, explain.

The search itself (signal choice, server- or client-side fusion, two-stage rescoring, explanations) is
`search_core.SearchCore`, shared with `AsyncHybridSearcher`; this class runs its steps synchronously, one
connector call after another. Each hit carries its fused score and each signal's rank and score.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from spladebridge.connectors.base import Connector, Signal
from spladebridge.connectors.filters import FilterLike
from spladebridge.hybrid.hits import FusedHit, SignalResult
from spladebridge.hybrid.protocols import DenseTextEncoder, SparseQueryEncoder
from spladebridge.hybrid.query_encoding import EncodedQuery, encode_queries
from spladebridge.hybrid.search_core import DEFAULT_FUSION, SearchCore
from spladebridge.hybrid.settings import FusionSetting
from spladebridge.hybrid.steps import CallTarget, run_steps

__all__ = ["DEFAULT_FUSION", "FusedHit", "HybridSearcher", "SignalResult"]


class HybridSearcher(SearchCore):
    """Hybrid search over one connector with a sparse encoder and an optional dense encoder.

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

    connector: Connector

    def __init__(
        self,
        connector: Connector,
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
        super().__init__(
            connector,
            sparse_encoder,
            dense_encoder,
            signals,
            fusion,
            candidates,
            server_fusion=server_fusion,
            signal_details=signal_details,
            explain_top_k=explain_top_k,
        )
        run_steps(self.configure_steps(), self._targets())

    def search(
        self, query: str, k: int = 10, filter: FilterLike = None, explain: bool = False
    ) -> list[FusedHit]:
        """The top `k` fused hits for one query text."""
        return self.search_batch([query], k, filter, explain)[0]

    def search_batch(
        self, queries: Sequence[str], k: int = 10, filter: FilterLike = None, explain: bool = False
    ) -> list[list[FusedHit]]:
        """The top `k` fused hits for each query; all queries are encoded in one batch per encoder."""
        texts = self.check_request(queries, k)
        encoded = self._encode(texts, explain)
        targets = self._targets()
        return [run_steps(self.search_steps(q, k, filter, explain), targets) for q in encoded]

    def _encode(self, texts: list[str], explain: bool) -> list[EncodedQuery]:
        return encode_queries(texts, *self.query_encoders(explain))

    def _targets(self) -> Mapping[CallTarget, Any]:
        return {
            "connector": self.connector,
            "sparse_encoder": self.sparse_encoder,
            "dense_encoder": self.dense_encoder,
        }
