"""The `spladebridge` command against a real Qdrant Edge shard, with fast hashing encoders standing in."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from ingest_fakes import HashDenseEncoder, HashSparseEncoder, corpus, write_jsonl

from spladebridge import cli
from spladebridge.encoder.stats import sparsity_stats


@pytest.fixture(autouse=True)
def fake_models(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(cli, "_sparse_encoder", lambda settings: HashSparseEncoder())
    monkeypatch.setattr(
        cli, "_dense_encoder", lambda settings: HashDenseEncoder(dim=8) if settings["dense"] else None
    )
    monkeypatch.chdir(tmp_path)  # the default state folder and URL land in the test's folder
    for name in ("URL", "INDEX", "CONFIG", "BATCH_SIZE", "DENSE"):
        monkeypatch.delenv(f"SPLADEBRIDGE_{name}", raising=False)


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = cli.main(list(argv), out=out)
    return code, out.getvalue()


def indexed(tmp_path: Path, n: int = 20, *extra: str) -> Path:
    src = write_jsonl(tmp_path / "docs.jsonl", corpus(n))
    code, _ = run("index", str(src), "--url", f"qdrant-edge://{tmp_path / 'db'}", "-q", *extra)
    assert code == 0
    return src


def test_index_reports_and_exit_code_1_when_items_fail(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows: list[Any] = corpus(5)
    rows.insert(2, "{not json")
    src = write_jsonl(tmp_path / "docs.jsonl", rows)
    code, out = run("index", str(src), "--url", f"qdrant-edge://{tmp_path / 'db'}", "--index", "papers")
    assert code == 1
    assert "written 5, failed 1" in out and "line 3: malformed JSON" in out
    dead = list((tmp_path / ".spladebridge" / "ingest").glob("papers-docs-*.dead-letter.jsonl"))
    assert len(dead) == 1 and json.loads(dead[0].read_text())["where"] == "line 3"
    # a second run finds everything settled: nothing to do, nothing failed in this run
    code, out = run(
        "index", str(src), "--url", f"qdrant-edge://{tmp_path / 'db'}", "--index", "papers", "--json"
    )
    report = json.loads(out)
    assert code == 0 and report["skipped"] == 6 and report["written"] == 0 and report["complete"]


def test_index_json_report_and_search_table(tmp_path: Path) -> None:
    src = write_jsonl(tmp_path / "docs.jsonl", corpus(12))
    url = f"qdrant-edge://{tmp_path / 'db'}"
    code, out = run("index", str(src), "--url", url, "--json", "--batch-size", "5")
    report = json.loads(out)
    assert code == 0 and report["written"] == 12 and report["ok"] is True

    query = "title 7\ndocument number 7 about topic 0"  # the stored text: the hash dense encoder finds it too
    code, out = run("search", query, "--url", url, "-k", "3", "--signals", "sparse,dense")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["rank", "id", "score", "sparse", "dense", "text"]
    first = lines[2].split()
    assert first[0] == "1" and first[1] == "d7"  # the exact text ranks first in both signals
    assert first[3] == "1" and first[4] == "1"

    code, out = run("search", "document number 7", "--url", url, "-k", "2", "--json", "--signals", "sparse")
    data = json.loads(out)
    assert code == 0 and data["signals"] == ["sparse"] and len(data["hits"]) == 2
    assert data["hits"][0]["fields"]["title"].startswith("title ")
    assert data["hits"][0]["signals"]["sparse"]["rank"] == 1


def test_search_filter_keeps_only_matching_metadata(tmp_path: Path) -> None:
    indexed(tmp_path)
    url = f"qdrant-edge://{tmp_path / 'db'}"
    code, out = run(
        "search", "document number", "--url", url, "--filter", "year=2004", "--json", "--signals", "sparse"
    )
    assert code == 0
    assert [h["id"] for h in json.loads(out)["hits"]] == ["d4"]


def test_encode_shows_top_terms(tmp_path: Path) -> None:
    code, out = run("encode", "alpha beta beta gamma gamma gamma", "--top-k", "2", "--json")
    data = json.loads(out)
    assert code == 0 and data["nnz"] == 3 and len(data["terms"]) == 2
    assert data["terms"][0][1] > data["terms"][1][1]
    code, out = run("encode", "alpha beta", "--top-k", "5")
    assert code == 0 and out.startswith("2 active dimensions")


def test_stats_matches_the_encoder_statistics(tmp_path: Path) -> None:
    indexed(tmp_path, 15)
    code, out = run("stats", "--url", f"qdrant-edge://{tmp_path / 'db'}", "--json")
    stats = json.loads(out)
    expected = sparsity_stats(
        HashSparseEncoder().encode_documents(
            [f"title {i}\ndocument number {i} about topic {i % 7}" for i in range(15)]
        ),
        30522,
    )
    assert code == 0 and stats["count"] == 15 and stats["scanned"] == 15
    assert stats["mean_active_dims"] == pytest.approx(expected.mean_active_dims)
    assert stats["flops"] == pytest.approx(expected.flops)


def test_engines_reports_capabilities(tmp_path: Path) -> None:
    code, out = run("engines", "--url", f"qdrant-edge://{tmp_path / 'db'}", "--json")
    data = json.loads(out)
    assert code == 0 and data["reachable"] is True
    assert data["capabilities"]["engine"] == "qdrant-edge"
    assert "rrf" in data["capabilities"]["server_fusion"]
    assert data["client_libraries"]["qdrant-edge"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["index", "missing.jsonl"], "input file not found"),
        (["index", "docs.txt"], "cannot tell the format"),
        (["search", "q", "--url", "ftp://x"], "unknown engine URL scheme"),
        (["search", "q", "--url", "qdrant-edge://db", "--engine", "opensearch"], "contradicts the URL"),
        (["search", "q", "-k", "0"], "-k must be >= 1"),
        (["search", "q", "--signals", "sparse,colour"], "choose from sparse, dense, bm25"),
        (["search", "q", "--url", "qdrant-edge://nowhere"], "no index 'spladebridge' in nowhere"),
        (["search", "q", "--filter", "novalue"], "expected FIELD=VALUE"),
        (["index", "docs.jsonl", "--batch-size", "0"], "--batch-size must be >= 1"),
        (["stats", "--config", "absent.toml"], "config file not found"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_user_mistakes_exit_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    (tmp_path / "docs.txt").write_text("x")
    write_jsonl(tmp_path / "docs.jsonl", corpus(1))
    try:
        code, _ = run(*argv)
    except SystemExit as exc:  # argparse's own usage errors
        code = int(exc.code or 0)
    err = capsys.readouterr().err
    assert code == 2
    assert message in err
    assert "Traceback" not in err
    assert err.startswith("spladebridge: error:")


def test_bad_environment_value_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    write_jsonl(tmp_path / "docs.jsonl", corpus(1))
    monkeypatch.setenv("SPLADEBRIDGE_BATCH_SIZE", "lots")
    code, _ = run("index", "docs.jsonl")
    assert code == 2 and "SPLADEBRIDGE_BATCH_SIZE: expected an integer" in capsys.readouterr().err


def test_settings_file_and_environment_pick_the_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "spladebridge.toml").write_text(
        f'url = "qdrant-edge://{tmp_path / "db"}"\nindex = "from_file"\n'
    )
    src = write_jsonl(tmp_path / "docs.jsonl", corpus(3))
    assert run("index", str(src), "-q")[0] == 0
    assert (tmp_path / "db" / "from_file").is_dir()
    monkeypatch.setenv("SPLADEBRIDGE_INDEX", "from_env")
    assert run("index", str(src), "-q")[0] == 0
    assert (tmp_path / "db" / "from_env").is_dir()
    assert run("index", str(src), "-q", "--index", "from_flag")[0] == 0
    assert (tmp_path / "db" / "from_flag").is_dir()


def test_no_dense_index_rejects_the_dense_signal(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    indexed(tmp_path, 5, "--no-dense")
    code, _ = run("search", "q", "--url", f"qdrant-edge://{tmp_path / 'db'}", "--signals", "dense")
    assert code == 2 and "has no dense vectors" in capsys.readouterr().err


def test_demo_is_dispatched_with_its_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    from spladebridge import demo

    seen: list[list[str]] = []

    def fake_main(argv: list[str]) -> int:
        seen.append(list(argv))
        return 0

    monkeypatch.setattr(demo, "main", fake_main)
    assert cli.main(["demo", "--fresh", "-k", "3"]) == 0
    assert seen == [["--fresh", "-k", "3"]]


def test_engines_reports_an_unreachable_http_engine_with_exit_1(tmp_path: Path) -> None:
    code, out = run("engines", "--url", "http://127.0.0.1:9", "--timeout", "2", "--json")
    data = json.loads(out)
    assert code == 1 and data["reachable"] is False and "cannot reach http://127.0.0.1:9" in data["error"]


def test_ctrl_c_during_index_exits_130_and_a_rerun_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    src = write_jsonl(tmp_path / "docs.jsonl", corpus(30))
    url = f"qdrant-edge://{tmp_path / 'db'}"
    monkeypatch.setattr(cli, "_sparse_encoder", lambda settings: HashSparseEncoder(interrupt_on_call=3))
    code, _ = run("index", str(src), "--url", url, "--batch-size", "5")
    assert code == 130 and "run the same command again to resume" in capsys.readouterr().err
    monkeypatch.setattr(cli, "_sparse_encoder", lambda settings: HashSparseEncoder())
    code, out = run("index", str(src), "--url", url, "--batch-size", "5", "--json")
    report = json.loads(out)
    assert code == 0 and report["skipped"] == 10 and report["written"] == 20
