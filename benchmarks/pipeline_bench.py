"""End-to-end ingestion against the same pipeline built from sentence-transformers and qdrant-client.

Every side reads the first `--docs` SciFact documents (JSONL, title + text) and produces the same output:
a SPLADE vector (the bundled SPLADE-tiny) and a 384-d dense vector (all-MiniLM-L6-v2) per document, stored
with its title and text in a Qdrant store. Sides, each in its own subprocess (clean peak RSS):

- `exact` / `fast`: the product path, `spladebridge.ingest` into Qdrant Edge with `SpladeEncoder` and
  `DenseEncoder(precision=...)` (checkpoint and dead-letter file on, as the CLI runs it);
- `encode`: our encoders alone on the same reader and batches, nothing written (the pipeline's ceiling);
- `st`: sentence-transformers' `SparseEncoder` (MLMTransformer + SpladePooling("max")) and
  `SentenceTransformer`, batch by batch, written with qdrant-client's `upload_points` (local mode on disk:
  the client path without a server, as there is no Docker here).

Sides alternate `--rounds` times (order rotated each round); each side's best throughput and highest peak
RSS are reported, with the ratios the issue asks for: exact / st, fast / st and exact / encode. Model
loading and a warm-up batch are not timed.

    .venv/bin/python benchmarks/pipeline_bench.py --json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from encoder_bench import DEFAULT_CORPUS, rotated, run_json_worker
from ingest_bench import encode_only

SIDES = ("exact", "fast", "encode", "st")
GOALS = {"exact_vs_st": 2.5, "fast_vs_st": 4.0, "exact_vs_encode": 0.85}
WARMUP = ["warm up the models: a first batch allocates what later batches reuse"] * 8


def ours(args: argparse.Namespace, corpus: Path, workdir: Path) -> dict[str, Any]:
    from spladebridge.connectors.base import IndexSpec
    from spladebridge.connectors.qdrant_edge import QdrantEdgeConnector
    from spladebridge.encoder.dense import DenseEncoder
    from spladebridge.encoder.splade import SpladeEncoder
    from spladebridge.ingest import ingest

    precision = "exact" if args.worker == "encode" else args.worker
    sparse, dense = SpladeEncoder(device="cpu"), DenseEncoder(device="cpu", precision=precision)
    sparse.encode_documents(WARMUP)
    dense.encode(WARMUP)
    if args.worker == "encode":
        docs, seconds = encode_only(corpus, sparse, dense, args.batch_size)
        return {"docs": docs, "seconds": seconds}
    spec = IndexSpec(name="pipeline", dense_dim=dense.dim, lexical=False)
    with QdrantEdgeConnector(workdir / "edge", spec) as conn:
        started = time.perf_counter()
        report = ingest(
            corpus,
            conn,
            sparse,
            dense,
            spec=spec,
            batch_size=args.batch_size,
            checkpoint=workdir / "checkpoint.json",
            dead_letter=workdir / "dead.jsonl",
            progress=False,
        )
        seconds = time.perf_counter() - started
        stored = conn.count()
    if report.failed or stored != report.written:
        raise SystemExit(f"ingest: {report.failed} failed, {stored} stored of {report.written}")
    return {"docs": report.written, "seconds": seconds, "stored": stored}


def peer(args: argparse.Namespace, corpus: Path, workdir: Path) -> dict[str, Any]:
    from qdrant_client import QdrantClient, models
    from sentence_transformers import SentenceTransformer, SparseEncoder
    from sentence_transformers.sparse_encoder.modules import MLMTransformer, SpladePooling

    from spladebridge.encoder.models import default_model_dir

    sparse = SparseEncoder(
        modules=[MLMTransformer(str(default_model_dir("splade")), max_seq_length=256), SpladePooling("max")],
        device="cpu",
    )
    dense = SentenceTransformer(str(default_model_dir("dense")), device="cpu")
    dense.max_seq_length = 256
    sparse.encode_document(WARMUP)
    dense.encode(WARMUP)
    client = QdrantClient(path=str(workdir / "qdrant-local"))
    client.create_collection(
        "pipeline",
        vectors_config={"dense": models.VectorParams(size=384, distance=models.Distance.COSINE)},
        sparse_vectors_config={"splade": models.SparseVectorParams()},
    )

    def points() -> Any:
        batch: list[dict[str, Any]] = []
        with corpus.open(encoding="utf-8") as handle:
            rows = (json.loads(line) for line in handle if line.strip())
            for row in rows:
                batch.append(row)
                if len(batch) == args.batch_size:
                    yield from encode_batch(batch)
                    batch = []
        if batch:
            yield from encode_batch(batch)

    def encode_batch(batch: list[dict[str, Any]]) -> Any:
        texts = [f"{row.get('title', '')} {row.get('text', '')}".strip() for row in batch]
        weights = sparse.encode_document(texts, batch_size=32).coalesce()
        embeddings = dense.encode(texts, batch_size=32, normalize_embeddings=True)
        rows_of = weights.indices()[0].numpy()
        cols = weights.indices()[1].numpy()
        values = weights.values().numpy()
        for i, row in enumerate(batch):
            mask = rows_of == i
            yield models.PointStruct(
                id=int(row["_id"]),
                vector={
                    "dense": embeddings[i].tolist(),
                    "splade": models.SparseVector(indices=cols[mask].tolist(), values=values[mask].tolist()),
                },
                payload={"_id": row["_id"], "title": row.get("title", ""), "text": row.get("text", "")},
            )

    started = time.perf_counter()
    client.upload_points("pipeline", points(), batch_size=args.batch_size)
    seconds = time.perf_counter() - started
    stored = client.count("pipeline").count
    client.close()
    return {"docs": stored, "seconds": seconds, "stored": stored}


def run_worker(args: argparse.Namespace) -> None:
    import torch

    workdir = Path(args.workdir)
    corpus = Path(args.corpus_part)
    result = peer(args, corpus, workdir) if args.worker == "st" else ours(args, corpus, workdir)
    result["docs_per_s"] = result["docs"] / result["seconds"]
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    result["threads"] = torch.get_num_threads()
    print(json.dumps(result))


def run_side(side: str, args: argparse.Namespace, corpus: Path, workdir: Path) -> dict[str, Any]:
    folder = workdir / f"{side}-{time.monotonic_ns()}"
    folder.mkdir()
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", side, "--workdir", str(folder)]
    command += ["--corpus-part", str(corpus), "--batch-size", str(args.batch_size)]
    return run_json_worker(side, command)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--docs", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=64, help="documents per batch (ingest's default)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--corpus", type=Path, default=Path(DEFAULT_CORPUS))
    parser.add_argument("--worker", choices=SIDES, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    parser.add_argument("--corpus-part", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        run_worker(args)
        return 0
    import torch

    load_before = os.getloadavg()[0]
    runs: dict[str, list[dict[str, Any]]] = {side: [] for side in SIDES}
    with tempfile.TemporaryDirectory(prefix="pipeline_bench_") as tmp:
        workdir = Path(tmp)
        part = workdir / "corpus.jsonl"
        with args.corpus.open("rb") as src:
            lines = [line for line in src if line.strip()][: args.docs]
        part.write_bytes(b"".join(lines))
        for round_no in range(args.rounds):
            for side in rotated(SIDES, round_no):
                runs[side].append(run_side(side, args, part, workdir))
                print(
                    f"round {round_no + 1} {side}: {runs[side][-1]['docs_per_s']:.2f} docs/s", file=sys.stderr
                )
    best = {side: max(runs[side], key=lambda r: r["docs_per_s"]) for side in SIDES}
    sides = {
        side: {
            "docs_per_s": round(best[side]["docs_per_s"], 2),
            "docs": best[side]["docs"],
            "peak_rss_mb": round(max(r["peak_rss_mb"] for r in runs[side]), 1),
        }
        for side in SIDES
    }
    rate = {side: best[side]["docs_per_s"] for side in SIDES}
    ratios = {
        "exact_vs_st": round(rate["exact"] / rate["st"], 2),
        "fast_vs_st": round(rate["fast"] / rate["st"], 2),
        "exact_vs_encode": round(rate["exact"] / rate["encode"], 3),
    }
    result = {
        "benchmark": "pipeline",
        "docs": len(lines),
        "batch_size": args.batch_size,
        "rounds": args.rounds,
        "sides": sides,
        "ratios": ratios,
        "met": {f"{name} >= {goal}": ratios[name] >= goal for name, goal in GOALS.items()},
        "machine": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "torch": torch.__version__,
            "load_avg_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        },
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for side, row in sides.items():
            print(f"{side:7} {row['docs_per_s']:8.2f} docs/s  peak RSS {row['peak_rss_mb']:.0f} MiB")
        print(" ".join(f"{k} {v}" for k, v in ratios.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
