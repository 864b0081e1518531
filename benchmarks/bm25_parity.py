"""BM25 parity: Qdrant Edge's BM25 signal against Lucene-style BM25 (bm25s), on the product path.

For each collection: (a) `LexicalBM25` (bm25s, Lucene scoring, k1=0.9, b=0.4, Lucene's English stop words,
Snowball stemming, title + text), (b) Qdrant Edge through `QdrantEdgeConnector`: every document written
with `upsert` in batches of `--batch-size` (64, the batch `ingest()` writes by default, so the average length
grows batch by batch as it does for a user), with an empty SPLADE vector and no dense field, then every judged
test query searched with `search_text` (what `HybridSearcher` runs for its bm25 signal). Both are scored with
ir-measures (nDCG@10 over the judged test queries); also the mean per-query overlap of the two top-10 lists.

`--ablation` also runs the connector with one BM25 setting at a time put back to Qdrant's own default
(through `IndexSpec.options["bm25"]`), and with all of them at once, to show what each one is worth.

Exits 1 when Qdrant Edge is more than `--tolerance` (0.01) nDCG@10 below bm25s on any collection.

Usage: python benchmarks/bm25_parity.py [--datasets adi,cisi,cranfield,nfcorpus,scifact] [--ablation] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from spladebridge.connectors.base import Document, IndexSpec
from spladebridge.connectors.qdrant_edge import QdrantEdgeConnector
from spladebridge.encoder.sparse_vector import SparseVector
from spladebridge.evaluation.beir import BeirDataset, load_beir
from spladebridge.evaluation.lexical import LexicalBM25
from spladebridge.evaluation.metrics import Run, evaluate

DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"
COLLECTIONS = ("adi", "cisi", "cranfield", "nfcorpus", "scifact")
DEPTH = 100
#: Qdrant's own BM25 defaults, each one a variant of `options["bm25"]` for `--ablation`.
QDRANT_DEFAULTS: dict[str, dict[str, Any]] = {
    "k1=1.2,b=0.75": {"k": 1.2, "b": 0.75},
    "avg_len=256": {"avg_len": 256},
    "qdrant_stopwords": {"stopwords": "english"},
    "single_letter_tokens": {"min_token_len": None},
}
ALL_DEFAULTS = {key: value for options in QDRANT_DEFAULTS.values() for key, value in options.items()}


@dataclass(frozen=True, slots=True)
class Row:
    """One collection's result: both nDCG@10 values, their difference, and how alike the rankings are."""

    dataset: str
    docs: int
    queries: int
    bm25s_ndcg10: float
    qdrant_edge_ndcg10: float
    diff: float
    top10_overlap: float
    avg_len: float | None
    index_s: float
    search_s: float
    ok: bool
    ablation: dict[str, float] | None = None


def bm25s_run(ds: BeirDataset, queries: Mapping[str, str]) -> Run:
    """The Lucene-style reference run."""
    ids = list(ds.corpus)
    lexical = LexicalBM25()
    lexical.index(ids, [ds.doc_text(i) for i in ids])
    return lexical.search(queries, DEPTH)


def qdrant_edge_run(
    ds: BeirDataset,
    queries: Mapping[str, str],
    batch_size: int,
    folder: Path,
    bm25_options: Mapping[str, Any] | None = None,
) -> tuple[Run, float | None, float, float]:
    """The product-path run: connector upsert in batches, then `search_text` per query.

    Returns the run, the stored average length (None where the connector keeps none), and the seconds spent
    indexing and searching."""
    options = {"bm25": dict(bm25_options)} if bm25_options else {}
    spec = IndexSpec(name=ds.name, text_fields=("title", "text"), options=options)
    docs = [
        Document(
            id=doc_id,
            fields={"title": doc.get("title", ""), "text": doc.get("text", "")},
            sparse=SparseVector.empty(),
        )
        for doc_id, doc in ds.corpus.items()
    ]
    shard = folder / f"{ds.name}-{len(list(folder.iterdir()))}"
    with QdrantEdgeConnector(shard, spec) as conn:
        start = time.perf_counter()
        for i in range(0, len(docs), batch_size):
            report = conn.upsert(docs[i : i + batch_size])
            if not report.ok:
                raise SystemExit(f"{ds.name}: indexing failed: {report.failures()[:3]}")
        conn.flush()
        index_s = time.perf_counter() - start
        stats = getattr(conn, "bm25_stats", None)
        start = time.perf_counter()
        run: Run = {
            qid: {str(h.id): h.score for h in conn.search_text(text, DEPTH)} for qid, text in queries.items()
        }
        search_s = time.perf_counter() - start
    return run, (stats.avg_len if stats is not None else None), index_s, search_s


def top10_overlap(reference: Run, other: Run) -> float:
    """Mean over queries of |top10(reference) ∩ top10(other)| / |top10(reference)|."""
    values = []
    for qid, docs in reference.items():
        ref = set(list(docs)[:10])
        if ref:
            values.append(len(ref & set(list(other.get(qid, {}))[:10])) / len(ref))
    return sum(values) / len(values) if values else 1.0


def measure(name: str, root: Path, batch_size: int, tolerance: float, folder: Path, ablation: bool) -> Row:
    ds = load_beir(root / name, name=name)
    qrels = ds.split("test")
    queries = ds.judged_queries("test")
    reference = bm25s_run(ds, queries)
    edge, avg_len, index_s, search_s = qdrant_edge_run(ds, queries, batch_size, folder)
    a = evaluate(qrels, reference, ["ndcg@10"]).means["ndcg@10"]
    b = evaluate(qrels, edge, ["ndcg@10"]).means["ndcg@10"]
    variants: dict[str, float] | None = None
    if ablation:
        variants = {}
        for label, options in [*QDRANT_DEFAULTS.items(), ("all_qdrant_defaults", ALL_DEFAULTS)]:
            run = qdrant_edge_run(ds, queries, batch_size, folder, options)[0]
            variants[label] = round(evaluate(qrels, run, ["ndcg@10"]).means["ndcg@10"], 4)
    return Row(
        dataset=name,
        docs=len(ds.corpus),
        queries=len(queries),
        bm25s_ndcg10=round(a, 4),
        qdrant_edge_ndcg10=round(b, 4),
        diff=round(b - a, 4),
        top10_overlap=round(top10_overlap(reference, edge), 3),
        avg_len=None if avg_len is None else round(avg_len, 2),
        index_s=round(index_s, 2),
        search_s=round(search_s, 2),
        ok=b >= a - tolerance,
        ablation=variants,
    )


def machine() -> dict[str, Any]:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus_available": cpus,
        "python": platform.python_version(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--datasets", default=",".join(COLLECTIONS))
    parser.add_argument("--root", type=Path, default=DATASETS)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--tolerance", type=float, default=0.01)
    parser.add_argument("--ablation", action="store_true", help="also one Qdrant default at a time")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.datasets.split(","):
            row = measure(name.strip(), args.root, args.batch_size, args.tolerance, Path(tmp), args.ablation)
            rows.append(row)
            if not args.json:
                r = rows[-1]
                print(
                    f"{r.dataset:10s} bm25s {r.bm25s_ndcg10:.4f}  qdrant-edge {r.qdrant_edge_ndcg10:.4f}  "
                    f"diff {r.diff:+.4f}  top10 overlap {r.top10_overlap:.3f}  {'ok' if r.ok else 'BELOW'}",
                    flush=True,
                )
                if r.ablation:
                    print("           " + "  ".join(f"{k} {v:.4f}" for k, v in r.ablation.items()))
    ok = all(r.ok for r in rows)
    if args.json:
        result = {
            "path": f"QdrantEdgeConnector.upsert (batches of {args.batch_size}, empty SPLADE vector, no "
            "dense field) + search_text, nDCG@10 by ir-measures on the test qrels; reference: LexicalBM25 "
            "(bm25s, method='lucene', k1=0.9, b=0.4)",
            "machine": machine(),
            "tolerance": args.tolerance,
            "ok": ok,
            "rows": [asdict(r) for r in rows],
        }
        print(json.dumps(result, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
