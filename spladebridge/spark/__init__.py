"""spladebridge on Apache Spark: encode a DataFrame's text into SPLADE / dense columns, and write it to an engine.

`encode(df, text_cols=[...])` adds `sparse_indices`, `sparse_values`, `dense` and `encode_error` columns with
`mapInPandas` over Arrow, one encoder per Python worker, loaded once; `write(df, url, index=...)` writes each
partition through the same connectors and bulk semantics as `ingest()`, upserting by deterministic ids so that
task retries and speculative attempts write every document exactly once. `SparkEncoders` lets `ingest()` and
`migrate()` run their encode stage on a cluster. Needs the `spark` extra: `pip install 'spladebridge[spark]'`.
"""

from __future__ import annotations

try:
    import pyspark  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError("spladebridge.spark needs pyspark: pip install 'spladebridge[spark]'") from exc

from spladebridge.spark.columns import DENSE, ENCODE_ERROR, SPARSE_INDICES, SPARSE_VALUES, VECTOR_COLUMNS
from spladebridge.spark.encode import EncodeOptions, encode
from spladebridge.spark.encoders import SparkEncoders
from spladebridge.spark.session import spark_session
from spladebridge.spark.write import SparkWriteError, SparkWriteReport, write

__all__ = [
    "DENSE",
    "ENCODE_ERROR",
    "SPARSE_INDICES",
    "SPARSE_VALUES",
    "VECTOR_COLUMNS",
    "EncodeOptions",
    "SparkEncoders",
    "SparkWriteError",
    "SparkWriteReport",
    "encode",
    "spark_session",
    "write",
]
