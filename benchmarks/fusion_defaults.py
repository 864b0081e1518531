"""Choose HybridSearcher's default fusion on evidence: every candidate setting on every test collection, on the
product path, untuned.

For each collection in ../shared/datasets (BEIR layout), documents are encoded with the default models
(vectors cached under --cache-dir), written through the engine's connector, and every test query goes through
`HybridSearcher(connector, SpladeEncoder(), DenseEncoder(), fusion=..., candidates=...)`: RRF (k=60), DBSF,
min-max and z-score weighted sums with equal weights, at several candidate depths. The single signals (engine
BM25, SPLADE, dense) are measured alongside. The rule (issue 16): the default maximises the mean nDCG@10 over
the collections and never falls more than 0.01 below the best single signal on any collection.

    python benchmarks/fusion_defaults.py --json [--engine URL] [--datasets adi,cisi,...] [--depths 50,100,200]

Prints one JSON object (with --json) or a table; exits 0.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

from spladebridge.encoder.dense import DenseEncoder
from spladebridge.encoder.splade import SpladeEncoder
from spladebridge.evaluation.runner import EvalConfig, run_evaluation
from spladebridge.hybrid.settings import RRF, WeightedSum, describe

DATASETS = ("adi", "cisi", "cranfield", "nfcorpus", "scifact")
SETTINGS: dict[str, Any] = {
    "rrf": RRF(k=60),
    "dbsf": WeightedSum(normalize="dbsf"),
    "minmax": WeightedSum(normalize="minmax"),
    "zscore": WeightedSum(normalize="zscore"),
}
SIGNALS = ("bm25_engine", "splade", "dense")
MAX_DROP = 0.01


def _run(dataset: Path, engine: str | None, cache: Path, fusion: Any, depth: int, encoders: Any) -> Any:
    config = EvalConfig(
        dataset_dir=dataset,
        engine=engine,
        signals=SIGNALS,
        fusions=("hybrid",),
        pruning=(),
        cache_dir=cache,
        hybrid_fusion=fusion,
        hybrid_candidates=depth,
        depth=max(100, depth),
    )
    return run_evaluation(config, sparse_encoder=encoders[0], dense_encoder=encoders[1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--datasets-dir", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "datasets"
    )
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--engine", default=None, help="engine URL (default: Qdrant Edge under --cache-dir)")
    parser.add_argument("--cache-dir", type=Path, default=Path(".spladebridge/eval-cache"))
    parser.add_argument("--depths", default="100", help="candidate depths per signal, comma-separated")
    parser.add_argument("--settings", default=",".join(SETTINGS), help=f"from {','.join(SETTINGS)}")
    parser.add_argument("--output", type=Path, help="also write the JSON here")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    encoders = (SpladeEncoder(), DenseEncoder())
    depths = [int(d) for d in args.depths.split(",")]
    started = time.perf_counter()
    rows: dict[str, dict[str, Any]] = {}
    for name in args.datasets.split(","):
        row: dict[str, Any] = {"signals": {}, "settings": {}}
        for label in args.settings.split(","):
            fusion = SETTINGS[label]
            for depth in depths:
                report = _run(args.datasets_dir / name, args.engine, args.cache_dir, fusion, depth, encoders)
                for signal in SIGNALS:
                    if signal in report.systems:
                        row["signals"][signal] = round(report.systems[signal].means["ndcg@10"], 4)
                row["settings"][f"{label}@{depth}"] = round(report.systems["hybrid"].means["ndcg@10"], 4)
                print(f"{name} {label}@{depth}: {row['settings'][f'{label}@{depth}']}", file=sys.stderr)
        row["best_single"] = max(row["signals"].values())
        rows[name] = row
    settings = list(next(iter(rows.values()))["settings"])
    summary: dict[str, dict[str, Any]] = {}
    for setting in settings:
        values = [rows[d]["settings"][setting] for d in rows]
        worst = min(rows[d]["settings"][setting] - rows[d]["best_single"] for d in rows)
        summary[setting] = {
            "mean": round(sum(values) / len(values), 4),
            "worst_vs_best_single": round(worst, 4),
            "allowed": worst >= -MAX_DROP,
        }
    allowed = {s: v for s, v in summary.items() if v["allowed"]}
    chosen = max(allowed or summary, key=lambda s: summary[s]["mean"])
    out = {
        "benchmark": "fusion_defaults",
        "path": "HybridSearcher(connector, SpladeEncoder(), DenseEncoder(), fusion, candidates) per test query",
        "engine": args.engine or "qdrant-edge",
        "machine": f"{platform.machine()}, {platform.system()}, python {platform.python_version()}",
        "settings": {k: describe(v) for k, v in SETTINGS.items()},
        "rule": f"max mean nDCG@10 with no collection more than {MAX_DROP} below its best single signal",
        "collections": rows,
        "summary": summary,
        "chosen": chosen,
        "seconds": round(time.perf_counter() - started, 1),
    }
    if args.output is not None:
        args.output.write_text(json.dumps(out, indent=2) + "\n")
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        for setting, v in summary.items():
            print(
                f"{setting:>12}  mean {v['mean']:.4f}  worst-vs-best-single {v['worst_vs_best_single']:+.4f}"
            )
        print(f"chosen: {chosen}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
