"""Report structures, JSON shape, the Markdown results table and the PNG plot."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from spladebridge.evaluation.compare import wins_losses
from spladebridge.evaluation.plot import plot_metric
from spladebridge.evaluation.report import EvalReport, PruningPoint, SystemResult, results_table


def make_report() -> EvalReport:
    report = EvalReport(dataset="mini", n_docs=3, n_queries=2, engine="qdrant-edge")
    report.add(
        SystemResult(
            "bm25", "single", "BM25", {"ndcg@10": 0.5}, {"q1": {"ndcg@10": 1.0}, "q2": {"ndcg@10": 0.0}}
        )
    )
    report.add(
        SystemResult(
            "hybrid_rrf", "fusion", "RRF", {"ndcg@10": 0.75}, {"q1": {"ndcg@10": 1.0}, "q2": {"ndcg@10": 0.5}}
        )
    )
    report.wins_losses.append(
        wins_losses(
            "hybrid_rrf",
            report.systems["hybrid_rrf"].per_query_values("ndcg@10"),
            "bm25",
            report.systems["bm25"].per_query_values("ndcg@10"),
        )
    )
    report.pruning.append(PruningPoint(None, 12.5, 0.4, 1.0, 2.0))
    return report


def test_json_shape() -> None:
    obj = make_report().to_json_obj()
    json.dumps(obj)
    assert obj["dataset"] == "mini"
    assert obj["systems"] == {"bm25": {"ndcg@10": 0.5}, "hybrid_rrf": {"ndcg@10": 0.75}}
    assert obj["wins_losses"][0]["wins"] == 1 and obj["wins_losses"][0]["ties"] == 1
    assert obj["pruning"][0]["max_terms"] == "all"
    assert "per_query" not in obj
    assert make_report().to_json_obj(per_query=True)["per_query"]["bm25"]["q2"] == {"ndcg@10": 0.0}


def test_duplicate_system_is_refused() -> None:
    report = make_report()
    with pytest.raises(ValueError, match="already in the report"):
        report.add(SystemResult("bm25", "single", "again", {}))


def test_text_summary_mentions_every_system() -> None:
    text = make_report().to_text(metrics=("ndcg@10",))
    assert "hybrid_rrf" in text and "0.7500" in text
    assert "1 wins, 0 losses, 1 ties" in text


def test_results_table() -> None:
    table = results_table(
        {
            "scifact": {"bm25": {"ndcg@10": 0.6762}},
            "adi": {"bm25": {"ndcg@10": 0.48}, "dense": {"ndcg@10": 0.3}},
        },
        ["bm25", "dense"],
        published={"BM25 (Pyserini)": {"scifact": 0.679}},
    )
    lines = table.splitlines()
    assert lines[0] == "| dataset | bm25 | dense | BM25 (Pyserini) |"
    assert lines[2] == "| scifact | 0.676 | — | 0.679 |"
    assert lines[3] == "| adi | 0.480 | 0.300 | — |"


def test_plot_writes_a_png(tmp_path: Path) -> None:
    out = plot_metric(
        {"a": {"bm25": {"ndcg@10": 0.5}, "dense": {"ndcg@10": 0.4}}, "b": {"bm25": {"ndcg@10": 0.3}}},
        ["bm25", "dense"],
        tmp_path / "sub" / "plot.png",
        published={"ref": {"a": 0.6}},
    )
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 5000
    with pytest.raises(ValueError, match="nothing to plot"):
        plot_metric({}, ["bm25"], tmp_path / "x.png")
