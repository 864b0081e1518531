"""`spladebridge train` on adi, a few steps: the loss falls, a re-run resumes, the saved folder loads with
SpladeEncoder and carries its model card; hard negatives skip judged positives and near-duplicates of them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import spladebridge as sb
from spladebridge.cli import main
from spladebridge.evaluation.beir import BeirDataset, load_beir
from spladebridge.training import TrainConfig, TrainingPair, mine_hard_negatives, train

pytestmark = pytest.mark.slow

ADI = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "adi"


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any, Any]:
    if not ADI.is_dir():
        pytest.skip(f"the adi collection is not at {ADI}")
    out = tmp_path_factory.mktemp("adi-model")
    config = TrainConfig(max_steps=8, batch_size=8, eval_steps=4, logging_steps=1, dev_fraction=0.2)
    first = train(ADI, out, split="test", config=config, progress=False)
    more = TrainConfig(max_steps=10, batch_size=8, eval_steps=4, logging_steps=1, dev_fraction=0.2)
    second = train(ADI, out, split="test", config=more, progress=False)
    return out, first, second


def test_the_loss_falls_and_the_dev_metric_is_measured(trained: tuple[Path, Any, Any]) -> None:
    _, first, _ = trained
    assert first.steps == 8 and len(first.losses) == 8
    half = len(first.losses) // 2
    assert sum(first.losses[half:]) / half < sum(first.losses[:half]) / half
    assert first.mining["mined"] + first.mining["random"] == first.pairs  # one negative per pair
    assert 0 < first.dev_before["ndcg@10"] <= 1 and 0 < first.dev_after["ndcg@10"] <= 1
    assert first.dev_after["corpus_active_dims"] > 0


def test_a_second_run_resumes_from_the_last_checkpoint(trained: tuple[Path, Any, Any]) -> None:
    out, _, second = trained
    assert second.resumed_from is not None and second.resumed_from.startswith(str(out / "checkpoints"))
    assert second.steps == 10


def test_the_saved_model_loads_encodes_and_has_its_card(trained: tuple[Path, Any, Any]) -> None:
    out, _, second = trained
    encoder = sb.SpladeEncoder(out)
    vector = encoder.encode_documents(["computer based information retrieval systems"])[0]
    assert vector.nnz > 0
    assert encoder.decode(vector, top_k=5)  # the vocabulary travelled with the weights
    card = (out / "README.md").read_text(encoding="utf-8")
    assert card.startswith("---\n")  # the hub's metadata block stays first
    assert "# SPLADE model fine-tuned with spladebridge" in card and "| learning_rate | 0.0002 |" in card
    facts = json.loads((out / "spladebridge_training.json").read_text(encoding="utf-8"))
    assert facts["steps"] == second.steps and facts["config"]["seed"] == 7


def test_mining_skips_positives_and_near_duplicates() -> None:
    corpus = {
        "pos": {"title": "", "text": "solar panels convert sunlight into electricity"},
        "twin": {"title": "", "text": "solar panels convert sunlight into electricity efficiently"},
        "other": {"title": "", "text": "solar wind and sunlight reach the earth"},
        "far": {"title": "", "text": "bread needs flour water and yeast"},
    }
    dataset = BeirDataset(
        "toy",
        Path("toy"),
        corpus,
        {"q": "solar panels sunlight electricity"},
        {"train": {"q": {"pos": 1}}},
        "x",
    )
    pair = TrainingPair("solar panels sunlight electricity", corpus["pos"]["text"], [], "q", "pos")
    counts = mine_hard_negatives([pair], dataset, per_pair=1, max_ratio=0.9)
    assert counts["skipped_too_close"] >= 1  # "twin" scores within 10% of the positive
    assert pair.negatives == [corpus["other"]["text"]]


def test_cli_trains_from_a_pairs_file_and_names_a_bad_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if not ADI.is_dir():
        pytest.skip(f"the adi collection is not at {ADI}")
    adi = load_beir(ADI)
    pairs = tmp_path / "pairs.jsonl"
    rows = [
        {"query": adi.queries[q], "positive": adi.doc_text(d)}
        for q, docs in adi.split("test").items()
        for d in docs
    ]
    pairs.write_text("".join(json.dumps(r) + "\n" for r in rows[:40]))
    out = tmp_path / "model"
    argv = [
        "train",
        "--pairs",
        str(pairs),
        "--output",
        str(out),
        "--max-steps",
        "2",
        "--batch-size",
        "8",
        "--json",
    ]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["steps"] == 2 and result["pairs"] == 40
    assert sb.SpladeEncoder(out).encode_queries(["library automation"])[0].nnz > 0
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(rows[0]) + "\n" + json.dumps({"query": "no positive"}) + "\n")
    assert main(["train", "--pairs", str(bad), "--output", str(tmp_path / "x")]) == 2
    assert f"{bad}:2: field 'positive' must be a non-empty string" in capsys.readouterr().err


def test_the_dev_corpus_is_the_judged_documents_and_their_bm25_candidates() -> None:
    from spladebridge.training.negatives import rank_corpus
    from spladebridge.training.trainer import _evaluator

    if not ADI.is_dir():
        pytest.skip(f"the adi collection is not at {ADI}")
    adi = load_beir(ADI)
    qrels = dict(list(adi.split("test").items())[:4])
    judged = {d for docs in qrels.values() for d in docs}
    evaluator = _evaluator(adi, qrels, 5)
    kept = set(evaluator.corpus_ids)
    top = rank_corpus({q: adi.queries[q] for q in qrels}, adi, 5, "bm25", None)
    assert kept == judged | {d for ranked in top.values() for d in ranked}
    assert len(kept) <= len(judged) + 4 * 5 < len(adi.corpus)
    assert set(_evaluator(adi, qrels, None).corpus_ids) == set(adi.corpus)
