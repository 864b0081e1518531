"""Hybrid modes side by side on a BEIR-layout collection: single signals, RRF, DBSF, tuned fusion, two-stage.

Indexes the collection with the default offline models (SPLADE-tiny, all-MiniLM-L6-v2) into a temporary
Qdrant Edge shard, runs every mode through `HybridSearcher`, and scores nDCG@10 and R@100 on the held-out
half of the judged queries (odd positions in id order). The tuned fusion is chosen by `tune` on the other
half (even positions), never on the half it is scored on. Also reports the mean time per query of each
mode (queries encoded in one batch, then searched one by one).

Usage: python benchmarks/hybrid_modes.py [--dataset adi] [--candidates 100] [--json]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

from spladebridge.connectors.base import Document, IndexSpec
from spladebridge.connectors.qdrant_edge import QdrantEdgeConnector
from spladebridge.encoder.dense import DenseEncoder
from spladebridge.encoder.splade import SpladeEncoder
from spladebridge.hybrid import RRF, FusionSetting, HybridSearcher, TwoStage, WeightedSum, evaluate, tune
from spladebridge.hybrid.settings import describe

DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _qrels(path: Path) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for line in path.read_text().splitlines()[1:]:
        qid, doc, grade = line.split("\t")
        out.setdefault(qid, {})[doc] = int(grade)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="adi")
    parser.add_argument("--root", type=Path, default=DATASETS)
    parser.add_argument("--candidates", type=int, default=100)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    folder = args.root / args.dataset
    corpus = _jsonl(folder / "corpus.jsonl")
    queries = {q["_id"]: q["text"] for q in _jsonl(folder / "queries.jsonl")}
    qrels = _qrels(folder / "qrels" / "test.tsv")
    qids = sorted((q for q in qrels if q in queries), key=lambda q: (len(q), q))
    dev, held_out = qids[0::2], qids[1::2]

    sparse, dense = SpladeEncoder(), DenseEncoder()
    spec = IndexSpec(name=args.dataset, dense_dim=dense.dim, text_fields=("title", "text"))
    docs = [
        Document(id=d["_id"], fields={"title": d.get("title", ""), "text": d.get("text", "")}) for d in corpus
    ]
    texts = [d.text(spec.text_fields) for d in docs]
    start = time.perf_counter()
    for doc, s, v in zip(docs, sparse.encode_documents(texts), dense.encode(texts), strict=True):
        doc.sparse, doc.dense = s, v
    encode_s = time.perf_counter() - start

    depth = args.candidates
    with tempfile.TemporaryDirectory() as tmp, QdrantEdgeConnector(Path(tmp) / "shard", spec) as conn:
        report = conn.upsert(docs)
        if not report.ok:
            raise SystemExit(f"indexing failed: {report.failures()[:3]}")
        conn.flush()
        singles = {
            s: HybridSearcher(conn, sparse, dense, signals=(s,), candidates=depth)
            for s in ("sparse", "dense", "bm25")
        }
        runs: dict[str, dict[str, list[tuple[Any, float]]]] = {}
        for s, searcher in singles.items():
            hits = searcher.search_batch([queries[q] for q in qids], k=depth)
            runs[s] = {q: [(h.id, h.signals[s].score) for h in hs] for q, hs in zip(qids, hits, strict=True)}
        tuned = tune(
            {s: {q: r[q] for q in dev} for s, r in runs.items()}, {q: qrels[q] for q in dev}, split="dev"
        )

        modes: dict[str, tuple[tuple[str, ...] | None, FusionSetting]] = {
            "sparse": (("sparse",), RRF()),
            "dense": (("dense",), RRF()),
            "bm25": (("bm25",), RRF()),
            "rrf(k=60) sparse+dense": (("sparse", "dense"), RRF(k=60)),
            "rrf(k=60) sparse+dense+bm25": (None, RRF(k=60)),
            "dbsf sparse+dense+bm25": (None, WeightedSum(normalize="dbsf")),
            f"tuned on dev: {describe(tuned.best)}": (None, tuned.best),
            "two-stage sparse -> dense (stored)": (None, TwoStage("sparse", "dense", "stored")),
            "two-stage bm25 -> dense (stored)": (None, TwoStage("bm25", "dense", "stored")),
        }
        judged = {q: qrels[q] for q in held_out}
        results: dict[str, dict[str, float | bool]] = {}
        for name, (signals, fusion) in modes.items():
            searcher = HybridSearcher(conn, sparse, dense, signals=signals, fusion=fusion, candidates=depth)
            start = time.perf_counter()
            hits = searcher.search_batch([queries[q] for q in held_out], k=depth)
            latency = (time.perf_counter() - start) / max(1, len(held_out)) * 1e3
            ranked = {q: [(h.id, h.score) for h in hs] for q, hs in zip(held_out, hits, strict=True)}
            results[name] = {
                "ndcg@10": round(evaluate(ranked, judged, "ndcg@10"), 4),
                "recall@100": round(evaluate(ranked, judged, "recall@100"), 4),
                "ms_per_query": round(latency, 1),
                "server_fusion": searcher.uses_server_fusion,
            }
    out = {
        "benchmark": "hybrid_modes",
        "dataset": args.dataset,
        "docs": len(docs),
        "dev_queries": len(dev),
        "scored_queries": len(held_out),
        "candidates": depth,
        "encode_seconds": round(encode_s, 1),
        "tuned": {
            "best": describe(tuned.best),
            "dev_ndcg@10": round(tuned.best_score, 4),
            "trials": len(tuned.table),
        },
        "results": results,
        "python": platform.python_version(),
    }
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(f"{args.dataset}: {len(docs)} docs, tuned on {len(dev)} queries, scored on {len(held_out)}")
    for name, r in results.items():
        print(
            f"  {name:45s} nDCG@10 {r['ndcg@10']:.4f}  R@100 {r['recall@100']:.4f}  {r['ms_per_query']:6.1f} ms"
        )


if __name__ == "__main__":
    main()
