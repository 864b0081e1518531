"""The `--spark MASTER` option of `spladebridge index` and `spladebridge migrate`: the flag and the encoders.

Kept outside `spladebridge.spark` so that the CLI can offer the flag without pyspark installed; pyspark is
imported only when the flag is used, and its absence is one clear error.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

__all__ = ["DEFAULT_DOCS_PER_TASK", "SparkStage", "add_spark_option", "spark_stage"]

#: Documents per Spark task in one encode batch when --batch-size is not given.
DEFAULT_DOCS_PER_TASK = 512


def add_spark_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--spark",
        metavar="MASTER",
        help="encode on Apache Spark (local[*], spark://HOST:7077, yarn...); reading, writes, checkpoints, "
        "dead letters and verification stay here; --batch-size then counts documents per Spark task "
        f"(default {DEFAULT_DOCS_PER_TASK}); needs pip install 'spladebridge[spark]'",
    )


@dataclass(frozen=True, slots=True)
class SparkStage:
    """Encoders whose work runs on Spark, the batch size that keeps every task busy, and a local query
    encoder (verification encodes a few queries; a Spark job each would be wasteful)."""

    sparse: Any
    dense: Any
    batch_size: int
    query_encoder: Any


def spark_stage(master: str, settings: Any, dense: bool, docs_per_task: int | None) -> SparkStage:
    """The encode stage on Spark at `master`, from the CLI's settings (`sparse_model`, `dense_model`,
    `device`)."""
    try:
        from spladebridge.spark import SparkEncoders, spark_session
    except ImportError as exc:
        raise ValueError(str(exc)) from None
    from spladebridge.encoder.splade import SpladeEncoder

    encoders = SparkEncoders(
        spark_session(master),
        dense=dense,
        sparse_model=settings.get("sparse_model"),
        dense_model=settings.get("dense_model"),
        device=settings.get("device"),
        dense_precision=settings.get("dense_precision"),
    )
    batch = (docs_per_task or DEFAULT_DOCS_PER_TASK) * encoders.partitions
    queries = SpladeEncoder(settings.get("sparse_model"), device="cpu")
    return SparkStage(encoders.sparse, encoders.dense, batch, queries)
