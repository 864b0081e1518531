"""Run one evaluation end to end: load a BEIR folder, encode (cached), index (reused), search, fuse, score.

The product path is measured by default: `hybrid` is the `HybridSearcher` a user builds on the chosen engine
with its defaults (the query encoded by the searcher, the engine's BM25, server-side fusion where the
searcher uses it). Signals: `bm25_engine` (the engine's own BM25), `splade` and `dense` (through the
engine), and `bm25`, the in-process Lucene-style baseline (`lexical.LexicalBM25`), kept as a reference only:
no `HybridSearcher` uses it. Client-side fusions of the engine's signals, for comparison: `rrf` (untuned,
k=60) and `wsum` (min-max weighted sum; weights tuned on the dev or train qrels when the dataset has them,
equal weights otherwise, never tuned on test).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from spladebridge.connectors.base import Connector, Document, IndexSpec, UnsupportedOperation
from spladebridge.encoder.sparse_vector import SparseVector
from spladebridge.evaluation.beir import BeirDataset, load_beir
from spladebridge.evaluation.cache import VectorCache, fingerprint_object
from spladebridge.evaluation.compare import best_system, wins_losses
from spladebridge.evaluation.engine import describe_engine, open_engine
from spladebridge.evaluation.fusion import RankedRun, fuse_rrf, fuse_wsum, ranked_to_run, tune_weights
from spladebridge.evaluation.lexical import LexicalBM25
from spladebridge.evaluation.metrics import DEFAULT_METRICS, evaluate
from spladebridge.evaluation.report import EvalReport, PruningPoint, SystemResult, machine_description
from spladebridge.hybrid.settings import describe as describe_fusion

__all__ = [
    "ALL_SIGNALS",
    "DEFAULT_PRUNING",
    "DenseTextEncoder",
    "EvalConfig",
    "SparseTextEncoder",
    "run_evaluation",
]

log = logging.getLogger("spladebridge.evaluation")

ALL_SIGNALS: tuple[str, ...] = ("bm25", "bm25_engine", "splade", "dense")
#: `hybrid`: the HybridSearcher with its defaults (the product path); `rrf`, `wsum`: client-side references.
FUSIONS: tuple[str, ...] = ("hybrid", "rrf", "wsum")
#: What the reference fusions combine by default: the engine's signals, as HybridSearcher does.
DEFAULT_FUSE: tuple[str, ...] = ("bm25_engine", "splade", "dense")
DEFAULT_PRUNING: tuple[int | None, ...] = (8, 16, 32, 64, None)


class SparseTextEncoder(Protocol):
    """What the runner needs from a SPLADE encoder."""

    def encode_documents(self, texts: Sequence[str]) -> Sequence[SparseVector]: ...

    def encode_queries(self, texts: Sequence[str]) -> Sequence[SparseVector]: ...


class DenseTextEncoder(Protocol):
    """What the runner needs from a dense encoder."""

    @property
    def dim(self) -> int: ...

    def encode(self, texts: Sequence[str]) -> NDArray[np.float32]: ...


@dataclass(slots=True)
class EvalConfig:
    """What to evaluate and how; every field has the default the CLI uses."""

    dataset_dir: Path
    engine: str | None = None
    signals: tuple[str, ...] = ("bm25", "bm25_engine", "splade", "dense")
    fuse: tuple[str, ...] = DEFAULT_FUSE
    fusions: tuple[str, ...] = FUSIONS
    depth: int = 100
    rrf_k: int = 60
    tune_metric: str = "ndcg@10"
    tune_step: float = 0.1
    tune: bool = True
    pruning: tuple[int | None, ...] = DEFAULT_PRUNING
    cache_dir: Path = Path(".spladebridge/eval-cache")
    max_queries: int | None = None
    per_query: bool = False
    name: str | None = None
    #: The `hybrid` system's fusion and candidate depth (None: HybridSearcher's defaults, the product path).
    hybrid_fusion: Any = None
    hybrid_candidates: int | None = None

    def __post_init__(self) -> None:
        unknown = [s for s in (*self.signals, *self.fuse) if s not in ALL_SIGNALS]
        if unknown:
            raise ValueError(f"unknown signal {unknown[0]!r}; choose from {', '.join(ALL_SIGNALS)}")
        bad = [f for f in self.fusions if f not in FUSIONS]
        if bad:
            raise ValueError(f"unknown fusion {bad[0]!r}; choose from {', '.join(FUSIONS)}")
        if set(self.fusions) & {"rrf", "wsum"} and len(self.fuse) < 2:
            raise ValueError(f"fusion needs at least two signals to fuse, got {list(self.fuse)}")
        if self.depth < 10:
            raise ValueError(f"depth must be at least 10 (nDCG@10 needs ten results), got {self.depth}")
        if self.max_queries is not None and self.max_queries < 1:
            raise ValueError(f"max_queries must be positive, got {self.max_queries}")
        for n in self.pruning:
            if n is not None and n < 1:
                raise ValueError(f"pruning sizes must be positive (or None for all terms), got {n}")

    def needed(self) -> set[str]:
        """Every signal that is reported alone or fused (the product path needs both encoders)."""
        needed = set(self.signals) | (set(self.fuse) if set(self.fusions) & {"rrf", "wsum"} else set())
        if "hybrid" in self.fusions:
            needed |= {"splade", "dense"}
        return needed


@dataclass(slots=True)
class _Encoded:
    doc_ids: list[str]
    doc_sparse: list[SparseVector] | None = None
    doc_dense: NDArray[np.float32] | None = None
    query_sparse: dict[str, list[SparseVector]] = field(default_factory=dict)
    query_dense: dict[str, NDArray[np.float32]] = field(default_factory=dict)
    cache_hits: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _SignalRun:
    runs: dict[str, RankedRun]
    latency_ms: list[float]


def _latency(samples: Sequence[float]) -> dict[str, float]:
    arr = np.asarray(samples, dtype=np.float64)
    if arr.size == 0:
        return {}
    return {
        "mean": float(arr.mean()),
        "p50": float(np.percentile(arr, 50)),
        "p95": float(np.percentile(arr, 95)),
    }


def _default_sparse() -> SparseTextEncoder:
    from spladebridge.encoder.splade import SpladeEncoder

    encoder: SparseTextEncoder = SpladeEncoder()
    return encoder


def _default_dense() -> DenseTextEncoder:
    from spladebridge.encoder.dense import DenseEncoder

    encoder: DenseTextEncoder = DenseEncoder()
    return encoder


def _query_sets(dataset: BeirDataset, config: EvalConfig) -> dict[str, dict[str, str]]:
    """`{split: {qid: text}}`: the test queries, plus the tuning split's when weights will be tuned."""
    sets = {"test": dataset.judged_queries("test")}
    tuning = dataset.tuning_split()
    if "wsum" in config.fusions and config.tune and tuning is not None:
        sets[tuning] = dataset.judged_queries(tuning)
    if config.max_queries is not None:
        sets = {s: dict(list(q.items())[: config.max_queries]) for s, q in sets.items()}
    return sets


def _encode(
    dataset: BeirDataset,
    queries: dict[str, dict[str, str]],
    needed: set[str],
    sparse: SparseTextEncoder | None,
    dense: DenseTextEncoder | None,
    cache: VectorCache,
    keys: dict[str, str],
) -> _Encoded:
    """Encode documents and queries, each model's vectors cached under that model's own key."""
    doc_ids = list(dataset.corpus)
    texts = [dataset.doc_text(d) for d in doc_ids]
    out = _Encoded(doc_ids)
    if "splade" in needed:
        assert sparse is not None
        out.doc_sparse, hit = cache.sparse(keys["splade"], "docs", doc_ids, texts, sparse.encode_documents)
        if hit:
            out.cache_hits.append("docs-splade")
        for split, qs in queries.items():
            vecs, _ = cache.sparse(
                keys["splade"], f"queries-{split}", list(qs), list(qs.values()), sparse.encode_queries
            )
            out.query_sparse[split] = vecs
    if "dense" in needed:
        assert dense is not None
        out.doc_dense, hit = cache.dense(keys["dense"], "docs", doc_ids, texts, dense.encode)
        if hit:
            out.cache_hits.append("docs-dense")
        for split, qs in queries.items():
            mat, _ = cache.dense(keys["dense"], f"queries-{split}", list(qs), list(qs.values()), dense.encode)
            out.query_dense[split] = mat
    return out


def _documents(dataset: BeirDataset, enc: _Encoded) -> Iterator[Document]:
    for row, doc_id in enumerate(enc.doc_ids):
        doc = dataset.corpus[doc_id]
        yield Document(
            id=doc_id,
            fields={"title": doc.get("title", ""), "text": doc.get("text", "")},
            sparse=enc.doc_sparse[row] if enc.doc_sparse is not None else SparseVector.empty(),
            dense=enc.doc_dense[row] if enc.doc_dense is not None else None,
        )


def _build_index(connector: Connector, dataset: BeirDataset, enc: _Encoded) -> bool:
    """Upsert the collection unless the index already holds exactly it; True when reused."""
    if connector.count() == len(enc.doc_ids):
        return True
    report = connector.upsert(_documents(dataset, enc))
    if not report.ok:
        first = report.failures()[0]
        raise RuntimeError(
            f"indexing {dataset.name}: {report.failed} of {len(report)} documents failed, "
            f"first {first.id!r}: {first.status} {first.error}"
        )
    connector.flush()
    optimize = getattr(connector, "optimize", None)
    if callable(optimize):
        optimize()
    return False


def _timed_search(
    queries: dict[str, dict[str, str]], search: Callable[[str, str, int], list[tuple[str, float]]]
) -> _SignalRun:
    runs: dict[str, RankedRun] = {}
    latency: list[float] = []
    for split, qs in queries.items():
        run: RankedRun = {}
        for row, qid in enumerate(qs):
            start = time.perf_counter()
            run[qid] = search(split, qid, row)
            if split == "test":
                latency.append((time.perf_counter() - start) * 1000.0)
        runs[split] = run
    return _SignalRun(runs, latency)


def _pairs(hits: Sequence[object]) -> list[tuple[str, float]]:
    return [(str(getattr(h, "id")), float(getattr(h, "score"))) for h in hits]  # noqa: B009


def _signal_runs(
    config: EvalConfig,
    dataset: BeirDataset,
    queries: dict[str, dict[str, str]],
    enc: _Encoded,
    connector: Connector | None,
    notes: list[str],
) -> dict[str, _SignalRun]:
    k = config.depth
    out: dict[str, _SignalRun] = {}
    needed = config.needed()
    if "bm25" in needed:
        bm25 = LexicalBM25()
        bm25.index(enc.doc_ids, [dataset.doc_text(d) for d in enc.doc_ids])
        runs: dict[str, RankedRun] = {}
        start = time.perf_counter()
        for split, qs in queries.items():
            runs[split] = {q: sorted(d.items(), key=lambda x: -x[1]) for q, d in bm25.search(qs, k).items()}
        per_query = (time.perf_counter() - start) * 1000.0 / max(1, sum(len(q) for q in queries.values()))
        out["bm25"] = _SignalRun(runs, [per_query])
    if connector is None:
        return out
    if "bm25_engine" in needed:
        try:
            out["bm25_engine"] = _timed_search(
                queries, lambda s, q, r: _pairs(connector.search_text(queries[s][q], k))
            )
        except UnsupportedOperation as exc:
            notes.append(f"bm25_engine skipped: {exc}")
    if "splade" in needed:
        out["splade"] = _timed_search(
            queries, lambda s, q, r: _pairs(connector.search_sparse(enc.query_sparse[s][r], k))
        )
    if "dense" in needed:
        out["dense"] = _timed_search(
            queries, lambda s, q, r: _pairs(connector.search_dense(enc.query_dense[s][r], k))
        )
    return out


def _pruning_curve(
    config: EvalConfig, qrels: dict[str, dict[str, int]], enc: _Encoded, connector: Connector, qids: list[str]
) -> list[PruningPoint]:
    points: list[PruningPoint] = []
    vectors = enc.query_sparse["test"]
    for max_terms in config.pruning:
        pruned = [v if max_terms is None else v.top_k(max_terms) for v in vectors]
        run: RankedRun = {}
        latency: list[float] = []
        for qid, vec in zip(qids, pruned, strict=True):
            start = time.perf_counter()
            run[qid] = _pairs(connector.search_sparse(vec, config.depth))
            latency.append((time.perf_counter() - start) * 1000.0)
        ndcg = evaluate(qrels, ranked_to_run(run), ("ndcg@10",)).means["ndcg@10"]
        lat = _latency(latency)
        points.append(
            PruningPoint(
                max_terms=max_terms,
                mean_terms=float(np.mean([v.nnz for v in pruned])) if pruned else 0.0,
                ndcg_at_10=ndcg,
                latency_ms_mean=lat.get("mean", 0.0),
                latency_ms_p95=lat.get("p95", 0.0),
            )
        )
    return points


def _models_key(sparse: SparseTextEncoder | None, dense: DenseTextEncoder | None) -> dict[str, str]:
    models: dict[str, str] = {}
    if sparse is not None:
        models["splade"] = f"{type(sparse).__name__}:{fingerprint_object(sparse)}"
    if dense is not None:
        models["dense"] = f"{type(dense).__name__}:{fingerprint_object(dense)}"
    return models


def run_evaluation(
    config: EvalConfig,
    *,
    sparse_encoder: SparseTextEncoder | None = None,
    dense_encoder: DenseTextEncoder | None = None,
    connector_factory: Callable[[IndexSpec], Connector] | None = None,
) -> EvalReport:
    """Evaluate every configured signal and fusion on the dataset's test queries; see the module doc."""
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    dataset = load_beir(config.dataset_dir, name=config.name)
    qrels_test = dataset.split("test")
    queries = _query_sets(dataset, config)
    qrels_test = {q: qrels_test[q] for q in queries["test"]}
    timings["load_s"] = time.perf_counter() - t0
    needed = config.needed()
    notes = list(dataset.notes)

    sparse = (sparse_encoder or _default_sparse()) if "splade" in needed else None
    dense = (dense_encoder or _default_dense()) if "dense" in needed else None
    models = _models_key(sparse, dense)
    key = hashlib.sha256(f"{dataset.fingerprint}|{sorted(models.items())}".encode()).hexdigest()[:16]
    cache_key = f"{dataset.name}-{key}"
    vector_keys = {
        kind: f"{dataset.name}-{dataset.fingerprint}-{kind}-{model.rsplit(':', 1)[-1]}"
        for kind, model in models.items()
    }

    t1 = time.perf_counter()
    enc = _encode(
        dataset, queries, needed, sparse, dense, VectorCache(config.cache_dir / "vectors"), vector_keys
    )
    timings["encode_s"] = time.perf_counter() - t1
    log.info(
        "%s: encoded in %.1fs (cache hits: %s)", dataset.name, timings["encode_s"], enc.cache_hits or "none"
    )

    engine_signals = needed & {"bm25_engine", "splade", "dense"}
    connector: Connector | None = None
    reused = False
    try:
        if engine_signals:
            spec = IndexSpec(
                name=f"eval-{cache_key}",
                dense_field="dense" if dense is not None else None,
                dense_dim=int(dense.dim) if dense is not None else None,
                text_fields=("title", "text"),
                lexical=True,
            )
            t2 = time.perf_counter()
            connector = (
                connector_factory(spec)
                if connector_factory
                else open_engine(config.engine, spec, config.cache_dir)
            )
            connector.ensure_index(spec)
            reused = _build_index(connector, dataset, enc)
            timings["index_s"] = time.perf_counter() - t2
            log.info(
                "%s: index %s in %.1fs", dataset.name, "reused" if reused else "built", timings["index_s"]
            )
        t3 = time.perf_counter()
        signal_runs = _signal_runs(config, dataset, queries, enc, connector, notes)
        timings["search_s"] = time.perf_counter() - t3
        product: _ProductRun | None = None
        if "hybrid" in config.fusions and connector is not None and sparse is not None:
            t5 = time.perf_counter()
            product = _product_run(config, queries["test"], connector, sparse, dense)
            timings["hybrid_s"] = time.perf_counter() - t5
        report = EvalReport(
            dataset=dataset.name,
            n_docs=len(dataset.corpus),
            n_queries=len(queries["test"]),
            engine=describe_engine(config.engine) if connector_factory is None else "custom",
            models=models,
            timings_s=timings,
            machine=machine_description(),
            notes=notes,
        )
        if engine_signals:
            notes.append("index reused from an earlier run" if reused else "index built in this run")
        _score_systems(config, dataset, queries, qrels_test, signal_runs, report, product)
        if "splade" in needed and connector is not None and config.pruning:
            t4 = time.perf_counter()
            report.pruning = _pruning_curve(config, qrels_test, enc, connector, list(queries["test"]))
            timings["pruning_s"] = time.perf_counter() - t4
    finally:
        if connector is not None:
            connector.close()
    timings["total_s"] = time.perf_counter() - t0
    return report


@dataclass(slots=True)
class _ProductRun:
    run: RankedRun
    latency_ms: list[float]
    description: str


def _product_run(
    config: EvalConfig,
    queries: dict[str, str],
    connector: Connector,
    sparse: SparseTextEncoder,
    dense: DenseTextEncoder | None,
) -> _ProductRun:
    """The test queries through `HybridSearcher(connector, sparse, dense)` with its defaults, one call per
    query as a service makes them (the searcher encodes each query itself)."""
    from spladebridge.hybrid import HybridSearcher

    options: dict[str, Any] = {}
    if config.hybrid_fusion is not None:
        options["fusion"] = config.hybrid_fusion
    if config.hybrid_candidates is not None:
        options["candidates"] = config.hybrid_candidates
    searcher = HybridSearcher(connector, sparse, dense, **options)  # type: ignore[arg-type]
    run: RankedRun = {}
    latencies: list[float] = []
    for qid, text in queries.items():
        start = time.perf_counter()
        hits = searcher.search(text, k=config.depth)
        latencies.append((time.perf_counter() - start) * 1000.0)
        run[qid] = [(str(h.id), float(h.score)) for h in hits]
    where = (
        "client-side"
        if searcher.server_fusion_problem is not None
        else "server-side (the engine's own fusion)"
    )
    why = f" ({searcher.server_fusion_problem})" if searcher.server_fusion_problem else ""
    description = (
        f"HybridSearcher {'defaults' if not options else 'with ' + ', '.join(options)}, the product path: "
        f"{describe_fusion(searcher.fusion)} of "
        f"{'+'.join(searcher.signals)}, {searcher.candidates} candidates per signal, fused {where}{why}"
    )
    return _ProductRun(run, latencies, description)


_DESCRIPTIONS = {
    "bm25": (
        "reference only, not the product path: BM25 in-process (bm25s, Lucene scoring, k1=0.9 b=0.4, "
        "Snowball stemming, stop words)"
    ),
    "bm25_engine": "BM25 of the engine itself",
    "splade": "SPLADE through the engine (sparse dot product)",
    "dense": "dense embeddings through the engine (cosine)",
}


def _score_systems(
    config: EvalConfig,
    dataset: BeirDataset,
    queries: dict[str, dict[str, str]],
    qrels: dict[str, dict[str, int]],
    signal_runs: dict[str, _SignalRun],
    report: EvalReport,
    product: _ProductRun | None = None,
) -> None:
    singles: list[str] = []
    for name in config.signals:
        if name not in signal_runs:
            continue
        sr = signal_runs[name]
        scores = evaluate(qrels, ranked_to_run(sr.runs["test"], config.depth), DEFAULT_METRICS)
        report.add(
            SystemResult(
                name=name,
                kind="single",
                description=_DESCRIPTIONS[name],
                means=scores.means,
                per_query=scores.per_query,
                latency_ms=_latency(sr.latency_ms),
            )
        )
        singles.append(name)
    if product is not None:
        scores = evaluate(qrels, ranked_to_run(product.run, config.depth), DEFAULT_METRICS)
        report.add(
            SystemResult(
                name="hybrid",
                kind="fusion",
                description=product.description,
                means=scores.means,
                per_query=scores.per_query,
                latency_ms=_latency(product.latency_ms),
            )
        )
    fused_names = [s for s in config.fuse if s in signal_runs]
    if set(config.fusions) & {"rrf", "wsum"} and len(fused_names) >= 2:
        test_runs = [signal_runs[s].runs["test"] for s in fused_names]
        if "rrf" in config.fusions:
            fused = fuse_rrf(test_runs, k=config.rrf_k, limit=config.depth)
            scores = evaluate(qrels, ranked_to_run(fused), DEFAULT_METRICS)
            report.add(
                SystemResult(
                    name="hybrid_rrf",
                    kind="fusion",
                    description=f"reference: client-side RRF (k={config.rrf_k}, untuned) of {'+'.join(fused_names)}",
                    means=scores.means,
                    per_query=scores.per_query,
                    params={"k": config.rrf_k, "signals": fused_names},
                )
            )
        if "wsum" in config.fusions:
            weights: tuple[float, ...] = tuple(1.0 / len(fused_names) for _ in fused_names)
            tuned_on: str | None = None
            params: dict[str, object] = {"signals": fused_names, "normalize": "minmax", "missing": "zero"}
            split = next((s for s in queries if s != "test"), None)
            if config.tune and split is not None:
                tuned = tune_weights(
                    fused_names,
                    [signal_runs[s].runs[split] for s in fused_names],
                    {q: dataset.split(split)[q] for q in queries[split]},
                    split=split,
                    metric=config.tune_metric,
                    step=config.tune_step,
                )
                weights, tuned_on = tuned.weights, split
                params.update(
                    {"tuned_score": tuned.score, "tuned_metric": tuned.metric, "grid_size": tuned.tried}
                )
            params["weights"] = dict(zip(fused_names, weights, strict=True))
            fused = fuse_wsum(test_runs, weights, limit=config.depth)
            scores = evaluate(qrels, ranked_to_run(fused), DEFAULT_METRICS)
            how = (
                f"weights tuned on {tuned_on}" if tuned_on else "equal weights, untuned (no train/dev qrels)"
            )
            report.add(
                SystemResult(
                    name="hybrid_wsum",
                    kind="fusion",
                    description=f"reference: client-side min-max weighted sum of {'+'.join(fused_names)}, {how}",
                    means=scores.means,
                    per_query=scores.per_query,
                    tuned_on=tuned_on,
                    params=params,
                )
            )
    if singles:
        best = best_system({n: report.systems[n].means for n in singles})
        for name, res in report.systems.items():
            if res.kind == "fusion":
                report.wins_losses.append(
                    wins_losses(
                        name,
                        res.per_query_values("ndcg@10"),
                        best,
                        report.systems[best].per_query_values("ndcg@10"),
                    )
                )
