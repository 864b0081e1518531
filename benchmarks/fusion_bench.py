"""Client-side fusion cost: `rrf` and `weighted_sum` over 3 ranked lists of 1,000 candidates each.

Lists are built like a hybrid query's signals: each draws 1,000 ids from a pool of `--pool` documents (default
1,500, so most documents are returned by two or three signals) with decreasing random scores. Every
figure is the median and the best of `--repeat` timed calls (after a warm-up), in microseconds, for the
whole fused list and for the top 10. The machine's load average and a Python speed reference (the best
time of `sum(range(1000))`, about 8-10 us on an idle modern core) are reported with the figures, so that
numbers from a loaded or slow machine can be put in proportion.

Usage: python benchmarks/fusion_bench.py [--lists 3] [--depth 1000] [--pool 1500] [--repeat 300] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from spladebridge.hybrid.fusion import rrf, weighted_sum


def make_lists(n_lists: int, depth: int, pool: int, seed: int) -> list[list[tuple[str, float]]]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_lists):
        ids = rng.choice(pool, depth, replace=False)
        scores = np.sort(rng.random(depth))[::-1]
        out.append([(f"doc-{i}", float(s)) for i, s in zip(ids.tolist(), scores.tolist(), strict=True)])
    return out


def timed(fn: Callable[[], object], repeat: int) -> dict[str, float]:
    for _ in range(5):
        fn()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1e6)
    return {"median_us": round(statistics.median(samples), 1), "best_us": round(min(samples), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lists", type=int, default=3)
    parser.add_argument("--depth", type=int, default=1000)
    parser.add_argument("--pool", type=int, default=1500)
    parser.add_argument("--repeat", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args()
    lists = make_lists(args.lists, args.depth, args.pool, args.seed)
    cases: dict[str, Callable[[], object]] = {
        "rrf": lambda: rrf(lists),
        "rrf_top10": lambda: rrf(lists, limit=10),
        "weighted_sum_minmax": lambda: weighted_sum(lists, normalize="minmax"),
        "weighted_sum_minmax_top10": lambda: weighted_sum(lists, normalize="minmax", limit=10),
        "weighted_sum_dbsf_exclude": lambda: weighted_sum(lists, normalize="dbsf", missing="exclude"),
        "weighted_sum_zscore_min": lambda: weighted_sum(lists, normalize="zscore", missing="min"),
    }
    results = {name: timed(fn, args.repeat) for name, fn in cases.items()}
    reference = timed(lambda: sum(range(1000)), args.repeat)["best_us"]
    report: dict[str, Any] = {
        "benchmark": "fusion",
        "lists": args.lists,
        "depth": args.depth,
        "pool": args.pool,
        "unique_docs": len({d for lst in lists for d, _ in lst}),
        "repeat": args.repeat,
        "results": results,
        "machine": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "cpu_count": os.cpu_count(),
            "load_avg_1m": round(os.getloadavg()[0], 2),
            "python_speed_ref_us": reference,
        },
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(
        f"{args.lists} lists x {args.depth} candidates ({report['unique_docs']} unique), {args.repeat} runs"
    )
    for name, r in results.items():
        print(f"  {name:28s} median {r['median_us']:8.1f} us   best {r['best_us']:8.1f} us")
    print(f"  load average (1 min): {report['machine']['load_avg_1m']}, sum(range(1000)): {reference} us")


if __name__ == "__main__":
    main()
