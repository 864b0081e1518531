"""`SparkEncoders`: the encode stage of `ingest()` / `migrate()` run on a Spark cluster.

`ingest()` and `migrate()` take any sparse / dense encoder; these two send each batch of texts to Spark
(`encode()` over as many partitions as the cluster runs tasks) and give the vectors back in order. Reading,
checkpoints, dead letters, resume and verification stay exactly those of the single-machine path, because
they are that path: only the encoding moves. Both vectors of a batch come from one Spark job.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from pyspark.sql import SparkSession

from spladebridge.encoder.sparse_vector import SparseVector
from spladebridge.spark.columns import DENSE, ENCODE_ERROR, SPARSE_INDICES, SPARSE_VALUES
from spladebridge.spark.encode import dense_model_facts, encode

__all__ = ["SparkEncoders"]

_POSITION = "_sb_position"
_TEXT = "text"


@dataclass
class _Batch:
    texts: list[str]
    sparse: list[SparseVector]
    dense: NDArray[np.float32] | None


class SparkEncoders:
    """A sparse and an optional dense encoder whose work runs on `session`'s executors.

    `partitions` (default: the cluster's default parallelism) is how many tasks share one batch; give
    `ingest()` batches of a few hundred documents per partition so that each task's fixed cost stays small.
    """

    def __init__(
        self,
        session: SparkSession,
        *,
        dense: bool = True,
        sparse_model: str | None = None,
        dense_model: str | None = None,
        device: str | None = None,
        dense_precision: str | None = None,
        max_length: int = 256,
        partitions: int | None = None,
    ) -> None:
        self.session = session
        self.with_dense = dense
        self.options: dict[str, Any] = {
            "sparse_model": sparse_model,
            "dense_model": dense_model,
            "device": device,
            "dense_precision": dense_precision,
            "max_length": max_length,
        }
        self.partitions = partitions or int(session.sparkContext.defaultParallelism)
        self._last: _Batch | None = None
        self._dim: int | None = None
        self.sparse = _SparseSide(self)
        self.dense = _DenseSide(self) if dense else None

    def dim(self) -> int:
        """The dense size, from the model's config on the driver."""
        if self._dim is None:
            self._dim, _ = dense_model_facts(self.options["dense_model"])
        return self._dim

    def run(self, texts: Sequence[str]) -> _Batch:
        """Both vectors of `texts`, from one Spark job (the last batch is kept for the dense side's call)."""
        batch = list(texts)
        if self._last is not None and self._last.texts == batch:
            return self._last
        frame = pd.DataFrame({_POSITION: range(len(batch)), _TEXT: batch})
        df = self.session.createDataFrame(frame, f"{_POSITION} long, {_TEXT} string")
        df = df.repartition(max(1, min(self.partitions, len(batch))))
        encoded = encode(df, [_TEXT], dense=self.with_dense, **self.options)
        columns = [_POSITION, SPARSE_INDICES, SPARSE_VALUES, ENCODE_ERROR] + (
            [DENSE] if self.with_dense else []
        )
        rows = sorted(encoded.select(*columns).collect(), key=lambda row: row[_POSITION])
        failed = [(row[_POSITION], row[ENCODE_ERROR]) for row in rows if row[ENCODE_ERROR]]
        if failed:
            position, error = failed[0]
            raise ValueError(f"{len(failed)} text(s) could not be encoded; text {position}: {error}")
        sparse = [
            SparseVector(row[SPARSE_INDICES], np.asarray(row[SPARSE_VALUES], dtype=np.float32))
            for row in rows
        ]
        dense = np.asarray([row[DENSE] for row in rows], dtype=np.float32) if self.with_dense else None
        self._last = _Batch(batch, sparse, dense)
        return self._last


class _SparseSide:
    """What `ingest()` calls as the sparse encoder."""

    def __init__(self, owner: SparkEncoders) -> None:
        self.owner = owner

    def encode_documents(self, texts: Sequence[str]) -> list[SparseVector]:
        return self.owner.run(texts).sparse


class _DenseSide:
    """What `ingest()` calls as the dense encoder."""

    def __init__(self, owner: SparkEncoders) -> None:
        self.owner = owner

    @property
    def dim(self) -> int:
        return self.owner.dim()

    def encode(self, texts: Sequence[str]) -> NDArray[np.float32]:
        dense = self.owner.run(texts).dense
        assert dense is not None
        return dense
