"""`spladebridge train`: fine-tune a SPLADE model on a BEIR folder's qrels or on a JSONL file of pairs."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="spladebridge train",
        description="Fine-tune a SPLADE model on (query, relevant document) pairs: contrastive loss with in-batch "
        "and mined hard negatives, FLOPS regularisation, resumable checkpoints, early stopping on a dev split.",
    )
    p.add_argument("--dataset", help="BEIR folder (corpus.jsonl, queries.jsonl, qrels/SPLIT.tsv)")
    p.add_argument("--split", default="train", help="qrels split to train on (default train)")
    p.add_argument(
        "--dev-split", help="qrels split for early stopping (default: dev if present, else a held-out share)"
    )
    p.add_argument("--pairs", help="JSONL of {query, positive[, negative]} instead of (or beside) a split")
    p.add_argument(
        "--output", "-o", required=True, help="folder for the model (SpladeEncoder(OUTPUT) loads it)"
    )
    p.add_argument("--base-model", help="model to start from (default: the offline SPLADE-tiny)")
    p.add_argument("--epochs", type=float, default=3.0)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-4, help="learning rate (default 2e-4)")
    p.add_argument(
        "--hard-negatives", type=int, default=1, help="mined negatives per pair (0: in-batch only)"
    )
    p.add_argument("--mine-with", choices=("bm25", "splade"), default="bm25", help="index to mine them from")
    p.add_argument("--query-reg", type=float, default=5e-5, help="FLOPS weight on query vectors")
    p.add_argument("--doc-reg", type=float, default=3e-5, help="FLOPS weight on document vectors")
    p.add_argument("--max-length", type=int, default=256)
    p.add_argument("--max-steps", type=int, help="stop after this many steps")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--patience", type=int, default=2, help="evaluations without improvement before stopping")
    p.add_argument("--restart", action="store_true", help="ignore checkpoints in OUTPUT/checkpoints")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        from spladebridge.training import PairsError, TrainConfig, train
    except ImportError as exc:
        print(
            f"spladebridge: error: {exc}; install the training extra: pip install 'spladebridge[train]'",
            file=sys.stderr,
        )
        return 2
    if args.dataset is None and args.pairs is None:
        print("spladebridge: error: give --dataset DIR, --pairs FILE.jsonl, or both", file=sys.stderr)
        return 2
    try:
        config = TrainConfig(
            base_model=args.base_model,
            epochs=args.epochs,
            batch_size=args.batch_size,
            learning_rate=args.lr,
            hard_negatives=args.hard_negatives,
            mine_with=args.mine_with,
            query_regularizer=args.query_reg,
            document_regularizer=args.doc_reg,
            max_length=args.max_length,
            seed=args.seed,
            max_steps=args.max_steps,
            patience=args.patience,
        )
        result = train(
            args.dataset,
            args.output,
            pairs=args.pairs,
            split=args.split,
            dev_split=args.dev_split,
            config=config,
            resume=not args.restart,
            progress=not (args.quiet or args.json),
        )
    except (PairsError, ValueError, LookupError, OSError) as exc:
        print(f"spladebridge: error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({**result.to_json_obj(), "regressed": result.regressed}, indent=2, default=str))
    else:
        print(result.summary())
    return 1 if result.regressed else 0  # the model was saved, but it is worse than the base one
