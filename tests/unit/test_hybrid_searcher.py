"""`HybridSearcher` against an in-memory connector: client vs server fusion, batches, explain, two-stage."""

from __future__ import annotations

import numpy as np
import pytest
from hybrid_fakes import (
    CORPUS,
    ExplainingFakeSparseEncoder,
    FakeConnector,
    FakeDenseEncoder,
    FakeSparseEncoder,
    make_documents,
)

from spladebridge.connectors.base import ServerFusion
from spladebridge.connectors.filters import Term
from spladebridge.hybrid import (
    RRF,
    HybridSearcher,
    TwoStage,
    WeightedSum,
    rrf,
    to_server_fusion,
    weighted_sum,
)
from spladebridge.hybrid.searcher import FusedHit

QUERIES = ["fast red car", "cat and dog", "sofa", "pet food", "nothing matches zzz"]


@pytest.fixture
def encoders() -> tuple[ExplainingFakeSparseEncoder, FakeDenseEncoder]:
    return ExplainingFakeSparseEncoder(), FakeDenseEncoder()


def _connector(encoders: tuple[FakeSparseEncoder, FakeDenseEncoder], **kwargs: object) -> FakeConnector:
    return FakeConnector(make_documents(*encoders), **kwargs)  # type: ignore[arg-type]


def _signal_lists(
    conn: FakeConnector, enc: tuple[FakeSparseEncoder, FakeDenseEncoder], query: str, depth: int
):  # type: ignore[no-untyped-def]
    sparse, dense = enc
    return {
        "sparse": conn.search_sparse(sparse.encode_queries([query])[0], depth),
        "dense": conn.search_dense(dense.encode([query])[0], depth),
        "bm25": conn.search_text(query, depth),
    }


def _pairs(hits: list[FusedHit]) -> list[tuple[object, float]]:
    return [(h.id, h.score) for h in hits]


@pytest.mark.parametrize("query", QUERIES)
def test_client_side_rrf_equals_fusing_the_signal_lists(encoders, query: str) -> None:  # type: ignore[no-untyped-def]
    conn = _connector(encoders)
    searcher = HybridSearcher(conn, encoders[0], encoders[1], fusion=RRF(k=60), candidates=5)
    assert searcher.signals == ("sparse", "dense", "bm25") and not searcher.uses_server_fusion
    hits = searcher.search(query, k=4)
    lists = _signal_lists(conn, encoders, query, 5)
    expected = rrf([[(h.id, h.score) for h in lists[s]] for s in ("sparse", "dense", "bm25")], k=60, limit=4)
    assert _pairs(hits) == expected
    assert [h.rank for h in hits] == list(range(1, len(hits) + 1))
    for hit in hits:
        assert hit.fields["text"] == CORPUS[str(hit.id)]
        for signal, result in hit.signals.items():
            listed = {h.id: (h.rank, h.score) for h in lists[signal]}
            assert listed[hit.id] == (result.rank, result.score)
        missing = {s for s in lists if hit.id in {h.id for h in lists[s]}} - set(hit.signals)
        assert not missing
        assert hit.explanation is None


@pytest.mark.parametrize(
    "fusion",
    [RRF(k=60), RRF(k=1), RRF(k=10, weights=(2.0, 1.0, 0.5)), WeightedSum(normalize="dbsf")],
)
@pytest.mark.parametrize("query", QUERIES)
def test_server_fusion_gives_the_same_results_as_client_fusion(encoders, fusion, query: str) -> None:  # type: ignore[no-untyped-def]
    server_conn = _connector(encoders, server_fusion=frozenset({"rrf", "dbsf"}), weighted_fusion=True)
    server = HybridSearcher(
        server_conn, encoders[0], encoders[1], fusion=fusion, candidates=6, server_fusion=True
    )
    client = HybridSearcher(_connector(encoders), encoders[0], encoders[1], fusion=fusion, candidates=6)
    assert server.uses_server_fusion and not client.uses_server_fusion
    got, want = server.search(query, k=5), client.search(query, k=5)
    assert [h.id for h in got] == [h.id for h in want]
    assert [h.score for h in got] == pytest.approx([h.score for h in want], abs=1e-12)
    assert [h.signals for h in got] == [h.signals for h in want]
    assert any(c[0] == "hybrid" for c in server_conn.calls)


def test_server_fusion_without_signal_details_runs_one_request(encoders) -> None:  # type: ignore[no-untyped-def]
    conn = _connector(encoders, server_fusion=frozenset({"rrf"}))
    searcher = HybridSearcher(conn, encoders[0], encoders[1], fusion=RRF(k=60), signal_details=False)
    hits = searcher.search("fast red car", k=3)
    assert [c[0] for c in conn.calls] == ["hybrid"]
    assert hits and all(h.signals == {} for h in hits)


def test_fusions_the_engine_cannot_match_run_client_side(encoders) -> None:  # type: ignore[no-untyped-def]
    conn = _connector(encoders, server_fusion=frozenset({"rrf", "linear", "dbsf"}), weighted_fusion=False)
    for fusion in (WeightedSum(missing="min"), RRF(k=60, weights=(1.0, 2.0, 1.0)), RRF(k=2.5)):
        searcher = HybridSearcher(conn, encoders[0], encoders[1], fusion=fusion)
        assert not searcher.uses_server_fusion
        with pytest.raises(ValueError, match="cannot fuse"):
            HybridSearcher(conn, encoders[0], encoders[1], fusion=fusion, server_fusion=True)
    assert not HybridSearcher(conn, encoders[0], encoders[1], server_fusion=False).uses_server_fusion


def test_weights_follow_searcher_signals_and_map_to_server_order() -> None:
    setting = RRF(k=60, weights=(3.0, 1.0))
    assert to_server_fusion(setting, ("dense", "sparse")) == ServerFusion(
        "rrf", 60, weights=(1.0, 3.0), signals=("dense", "sparse")
    )
    ws = WeightedSum((0.25, 0.75), "l2", "exclude")
    assert to_server_fusion(ws, ("bm25", "sparse")) == ServerFusion(
        "linear", weights=(0.75, 0.25), normalizer="l2", missing="exclude", signals=("bm25", "sparse")
    )
    assert to_server_fusion(WeightedSum(normalize="dbsf", missing="exclude"), ("sparse",)) is None
    assert to_server_fusion(TwoStage(), ("sparse",)) is None


def test_client_side_weighted_sum_with_weights_in_signal_order(encoders) -> None:  # type: ignore[no-untyped-def]
    conn = _connector(encoders)
    fusion = WeightedSum((0.2, 0.8), "minmax", "exclude")
    searcher = HybridSearcher(conn, encoders[0], encoders[1], signals=("dense", "sparse"), fusion=fusion)
    lists = _signal_lists(conn, encoders, "cat and dog", 100)
    want = weighted_sum(
        [[(h.id, h.score) for h in lists[s]] for s in ("dense", "sparse")],
        (0.2, 0.8),
        "minmax",
        "exclude",
        10,
    )
    assert _pairs(searcher.search("cat and dog")) == want


def test_search_batch_encodes_once_and_matches_single_searches(encoders) -> None:  # type: ignore[no-untyped-def]
    searcher = HybridSearcher(_connector(encoders), encoders[0], encoders[1])
    encoders[0].query_calls.clear()
    encoders[1].calls.clear()
    batch = searcher.search_batch(QUERIES, k=3)
    assert encoders[0].query_calls == [QUERIES] and encoders[1].calls == [QUERIES]
    assert [[h.id for h in hits] for hits in batch] == [
        [h.id for h in searcher.search(q, k=3)] for q in QUERIES
    ]
    assert searcher.search_batch([]) == []


def test_filter_is_passed_to_every_signal(encoders) -> None:  # type: ignore[no-untyped-def]
    docs = make_documents(*encoders)
    docs[0].metadata["lang"] = "de"
    conn = FakeConnector(docs)
    searcher = HybridSearcher(conn, encoders[0], encoders[1])
    assert "d1" in [h.id for h in searcher.search("fast red car")]
    hits = searcher.search("fast red car", filter=Term("lang", "en"))
    assert hits and "d1" not in [h.id for h in hits]


def test_explain_lists_expansion_terms_and_contributions(encoders) -> None:  # type: ignore[no-untyped-def]
    sparse, dense = encoders
    conn = _connector(encoders)
    searcher = HybridSearcher(conn, sparse, dense)
    hits = searcher.search("cat", k=3, explain=True)
    d6 = next(h for h in hits if h.id == "d6")
    # query "cat" expands to "pet" (0.5); d6 holds cat (1) and pet (1)
    assert d6.explanation == [("cat", 1.0), ("pet", 0.5)]
    assert sum(v for _, v in d6.explanation) == pytest.approx(d6.signals["sparse"].score)


def test_explain_without_an_explaining_encoder_names_token_ids(encoders) -> None:  # type: ignore[no-untyped-def]
    plain = FakeSparseEncoder()
    conn = FakeConnector(make_documents(plain, encoders[1]))
    hits = HybridSearcher(conn, plain, signals=("sparse",)).search("cat", k=2, explain=True)
    cat, pet = str(plain.vocab["cat"]), str(plain.vocab["pet"])
    d6 = next(h for h in hits if h.id == "d6")
    assert d6.explanation == [(cat, 1.0), (pet, 0.5)]


def test_explain_is_none_when_the_index_holds_no_sparse_vector(encoders) -> None:  # type: ignore[no-untyped-def]
    docs = make_documents(*encoders)
    stripped = FakeConnector(docs)
    searcher = HybridSearcher(stripped, encoders[0], encoders[1], signals=("sparse", "bm25"))
    first = searcher.search("cat", k=2)
    for d in stripped.docs.values():
        if d.id == first[0].id:
            d.sparse = None
    again = searcher.search("cat", k=5, explain=True)
    assert next(h for h in again if h.id == first[0].id).explanation is None


@pytest.mark.parametrize("source", ["stored", "encode"])
def test_two_stage_reranks_sparse_candidates_by_dense_similarity(encoders, source: str) -> None:  # type: ignore[no-untyped-def]
    sparse, dense = encoders
    conn = _connector(encoders)
    searcher = HybridSearcher(conn, sparse, dense, fusion=TwoStage("sparse", "dense", source), candidates=4)  # type: ignore[arg-type]
    query = "fast car for a pet"
    hits = searcher.search(query, k=3)
    candidates = conn.search_sparse(sparse.encode_queries([query])[0], 4)
    qd = dense.encode([query])[0].astype(np.float64)
    sims = {h.id: float(conn.docs[h.id].dense.astype(np.float64) @ qd) for h in candidates}  # type: ignore[union-attr]
    want = sorted(sims, key=lambda d: (-sims[d], [c.id for c in candidates].index(d)))[:3]
    assert [h.id for h in hits] == want
    assert [h.score for h in hits] == pytest.approx([sims[d] for d in want], abs=1e-6)
    for h in hits:
        assert h.signals["sparse"].rank == [c.id for c in candidates].index(h.id) + 1
        assert h.signals["dense"].score == pytest.approx(sims[h.id], abs=1e-6)


def test_two_stage_dense_first_rescored_by_stored_sparse(encoders) -> None:  # type: ignore[no-untyped-def]
    sparse, dense = encoders
    conn = _connector(encoders)
    searcher = HybridSearcher(conn, sparse, dense, fusion=TwoStage("dense", "sparse"), candidates=8)
    hits = searcher.search("red car", k=8)
    assert {h.id for h in hits} == set(CORPUS)  # dense returns every document; nothing is added or lost
    q = sparse.encode_queries(["red car"])[0]
    scores = [q.dot(conn.docs[h.id].sparse) for h in hits]  # type: ignore[arg-type]
    assert scores == sorted(scores, reverse=True)


def test_default_signals_follow_what_is_available(encoders) -> None:  # type: ignore[no-untyped-def]
    assert HybridSearcher(_connector(encoders), encoders[0]).signals == ("sparse", "bm25")
    no_lexical = _connector(encoders, lexical=False)
    assert HybridSearcher(no_lexical, encoders[0], encoders[1]).signals == ("sparse", "dense")
    with pytest.raises(ValueError, match="lexical scorer"):
        HybridSearcher(no_lexical, encoders[0], encoders[1], signals=("sparse", "bm25"))


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"signals": ("sparse", "dense"), "dense": None}, ValueError, "needs a dense_encoder"),
        ({"signals": ("sparse", "colbert")}, ValueError, r"signals\[1\] is 'colbert'"),
        ({"signals": ()}, ValueError, "at least one"),
        ({"signals": "sparse"}, TypeError, "sequence of signal names"),
        ({"fusion": RRF(weights=(1.0,))}, ValueError, "1 weights for 3 signals"),
        ({"candidates": 0}, ValueError, "candidates"),
        ({"fusion": TwoStage("sparse", "dense"), "dense": None}, ValueError, "needs a dense_encoder"),
    ],
)
def test_configuration_errors(encoders, kwargs: dict, error: type, message: str) -> None:  # type: ignore[no-untyped-def,type-arg]
    dense = kwargs.pop("dense", encoders[1])
    with pytest.raises(error, match=message):
        HybridSearcher(_connector(encoders), encoders[0], dense, **kwargs)


def test_query_errors(encoders) -> None:  # type: ignore[no-untyped-def]
    searcher = HybridSearcher(_connector(encoders), encoders[0], encoders[1])
    with pytest.raises(ValueError, match="k must be a positive integer"):
        searcher.search("cat", k=0)
    with pytest.raises(TypeError, match="query 1 must be a string"):
        searcher.search_batch(["cat", 3])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="use search"):
        searcher.search_batch("cat")


class _PickyConnector(FakeConnector):
    """Advertises rrf and linear but, like the Elasticsearch connector, refuses some settings in detail."""

    def server_fusion_problem(self, fusion: ServerFusion, sub_queries: int) -> str | None:
        return "no zscore here" if fusion.normalizer == "zscore" else None


class _CountingConnector(FakeConnector):
    """Like the OpenSearch connector: the check also takes the number of sub-queries."""

    def server_fusion_problem(self, fusion: ServerFusion, sub_queries: int) -> str | None:
        return f"{sub_queries} sub-queries is too many" if sub_queries > 2 else None


def test_connector_specific_fusion_checks_are_consulted(encoders) -> None:  # type: ignore[no-untyped-def]
    docs = make_documents(*encoders)
    picky = _PickyConnector(docs, server_fusion=frozenset({"rrf", "linear"}))
    assert HybridSearcher(
        picky, *encoders, fusion=WeightedSum(normalize="minmax"), signal_details=False
    ).uses_server_fusion
    zscore = HybridSearcher(picky, *encoders, fusion=WeightedSum(normalize="zscore"))
    assert not zscore.uses_server_fusion and zscore.server_fusion_problem == "no zscore here"
    with pytest.raises(ValueError, match="no zscore here"):
        HybridSearcher(picky, *encoders, fusion=WeightedSum(normalize="zscore"), server_fusion=True)
    counting = _CountingConnector(docs, server_fusion=frozenset({"rrf"}))
    assert not HybridSearcher(counting, *encoders, fusion=RRF(k=60)).uses_server_fusion
    assert HybridSearcher(
        counting, *encoders, fusion=RRF(k=60), signals=("sparse", "bm25"), signal_details=False
    ).uses_server_fusion
    single = HybridSearcher(counting, *encoders, signals=("sparse",))
    assert not single.uses_server_fusion and single.server_fusion_problem == "a single signal needs no fusion"


def test_the_default_fusion_is_the_equal_weight_minmax_sum(encoders) -> None:  # type: ignore[no-untyped-def]
    """Chosen on five test collections (benchmarks/fusion_defaults.py): the best mean, never below the best
    single signal; RRF fell 0.015 below dense on cisi."""
    searcher = HybridSearcher(FakeConnector(make_documents(*encoders)), *encoders)
    assert (
        searcher.fusion == WeightedSum(normalize="minmax", missing="zero") and searcher.fusion.weights is None
    )


def test_with_signal_details_the_fusion_runs_client_side_with_one_request_fewer(encoders) -> None:  # type: ignore[no-untyped-def]
    """Details need one search per signal anyway; a server-fused request on top would be a third."""
    conn = _connector(encoders, server_fusion=frozenset({"rrf"}))
    auto = HybridSearcher(conn, encoders[0], encoders[1], fusion=RRF(k=60))
    assert not auto.uses_server_fusion and "signal_details" in (auto.server_fusion_problem or "")
    hits = auto.search("fast red car", k=3)
    assert len(conn.calls) == 3 and all(c[0] != "hybrid" for c in conn.calls)
    assert hits and all(h.signals for h in hits)
    conn.calls.clear()
    forced = HybridSearcher(conn, encoders[0], encoders[1], fusion=RRF(k=60), server_fusion=True)
    assert forced.uses_server_fusion
    assert _pairs(forced.search("fast red car", k=3)) == _pairs(hits)
    assert [c[0] for c in conn.calls].count("hybrid") == 1 and len(conn.calls) == 4
