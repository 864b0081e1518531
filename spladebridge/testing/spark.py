"""Fault injection for Spark tests: a task attempt that dies half-way through its partition, once."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

__all__ = ["fail_first_attempt"]


def fail_first_attempt(df: Any, *, partition: int = 0, after_rows: int = 20) -> Any:
    """`df` whose first attempt of `partition` raises once it has passed on more than `after_rows` rows; Spark
    then retries the task (with `spark.task.maxFailures` > 1, e.g. a `local[N,3]` master). Everything written
    downstream before the failure was written once already: what exactly-once writes must survive."""
    from pyspark import TaskContext

    def fail_once(batches: Iterator[Any]) -> Iterator[Any]:
        context = TaskContext.get()
        assert context is not None, "fail_first_attempt runs inside a Spark task"
        seen = 0
        for batch in batches:
            seen += len(batch)
            if context.partitionId() == partition and context.attemptNumber() == 0 and seen > after_rows:
                raise RuntimeError(f"injected failure half-way through partition {partition}")
            yield batch

    return df.mapInPandas(fail_once, df.schema)
