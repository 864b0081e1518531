"""spladebridge.spark writes to a real OpenSearch node from the Spark executors, exactly once.

adi (82 documents) is encoded and written by a local Spark (local[2,3]) whose first attempt of partition 0
dies half-way after writing part of its rows; Spark retries the task. The index then holds every document once
(no duplicate, no gap) with the right fields and vectors, the accumulators count each document once, and a
document the engine rejects reaches the dead letters with the engine's reason.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from conftest import OPENSEARCH_NODES, NodePool, raw_client

import spladebridge as sb
from spladebridge.testing.spark import fail_first_attempt

pytestmark = [pytest.mark.live, pytest.mark.slow]


def test_spark_write_to_opensearch_is_exactly_once_across_a_task_retry(
    spark: Any, node_pool: NodePool, adi: dict[str, Any], encoders: tuple[Any, Any]
) -> None:
    from spladebridge.spark import encode, write

    node = node_pool.get(OPENSEARCH_NODES[0])
    name = "sb-spark-adi"
    raw_client(node).indices.delete(index=name, ignore_unavailable=True)
    rows = [(int(d["_id"]), d["title"], d["text"], str(int(d["_id"]) % 5)) for d in adi["corpus"]]
    rows.append((1000, "a document the engine refuses", "its level is not a number", "not-a-number"))
    df = spark.createDataFrame(rows, "id long, title string, text string, level string").repartition(2)
    # the index maps `level` as a number, so the engine rejects the row whose level is not one
    spec = sb.IndexSpec(name=name, dense_dim=encoders[1].dim)
    with sb.connect(node.url, index=name, spec=spec) as conn:
        conn.ensure_index(spec)
    raw_client(node).indices.put_mapping(index=name, body={"properties": {"level": {"type": "long"}}})

    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", "8")
    try:
        report = write(
            fail_first_attempt(encode(df, ["title", "text"]), after_rows=24),
            node.url,
            index=name,
            batch_size=8,
        )
    finally:
        spark.conf.unset("spark.sql.execution.arrow.maxRecordsPerBatch")

    assert report.written_from == "executors"
    assert (report.written, report.failed) == (82, 1)
    assert report.task_retries > 0  # partition 0 was written again by its second attempt
    assert report.dead_letters is not None
    [dead] = report.dead_letters.collect()
    assert (dead["id"], dead["stage"]) == ("1000", "write")
    assert "level" in dead["error"] and "not-a-number" in dead["record"]

    with sb.connect(node.url, index=name) as conn:
        conn.flush()
        assert conn.count() == 82
        assert sorted(d.id for d in conn.scan()) == sorted(int(d["_id"]) for d in adi["corpus"])
        source = adi["corpus"][10]
        doc = conn.get([int(source["_id"])])[0]
        assert doc is not None
        assert doc.fields == {"title": source["title"], "text": source["text"]}
        assert doc.metadata == {"level": str(int(source["_id"]) % 5)}  # as written; the engine parsed it
        sparse, dense = encoders
        text = f"{source['title']}\n{source['text']}"
        expected = sparse.encode_documents([text])[0]  # the source keeps the weights as written
        assert doc.sparse is not None and doc.sparse.indices.tolist() == expected.indices.tolist()
        assert float(np.abs(doc.sparse.values - expected.values).max()) <= 1e-5
        assert doc.dense is not None and float(doc.dense @ dense.encode([text])[0]) >= 0.9999
