"""The `eval` subcommand: options, JSON output, exit codes and error messages."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
from test_eval_beir import write_beir

from spladebridge.evaluation.cli import add_parser, build_config, main, run


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="spladebridge")
    add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["eval", *argv])


def test_defaults_and_hook() -> None:
    args = parse("--dataset", "d")
    assert args.func is run
    config = build_config(args)
    assert config.signals == ("bm25", "bm25_engine", "splade", "dense")
    assert config.fuse == ("bm25_engine", "splade", "dense")  # the engine's signals, as HybridSearcher
    assert config.fusions == ("hybrid", "rrf", "wsum")  # the product path first
    assert config.pruning == (8, 16, 32, 64, None)
    assert config.engine == "edge" and config.tune


def test_options() -> None:
    args = parse(
        "--dataset",
        "d",
        "--signals",
        "splade,dense",
        "--fuse",
        "splade,dense",
        "--fusion",
        "none",
        "--pruning",
        "4,all",
        "--no-tune",
        "--depth",
        "50",
    )
    config = build_config(args)
    assert config.signals == ("splade", "dense") and config.fusions == ()
    assert config.pruning == (4, None) and not config.tune and config.depth == 50
    assert build_config(parse("--dataset", "d", "--pruning", "none")).pruning == ()


def test_bad_pruning_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse("--dataset", "d", "--pruning", "8,lots")
    assert "pruning size 'lots' is not an integer" in capsys.readouterr().err


def test_json_output_and_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write_beir(tmp_path / "mini")
    out = tmp_path / "out" / "report.json"
    code = main(
        [
            "--dataset",
            str(root),
            "--signals",
            "bm25",
            "--fusion",
            "none",
            "--json",
            "--per-query",
            "--output",
            str(out),
            "--cache-dir",
            str(tmp_path / "cache"),
        ]
    )
    assert code == 0
    obj = json.loads(capsys.readouterr().out)
    assert obj["dataset"] == "mini"
    assert list(obj["systems"]) == ["bm25"]
    assert obj["systems"]["bm25"]["ndcg@10"] == pytest.approx(
        1.0
    )  # each query's words occur in its document only
    assert set(obj["per_query"]["bm25"]) == {"q1", "q2"}
    assert json.loads(out.read_text()) == obj


def test_bad_dataset_exits_2_with_the_reason(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write_beir(tmp_path / "mini")
    (root / "corpus.jsonl").write_text('{"_id": "d1", "text": "x"}\n{broken\n')
    assert main(["--dataset", str(root), "--signals", "bm25", "--fusion", "none"]) == 2
    assert "corpus.jsonl:2: invalid JSON" in capsys.readouterr().err


def test_inconsistent_options_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--dataset", str(tmp_path), "--fuse", "splade"]) == 2
    assert "at least two signals" in capsys.readouterr().err


def test_cli_choices_match_the_runner() -> None:
    from spladebridge.evaluation import cli, runner

    assert cli.ALL_SIGNALS == runner.ALL_SIGNALS
    assert cli.FUSIONS == runner.FUSIONS
