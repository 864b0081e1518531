"""HybridSearcher end to end: SPLADE-tiny + MiniLM into an embedded Qdrant Edge shard, on the ADI collection.

Server-side fusion (Qdrant prefetch + RRF / DBSF) and client-side fusion give the same hits; explanations name
real word pieces; two-stage rescoring from stored vectors equals rescoring by re-encoding; `tune` runs on a
dev half of the queries and is compared with the untouched other half.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from spladebridge.connectors.base import Document, IndexSpec
from spladebridge.connectors.qdrant_edge import QdrantEdgeConnector
from spladebridge.encoder.dense import DenseEncoder
from spladebridge.encoder.splade import SpladeEncoder
from spladebridge.hybrid import RRF, FusionSetting, HybridSearcher, TwoStage, WeightedSum, evaluate, tune
from spladebridge.hybrid.searcher import FusedHit

ADI = Path("/work/shared/datasets/adi")
pytestmark = pytest.mark.skipif(not ADI.exists(), reason="the ADI test collection is not available")


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def encoders() -> tuple[SpladeEncoder, DenseEncoder]:
    return SpladeEncoder(), DenseEncoder()


@pytest.fixture(scope="module")
def queries() -> dict[str, str]:
    return {q["_id"]: q["text"] for q in _jsonl(ADI / "queries.jsonl")}


@pytest.fixture(scope="module")
def qrels() -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for line in (ADI / "qrels" / "test.tsv").read_text().splitlines()[1:]:
        qid, doc, grade = line.split("\t")
        out.setdefault(qid, {})[doc] = int(grade)
    return out


@pytest.fixture(scope="module")
def edge(
    encoders: tuple[SpladeEncoder, DenseEncoder], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[QdrantEdgeConnector]:
    sparse, dense = encoders
    corpus = _jsonl(ADI / "corpus.jsonl")
    spec = IndexSpec(name="adi", dense_dim=dense.dim, text_fields=("title", "text"))
    docs = [Document(id=d["_id"], fields={"title": d["title"], "text": d["text"]}) for d in corpus]
    texts = [d.text(spec.text_fields) for d in docs]
    for doc, s, v in zip(docs, sparse.encode_documents(texts), dense.encode(texts), strict=True):
        doc.sparse, doc.dense = s, v
    connector = QdrantEdgeConnector(tmp_path_factory.mktemp("hybrid") / "shard", spec)
    assert connector.upsert(docs).ok
    connector.flush()
    yield connector
    connector.close()


def _same_hits(got: list[FusedHit], want: list[FusedHit], rel: float = 1e-5) -> None:
    """Same scores position by position (Qdrant's are float32); same id wherever the score is not tied."""
    assert len(got) == len(want)
    for pos, (a, b) in enumerate(zip(got, want, strict=True)):
        assert a.score == pytest.approx(b.score, rel=rel), (pos, a, b)
        tied = sum(1 for h in want if h.score == pytest.approx(b.score, rel=rel)) > 1
        if not tied:
            assert a.id == b.id, (pos, a, b)


@pytest.mark.parametrize(
    "fusion", [RRF(k=60), RRF(k=10, weights=(1.0, 2.0, 0.5)), WeightedSum(normalize="dbsf")]
)
def test_server_and_client_fusion_agree(
    edge: QdrantEdgeConnector,
    encoders: tuple[SpladeEncoder, DenseEncoder],
    queries: dict[str, str],
    fusion: Any,
) -> None:
    server = HybridSearcher(edge, *encoders, fusion=fusion, candidates=30, server_fusion=True)
    client = HybridSearcher(edge, *encoders, fusion=fusion, candidates=30, server_fusion=False)
    assert server.signals == ("sparse", "dense", "bm25")
    assert server.uses_server_fusion and not client.uses_server_fusion
    texts = list(queries.values())[:8]
    for got, want in zip(server.search_batch(texts, k=10), client.search_batch(texts, k=10), strict=True):
        _same_hits(got, want)
        for hit in got:
            assert hit.fields.get("title")
            assert hit.signals, hit


def test_explanations_are_word_pieces_summing_to_the_sparse_score(
    edge: QdrantEdgeConnector, encoders: tuple[SpladeEncoder, DenseEncoder], queries: dict[str, str]
) -> None:
    searcher = HybridSearcher(edge, *encoders, signals=("sparse",), explain_top_k=None)
    hits = searcher.search(queries["3"], k=5, explain=True)
    assert hits
    vocab = set(encoders[0].token_ids)
    for hit in hits:
        assert hit.explanation
        assert all(token in vocab for token, _ in hit.explanation)
        assert sum(v for _, v in hit.explanation) == pytest.approx(hit.signals["sparse"].score, rel=1e-4)
        values = [v for _, v in hit.explanation]
        assert values == sorted(values, reverse=True)


def test_two_stage_from_stored_vectors_equals_re_encoding(
    edge: QdrantEdgeConnector, encoders: tuple[SpladeEncoder, DenseEncoder], queries: dict[str, str]
) -> None:
    stored = HybridSearcher(edge, *encoders, fusion=TwoStage("sparse", "dense", "stored"), candidates=12)
    encoded = HybridSearcher(edge, *encoders, fusion=TwoStage("sparse", "dense", "encode"), candidates=12)
    first = HybridSearcher(edge, *encoders, signals=("sparse",), candidates=12)
    for text in list(queries.values())[:2]:
        a, b = stored.search(text, k=10), encoded.search(text, k=10)
        assert [h.score for h in a] == pytest.approx([h.score for h in b], abs=1e-4)
        candidates = {h.id for h in first.search(text, k=12)}
        assert {h.id for h in a} <= candidates
        assert [h.score for h in a] == sorted((h.score for h in a), reverse=True)


def test_tune_on_dev_queries_and_check_on_the_rest(
    edge: QdrantEdgeConnector,
    encoders: tuple[SpladeEncoder, DenseEncoder],
    queries: dict[str, str],
    qrels: dict[str, dict[str, int]],
) -> None:
    depth = 50
    single = {
        s: HybridSearcher(edge, *encoders, signals=(s,), candidates=depth)
        for s in ("sparse", "dense", "bm25")
    }
    qids = sorted(qrels, key=int)
    runs = {
        s: {
            q: [(h.id, h.signals[s].score) for h in hits]
            for q, hits in zip(qids, searcher.search_batch([queries[q] for q in qids], k=depth), strict=True)
        }
        for s, searcher in single.items()
    }
    dev, held_out = qids[::2], qids[1::2]
    grid: list[FusionSetting] = [
        RRF(k=60),
        RRF(k=10),
        WeightedSum((0.5, 0.3, 0.2)),
        WeightedSum((0.2, 0.6, 0.2), "zscore"),
    ]
    result = tune({s: {q: r[q] for q in dev} for s, r in runs.items()}, {q: qrels[q] for q in dev}, grid=grid)
    assert [row.setting for row in result.table] == grid
    assert result.best_score == max(row.score for row in result.table)
    # the tuned setting, run through the searcher on held-out queries, scores what fusing the runs scores
    searcher = HybridSearcher(edge, *encoders, fusion=result.best, candidates=depth, server_fusion=False)
    ranked = {
        q: [(h.id, h.score) for h in hits]
        for q, hits in zip(
            held_out, searcher.search_batch([queries[q] for q in held_out], k=depth), strict=True
        )
    }
    from_runs = tune(
        {s: {q: r[q] for q in held_out} for s, r in runs.items()},
        {q: qrels[q] for q in held_out},
        grid=[result.best],
    )
    assert evaluate(ranked, {q: qrels[q] for q in held_out}, "ndcg@10") == pytest.approx(
        from_runs.best_score, abs=1e-6
    )
