"""Scaling of `spladebridge.spark` on one machine: local[1] against local[2], beside single-machine `ingest()`.

Each round encodes and writes the same scifact documents (SPLADE + dense, default models) into a fresh Qdrant
Edge index three ways, in one run: `spladebridge.ingest` (the single-machine product path, the peer), and
`spladebridge.spark.write(encode(df))` (the Spark product path) on a local Spark with one task slot and with
two. Rounds alternate the order of the three so that a change in machine load affects all alike. Each Spark
master gets its own session; its fixed cost per partition (starting a Python worker and loading both models)
is measured as the first one-row job on cold workers minus the same job on warm ones, and the cost per
document from the full runs. From those, benchmarks/README.md writes a cost model for N machines.

Usage: python benchmarks/spark_bench.py [--docs 384] [--rounds 2] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

DEFAULT_DATASET = Path(__file__).resolve().parents[1] / ".." / "shared" / "datasets" / "scifact"
MASTERS = ("local[1]", "local[2]")


def load_docs(dataset: Path, n: int) -> list[dict[str, Any]]:
    docs = []
    with (dataset / "corpus.jsonl").open(encoding="utf-8") as src:
        for line in src:
            if line.strip():
                docs.append(json.loads(line))
            if len(docs) >= n:
                break
    return docs


def run_ingest(docs: list[dict[str, Any]], folder: Path) -> float:
    """docs/s of single-machine `spladebridge.ingest` (reader, both encoders, writer thread) into Qdrant Edge."""
    import spladebridge as sb

    sparse, dense = sb.SpladeEncoder(), sb.DenseEncoder()
    sparse.encode_documents(["warm up"])  # load the weights before timing, as the Spark phase does
    dense.encode(["warm up"])
    with sb.connect(f"qdrant-edge://{folder}", index="ingest") as conn:
        started = time.perf_counter()
        report = sb.ingest(docs, conn, sparse, dense, text_fields=["title", "text"], progress=False)
        elapsed = time.perf_counter() - started
    assert report.written == len(docs), report.summary()
    return len(docs) / elapsed


def spark_phase(master: str, docs: list[dict[str, Any]], folder: Path) -> dict[str, float]:
    """A fresh session on `master`: cold and warm one-row jobs, then encode + write of `docs`."""
    from spladebridge.spark import encode, spark_session, write

    session = spark_session(master, f"spark-bench-{master}")
    try:
        slots = int(session.sparkContext.defaultParallelism)
        # one short row per task slot: cold workers (start + model load), then the same job on warm ones
        tiny = [(str(i), "warm up", "one short text") for i in range(slots)]
        one = session.createDataFrame(tiny, "id string, title string, text string").repartition(slots)
        timings = []
        for _ in range(2):
            started = time.perf_counter()
            encode(one, ["title", "text"]).write.format("noop").mode("overwrite").save()
            timings.append(time.perf_counter() - started)
        rows = [(str(d["_id"]), d.get("title") or "", d.get("text") or "") for d in docs]
        df = session.createDataFrame(rows, "id string, title string, text string").repartition(slots * 2)
        started = time.perf_counter()
        report = write(encode(df, ["title", "text"]), f"qdrant-edge://{folder}", index=f"spark-{slots}")
        elapsed = time.perf_counter() - started
        assert report.written == len(docs), report.summary()
        return {
            "slots": slots,
            "docs_per_s": len(docs) / elapsed,
            "seconds": elapsed,
            "cold_job_s": timings[0],
            "warm_job_s": timings[1],
            "fixed_per_partition_s": max(timings[0] - timings[1], 0.0),
        }
    finally:
        session.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET)
    parser.add_argument("--docs", type=int, default=384)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    docs = load_docs(args.dataset, args.docs)
    runs: dict[str, list[dict[str, float]]] = {"ingest": [], **{m: [] for m in MASTERS}}
    phases = ["ingest", *MASTERS]
    for round_no in range(args.rounds):
        order = phases if round_no % 2 == 0 else phases[::-1]
        for phase in order:
            with tempfile.TemporaryDirectory(prefix="spark-bench-") as tmp:
                if phase == "ingest":
                    runs["ingest"].append({"docs_per_s": run_ingest(docs, Path(tmp))})
                else:
                    runs[phase].append(spark_phase(phase, docs, Path(tmp)))
            print(
                f"round {round_no + 1} {phase}: {runs[phase][-1]['docs_per_s']:.1f} docs/s", file=sys.stderr
            )

    def median(phase: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[phase])

    one, two = (median(m, "docs_per_s") for m in MASTERS)
    per_doc_s = {
        m: median(m, "slots") / median(m, "docs_per_s") for m in MASTERS
    }  # core-seconds per document
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.processor() or platform.platform()}",
        "docs": len(docs),
        "rounds": args.rounds,
        "ingest_docs_per_s": median("ingest", "docs_per_s"),
        "local1_docs_per_s": one,
        "local2_docs_per_s": two,
        "speedup_local2_over_local1": two / one,
        "local2_over_ingest": two / median("ingest", "docs_per_s"),
        "fixed_per_partition_s": {m: median(m, "fixed_per_partition_s") for m in MASTERS},
        "core_seconds_per_doc": per_doc_s,
        "runs": runs,
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for key, value in result.items():
            if key != "runs":
                print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
