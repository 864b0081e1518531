"""Training pairs: from a BEIR split (relevant judgements only) or a JSONL file, with errors naming the line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from spladebridge.evaluation.beir import BeirDataset
from spladebridge.training.data import PairsError, beir_pairs, jsonl_pairs
from spladebridge.training.trainer import TrainConfig

CORPUS = {"d1": {"title": "Solar", "text": "panels"}, "d2": {"title": "", "text": "bread"}}


def dataset(qrels: dict[str, dict[str, int]]) -> BeirDataset:
    return BeirDataset(
        "toy", Path("toy"), CORPUS, {"q1": "solar power", "q2": "baking"}, {"train": qrels}, "x"
    )


def test_beir_pairs_keep_relevant_judgements_with_ids() -> None:
    pairs = beir_pairs(dataset({"q1": {"d1": 2, "d2": 0}, "q2": {"d2": 1}}))
    assert [(p.query_id, p.positive_id, p.relevance) for p in pairs] == [("q1", "d1", 2), ("q2", "d2", 1)]
    assert pairs[0].positive == "Solar panels" and pairs[0].query == "solar power"


def test_beir_pairs_name_what_is_missing() -> None:
    with pytest.raises(PairsError, match="document 'd9', not in the corpus"):
        beir_pairs(dataset({"q1": {"d9": 1}}))
    with pytest.raises(PairsError, match="no relevant judgement"):
        beir_pairs(dataset({"q1": {"d1": 0}}))
    with pytest.raises(ValueError, match="no qrels split 'dev'"):
        beir_pairs(dataset({"q1": {"d1": 1}}), "dev")


def test_jsonl_pairs_take_one_or_many_negatives(tmp_path: Path) -> None:
    path = tmp_path / "pairs.jsonl"
    rows = [
        {"query": "a", "positive": "b"},
        {"query": "c", "positive": "d", "negative": "e"},
        {"query": "f", "positive": "g", "negative": ["h", "i"]},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    assert [p.negatives for p in jsonl_pairs(path)] == [[], ["e"], ["h", "i"]]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "not valid JSON"),
        ('["a", "b"]', "expected an object"),
        ('{"query": "", "positive": "b"}', "field 'query' must be a non-empty string"),
        ('{"query": "a", "positive": "b", "negative": [""]}', "field 'negative'"),
    ],
)
def test_jsonl_pairs_errors_name_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "pairs.jsonl"
    path.write_text('{"query": "a", "positive": "b"}\n' + line + "\n")
    with pytest.raises(PairsError, match=rf"pairs\.jsonl:2: {message}"):
        jsonl_pairs(path)


def test_train_config_refuses_what_cannot_train() -> None:
    with pytest.raises(ValueError, match="batch_size >= 2"):
        TrainConfig(batch_size=1)
    with pytest.raises(ValueError, match="max_pairs must be >= 1"):
        TrainConfig(max_pairs=0)


def test_a_run_worse_than_the_base_model_says_so_and_exits_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A collapsed model (the FLOPS term can drive every weight to 0) must not look like a success."""
    import spladebridge.training as training
    from spladebridge.training.cli import main
    from spladebridge.training.trainer import REGRESSED_ADVICE, TrainResult

    def fake_train(*args: object, **kwargs: object) -> TrainResult:
        return TrainResult(
            tmp_path, 94, [2.0, 3.4], {"ndcg@10": 0.285}, {"ndcg@10": 0.0002, "corpus_active_dims": 0.03}
        )

    monkeypatch.setattr(training, "train", fake_train)
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"query": "q", "positive": "p"}) + "\n")
    assert main(["--pairs", str(pairs), "--output", str(tmp_path / "out")]) == 1
    out = capsys.readouterr().out
    assert "0.2850 -> 0.0002" in out and REGRESSED_ADVICE in out
    better = TrainResult(tmp_path, 10, [1.0], {"ndcg@10": 0.60}, {"ndcg@10": 0.66})
    assert not better.regressed and "WORSE" not in better.summary()
    assert not TrainResult(tmp_path, 10, [1.0]).regressed  # no dev split: nothing to compare
