"""The same corpus, models and fusion give the same results on every engine: adi (82 documents, 35 queries),
ingested with `spladebridge.ingest` into Qdrant Edge and into each real OpenSearch node, searched with the
public API. Per signal (SPLADE, dense) and for `HybridSearcher`'s default fusion over SPLADE + dense, the
top-10 of each query must overlap by at least 90% between the engines, and scores must be in one scale (dense:
the cosine; sparse: the dot product of the stored weights, 9 bits on Lucene).

BM25 is left out of the hybrid comparison on purpose: each engine has its own analysis and statistics (its
equivalence to Lucene-style BM25 is measured in benchmarks/bm25_parity.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from conftest import LiveNode, ingest_adi, raw_client

import spladebridge as sb
from spladebridge.connectors.base import Connector, IndexSpec
from spladebridge.connectors.qdrant_edge import QdrantEdgeConnector

MIN_OVERLAP = 0.9
TEXT_FIELDS = ("title", "text")


@pytest.fixture(scope="module")
def engines(
    os_node: LiveNode,
    adi: dict[str, Any],
    encoders: tuple[Any, Any],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Connector, Connector]]:
    dim = encoders[1].dim
    name = f"sb-equiv-{os_node.name.replace('.', '-')}"
    raw_client(os_node).indices.delete(index=name, ignore_unavailable=True)
    spec = IndexSpec(name=name, dense_dim=dim, text_fields=TEXT_FIELDS)
    edge_dir = tmp_path_factory.mktemp("edge")
    edge = QdrantEdgeConnector(edge_dir / name, spec)
    lucene = sb.connect(os_node.url, index=name, spec=spec)
    ingest_adi(edge, spec, adi, encoders, tmp_path_factory.mktemp("edge-state"))
    ingest_adi(lucene, spec, adi, encoders, tmp_path_factory.mktemp("os-state"))
    yield edge, lucene
    edge.close()
    raw_client(os_node).indices.delete(index=name, ignore_unavailable=True)
    lucene.close()


def _assert_top10_agree(a: list[list[Any]], b: list[list[Any]], what: str) -> None:
    """Per-query top-10 overlap: at least MIN_OVERLAP on average, at least 0.7 for every query."""
    overlaps = [
        len({str(x) for x in p} & {str(y) for y in q}) / max(1, min(10, len(p), len(q)))
        for p, q in zip(a, b, strict=True)
    ]
    assert float(np.mean(overlaps)) >= MIN_OVERLAP, (what, overlaps)
    assert min(overlaps) >= 0.7, (what, overlaps)


def test_splade_and_dense_top10_agree_and_scores_share_one_scale(
    engines: tuple[Connector, Connector], adi: dict[str, Any], encoders: tuple[Any, Any]
) -> None:
    edge, lucene = engines
    sparse, dense = encoders
    texts = [q["text"] for q in adi["queries"]]
    qs = sparse.encode_queries(texts)
    qd = np.asarray(dense.encode(texts), dtype=np.float32)
    tops: dict[str, tuple[list[list[Any]], list[list[Any]]]] = {"splade": ([], []), "dense": ([], [])}
    for i in range(len(texts)):
        for signal, (a, b) in tops.items():
            ha = edge.search_sparse(qs[i], 10) if signal == "splade" else edge.search_dense(qd[i], 10)
            hb = lucene.search_sparse(qs[i], 10) if signal == "splade" else lucene.search_dense(qd[i], 10)
            a.append([h.id for h in ha])
            b.append([h.id for h in hb])
            if ha and hb and ha[0].id == hb[0].id:
                # one scale: the dense cosine exactly; the sparse dot product up to Lucene's 9-bit weights
                tolerance = 1e-4 if signal == "dense" else 2**-8 * abs(ha[0].score) + 1e-6
                assert hb[0].score == pytest.approx(ha[0].score, abs=tolerance), (signal, i)
    for signal, (a, b) in tops.items():
        _assert_top10_agree(a, b, signal)


def test_the_default_hybrid_agrees_between_engines(
    engines: tuple[Connector, Connector], adi: dict[str, Any], encoders: tuple[Any, Any]
) -> None:
    edge, lucene = engines
    sparse, dense = encoders
    texts = [q["text"] for q in adi["queries"]]
    a = sb.HybridSearcher(edge, sparse, dense, signals=("sparse", "dense"))
    b = sb.HybridSearcher(lucene, sparse, dense, signals=("sparse", "dense"))
    ra = [[h.id for h in hits] for hits in a.search_batch(texts, k=10)]
    rb = [[h.id for h in hits] for hits in b.search_batch(texts, k=10)]
    _assert_top10_agree(ra, rb, "hybrid")
