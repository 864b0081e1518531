"""Benchmark: spladebridge's DenseEncoder (exact and fast) against sentence-transformers' SentenceTransformer.

Workload: the first `--docs` SciFact documents (title + text), max_length 256, the default all-MiniLM-L6-v2,
CPU. Each side runs in its own subprocess (clean peak RSS, same environment and threads); the sides alternate
`--rounds` times and each side's best throughput is reported. Model loading and a short warm-up are not
timed. Exactness: every side's embeddings against sentence-transformers' float32 ones (minimum cosine).

Arithmetic: the model's FLOPs per document are counted from its config and the documents' token counts
(2 FLOP per multiply-add in every matrix multiply, attention included), giving each side's achieved GFLOP/s.
The CPU's ceiling is measured in the same run: oneDNN's float32 and bf16 matrix multiply on all threads at
a large size (what the hardware sustains, not a data-sheet figure).

`--quality` adds the fast mode's nDCG@10 change on scifact and nfcorpus, on the product path (`spladebridge
eval`'s runner: ingest into Qdrant Edge, search with the public API), dense alone and default hybrid.

    .venv/bin/python benchmarks/dense_bench.py --json
    .venv/bin/python benchmarks/dense_bench.py --rounds 3 --quality --json
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

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from encoder_bench import DEFAULT_CORPUS, load_texts, rotated, run_json_worker

DATASETS = Path(__file__).resolve().parents[1] / ".." / "shared" / "datasets"
SIDES = ("exact", "fast", "st")
GOALS = {"exact_speedup": 1.2, "fast_speedup": 3.0, "exact_min_cos": 0.9999, "fast_ndcg_change": 0.002}


def run_worker(args: argparse.Namespace) -> None:
    """One side, in its own process: encode, time, save the embeddings, print one JSON line."""
    import torch

    texts = load_texts(Path(args.corpus), args.docs)
    if args.worker == "st":
        from sentence_transformers import SentenceTransformer

        from spladebridge.encoder.models import default_model_dir

        model = SentenceTransformer(str(default_model_dir("dense")), device="cpu")
        model.max_seq_length = args.max_length

        def encode(batch: list[str]) -> np.ndarray:
            out: np.ndarray = model.encode(batch, batch_size=32, normalize_embeddings=True)
            return out
    else:
        from spladebridge.encoder.dense import DenseEncoder

        encoder = DenseEncoder(device="cpu", precision=args.worker, max_length=args.max_length)
        encode = encoder.encode
    encode(texts[: args.warmup])
    started = time.perf_counter()
    embeddings = encode(texts)
    elapsed = time.perf_counter() - started
    np.save(args.output, np.asarray(embeddings, dtype=np.float32))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    report = {"docs_per_s": len(texts) / elapsed, "seconds": elapsed, "peak_rss_mb": peak}
    report["threads"] = torch.get_num_threads()
    print(json.dumps(report))


def run_side(side: str, args: argparse.Namespace, workdir: Path) -> tuple[dict[str, Any], Path]:
    output = workdir / f"{side}.npy"
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", side, "--output", str(output)]
    command += ["--docs", str(args.docs), "--max-length", str(args.max_length), "--warmup", str(args.warmup)]
    command += ["--corpus", str(args.corpus)]
    return run_json_worker(side, command), output


def model_flops(texts: list[str], max_length: int) -> tuple[float, int]:
    """FLOPs to encode `texts` with the default dense model (its config and tokenizer), and the token count."""
    from transformers import AutoConfig, AutoTokenizer

    from spladebridge.encoder.models import default_model_dir

    folder = default_model_dir("dense")
    config = AutoConfig.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    lengths = [len(ids) for ids in tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]]
    d, ff, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    per_token = layers * 2 * (4 * d * d + 2 * d * ff)  # Q, K, V, output projections and the feed-forward pair
    per_sequence = [layers * 2 * 2 * n * n * d for n in lengths]  # scores QK^T and the weighted sum AV
    return float(sum(lengths) * per_token + sum(per_sequence)), sum(lengths)


def gemm_ceiling_gflops(dtype: str) -> float:
    """oneDNN's sustained matrix-multiply rate on all of torch's threads, in GFLOP/s (best of 5)."""
    import torch

    from spladebridge.encoder.onednn_linear import OneDnnLinear

    torch_dtype = torch.float32 if dtype == "float32" else torch.bfloat16
    linear = torch.nn.Linear(1536, 1536).to(torch_dtype)
    layer = OneDnnLinear(linear)
    x = torch.randn(4096, 1536).to(torch_dtype)
    flops = 2 * 4096 * 1536 * 1536 * 10
    best = 0.0
    with torch.inference_mode():
        layer(x)
        for _ in range(5):
            started = time.perf_counter()
            for _ in range(10):
                layer(x)
            best = max(best, flops / (time.perf_counter() - started) / 1e9)
    return best


def quality(datasets: list[str], cache: Path) -> dict[str, Any]:
    """nDCG@10 of dense alone and the default hybrid with the exact and the fast dense encoder."""
    from spladebridge.encoder.dense import DenseEncoder
    from spladebridge.evaluation.runner import EvalConfig, run_evaluation

    out: dict[str, Any] = {}
    for name in datasets:
        scores: dict[str, dict[str, float]] = {}
        for precision in ("exact", "fast"):
            config = EvalConfig(
                DATASETS / name,
                signals=("dense",),
                fusions=("hybrid",),
                pruning=(),
                tune=False,
                cache_dir=cache,
            )
            report = run_evaluation(config, dense_encoder=DenseEncoder(precision=precision))
            scores[precision] = {s: round(report.systems[s].means["ndcg@10"], 4) for s in ("dense", "hybrid")}
        change = {s: round(scores["fast"][s] - scores["exact"][s], 4) for s in ("dense", "hybrid")}
        out[name] = {**scores, "change": change}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--docs", type=int, default=512)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--warmup", type=int, default=16, help="documents encoded before timing")
    parser.add_argument("--rounds", type=int, default=2, help="alternate the sides this many times")
    parser.add_argument("--corpus", default=str(DEFAULT_CORPUS))
    parser.add_argument("--quality", action="store_true", help="also measure the fast mode's nDCG@10 change")
    parser.add_argument("--datasets", default="scifact,nfcorpus", help="for --quality")
    parser.add_argument("--cache-dir", type=Path, default=Path(".spladebridge/eval-cache"))
    parser.add_argument("--worker", choices=SIDES, help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        run_worker(args)
        return 0
    import torch

    from spladebridge.encoder.runtime import cpu_has_bf16

    load_before = os.getloadavg()[0]
    runs: dict[str, list[dict[str, Any]]] = {side: [] for side in SIDES}
    with tempfile.TemporaryDirectory(prefix="dense_bench_") as tmp:
        workdir = Path(tmp)
        for round_no in range(args.rounds):
            for side in rotated(SIDES, round_no):
                runs[side].append(run_side(side, args, workdir)[0])
        vectors = {side: np.load(workdir / f"{side}.npy") for side in SIDES}
    best = {side: max(runs[side], key=lambda r: r["docs_per_s"]) for side in SIDES}
    flops, tokens = model_flops(load_texts(Path(args.corpus), args.docs), args.max_length)
    ceiling = {"float32": gemm_ceiling_gflops("float32")}
    ceiling["bfloat16"] = gemm_ceiling_gflops("bfloat16") if cpu_has_bf16() else ceiling["float32"]
    sides: dict[str, Any] = {}
    for side in SIDES:
        rate = best[side]["docs_per_s"]
        gflops = flops / args.docs * rate / 1e9
        cosine = np.sum(vectors[side] * vectors["st"], axis=1)
        sides[side] = {
            "docs_per_s": round(rate, 2),
            "gflops": round(gflops, 1),
            # of the ceiling in the arithmetic the side computes in
            "share_of_gemm_ceiling": round(gflops / ceiling["bfloat16" if side == "fast" else "float32"], 3),
            "min_cos_to_st_fp32": round(float(cosine.min()), 7),
            "peak_rss_mb": round(max(r["peak_rss_mb"] for r in runs[side]), 1),
        }
    exact_speedup = sides["exact"]["docs_per_s"] / sides["st"]["docs_per_s"]
    fast_speedup = sides["fast"]["docs_per_s"] / sides["st"]["docs_per_s"]
    result: dict[str, Any] = {
        "benchmark": "dense",
        "docs": args.docs,
        "tokens": tokens,
        "mflop_per_token": round(flops / tokens / 1e6, 2),
        "rounds": args.rounds,
        "sides": sides,
        "exact_speedup": round(exact_speedup, 2),
        "fast_speedup": round(fast_speedup, 2),
        "gemm_ceiling_gflops": {k: round(v, 1) for k, v in ceiling.items()},
        "met": {
            "exact >= 1.2x": exact_speedup >= GOALS["exact_speedup"],
            "exact cos >= 0.9999": sides["exact"]["min_cos_to_st_fp32"] >= GOALS["exact_min_cos"],
            "fast >= 3x": fast_speedup >= GOALS["fast_speedup"],
        },
        "machine": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "torch": torch.__version__,
            "bf16_instructions": cpu_has_bf16(),
            "load_avg_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        },
    }
    if args.quality:
        result["quality"] = quality([d.strip() for d in args.datasets.split(",")], args.cache_dir)
        worst = max(abs(v) for q in result["quality"].values() for v in q["change"].values())
        result["met"]["fast ndcg@10 change <= 0.002"] = worst <= GOALS["fast_ndcg_change"]
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    for side, row in sides.items():
        print(
            f"{side:6} {row['docs_per_s']:8.2f} docs/s {row['gflops']:7.1f} GFLOP/s  min cos {row['min_cos_to_st_fp32']}"
        )
    print(f"exact {exact_speedup:.2f}x, fast {fast_speedup:.2f}x sentence-transformers; ceiling {ceiling}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
