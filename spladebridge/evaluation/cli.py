"""The `spladebridge eval` subcommand: argument parsing and output; the work is in `runner`.

Hook it into the main CLI with `add_parser(subparsers)` (it sets `func=run` on the parsed namespace), or
run it alone with `python -m spladebridge.evaluation --dataset DIR`.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spladebridge.evaluation.beir import DatasetError

if TYPE_CHECKING:
    from spladebridge.evaluation.runner import EvalConfig

# Kept in step with runner.ALL_SIGNALS / runner.FUSIONS (runner is imported only when `eval` runs, so that
# registering the subcommand loads neither ir-measures nor the models).
ALL_SIGNALS = ("bm25", "bm25_engine", "splade", "dense")
FUSIONS = ("hybrid", "rrf", "wsum")
DEFAULT_FUSE = ("bm25_engine", "splade", "dense")

__all__ = ["add_parser", "build_config", "configure_parser", "main", "run"]

_HELP = "measure BM25, SPLADE, dense and hybrid retrieval quality on a BEIR-layout test collection"


def _csv(value: str) -> tuple[str, ...]:
    items = tuple(part.strip() for part in value.split(",") if part.strip())
    if not items:
        raise argparse.ArgumentTypeError("expected a comma-separated list")
    return items


def _pruning(value: str) -> tuple[int | None, ...]:
    if value.strip().lower() in {"none", "off", ""}:
        return ()
    out: list[int | None] = []
    for part in _csv(value):
        if part.lower() == "all":
            out.append(None)
            continue
        try:
            n = int(part)
        except ValueError:
            raise argparse.ArgumentTypeError(f"pruning size {part!r} is not an integer or 'all'") from None
        if n < 1:
            raise argparse.ArgumentTypeError(f"pruning size must be positive, got {n}")
        out.append(n)
    return tuple(out)


def configure_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the eval options to `parser` (used by both `add_parser` and the standalone `main`)."""
    parser.add_argument(
        "--dataset", required=True, type=Path, help="BEIR folder: corpus.jsonl, queries.jsonl, qrels/"
    )
    parser.add_argument(
        "--engine",
        default="edge",
        help="'edge' (Qdrant Edge under the cache dir, default) or an engine URL: qdrant-edge://DIR, "
        "qdrant://HOST:PORT, http(s)://HOST:PORT",
    )
    parser.add_argument(
        "--signals",
        type=_csv,
        default=("bm25", "bm25_engine", "splade", "dense"),
        help=f"single signals to report, comma-separated from {','.join(ALL_SIGNALS)}",
    )
    parser.add_argument(
        "--fuse",
        type=_csv,
        default=DEFAULT_FUSE,
        help="signals the reference fusions (rrf, wsum) combine (default: the engine's bm25_engine,splade,dense)",
    )
    parser.add_argument(
        "--fusion",
        type=_csv,
        default=FUSIONS,
        help="fusions to run: hybrid (HybridSearcher's defaults, the product path), rrf, wsum "
        "(client-side references), comma-separated, or 'none'",
    )
    parser.add_argument(
        "--depth", type=int, default=100, help="results per signal and per fusion (default 100)"
    )
    parser.add_argument("--rrf-k", type=int, default=60, help="RRF rank constant, 1-based ranks (default 60)")
    parser.add_argument(
        "--no-tune", action="store_true", help="equal wsum weights even where the dataset has train/dev qrels"
    )
    parser.add_argument(
        "--pruning",
        type=_pruning,
        default=(8, 16, 32, 64, None),
        help="max SPLADE query terms for the pruning curve (default 8,16,32,64,all; 'none' skips it)",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=Path(".spladebridge/eval-cache"),
        help="vector cache and edge indexes",
    )
    parser.add_argument(
        "--max-queries", type=int, default=None, help="evaluate only the first N judged queries"
    )
    parser.add_argument("--name", default=None, help="dataset name in the report (default: folder name)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument(
        "--per-query", action="store_true", help="include per-query metric values in the JSON"
    )
    parser.add_argument("--output", type=Path, default=None, help="also write the JSON report to this file")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    return parser


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register `eval` on an `argparse` subparsers object; the namespace gets `func=run`."""
    parser: argparse.ArgumentParser = subparsers.add_parser("eval", help=_HELP, description=_HELP)
    configure_parser(parser)
    parser.set_defaults(func=run)
    return parser


def build_config(args: argparse.Namespace) -> EvalConfig:
    """The `EvalConfig` the parsed options describe (ValueError on inconsistent options)."""
    from spladebridge.evaluation.runner import EvalConfig

    fusions = () if [f.lower() for f in args.fusion] == ["none"] else tuple(args.fusion)
    return EvalConfig(
        dataset_dir=args.dataset,
        engine=args.engine,
        signals=tuple(args.signals),
        fuse=tuple(args.fuse),
        fusions=fusions,
        depth=args.depth,
        rrf_k=args.rrf_k,
        tune=not args.no_tune,
        pruning=tuple(args.pruning),
        cache_dir=args.cache_dir,
        max_queries=args.max_queries,
        per_query=args.per_query,
        name=args.name,
    )


def run(args: argparse.Namespace) -> int:
    """Run the evaluation; 0 on success, 2 for bad input (dataset or options), 1 when the run failed."""
    if getattr(args, "verbose", False):
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    try:
        from spladebridge.evaluation.runner import run_evaluation

        config = build_config(args)
        report = run_evaluation(config)
    except (DatasetError, ValueError) as exc:
        print(f"spladebridge eval: error: {exc}", file=sys.stderr)
        return 2
    except (RuntimeError, OSError, ImportError) as exc:
        print(f"spladebridge eval: failed: {exc}", file=sys.stderr)
        return 1
    obj = report.to_json_obj(per_query=config.per_query)
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(obj, indent=2) + "\n", encoding="utf-8")
    if args.json:
        print(json.dumps(obj))
    else:
        print(report.to_text())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Standalone entry point: `python -m spladebridge.evaluation --dataset DIR [...]`."""
    parser = configure_parser(argparse.ArgumentParser(prog="spladebridge eval", description=_HELP))
    return run(parser.parse_args(argv))
