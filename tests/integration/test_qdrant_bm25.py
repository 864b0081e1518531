"""Qdrant's BM25 signal scores as Lucene's BM25 does (bm25s, `LexicalBM25`), through the connector.

On ADI, written with `upsert` and searched with `search_text` on an in-process Qdrant Edge shard: every score
is bm25s's times k1 + 1 (Qdrant keeps BM25's (k1 + 1) factor, Lucene drops it), save where the two Snowball
English stemmers disagree on a word; so rankings and nDCG@10 match. A reopened shard scores the same, and the
corpus statistics (documents with a token, their tokens) follow every upsert, replacement and delete on both
Qdrant connectors.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import pytest
from qdrant_client import QdrantClient

from spladebridge.connectors.base import Document, IndexSpec
from spladebridge.connectors.qdrant import QdrantConnector
from spladebridge.connectors.qdrant_base import QdrantLikeConnector
from spladebridge.connectors.qdrant_common import BM25_STATS_KEY, Bm25Stats
from spladebridge.connectors.qdrant_edge import SPEC_FILE, QdrantEdgeConnector
from spladebridge.encoder.sparse_vector import SparseVector
from spladebridge.evaluation.beir import BeirDataset, load_beir
from spladebridge.evaluation.lexical import LexicalBM25
from spladebridge.evaluation.metrics import Run, evaluate

ADI = Path("/work/shared/datasets/adi")
K1 = 0.9


def _doc(doc_id: str | int, text: str, title: str = "") -> Document:
    return Document(id=doc_id, fields={"title": title, "text": text}, sparse=SparseVector.empty())


def _search(conn: QdrantLikeConnector, queries: dict[str, str], k: int = 10) -> Run:
    return {qid: {str(h.id): h.score for h in conn.search_text(text, k)} for qid, text in queries.items()}


# -- ADI against bm25s ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def adi() -> BeirDataset:
    if not ADI.exists():
        pytest.skip("the ADI test collection is not available")
    return load_beir(ADI, name="adi")


@pytest.fixture(scope="module")
def reference(adi: BeirDataset) -> Run:
    ids = list(adi.corpus)
    lexical = LexicalBM25()
    lexical.index(ids, [adi.doc_text(i) for i in ids])
    return lexical.search(adi.judged_queries(), 10)


def _adi_docs(adi: BeirDataset) -> list[Document]:
    return [_doc(i, d.get("text", ""), d.get("title", "")) for i, d in adi.corpus.items()]


def test_qdrant_edge_bm25_matches_lucene_bm25_on_adi(
    adi: BeirDataset, reference: Run, tmp_path: Path
) -> None:
    queries = adi.judged_queries()
    path = tmp_path / "adi"
    with QdrantEdgeConnector(path, IndexSpec(name="adi")) as conn:
        assert conn.upsert(_adi_docs(adi)).ok  # one batch: every vector uses the final average length
        assert conn.bm25_stats.documents == len(adi.corpus)
        run = _search(conn, queries)

    ratios = [run[q][d] / s for q, docs in reference.items() for d, s in docs.items() if d in run[q]]
    exact = [r for r in ratios if r == pytest.approx(K1 + 1, rel=1e-4)]
    assert len(exact) >= 0.99 * len(ratios) and len(ratios) >= 300
    overlaps = [len(set(run[q]) & set(docs)) / len(docs) for q, docs in reference.items() if docs]
    assert min(overlaps) >= 0.8 and sum(overlaps) / len(overlaps) >= 0.98
    qrels = adi.split("test")
    ours = evaluate(qrels, run, ["ndcg@10"]).means["ndcg@10"]
    lucene = evaluate(qrels, reference, ["ndcg@10"]).means["ndcg@10"]
    assert ours == pytest.approx(lucene, abs=0.01)

    with QdrantEdgeConnector(path) as reopened:  # no spec given: read back, with the BM25 statistics
        assert reopened.bm25_stats == Bm25Stats(len(adi.corpus), reopened.bm25_stats.tokens)
        assert _search(reopened, queries) == run
    assert json.loads((path / SPEC_FILE).read_text())[BM25_STATS_KEY]["documents"] == len(adi.corpus)


def test_batched_writes_stay_within_001_of_lucene_on_adi(
    adi: BeirDataset, reference: Run, tmp_path: Path
) -> None:
    """Written 16 at a time, early vectors use the average of the batches so far: close, not exact."""
    docs = _adi_docs(adi)
    with QdrantEdgeConnector(tmp_path / "adi", IndexSpec(name="adi"), batch_size=16) as conn:
        assert conn.upsert(docs).ok
        run = _search(conn, adi.judged_queries())
    qrels = adi.split("test")
    ours = evaluate(qrels, run, ["ndcg@10"]).means["ndcg@10"]
    assert ours == pytest.approx(evaluate(qrels, reference, ["ndcg@10"]).means["ndcg@10"], abs=0.01)


# -- the corpus statistics --------------------------------------------------------------------------------


@pytest.fixture(params=["edge", "client"])
def reopenable(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Path, QdrantClient]]:
    client = QdrantClient(":memory:")
    yield request.param, tmp_path / "shard", client
    client.close()


def _open(kind: str, path: Path, client: QdrantClient, spec: IndexSpec | None) -> QdrantLikeConnector:
    if kind == "edge":
        return QdrantEdgeConnector(path, spec)
    return QdrantConnector(client, spec, collection="stats", close_client=False)


def _bm25(idf_n: int, df: int, tf: int, dl: int, avg_len: float, b: float = 0.4) -> float:
    """Lucene's IDF times Qdrant's BM25 document weight (Lucene's times k1 + 1); the query term counts 1."""
    idf = math.log(1 + (idf_n - df + 0.5) / (df + 0.5))
    return idf * tf * (K1 + 1) / (tf + K1 * (1 - b + b * dl / avg_len))


def test_average_length_follows_upserts_and_deletes(reopenable: tuple[str, Path, QdrantClient]) -> None:
    kind, path, client = reopenable
    conn = _open(kind, path, client, IndexSpec(name="stats"))
    assert conn.bm25_stats == Bm25Stats() and conn.bm25_stats.avg_len is None
    # "and", "the", "of" are Lucene stop words; a text of stop words only is no BM25 document
    report = conn.upsert([_doc(1, "cat dog"), _doc(2, "Dogs and birds"), _doc(3, "the of")])
    assert report.ok
    assert conn.bm25_stats == Bm25Stats(documents=2, tokens=4)
    hits = conn.search_text("cat", 3)
    assert [h.id for h in hits] == [1]
    assert hits[0].score == pytest.approx(_bm25(idf_n=2, df=1, tf=1, dl=2, avg_len=2.0), rel=1e-5)

    assert conn.upsert([_doc(2, "birds fly over rivers"), _doc(4, "cat cat cat bird")]).ok  # 2 replaced
    assert conn.bm25_stats == Bm25Stats(documents=3, tokens=2 + 4 + 4)
    hits = conn.search_text("cat", 3)
    assert [h.id for h in hits] == [4, 1]  # doc 1 was written with avg 2.0, doc 4 with 10 / 3
    assert hits[0].score == pytest.approx(_bm25(idf_n=3, df=2, tf=3, dl=4, avg_len=10 / 3), rel=1e-5)
    assert hits[1].score == pytest.approx(_bm25(idf_n=3, df=2, tf=1, dl=2, avg_len=2.0), rel=1e-5)
    # a repeated query term counts again, as in Lucene's query parser
    assert conn.search_text("cat cat", 1)[0].score == pytest.approx(2 * hits[0].score, rel=1e-6)

    assert conn.delete([1, 99, 3]).ok  # 99 absent, 3 has no token: only doc 1's 2 tokens leave
    assert conn.bm25_stats == Bm25Stats(documents=2, tokens=8)
    conn.close()

    again = _open(kind, path, client, None)  # a reopened index goes on from the stored numbers
    assert again.bm25_stats == Bm25Stats(documents=2, tokens=8)
    assert again.upsert([_doc(5, "stone river")]).ok
    assert again.bm25_stats == Bm25Stats(documents=3, tokens=10)
    again.close()


def test_an_index_without_stored_statistics_counts_them_from_its_text(tmp_path: Path) -> None:
    path = tmp_path / "old"
    with QdrantEdgeConnector(path, IndexSpec(name="old")) as conn:
        assert conn.upsert([_doc(1, "cat dog"), _doc("b", "Dogs and birds fly", title="Birds")]).ok
        counted = conn.bm25_stats
    assert counted == Bm25Stats(documents=2, tokens=6)
    stored = json.loads((path / SPEC_FILE).read_text())
    del stored[BM25_STATS_KEY]  # as written before the statistics were kept
    (path / SPEC_FILE).write_text(json.dumps(stored))
    with QdrantEdgeConnector(path) as conn:
        assert conn.bm25_stats == counted
    assert json.loads((path / SPEC_FILE).read_text())[BM25_STATS_KEY] == counted.to_json()


def test_bad_bm25_options_are_refused_before_the_shard_exists(tmp_path: Path) -> None:
    path = tmp_path / "bad"
    with pytest.raises(ValueError, match="Snowball stemmer language"):
        QdrantEdgeConnector(path, IndexSpec(options={"bm25": {"stemmer": "klingon"}}))
    assert not (path / SPEC_FILE).exists() and not (path / "segments").exists()
