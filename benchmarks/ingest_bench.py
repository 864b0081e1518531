"""End-to-end ingest throughput against encoding alone, in the same run: scifact into Qdrant Edge.

Both phases read the same JSONL corpus with the same reader and encode with the same SPLADE + dense models
and batch size; the end-to-end phase also writes every batch into a fresh Qdrant Edge shard (sparse, dense,
BM25 and payload) through `spladebridge.ingest`, whose writer thread overlaps the writes with encoding. The
corpus is cut into `--rounds` chunks and the two phases alternate their order chunk by chunk, so that a
change in machine load affects both alike. The ratio `end_to_end / encode_only` (docs/s) is the pipeline's
efficiency; the target is >= 0.85.

Usage: python benchmarks/ingest_bench.py [--dataset ../shared/datasets/scifact] [--limit N] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TARGET_RATIO = 0.85
DEFAULT_DATASET = Path(__file__).resolve().parents[1] / ".." / "shared" / "datasets" / "scifact"


def _chunks(corpus: Path, limit: int | None, rounds: int, folder: Path) -> list[Path]:
    """The first `limit` lines of the corpus (all by default), split into `rounds` contiguous JSONL files."""
    with corpus.open("rb") as src:
        lines = [line for line in src if line.strip()]
    if limit is not None:
        lines = lines[:limit]
    size = -(-len(lines) // rounds)
    paths = []
    for i in range(rounds):
        part = lines[i * size : (i + 1) * size]
        if part:
            path = folder / f"chunk-{i}.jsonl"
            path.write_bytes(b"".join(part))
            paths.append(path)
    return paths


def encode_only(chunk: Path, sparse: Any, dense: Any, batch_size: int) -> tuple[int, float]:
    """Read and encode every document of `chunk` (sparse + dense) in batches, writing nothing."""
    from spladebridge.readers import RecordParser, iter_records

    parser = RecordParser()
    started = time.perf_counter()
    docs = 0
    batch: list[str] = []
    for record in iter_records(chunk, parser):
        if record.document is None:
            continue
        batch.append(record.document.text(parser.text_fields))
        if len(batch) >= batch_size:
            sparse.encode_documents(batch)
            dense.encode(batch)
            docs += len(batch)
            batch = []
    if batch:
        sparse.encode_documents(batch)
        dense.encode(batch)
        docs += len(batch)
    return docs, time.perf_counter() - started


def end_to_end(chunk: Path, conn: Any, sparse: Any, dense: Any, batch_size: int, folder: Path) -> Any:
    """`spladebridge.ingest` of `chunk` into the shard, with a checkpoint and a dead-letter file."""
    from spladebridge.ingest import ingest

    return ingest(
        chunk,
        conn,
        sparse,
        dense,
        batch_size=batch_size,
        checkpoint=folder / f"{chunk.stem}.checkpoint.json",
        dead_letter=folder / "dead.jsonl",
        progress=False,
    )


def run_rounds(
    chunks: list[Path], sparse: Any, dense: Any, batch_size: int, folder: Path
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Alternate the two phases chunk by chunk (AB, BA, AB, ...) so that load drifts hit both alike."""
    from spladebridge.connectors.qdrant_edge import QdrantEdgeConnector

    enc_docs, enc_s = 0, 0.0
    written = failed = 0
    e2e_s = encode_s = write_s = 0.0
    with QdrantEdgeConnector(folder / "shard") as conn:
        for i, chunk in enumerate(chunks):
            phases = ("encode", "ingest") if i % 2 == 0 else ("ingest", "encode")
            for phase in phases:
                if phase == "encode":
                    docs, seconds = encode_only(chunk, sparse, dense, batch_size)
                    enc_docs += docs
                    enc_s += seconds
                else:
                    report = end_to_end(chunk, conn, sparse, dense, batch_size, folder)
                    written += report.written
                    failed += report.failed
                    e2e_s += report.duration_s
                    encode_s += report.encode_s
                    write_s += report.write_s
        count = conn.count()
    enc = {"docs": enc_docs, "seconds": round(enc_s, 3), "docs_per_s": round(enc_docs / enc_s, 3)}
    e2e = {
        "docs": written,
        "failed": failed,
        "count_in_shard": count,
        "seconds": round(e2e_s, 3),
        "docs_per_s": round(written / e2e_s, 3),
        "encode_s": round(encode_s, 3),
        "write_s": round(write_s, 3),
    }
    return enc, e2e


def machine() -> dict[str, Any]:
    import torch

    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--dataset", type=Path, default=DEFAULT_DATASET, help="BEIR folder with corpus.jsonl")
    ap.add_argument("--limit", type=int, help="only the first N documents")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=4, help="chunks, alternating the phases' order (default 4)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args(argv)
    corpus = args.dataset / "corpus.jsonl"
    if not corpus.is_file():
        print(f"ingest_bench: no corpus at {corpus}", file=sys.stderr)
        return 2

    from spladebridge.encoder.dense import DenseEncoder
    from spladebridge.encoder.splade import SpladeEncoder

    sparse, dense = SpladeEncoder(), DenseEncoder()
    sparse.encode_documents(["warm up the model"] * 4)  # load weights and allocate before timing
    dense.encode(["warm up the model"] * 4)
    with tempfile.TemporaryDirectory(prefix="ingest-bench-") as tmp:
        folder = Path(tmp)
        chunks = _chunks(corpus, args.limit, max(args.rounds, 1), folder)
        before = machine()
        started = time.perf_counter()
        enc, e2e = run_rounds(chunks, sparse, dense, args.batch_size, folder)
        wall = time.perf_counter() - started
    ratio = e2e["docs_per_s"] / enc["docs_per_s"] if enc["docs_per_s"] else 0.0
    result = {
        "benchmark": "ingest",
        "dataset": args.dataset.name,
        "engine": "qdrant-edge",
        "signals": ["sparse", "dense", "bm25"],
        "batch_size": args.batch_size,
        "rounds": len(chunks),
        "wall_s": round(wall, 1),
        "encode_only": enc,
        "end_to_end": e2e,
        "ratio": round(ratio, 3),
        "target_ratio": TARGET_RATIO,
        "meets_target": ratio >= TARGET_RATIO,
        "machine": before,
        "load_avg_1m_after": round(os.getloadavg()[0], 2),
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"{args.dataset.name}: encode only {enc['docs_per_s']} docs/s, end to end {e2e['docs_per_s']} docs/s "
            f"(ratio {ratio:.3f}, target {TARGET_RATIO}); {e2e['docs']} written, {e2e['failed']} failed"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
