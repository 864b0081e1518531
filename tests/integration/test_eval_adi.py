"""Regression test on the tiny `adi` collection: the real models, the real engine, committed numbers.

Runs the whole evaluation (SPLADE-tiny, all-MiniLM-L6-v2, Qdrant Edge: the product path `HybridSearcher`
with its defaults, the engine's signals, the in-process BM25 reference, RRF and weighted-sum fusion) on adi's 82 documents and 35 judged queries, and checks every system's nDCG@10
against `eval_adi_expected.json` (the JSON report of a real `python -m spladebridge.evaluation --json`
run, committed). A model, tokeniser, engine or fusion change that moves quality shows up here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from spladebridge.evaluation.report import EvalReport
from spladebridge.evaluation.runner import DenseTextEncoder, EvalConfig, SparseTextEncoder, run_evaluation

ADI = Path(__file__).resolve().parents[2].parent / "shared" / "datasets" / "adi"
EXPECTED: dict[str, Any] = json.loads(Path(__file__).with_name("eval_adi_expected.json").read_text())
TOLERANCE = 0.02
HYBRID_SLACK = 0.01

if not (ADI / "corpus.jsonl").is_file():
    pytest.skip(
        f"the adi test collection is not at {ADI} (shared/datasets beside the repository)",
        allow_module_level=True,
    )


@pytest.fixture(scope="module")
def encoders() -> tuple[SparseTextEncoder, DenseTextEncoder]:
    from spladebridge.encoder.dense import DenseEncoder
    from spladebridge.encoder.splade import SpladeEncoder

    return SpladeEncoder(), DenseEncoder()


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("adi-eval-cache")


def evaluate_adi(encoders: tuple[SparseTextEncoder, DenseTextEncoder], cache_dir: Path) -> EvalReport:
    sparse, dense = encoders
    config = EvalConfig(dataset_dir=ADI, cache_dir=cache_dir, pruning=(8, None))
    return run_evaluation(config, sparse_encoder=sparse, dense_encoder=dense)


@pytest.fixture(scope="module")
def report(encoders: tuple[SparseTextEncoder, DenseTextEncoder], cache_dir: Path) -> EvalReport:
    return evaluate_adi(encoders, cache_dir)


def test_every_system_matches_the_committed_ndcg(report: EvalReport) -> None:
    expected = EXPECTED["systems"]
    assert set(report.systems) == set(expected)
    off = {
        name: (round(res.means["ndcg@10"], 4), expected[name]["ndcg@10"])
        for name, res in report.systems.items()
        if abs(res.means["ndcg@10"] - expected[name]["ndcg@10"]) > TOLERANCE
    }
    assert not off, f"nDCG@10 moved by more than {TOLERANCE} (measured, expected): {off}"


@pytest.mark.parametrize("hybrid", ["hybrid", "hybrid_rrf", "hybrid_wsum"])
def test_hybrid_is_not_below_the_best_single_signal(report: EvalReport, hybrid: str) -> None:
    singles = {n: r.means["ndcg@10"] for n, r in report.systems.items() if r.kind == "single"}
    best = max(singles.values())
    value = report.systems[hybrid].means["ndcg@10"]
    assert value >= best - HYBRID_SLACK, f"{hybrid} {value:.4f} vs best single {best:.4f} ({singles})"


def test_report_is_complete(report: EvalReport) -> None:
    obj = report.to_json_obj()
    assert obj["dataset"] == "adi" and report.n_queries == 35 and report.n_docs == 82
    for metrics in obj["systems"].values():
        assert set(metrics) == {"ndcg@10", "recall@100", "mrr@10"}
    assert report.systems["hybrid_wsum"].tuned_on is None  # adi has only test qrels: never tuned on them
    assert {w.system for w in report.wins_losses} == {"hybrid", "hybrid_rrf", "hybrid_wsum"}
    # the product path is HybridSearcher's defaults, over the engine's own BM25
    assert "HybridSearcher defaults" in report.systems["hybrid"].description
    assert "bm25" in report.systems["hybrid"].description
    assert [p.max_terms for p in report.pruning] == [8, None]
    assert report.pruning[-1].ndcg_at_10 == pytest.approx(report.systems["splade"].means["ndcg@10"])


def test_second_run_reuses_the_index(
    report: EvalReport, encoders: tuple[SparseTextEncoder, DenseTextEncoder], cache_dir: Path
) -> None:
    again = evaluate_adi(encoders, cache_dir)
    assert "index reused from an earlier run" in again.notes
    for name, res in report.systems.items():
        assert again.systems[name].means == pytest.approx(res.means), name
