"""Benchmark: spladebridge's SpladeEncoder against sentence-transformers' SparseEncoder, side by side.

Workload: the first `--docs` documents (title + text) of SciFact, max_length 256, CPU. Each side runs in its
own subprocess, so each peak RSS (the child's ru_maxrss) is clean; both see the same environment and thread
settings. Throughput excludes model loading and a short warm-up. The parent then compares the two outputs
(max absolute difference over the full document x vocabulary matrix). With `--rounds N` the sides alternate
N times and the best throughput and the highest peak RSS of each side are reported.

    python benchmarks/encoder_bench.py                  # table
    python benchmarks/encoder_bench.py --json           # one JSON object
    python benchmarks/encoder_bench.py --model-config bert-base --docs 64

`--model-config bert-base` benchmarks a randomly initialised BERT-base-sized masked LM (same compute as real
base models; no weights needed). Its decoder bias is set to -2.2 so that about as many terms are active as
with a trained SPLADE model, instead of half the vocabulary.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = REPO.parent / "shared" / "datasets" / "scifact" / "corpus.jsonl"
JSON_KEYS = (
    "ours_docs_per_s",
    "st_docs_per_s",
    "speedup",
    "max_abs_diff",
    "ours_peak_rss_mb",
    "st_peak_rss_mb",
)


def load_texts(path: Path, count: int) -> list[str]:
    """The first `count` documents of a BEIR corpus as 'title text'."""
    texts: list[str] = []
    with path.open(encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            try:
                doc = json.loads(line)
            except json.JSONDecodeError as exc:
                raise SystemExit(f"{path}:{line_number}: not JSON ({exc.msg})") from None
            texts.append(f"{doc.get('title', '')} {doc.get('text', '')}".strip())
            if len(texts) == count:
                break
    return texts


def build_random_base_model(folder: Path) -> None:
    """Save a seeded random BERT-base masked LM with the default SPLADE model's tokenizer into `folder`."""
    import shutil

    import torch
    from transformers import BertConfig, BertForMaskedLM

    from spladebridge.encoder.models import default_model_dir

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=30522,
        hidden_size=768,
        num_hidden_layers=12,
        num_attention_heads=12,
        intermediate_size=3072,
        max_position_embeddings=512,
    )
    model: Any = BertForMaskedLM(config)
    with torch.no_grad():
        model.cls.predictions.decoder.bias.fill_(-2.2)
    model.save_pretrained(folder)
    tokenizer_dir = default_model_dir("splade")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tokenizer_dir / name, folder / name)


def peak_rss_mb() -> float:
    """This process's peak resident set size in MiB (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_worker(args: argparse.Namespace) -> None:
    """One side of the benchmark, in its own process: encode, time, save the CSR output, report JSON."""
    import numpy as np
    import scipy.sparse as sp

    texts = load_texts(Path(args.corpus), args.docs)
    model_path = args.model_path
    if args.worker == "ours":
        from spladebridge.encoder.sparse_vector import SparseVector
        from spladebridge.encoder.splade import SpladeEncoder

        encoder = SpladeEncoder(
            model_path,
            device="cpu",
            max_length=args.max_length,
            batch_size=args.batch_size,
            keep_special_dims=True,
        )
        encoder.encode_documents(texts[: args.warmup])
        start = time.perf_counter()
        vectors = encoder.encode_documents(texts)
        elapsed = time.perf_counter() - start
        matrix = SparseVector.to_csr(vectors, encoder.vocab_size)
        extra = {"truncated": encoder.last_stats.truncated, "tokens": encoder.last_stats.tokens}
    else:
        from sentence_transformers import SparseEncoder
        from sentence_transformers.sparse_encoder.modules import MLMTransformer, SpladePooling

        model = SparseEncoder(
            modules=[MLMTransformer(model_path, max_seq_length=args.max_length), SpladePooling("max")],
            device="cpu",
        )
        model.encode_document(texts[: args.warmup], batch_size=args.batch_size)
        start = time.perf_counter()
        embeddings = model.encode_document(texts, batch_size=args.batch_size)
        elapsed = time.perf_counter() - start
        coo = embeddings.coalesce()
        rows, cols = coo.indices().numpy()
        matrix = sp.csr_matrix(
            (coo.values().numpy().astype(np.float32), (rows, cols)), shape=tuple(coo.shape)
        )
        extra = {}
    sp.save_npz(args.output, matrix.tocsr())
    report = {
        "docs_per_s": len(texts) / elapsed,
        "seconds": elapsed,
        "peak_rss_mb": peak_rss_mb(),
        "mean_active_dims": matrix.nnz / max(matrix.shape[0], 1),
        "threads": __import__("torch").get_num_threads(),
        **extra,
    }
    print(json.dumps(report))


def run_side(
    side: str, args: argparse.Namespace, model_path: str, workdir: Path
) -> tuple[dict[str, Any], Path]:
    output = workdir / f"{side}.npz"
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        side,
        "--model-path",
        model_path,
        "--output",
        str(output),
        "--docs",
        str(args.docs),
        "--max-length",
        str(args.max_length),
        "--batch-size",
        str(args.batch_size),
        "--warmup",
        str(args.warmup),
        "--corpus",
        str(args.corpus),
    ]
    return run_json_worker(side, command), output


def run_json_worker(side: str, command: list[str]) -> dict[str, Any]:
    """Run one benchmark side as `command` in its own process (offline, no tokenizer threads) and return the
    JSON object its last JSON line prints; a failing side stops the benchmark with its stderr."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{side} worker failed (exit {done.returncode}):\n{done.stderr[-4000:]}")
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    report: dict[str, Any] = json.loads(lines[-1])
    return report


def rotated(sides: tuple[str, ...], round_no: int) -> tuple[str, ...]:
    """The sides in round `round_no`'s order: rotated by one each round, so load drifts hit every side."""
    shift = round_no % len(sides)
    return sides[shift:] + sides[:shift]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--docs", type=int, default=1024)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=8, help="documents encoded before timing")
    parser.add_argument("--corpus", default=str(DEFAULT_CORPUS))
    parser.add_argument("--model-config", choices=["tiny", "bert-base"], default="tiny")
    parser.add_argument(
        "--rounds", type=int, default=1, help="run each side this many times, alternating; report the best"
    )
    parser.add_argument("--worker", choices=["ours", "st"], help=argparse.SUPPRESS)
    parser.add_argument("--model-path", help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        run_worker(args)
        return

    import numpy as np
    import scipy.sparse as sp

    if not Path(args.corpus).is_file():
        raise SystemExit(f"corpus not found: {args.corpus}")
    with tempfile.TemporaryDirectory(prefix="encoder_bench_") as tmp:
        workdir = Path(tmp)
        if args.model_config == "bert-base":
            model_path = str(workdir / "bert-base-random")
            build_random_base_model(Path(model_path))
        else:
            from spladebridge.encoder.models import default_model_dir

            model_path = str(default_model_dir("splade"))
        runs: dict[str, list[dict[str, Any]]] = {"ours": [], "st": []}
        for _ in range(args.rounds):  # alternate the sides so that load changes hit both
            for side in ("ours", "st"):
                runs[side].append(run_side(side, args, model_path, workdir)[0])
        ours_file, st_file = workdir / "ours.npz", workdir / "st.npz"
        ours = max(runs["ours"], key=lambda run: run["docs_per_s"])
        st = max(runs["st"], key=lambda run: run["docs_per_s"])
        ours["peak_rss_mb"] = max(run["peak_rss_mb"] for run in runs["ours"])
        st["peak_rss_mb"] = max(run["peak_rss_mb"] for run in runs["st"])
        diff = sp.load_npz(ours_file) - sp.load_npz(st_file)
        max_abs_diff = float(np.abs(diff.data).max()) if diff.nnz else 0.0

    result = {
        "ours_docs_per_s": round(ours["docs_per_s"], 2),
        "st_docs_per_s": round(st["docs_per_s"], 2),
        "speedup": round(ours["docs_per_s"] / st["docs_per_s"], 2),
        "max_abs_diff": max_abs_diff,
        "ours_peak_rss_mb": round(ours["peak_rss_mb"], 1),
        "st_peak_rss_mb": round(st["peak_rss_mb"], 1),
    }
    context = (
        f"model={args.model_config} docs={args.docs} rounds={args.rounds} max_length={args.max_length} "
        f"batch={args.batch_size} "
        f"threads={ours['threads']} truncated={ours.get('truncated')} tokens={ours.get('tokens')} "
        f"active_dims ours={ours['mean_active_dims']:.1f} st={st['mean_active_dims']:.1f}"
    )
    if args.json:
        print(context, file=sys.stderr)
        print(json.dumps({key: result[key] for key in JSON_KEYS}))
        return
    print(context)
    print(f"{'':28}{'spladebridge':>14}{'sentence-transformers':>24}")
    print(f"{'docs/s':28}{result['ours_docs_per_s']:>14.2f}{result['st_docs_per_s']:>24.2f}")
    print(f"{'seconds':28}{ours['seconds']:>14.1f}{st['seconds']:>24.1f}")
    print(f"{'peak RSS (MiB)':28}{result['ours_peak_rss_mb']:>14.1f}{result['st_peak_rss_mb']:>24.1f}")
    print(
        f"speedup {result['speedup']:.2f}x, RSS ratio {result['st_peak_rss_mb'] / result['ours_peak_rss_mb']:.2f}x,"
        f" max abs diff {max_abs_diff:.2e}"
    )


if __name__ == "__main__":
    main()
