"""`spladebridge demo`: index the bundled corpus into an embedded Qdrant Edge shard and run hybrid queries.

The corpus (300 short documents on five topics) ships with the package; its queries are phrased so that
their best answers share almost no words with them, which is where SPLADE expansion and dense retrieval earn
their keep.
A second run reuses the shard (same corpus and models) instead of re-encoding.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import textwrap
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TextIO

from spladebridge.connectors.base import Signal
from spladebridge.encoder.models import DEFAULT_MODELS, ModelKind, ModelNotFoundError, default_model_dir

__all__ = ["DemoQuery", "load_demo_corpus", "load_demo_queries", "main"]

DEFAULT_PATH = Path(".spladebridge") / "demo"
MARKER_NAME = "demo-index.json"
SIGNALS: tuple[Signal, ...] = ("sparse", "dense", "bm25")


@dataclass(frozen=True, slots=True)
class DemoQuery:
    """A demo query and the ids of the documents that answer it."""

    id: str
    text: str
    relevant: tuple[str, ...]


def _data_text(name: str) -> str:
    return resources.files("spladebridge").joinpath("data", name).read_text(encoding="utf-8")


def load_demo_corpus() -> list[dict[str, str]]:
    """The bundled demo documents: `_id`, `title`, `text`, `topic`."""
    return [json.loads(line) for line in _data_text("demo_corpus.jsonl").splitlines() if line.strip()]


def load_demo_queries() -> list[DemoQuery]:
    """The bundled demo queries with their relevant document ids."""
    out: list[DemoQuery] = []
    for line in _data_text("demo_queries.jsonl").splitlines():
        if line.strip():
            obj = json.loads(line)
            out.append(DemoQuery(obj["_id"], obj["text"], tuple(obj["relevant"])))
    return out


def _fingerprint(corpus_text: str, sparse_model: str, dense_model: str) -> str:
    digest = hashlib.sha256()
    for part in (corpus_text, sparse_model, dense_model):
        digest.update(part.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()


def _model_label(name: str, kind: ModelKind) -> str:
    """A short label: the default models by their names, anything else by the name it was given."""
    try:
        if Path(name) == default_model_dir(kind):
            default = DEFAULT_MODELS[kind]
            return f"{default.description}, bundled in {default.distribution}"
    except ModelNotFoundError:
        pass
    return name


def _snippet(text: str, width: int) -> str:
    return textwrap.shorten(" ".join(text.split()), width=width, placeholder="...")


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spladebridge demo", description=__doc__.splitlines()[0])
    parser.add_argument("--path", type=Path, default=DEFAULT_PATH, help="where the demo shard lives")
    parser.add_argument(
        "--rebuild", action="store_true", help="re-encode and re-index even if the shard is current"
    )
    parser.add_argument("-k", type=int, default=5, help="hits per query (default 5)")
    parser.add_argument("--terms", type=int, default=4, help="expansion terms shown per hit (default 4)")
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run the demo; returns a process exit code."""
    args = _build_parser().parse_args(argv)
    out = out or sys.stdout
    if args.k < 1:
        print("error: -k must be >= 1", file=sys.stderr)
        return 2

    from spladebridge.connectors.base import IndexSpec
    from spladebridge.connectors.qdrant_edge import QdrantEdgeConnector
    from spladebridge.encoder.dense import DenseEncoder
    from spladebridge.encoder.splade import SpladeEncoder
    from spladebridge.hybrid import RRF, HybridSearcher
    from spladebridge.ingest import ingest

    started = time.perf_counter()
    sparse = SpladeEncoder()
    dense = DenseEncoder()
    corpus_text = _data_text("demo_corpus.jsonl")
    corpus = load_demo_corpus()
    queries = load_demo_queries()
    fingerprint = _fingerprint(corpus_text, sparse.model_name, dense.model_name)

    path: Path = args.path
    shard = path / "shard"
    marker = path / MARKER_NAME
    current = (
        not args.rebuild
        and marker.is_file()
        and json.loads(marker.read_text(encoding="utf-8")).get("fingerprint") == fingerprint
    )
    spec = IndexSpec(name="demo", dense_dim=dense.dim, text_fields=("title", "text"))
    if not current and path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)

    store = QdrantEdgeConnector(shard)
    try:
        if current and store.count() == len(corpus):
            print(
                f"Reusing the demo index at {shard} ({store.count()} documents; --rebuild to re-encode).",
                file=out,
            )
        else:
            store.ensure_index(spec)
            print(f"Indexing {len(corpus)} demo documents into Qdrant Edge at {shard} ...", file=out)
            report = ingest(
                corpus,
                store,
                sparse,
                dense_encoder=dense,
                id_field="_id",
                text_fields=["title", "text"],
                progress=False,
            )
            if report.failed:
                print(
                    f"error: {report.failed} documents failed to index; see {report.dead_letter}",
                    file=sys.stderr,
                )
                return 1
            marker.write_text(
                json.dumps({"fingerprint": fingerprint, "count": len(corpus)}), encoding="utf-8"
            )
            print(
                f"Indexed {report.written} documents in {report.duration_s:.1f} s "
                f"({report.docs_per_s:.0f} docs/s, sparse + dense).",
                file=out,
            )

        searcher = HybridSearcher(store, sparse, dense, signals=SIGNALS, fusion=RRF(k=60), candidates=100)
        print(
            f"\nModels: sparse {_model_label(sparse.model_name, 'splade')} | "
            f"dense {_model_label(dense.model_name, 'dense')}.\n"
            "Fusion: RRF k=60 over sparse, dense and BM25 "
            "(ranks are 1-based; '-' = not in that signal's top 100).",
            file=out,
        )
        found = 0
        for query in queries:
            hits = searcher.search(query.text, k=args.k, explain=True)
            print(f"\nQuery {query.id}: {query.text!r}", file=out)
            print(
                f"  {'rank':>4}  {'id':<14} {'fused':>7}  {'sparse':>6} {'dense':>6} {'bm25':>5}  snippet",
                file=out,
            )
            for hit in hits:
                ranks = [hit.signals[s].rank if s in hit.signals else None for s in SIGNALS]
                rank_cells = " ".join(
                    f"{r if r is not None else '-':>{w}}" for r, w in zip(ranks, (6, 6, 5), strict=True)
                )
                relevant = query.relevant and str(hit.id) in query.relevant
                found += int(bool(relevant))
                mark = "*" if relevant else " "
                text = f"{hit.fields.get('title', '')}: {hit.fields.get('text', '')}"
                row = f" {mark}{hit.rank:>4}  {hit.id!s:<14} {hit.score:>7.4f}  {rank_cells}"
                print(f"{row}  {_snippet(text, 60)}", file=out)
                terms = (hit.explanation or [])[: args.terms]
                if terms:
                    shown = ", ".join(f"{tok} {weight:.2f}" for tok, weight in terms)
                    print(f"  {'':>4}  {'':<14} {'':>7}  matched expansion terms: {shown}", file=out)
        judged = sum(min(len(q.relevant), args.k) for q in queries)
        print(
            f"\n* = a document written to answer that query: {found} of {judged} possible "
            f"in the top {args.k}. "
            f"Done in {time.perf_counter() - started:.1f} s.",
            file=out,
        )
    finally:
        store.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
