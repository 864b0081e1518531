"""Load and soak on one Qdrant Edge shard: query threads issue hybrid queries while a writer thread upserts.

Loads `--docs` synthetic documents (SPLADE-like sparse vectors, Zipf token ids over the 30,522 BERT ids, and
384-d dense vectors), measures hybrid (server-side RRF over sparse + dense) query latency idle, then for
`--duration` seconds runs `--threads` query threads while a writer keeps upserting batches (by default
re-writing a fixed pool of `--write-pool` ids, so the collection size is constant and memory should stay
flat; `--append` adds new documents instead). Reports p50 / p99 latency idle and under load, errors, a
consistency count (a filtered probe query over the documents the writer never touches must always return
the same hits), write throughput, and the process RSS at start, end and its growth over the second half.

    .venv/bin/python benchmarks/load_bench.py --json                 # short (20 s)
    .venv/bin/python benchmarks/load_bench.py --duration 300 --json  # a five-minute soak
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from spladebridge.connectors.base import Document, HybridRequest, IndexSpec, ServerFusion
from spladebridge.connectors.filters import Term
from spladebridge.connectors.qdrant_edge import QdrantEdgeConnector
from spladebridge.encoder.sparse_vector import SparseVector

VOCAB = 30522
DIM = 384
FUSION = ServerFusion(method="rrf", rank_constant=60)


class Synth:
    """Deterministic synthetic SPLADE-like sparse and dense vectors."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        ranks = np.arange(1, VOCAB + 1, dtype=np.float64)
        self.p = ranks**-1.0 / np.sum(ranks**-1.0)
        self.ids = self.rng.permutation(VOCAB)

    def sparse(self, draws: int) -> SparseVector:
        tokens = np.unique(self.ids[self.rng.choice(VOCAB, size=draws, p=self.p)])
        return SparseVector(tokens, 0.05 + self.rng.gamma(1.5, 0.5, size=tokens.size))

    def dense(self) -> NDArray[np.float32]:
        v = self.rng.standard_normal(DIM).astype(np.float32)
        return v / np.linalg.norm(v)

    def documents(self, start: int, n: int, phase: str) -> list[Document]:
        return [
            Document(
                id=i,
                fields={"text": f"document {i}"},
                metadata={"phase": phase},
                sparse=self.sparse(150),
                dense=self.dense(),
            )
            for i in range(start, start + n)
        ]


def signature(hits: list[Any]) -> tuple[tuple[float, ...], tuple[frozenset[Any], ...]]:
    """Scores in order and the ids of each score group but the last (tied hits may swap; the last group may
    be cut at k): what must not change while the writer touches other documents."""
    scores = tuple(round(float(h.score), 6) for h in hits)
    groups: dict[float, set[Any]] = {}
    for h, score in zip(hits, scores, strict=True):
        groups.setdefault(score, set()).add(h.id)
    return scores, tuple(frozenset(groups[s]) for s in sorted(groups, reverse=True)[:-1])


def percentiles(samples: list[float]) -> dict[str, float]:
    if not samples:
        return {"n": 0}
    ms = np.asarray(samples) * 1000.0
    return {
        "n": int(ms.size),
        "p50": round(float(np.percentile(ms, 50)), 3),
        "p90": round(float(np.percentile(ms, 90)), 3),
        "p99": round(float(np.percentile(ms, 99)), 3),
        "max": round(float(ms.max()), 3),
        "mean": round(float(ms.mean()), 3),
    }


def slope_per_min(points: list[tuple[float, float]]) -> float | None:
    """Least-squares trend of (seconds, MiB) samples in MiB per minute: ~0 when memory is flat."""
    if len(points) < 3:
        return None
    t = np.asarray([p[0] for p in points])
    m = np.asarray([p[1] for p in points])
    return round(float(np.polyfit(t, m, 1)[0]) * 60.0, 2)


def rss_mb() -> float:
    """The current resident set size in MiB (Linux /proc; elsewhere the peak, from getrusage)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return round(pages * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)
    except (OSError, ValueError, IndexError):
        import resource

        return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def run(args: argparse.Namespace) -> dict[str, Any]:
    synth = Synth(args.seed)
    queries = [(synth.sparse(30), synth.dense()) for _ in range(64)]
    spec = IndexSpec(name="load", dense_field="dense", dense_dim=DIM, lexical=False)
    folder = Path(tempfile.mkdtemp(prefix="spladebridge-load-"))
    try:
        conn = QdrantEdgeConnector(folder / "shard", spec)
        t0 = time.perf_counter()
        for start in range(0, args.docs, 1000):
            report = conn.upsert(synth.documents(start, min(1000, args.docs - start), "initial"))
            assert report.ok, report.failures()[:3]
        conn.flush()
        load_s = time.perf_counter() - t0

        def hybrid(i: int, flt: Any = None) -> list[Any]:
            sparse, dense = queries[i % len(queries)]
            request = HybridRequest(
                k=10, candidates=100, fusion=FUSION, sparse=sparse, dense=dense, filter=flt
            )
            return conn.search_hybrid(request)

        probe_filter = Term("phase", "initial")
        baseline = signature(hybrid(0, probe_filter))
        idle: list[float] = []
        t_idle = time.perf_counter()
        i = 0
        while time.perf_counter() - t_idle < args.idle_s:
            q0 = time.perf_counter()
            hybrid(i)
            idle.append(time.perf_counter() - q0)
            i += 1

        stop = threading.Event()
        lock = threading.Lock()
        latencies: list[float] = []
        errors: list[str] = []
        inconsistent = [0]
        written = [0]
        ids_written: set[int] = set()
        rss: list[tuple[float, float]] = []

        def reader(n: int) -> None:
            own: list[float] = []
            k = n
            while not stop.is_set():
                try:
                    q0 = time.perf_counter()
                    hits = hybrid(k)
                    own.append(time.perf_counter() - q0)
                    if len({h.id for h in hits}) != len(hits):
                        raise AssertionError("duplicate ids in one result list")
                    if k % 10 == 0:
                        got = signature(hybrid(0, probe_filter))
                        if got != baseline:
                            with lock:
                                inconsistent[0] += 1
                except Exception as exc:
                    with lock:
                        errors.append(f"{type(exc).__name__}: {exc}")
                k += args.threads
            with lock:
                latencies.extend(own)

        def writer() -> None:
            wsynth = Synth(args.seed + 1)
            next_id = args.docs
            while not stop.is_set():
                if args.append:
                    start = next_id
                    next_id += args.batch_size
                else:
                    start = args.docs + (next_id - args.docs) % args.write_pool
                    next_id += args.batch_size
                try:
                    report = conn.upsert(wsynth.documents(start, args.batch_size, "written"))
                    with lock:
                        written[0] += report.succeeded
                        ids_written.update(range(start, start + args.batch_size))
                        errors.extend(f"write {o.id}: {o.error}" for o in report.failures())
                except Exception as exc:
                    with lock:
                        errors.append(f"writer {type(exc).__name__}: {exc}")

        threads = [threading.Thread(target=reader, args=(n,), daemon=True) for n in range(args.threads)]
        threads.append(threading.Thread(target=writer, daemon=True))
        rss_start = rss_mb()
        t_load = time.perf_counter()
        for t in threads:
            t.start()
        while (elapsed := time.perf_counter() - t_load) < args.duration:
            rss.append((elapsed, rss_mb()))
            time.sleep(min(1.0, max(args.duration - elapsed, 0.01)))
        stop.set()
        for t in threads:
            t.join(timeout=60)
        duration = time.perf_counter() - t_load
        rss_end = rss_mb()
        half = [m for s, m in rss if s >= args.duration / 2] or [rss_end]
        final_count = conn.count()
        conn.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    expected = args.docs + len(ids_written)
    return {
        "benchmark": "load_bench",
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "loadavg_end": [round(x, 2) for x in os.getloadavg()],
        },
        "config": {
            "docs": args.docs,
            "threads": args.threads,
            "duration_s": args.duration,
            "batch_size": args.batch_size,
            "writer": "append" if args.append else f"overwrite a pool of {args.write_pool} ids",
            "query": "hybrid RRF (k=60) over sparse + dense prefetches of 100, k=10",
        },
        "load_s": round(load_s, 2),
        "idle_latency_ms": percentiles(idle),
        "load_latency_ms": percentiles(latencies),
        "qps_under_load": round(len(latencies) / duration, 1),
        "written": written[0],
        "write_docs_per_s": round(written[0] / duration, 1),
        "errors": len(errors),
        "error_samples": errors[:5],
        "inconsistent_probe_results": inconsistent[0],
        "count_ok": final_count == expected,
        "rss_mb": {
            "start": rss_start,
            "end": rss_end,
            "max": max([m for _, m in rss] + [rss_end]),
            "second_half_range": round(max(half) - min(half), 1),
            "second_half_slope_mb_per_min": slope_per_min([(t, m) for t, m in rss if t >= args.duration / 2]),
            "samples": [m for _, m in rss[:: max(1, len(rss) // 30)]],
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--docs", type=int, default=5000, help="documents loaded before the run (5000)")
    parser.add_argument("--threads", type=int, default=4, help="query threads (4)")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds under load (20; soak: 300)")
    parser.add_argument("--idle-s", type=float, default=3.0, help="seconds of idle queries first (3)")
    parser.add_argument("--batch-size", type=int, default=64, help="documents per writer upsert (64)")
    parser.add_argument("--write-pool", type=int, default=2000, help="ids the writer cycles over (2000)")
    parser.add_argument("--append", action="store_true", help="the writer adds new documents instead")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    for name in ("docs", "threads", "batch_size", "write_pool"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.duration <= 0:
        parser.error("--duration must be > 0")
    result = run(args)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for key, value in result.items():
            print(f"{key}: {value}")
    ok = result["errors"] == 0 and result["inconsistent_probe_results"] == 0 and result["count_ok"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
