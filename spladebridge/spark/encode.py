"""`encode()`: a DataFrame's text columns -> SPLADE (`sparse_indices`, `sparse_values`) and dense (`dense`) columns.

The work runs in `mapInPandas` over Arrow batches: each Python worker loads its encoders once (only the model
name or path travels with the task, never a model object) and hands each Arrow batch to the encoders, which
sort it by length and batch it under a token budget. A row whose text cannot be encoded gets null vectors and
the reason in `encode_error`, and the rest of its batch is still encoded.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql.types import ArrayType, FloatType, IntegerType, StringType, StructField, StructType

if TYPE_CHECKING:
    from spladebridge.encoder.runtime import Precision

from spladebridge.spark import worker
from spladebridge.spark.columns import (
    DENSE,
    DIM_KEY,
    ENCODE_ERROR,
    SPARSE_INDICES,
    SPARSE_VALUES,
    VECTOR_COLUMNS,
)

__all__ = ["EncodeOptions", "dense_model_facts", "encode", "encode_rows", "row_texts"]


@dataclass(frozen=True, slots=True)
class EncodeOptions:
    """What the executors need to encode: the text columns, which vectors, the models (names or paths)."""

    text_cols: tuple[str, ...] = ("title", "text")
    sparse: bool = True
    dense: bool = True
    sparse_model: str | None = None
    dense_model: str | None = None
    device: str | None = None
    dense_precision: Precision | None = None
    max_length: int = 256
    batch_size: int = 32
    max_batch_tokens: int | None = None
    sep: str = "\n"


def encode(
    df: DataFrame,
    text_cols: Sequence[str] = ("title", "text"),
    *,
    sparse: bool = True,
    dense: bool = True,
    sparse_model: str | None = None,
    dense_model: str | None = None,
    device: str | None = None,
    dense_precision: Precision | None = None,
    max_length: int = 256,
    batch_size: int = 32,
    max_batch_tokens: int | None = None,
) -> DataFrame:
    """`df` with SPLADE and / or dense vectors of its text (non-empty `text_cols` joined by newlines).

    Adds `sparse_indices` (array<int>) and `sparse_values` (array<float>) when `sparse`, `dense`
    (array<float>, its size in the column's metadata) when `dense`, and `encode_error` (string, null when the
    row encoded). Models are None (the offline defaults), hub names or paths every executor can read;
    `device` None means the task's GPU where Spark assigned one, else the best available; `dense_precision` is
    `DenseEncoder`'s (exact float32 on CPU by default, "fast" for bf16 where the hardware has it).
    """
    options = EncodeOptions(
        text_cols=tuple(text_cols),
        sparse=sparse,
        dense=dense,
        sparse_model=str(sparse_model) if sparse_model is not None else None,
        dense_model=str(dense_model) if dense_model is not None else None,
        device=device,
        dense_precision=dense_precision,
        max_length=max_length,
        batch_size=batch_size,
        max_batch_tokens=max_batch_tokens,
    )
    _check_input(df, options)
    fields = list(df.schema.fields)
    if sparse:
        fields += [
            StructField(SPARSE_INDICES, ArrayType(IntegerType(), False), True),
            StructField(SPARSE_VALUES, ArrayType(FloatType(), False), True),
        ]
    if dense:
        fields.append(StructField(DENSE, ArrayType(FloatType(), False), True, _dense_metadata(options)))
    fields.append(StructField(ENCODE_ERROR, StringType(), True))
    return df.mapInPandas(functools.partial(_encode_partition, options), StructType(fields))


def _check_input(df: DataFrame, options: EncodeOptions) -> None:
    if not options.sparse and not options.dense:
        raise ValueError("encode() needs sparse=True, dense=True or both")
    if not options.text_cols:
        raise ValueError("text_cols must name at least one column")
    if options.max_length < 1 or options.batch_size < 1:
        raise ValueError("max_length and batch_size must be >= 1")
    types = dict(df.dtypes)
    missing = [c for c in options.text_cols if c not in types]
    if missing:
        raise ValueError(
            f"text column(s) {', '.join(missing)} not in the DataFrame (columns: {', '.join(df.columns)})"
        )
    not_text = [f"{c} ({types[c]})" for c in options.text_cols if types[c] != "string"]
    if not_text:
        raise ValueError(f"text columns must be strings: {', '.join(not_text)}")
    taken = [c for c in VECTOR_COLUMNS if c in types]
    if taken:
        raise ValueError(f"the DataFrame already has {', '.join(taken)}; drop or rename before encoding")


def dense_model_facts(model: str | None) -> tuple[int, str]:
    """The dense model's size and resolved name, read from its config on the driver (no weights load)."""
    from spladebridge.encoder.dense import DenseEncoder

    probe = DenseEncoder(model, device="cpu")
    return int(probe.dim), probe.model_name


def _dense_metadata(options: EncodeOptions) -> dict[str, Any]:
    """Column metadata for `dense`: its size and model."""
    dim, name = dense_model_facts(options.dense_model)
    return {DIM_KEY: {"dim": dim, "model": name}}


def row_texts(
    frame: pd.DataFrame, text_cols: Sequence[str], sep: str = "\n"
) -> tuple[list[str], list[str | None]]:
    """Each row's text (non-empty text columns joined by `sep`) and, for rows with none, why not."""
    columns = [frame[c].tolist() for c in text_cols]
    texts: list[str] = []
    errors: list[str | None] = []
    for parts in zip(*columns, strict=True):
        text = sep.join(p for p in parts if isinstance(p, str) and p)
        texts.append(text)
        errors.append(None if text.strip() else f"no text in column(s) {', '.join(text_cols)}")
    return texts, errors


def encode_rows(texts: list[str], errors: list[str | None], options: EncodeOptions) -> dict[str, list[Any]]:
    """Vectors for the rows without an error, in one call per encoder; if that call fails, row by row so that
    one bad text fails alone. Fills `errors` for rows that fail."""
    n = len(texts)
    out: dict[str, list[Any]] = {}
    if options.sparse:
        out[SPARSE_INDICES] = [None] * n
        out[SPARSE_VALUES] = [None] * n
    if options.dense:
        out[DENSE] = [None] * n
    todo = [i for i in range(n) if errors[i] is None]
    try:
        _encode_into(out, todo, texts, options)
    except Exception:
        for i in todo:
            try:
                _encode_into(out, [i], texts, options)
            except Exception as exc:
                errors[i] = f"{type(exc).__name__}: {exc}"
                for column in out.values():
                    column[i] = None
    return out


def _encode_into(
    out: dict[str, list[Any]], rows: list[int], texts: list[str], options: EncodeOptions
) -> None:
    if not rows:
        return
    batch = [texts[i] for i in rows]
    settings = (options.device, options.max_length, options.batch_size, options.max_batch_tokens)
    if options.sparse:
        vectors = worker.sparse_encoder(options.sparse_model, *settings).encode_documents(batch)
        for i, vector in zip(rows, vectors, strict=True):
            out[SPARSE_INDICES][i] = vector.indices
            out[SPARSE_VALUES][i] = vector.values
    if options.dense:
        matrix = np.asarray(
            worker.dense_encoder(options.dense_model, *settings, precision=options.dense_precision).encode(
                batch
            ),
            dtype=np.float32,
        )
        if not np.all(np.isfinite(matrix)):
            raise ValueError("the dense encoder returned a non-finite value")
        for i, row in zip(rows, matrix, strict=True):
            out[DENSE][i] = row


def _encode_partition(options: EncodeOptions, batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    for frame in batches:
        texts, errors = row_texts(frame, options.text_cols, options.sep)
        vectors = encode_rows(texts, errors, options)
        yield frame.assign(**vectors, **{ENCODE_ERROR: errors})
