"""Hybrid search inside a service: the sync `HybridSearcher` called from threads against the
`AsyncHybridSearcher` with micro-batched query encoding, at concurrency 1, 8 and 32, in one run.

Index: N synthetic documents in Qdrant Edge, built as `query_latency.py` builds them (SPLADE-like sparse
vectors over the 30,522-token BERT vocabulary, 384-d dense vectors; loaded, then `optimize()`); the shard is
kept in `--workdir` and reused by later runs with the same `--docs` and `--seed`. Queries: real query texts
(SciFact's 1,109 claims where present, else the bundled demo queries), encoded on the measured path by the
default offline models (SPLADE-tiny and all-MiniLM-L6-v2), then searched with `HybridSearcher`'s defaults
(sparse + dense, min-max weighted sum, 100 candidates per signal, k = 10).

Each level is a closed loop: `concurrency` clients each send their next query as soon as the last one
answered (threads for the sync searcher, coroutines on one event loop for the async one). Reported per
level: queries/s and p50 / p99 latency of each, and their ratios.

    .venv/bin/python benchmarks/service_bench.py --json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from query_latency import DIM, make_documents

from spladebridge.connectors.async_threads import AsyncThreadedConnector
from spladebridge.connectors.base import IndexSpec
from spladebridge.connectors.qdrant_edge import QdrantEdgeConnector
from spladebridge.encoder.dense import DenseEncoder
from spladebridge.encoder.splade import SpladeEncoder
from spladebridge.hybrid import AsyncHybridSearcher, HybridSearcher

ROOT = Path(__file__).resolve().parents[1]
QUERY_FILES = (
    ROOT.parent / "shared" / "datasets" / "scifact" / "queries.jsonl",
    ROOT / "spladebridge" / "data" / "demo_queries.jsonl",
)
GOAL = {"concurrency": 32, "throughput_ratio": 2.0, "async_p99_ms": 50.0}
STAMP = "service-bench.json"


def cpu_model() -> str:
    """The CPU's model name as lscpu says it."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return platform.processor() or "unknown"
    for line in out.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def load_queries() -> tuple[str, list[str]]:
    """Query texts: SciFact's claims where the shared datasets are, else the bundled demo queries."""
    for path in QUERY_FILES:
        if path.exists():
            rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
            return path.name if "demo" in path.name else f"scifact/{path.name}", [r["text"] for r in rows]
    raise SystemExit("no query file found")


def open_index(workdir: Path, n_docs: int, seed: int) -> tuple[QdrantEdgeConnector, dict[str, Any]]:
    """The shard in `workdir`, built (generate, upsert, optimize) unless a run with the same data left it."""
    path = workdir / "edge"
    stamp_path = workdir / STAMP
    wanted = {"docs": n_docs, "seed": seed, "dim": DIM}
    if stamp_path.exists() and json.loads(stamp_path.read_text()).get("data") == wanted:
        built = json.loads(stamp_path.read_text())
        built["reused"] = True
        return QdrantEdgeConnector(path), built
    import shutil

    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    spec = IndexSpec(name="service", dense_dim=DIM, text_fields=("title",), lexical=False)
    t0 = time.perf_counter()
    docs = make_documents(n_docs, seed)
    generate_s = time.perf_counter() - t0
    conn = QdrantEdgeConnector(path, spec, batch_size=1000)
    t0 = time.perf_counter()
    report = conn.upsert(docs)
    if not report.ok:
        raise RuntimeError(f"{report.failed} documents failed: {report.failures()[:3]}")
    ingest_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    conn.optimize()
    conn.flush()
    optimize_s = time.perf_counter() - t0
    built = {"data": wanted, "generate_s": round(generate_s, 1), "ingest_s": round(ingest_s, 1)}
    built["optimize_s"] = round(optimize_s, 1)
    stamp_path.write_text(json.dumps(built))
    built["reused"] = False
    return conn, built


def summary(latencies_s: list[float], wall_s: float) -> dict[str, float]:
    ms = np.asarray(latencies_s) * 1000.0
    return {
        "queries": int(ms.size),
        "qps": round(ms.size / wall_s, 1),
        "p50_ms": round(float(np.percentile(ms, 50)), 1),
        "p99_ms": round(float(np.percentile(ms, 99)), 1),
        "mean_ms": round(float(ms.mean()), 1),
    }


def run_sync(
    searcher: HybridSearcher, texts: list[str], n: int, concurrency: int, k: int
) -> dict[str, float]:
    """`n` queries from `concurrency` threads, each sending its next query when the last one answered."""
    next_query = iter(range(n))
    lock = threading.Lock()
    latencies: list[float] = []

    def client() -> None:
        while True:
            with lock:
                i = next(next_query, None)
            if i is None:
                return
            t0 = time.perf_counter()
            hits = searcher.search(texts[i % len(texts)], k=k)
            elapsed = time.perf_counter() - t0
            assert len(hits) == k
            with lock:
                latencies.append(elapsed)

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        for future in [pool.submit(client) for _ in range(concurrency)]:
            future.result()
    return summary(latencies, time.perf_counter() - start)


async def run_async(
    searcher: AsyncHybridSearcher, texts: list[str], n: int, concurrency: int, k: int
) -> dict[str, float]:
    """`n` queries from `concurrency` coroutines, each sending its next query when the last one answered."""
    next_query = iter(range(n))
    latencies: list[float] = []

    async def client() -> None:
        for i in next_query:
            t0 = time.perf_counter()
            hits = await searcher.search(texts[i % len(texts)], k=k)
            latencies.append(time.perf_counter() - t0)
            assert len(hits) == k

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    return summary(latencies, time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=640, help="timed queries per level and searcher")
    parser.add_argument("--warmup", type=int, default=64, help="untimed queries before each level")
    parser.add_argument("--concurrency", default="1,8,32", help="comma-separated levels")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--window-ms", type=float, default=2.0, help="AsyncHybridSearcher batch_window_ms")
    parser.add_argument("--max-batch", type=int, default=64, help="AsyncHybridSearcher max_batch")
    parser.add_argument(
        "--engine-threads", type=int, default=None, help="async engine pool (default: 2 per CPU)"
    )
    parser.add_argument(
        "--query-batch-tokens",
        type=int,
        default=None,
        help="both encoders' max_batch_tokens (default: theirs, 32 x 256, sized for documents)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=ROOT / ".spladebridge" / "service-bench")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    levels = [int(c) for c in args.concurrency.split(",")]

    query_source, texts = load_queries()
    result: dict[str, Any] = {
        "benchmark": "service_bench",
        "machine": {
            "cpu": cpu_model(),
            "cpus": len(os.sched_getaffinity(0)),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
        },
    }
    t0 = time.perf_counter()
    conn, built = open_index(args.workdir, args.docs, args.seed)
    result["index"] = {**built, "open_or_build_s": round(time.perf_counter() - t0, 1), "count": conn.count()}
    sparse = SpladeEncoder(max_batch_tokens=args.query_batch_tokens)
    dense = DenseEncoder(max_batch_tokens=args.query_batch_tokens)
    sparse.encode_queries(texts[:2]), dense.encode(texts[:2])  # load the models before threads share them
    result["setup"] = {
        "queries": query_source,
        "distinct_queries": len(texts),
        "k": args.k,
        "searcher": "defaults: sparse + dense, WeightedSum(minmax) fused client-side, candidates=100",
        "timed_queries_per_level": args.queries,
        "batch_window_ms": args.window_ms,
        "max_batch": args.max_batch,
        "query_batch_tokens": args.query_batch_tokens,
    }
    sync_rows: dict[int, dict[str, float]] = {}
    async_rows: dict[int, dict[str, float]] = {}
    try:
        sync = HybridSearcher(conn, sparse, dense)
        result["setup"]["signals"] = list(sync.signals)

        async def async_level(c: int) -> dict[str, Any]:
            wrapped = AsyncThreadedConnector(conn, max_workers=args.engine_threads, owns_connector=False)
            async with (
                wrapped,
                AsyncHybridSearcher(
                    wrapped, sparse, dense, batch_window_ms=args.window_ms, max_batch=args.max_batch
                ) as searcher,
            ):
                await run_async(searcher, texts, min(args.warmup, args.queries), c, args.k)
                stats = searcher.batcher.stats
                batches, items = stats.batches, stats.items
                row: dict[str, Any] = await run_async(searcher, texts, args.queries, c, args.k)
                row["mean_encoder_batch"] = round((stats.items - items) / (stats.batches - batches), 1)
                result["setup"]["engine_threads"] = wrapped.max_workers
                result["setup"]["encoder_workers"] = searcher.batcher.workers
            return row

        for c in levels:  # the two searchers alternate level by level, so both see the same machine
            run_sync(sync, texts, min(args.warmup, args.queries), c, args.k)
            sync_rows[c] = run_sync(sync, texts, args.queries, c, args.k)
            print(f"  sync  c={c:<3d} {sync_rows[c]}", file=sys.stderr)
            async_rows[c] = asyncio.run(async_level(c))
            print(f"  async c={c:<3d} {async_rows[c]}", file=sys.stderr)
    finally:
        conn.close()
    levels_out: list[dict[str, Any]] = []
    for c in levels:
        s, a = sync_rows[c], async_rows[c]
        levels_out.append(
            {
                "concurrency": c,
                "sync_threads": s,
                "async_microbatch": a,
                "throughput_ratio": round(a["qps"] / s["qps"], 2),
                "p50_ratio": round(a["p50_ms"] / s["p50_ms"], 2),
                "p99_ratio": round(a["p99_ms"] / s["p99_ms"], 2),
            }
        )
    result["levels"] = levels_out
    at_goal = next((row for row in levels_out if row["concurrency"] == GOAL["concurrency"]), None)
    result["goal"] = GOAL
    if at_goal is not None:
        result["goal_met"] = {
            "throughput": at_goal["throughput_ratio"] >= GOAL["throughput_ratio"],
            "p99": at_goal["async_microbatch"]["p99_ms"] <= GOAL["async_p99_ms"],
        }
    result["machine"]["load_avg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    if args.json:
        print(json.dumps(result))
    else:
        print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
