"""Query latency of the Qdrant connectors on synthetic SPLADE-like data (query encoding excluded), and with
`--searcher`, of one whole `HybridSearcher.search()` call (query encoding included) beside its parts.

Builds N documents with sparse vectors of about 120 non-zeros (token ids Zipf-distributed over a 30,522
vocabulary, as BERT's) and 384-d dense vectors, loads them into Qdrant Edge (batched upserts, then
`optimize()`), and times sparse, dense and hybrid (server-side RRF, k=60) queries through the connector,
reporting p50/p99. The same queries run on qdrant-client local mode at a smaller size beside it.

    .venv/bin/python benchmarks/query_latency.py --json
    .venv/bin/python benchmarks/query_latency.py --searcher --json

`--searcher`: the 100,000-document shard `service_bench.py` builds and keeps (built on first use, about 5
minutes), real query texts (SciFact's claims), the default offline models. One query at a time, each timed
from text to fused hits: `HybridSearcher`'s defaults (sparse + dense, client-side min-max weighted sum, 100
candidates per signal), the same with `precision="fast"` dense queries, RRF as it runs by default (client-side
while signal details are on) and server-side RRF with and without `signal_details`; beside them the bare connector calls on pre-encoded vectors and each encoder alone.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from spladebridge.connectors.base import Connector, Document, HybridRequest, IndexSpec, ServerFusion
from spladebridge.encoder.sparse_vector import SparseVector

VOCAB = 30522
DIM = 384
TARGETS_MS = {"hybrid_p50": 5.0, "hybrid_p99": 20.0}
SEARCHER_TARGETS_MS = {"p50": 10.0, "p99": 30.0}


def zipf_probabilities(
    vocab: int, s: float, rng: np.random.Generator
) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Zipf(s) probabilities over ranks, and a random rank -> token id permutation (heads spread over ids)."""
    ranks = np.arange(1, vocab + 1, dtype=np.float64)
    p = ranks**-s
    return p / p.sum(), rng.permutation(vocab).astype(np.int64)


def sparse_rows(
    n: int, draws: int, p: NDArray[np.float64], ids: NDArray[np.int64], rng: np.random.Generator
) -> Iterator[tuple[NDArray[np.int64], NDArray[np.float32]]]:
    """`n` sparse rows: `draws` Zipf token draws per row, duplicates merged, SPLADE-like positive weights."""
    chunk = 5000
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        tokens = np.sort(ids[rng.choice(p.shape[0], size=(m, draws), p=p)], axis=1)
        first = np.ones_like(tokens, dtype=bool)
        first[:, 1:] = tokens[:, 1:] != tokens[:, :-1]
        weights = (0.05 + rng.gamma(1.5, 0.5, size=(m, draws))).astype(np.float32)
        for row in range(m):
            keep = first[row]
            yield tokens[row, keep], weights[row, keep]


def make_documents(n: int, seed: int) -> list[Document]:
    rng = np.random.default_rng(seed)
    p, ids = zipf_probabilities(VOCAB, 1.0, rng)
    dense = rng.standard_normal((n, DIM), dtype=np.float32)
    docs = []
    for i, (idx, val) in enumerate(sparse_rows(n, 163, p, ids, rng)):
        sparse = SparseVector._trusted(idx.astype(np.int32), val)
        docs.append(
            Document(
                id=i, fields={"title": f"doc {i}"}, metadata={"group": i % 10}, sparse=sparse, dense=dense[i]
            )
        )
    return docs


def make_queries(n: int, seed: int) -> list[tuple[SparseVector, NDArray[np.float32]]]:
    rng = np.random.default_rng(seed + 1)
    p, ids = zipf_probabilities(VOCAB, 1.0, np.random.default_rng(seed))  # the documents' token permutation
    dense = rng.standard_normal((n, DIM), dtype=np.float32)
    return [
        (SparseVector._trusted(idx.astype(np.int32), val), dense[i])
        for i, (idx, val) in enumerate(sparse_rows(n, 32, p, ids, rng))
    ]


def percentiles(samples_s: list[float]) -> dict[str, float]:
    ms = np.asarray(samples_s) * 1000.0
    return {
        "n": int(ms.size),
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p99_ms": round(float(np.percentile(ms, 99)), 3),
        "mean_ms": round(float(ms.mean()), 3),
        "max_ms": round(float(ms.max()), 3),
    }


def time_queries(run: Callable[[int], object], n: int, warmup: int) -> dict[str, float]:
    for i in range(min(warmup, n)):
        run(i)
    samples = []
    for i in range(n):
        t0 = time.perf_counter()
        run(i)
        samples.append(time.perf_counter() - t0)
    return percentiles(samples)


def measure(
    conn: Connector, docs: list[Document], queries: list[Any], n_queries: int, k: int, candidates: int
) -> dict[str, Any]:
    """Load `docs`, optimize where the connector can, then time each query kind (after a short warm-up)."""
    warmup = max(2, min(20, n_queries // 10))
    t0 = time.perf_counter()
    report = conn.upsert(docs)
    ingest_s = time.perf_counter() - t0
    if not report.ok:
        raise RuntimeError(f"{report.failed} documents failed: {report.failures()[:3]}")
    optimize_s = 0.0
    optimize = getattr(conn, "optimize", None)
    if callable(optimize):
        t0 = time.perf_counter()
        optimize()
        optimize_s = time.perf_counter() - t0
    fusion = ServerFusion(method="rrf", rank_constant=60)

    def q(i: int) -> tuple[SparseVector, NDArray[np.float32]]:
        return queries[i % len(queries)]  # type: ignore[no-any-return]

    def hybrid(i: int) -> object:
        s, d = q(i)
        return conn.search_hybrid(HybridRequest(k=k, candidates=candidates, fusion=fusion, sparse=s, dense=d))

    s0, d0 = q(0)
    returned = {
        "sparse": len(conn.search_sparse(s0, k)),
        "dense": len(conn.search_dense(d0, k)),
        "hybrid_rrf": len(
            conn.search_hybrid(HybridRequest(k=k, candidates=candidates, fusion=fusion, sparse=s0, dense=d0))
        ),
    }
    if min(returned.values()) < min(k, len(docs)):
        raise RuntimeError(f"a query kind returned fewer than k={k} hits: {returned}")
    return {
        "n_docs": len(docs),
        "ingest_s": round(ingest_s, 2),
        "ingest_docs_per_s": round(len(docs) / ingest_s, 1),
        "optimize_s": round(optimize_s, 2),
        "count": conn.count(),
        "sparse": time_queries(lambda i: conn.search_sparse(q(i)[0], k), n_queries, warmup),
        "dense": time_queries(lambda i: conn.search_dense(q(i)[1], k), n_queries, warmup),
        "hybrid_rrf": time_queries(hybrid, n_queries, warmup),
    }


def searcher_latency(args: argparse.Namespace) -> dict[str, Any]:
    """One `HybridSearcher.search()` call, text to fused hits, beside its parts (see the module doc)."""
    from service_bench import load_queries, open_index

    from spladebridge.encoder.dense import DenseEncoder
    from spladebridge.encoder.splade import SpladeEncoder
    from spladebridge.hybrid import RRF, HybridSearcher

    workdir = args.workdir or Path(".spladebridge/service-bench")
    conn, built = open_index(workdir, args.docs, args.seed)
    source, texts = load_queries()
    texts = texts[: args.queries]
    n, warmup = len(texts), min(30, len(texts))
    sparse, dense, fast = SpladeEncoder(), DenseEncoder(), DenseEncoder(precision="fast")
    encoded = [(sparse.encode_queries([t])[0], dense.encode([t])[0]) for t in texts]
    fusion = ServerFusion(method="rrf", rank_constant=60)
    k, depth = args.k, args.candidates
    searchers = {
        "searcher_default": HybridSearcher(conn, sparse, dense),
        "searcher_default_fast_dense": HybridSearcher(conn, sparse, fast),
        "searcher_rrf_default": HybridSearcher(conn, sparse, dense, fusion=RRF(k=60)),
        "searcher_rrf_server_details": HybridSearcher(
            conn, sparse, dense, fusion=RRF(k=60), server_fusion=True
        ),
        "searcher_rrf_server_no_details": HybridSearcher(
            conn, sparse, dense, fusion=RRF(k=60), signal_details=False
        ),
    }
    timed: dict[str, Any] = {}
    with conn:
        timed["encode_sparse"] = time_queries(lambda i: sparse.encode_queries([texts[i]]), n, warmup)
        timed["encode_dense"] = time_queries(lambda i: dense.encode([texts[i]]), n, warmup)
        timed["encode_dense_fast"] = time_queries(lambda i: fast.encode([texts[i]]), n, warmup)
        timed["connector_sparse"] = time_queries(
            lambda i: conn.search_sparse(encoded[i][0], depth), n, warmup
        )
        timed["connector_dense"] = time_queries(lambda i: conn.search_dense(encoded[i][1], depth), n, warmup)
        timed["connector_hybrid_rrf"] = time_queries(
            lambda i: conn.search_hybrid(
                HybridRequest(k=k, candidates=depth, fusion=fusion, sparse=encoded[i][0], dense=encoded[i][1])
            ),
            n,
            warmup,
        )
        for name, searcher in searchers.items():
            if name.startswith("searcher_rrf_server") and not searcher.uses_server_fusion:
                raise RuntimeError(f"{name}: expected server-side fusion on Qdrant Edge")
            timed[name] = time_queries(lambda i, s=searcher: s.search(texts[i], k), n, warmup)  # type: ignore[misc]
    default = timed["searcher_default"]
    return {
        "index": {"docs": args.docs, "seed": args.seed, **{k: v for k, v in built.items() if k != "data"}},
        "queries": {"source": source, "n": n, "warmup": warmup, "k": k, "candidates": depth},
        "timed": timed,
        "targets_ms": SEARCHER_TARGETS_MS,
        "meets_targets": default["p50_ms"] <= SEARCHER_TARGETS_MS["p50"]
        and default["p99_ms"] <= SEARCHER_TARGETS_MS["p99"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--docs", type=int, default=100_000, help="documents in Qdrant Edge")
    parser.add_argument(
        "--local-docs", type=int, default=10_000, help="documents in qdrant-client local mode (0: skip)"
    )
    parser.add_argument("--queries", type=int, default=300, help="timed queries per kind on Qdrant Edge")
    parser.add_argument(
        "--local-queries",
        type=int,
        default=30,
        help="timed queries per kind in local mode (its sparse search is slow)",
    )
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--candidates", type=int, default=100, help="prefetch depth of each hybrid signal")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--workdir", type=Path, default=None, help="where the shard goes (default: a temp dir)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--searcher",
        action="store_true",
        help="time whole HybridSearcher.search() calls (see the module doc)",
    )
    args = parser.parse_args(argv)
    if args.searcher:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        load = round(os.getloadavg()[0], 2)
        out = {"benchmark": "query_latency_searcher", **searcher_latency(args)}
        out["machine"] = {"cpus": os.cpu_count(), "platform": platform.platform(), "load_avg_1m": load}
        out["machine"]["load_avg_1m_at_end"] = round(os.getloadavg()[0], 2)
        if args.json:
            print(json.dumps(out, indent=2))
        else:
            for name, row in out["timed"].items():
                print(f"{name:34s} p50 {row['p50_ms']:8.3f} ms   p99 {row['p99_ms']:8.3f} ms")
            print("meets targets:", out["meets_targets"])
        return 0

    from qdrant_client import QdrantClient

    from spladebridge.connectors.qdrant import QdrantConnector
    from spladebridge.connectors.qdrant_edge import QdrantEdgeConnector

    t0 = time.perf_counter()
    docs = make_documents(args.docs, args.seed)
    queries = make_queries(max(args.queries, args.local_queries), args.seed)
    gen_s = time.perf_counter() - t0
    nnz = np.array([d.sparse.nnz for d in docs[:5000] if d.sparse is not None])
    spec = IndexSpec(name="latency", dense_dim=DIM, text_fields=("title",), lexical=False)
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="sb-latency-"))
    result: dict[str, Any] = {
        "benchmark": "query_latency",
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "load_avg_1m_at_start": round(os.getloadavg()[0], 2),
        },
        "data": {
            "vocab": VOCAB,
            "dense_dim": DIM,
            "doc_nnz_mean": round(float(nnz.mean()), 1),
            "query_nnz_mean": round(float(np.mean([s.nnz for s, _ in queries])), 1),
            "k": args.k,
            "candidates": args.candidates,
            "generate_s": round(gen_s, 2),
        },
    }
    try:
        with QdrantEdgeConnector(workdir / "edge", spec, batch_size=1000) as edge:
            result["qdrant_edge"] = measure(edge, docs, queries, args.queries, args.k, args.candidates)
        if args.local_docs > 0:
            local_docs = docs[: args.local_docs]
            with QdrantConnector(QdrantClient(":memory:"), spec, batch_size=1000) as local:
                result["qdrant_client_local"] = measure(
                    local, local_docs, queries, args.local_queries, args.k, args.candidates
                )
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    hybrid = result["qdrant_edge"]["hybrid_rrf"]
    result["targets_ms"] = TARGETS_MS
    result["meets_targets"] = (
        hybrid["p50_ms"] <= TARGETS_MS["hybrid_p50"] and hybrid["p99_ms"] <= TARGETS_MS["hybrid_p99"]
    )
    result["machine"]["load_avg_1m_at_end"] = round(os.getloadavg()[0], 2)
    if args.json:
        print(json.dumps(result))
    else:
        for name in ("qdrant_edge", "qdrant_client_local"):
            if name in result:
                r = result[name]
                print(f"{name}: {r['n_docs']} docs, ingest {r['ingest_s']} s, optimize {r['optimize_s']} s")
                for kind in ("sparse", "dense", "hybrid_rrf"):
                    print(f"  {kind:11s} p50 {r[kind]['p50_ms']:8.3f} ms   p99 {r[kind]['p99_ms']:8.3f} ms")
        print("meets targets:", result["meets_targets"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
