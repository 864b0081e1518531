"""`spladebridge migrate` through its argparse front: copy a file into Qdrant Edge, reindex with an alias swap
on a fake cluster, the dry run, resume / re-run, and usage errors."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path
from typing import Any

import pytest
from migrate_fakes import HashSparseEncoder, MiniLucene

from spladebridge.connectors.elasticsearch import ElasticsearchConnector
from spladebridge.connectors.lucene_client import lucene_client
from spladebridge.migrate import cli


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="spladebridge")
    sub = parser.add_subparsers(dest="command")
    cli.add_parser(sub)
    return parser.parse_args(["migrate", *argv])


def _corpus(path: Path, n: int = 12) -> Path:
    path.write_text(
        "".join(
            json.dumps({"_id": f"p{i}", "title": f"paper {i}", "text": f"topic t{i % 3} results"}) + "\n"
            for i in range(n)
        )
    )
    return path


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    for key in list(__import__("os").environ):
        if key.startswith("SPLADEBRIDGE_"):
            monkeypatch.delenv(key)


def test_copy_file_into_edge_then_rerun_is_a_noop(tmp_path: Path) -> None:
    corpus = _corpus(tmp_path / "papers.jsonl")
    argv = [
        "--mode",
        "copy",
        str(corpus),
        "--to",
        f"qdrant-edge://{tmp_path / 'edge'}",
        "--batch-size",
        "5",
        "-Q",
        "topic t1",
    ]
    out = io.StringIO()
    assert cli.run(_args(*argv), out, encoders=(HashSparseEncoder(), None)) == 0
    text = out.getvalue()
    assert "read 12, encoded 12, written 12, failed 0" in text and "hybrid (after)" in text
    checkpoints = list((tmp_path / ".spladebridge" / "migrate").glob("copy-papers.jsonl-*.checkpoint.json"))
    assert len(checkpoints) == 1 and json.loads(checkpoints[0].read_text())["phase"] == "finished"
    again = io.StringIO()
    assert cli.run(_args(*argv, "--json"), again, encoders=(HashSparseEncoder(), None)) == 0
    report = json.loads(again.getvalue())
    assert report["already_finished"] and report["read"] == 0


def test_reindex_and_dry_run_against_a_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cluster = MiniLucene("elasticsearch")
    cluster.add_index("news-1", {f"n{i}": {"title": f"headline {i}", "text": "story body"} for i in range(7)})
    cluster.aliases["news"] = {"news-1": {}}
    monkeypatch.setattr(cli, "_http_client", lambda settings, url: lucene_client(cluster.client()))
    out = io.StringIO()
    assert (
        cli.run(
            _args("news", "--dry-run", "--url", "http://es:9200"), out, encoders=(HashSparseEncoder(), None)
        )
        == 0
    )
    plan = out.getvalue()
    assert "dry run (reindex, elasticsearch)" in plan and "news-1-splade" in plan and "sparse_vector" in plan
    assert "formula: sparse = 7 docs x" in plan
    writes = [
        c
        for c in cluster.calls()
        if c.startswith(("PUT", "DELETE /news")) or c.endswith(("_bulk", "_aliases"))
    ]
    assert not writes and "DELETE /_pit" in cluster.calls()  # only the sampling PIT is released
    assert not cluster.pits
    out = io.StringIO()
    code = cli.run(
        _args("news", "--url", "http://es:9200", "--json"), out, encoders=(HashSparseEncoder(), None)
    )
    report = json.loads(out.getvalue())
    assert code == 0 and report["ok"] and report["verification"]["counts_ok"]
    assert cluster.aliases["news"] == {"news-1-splade": {}} and "news-1" in cluster.indices
    # what the command produced opens by its alias like any index the connectors made
    connector = ElasticsearchConnector(client=cluster.client(), index="news")
    spec = connector.existing_spec()
    assert (spec.name, spec.sparse_field, spec.text_fields) == ("news", "splade", ("title", "text"))
    (doc,) = connector.get(["n3"])
    assert doc is not None and doc.fields == {"title": "headline 3", "text": "story body"}
    assert doc.sparse is not None and doc.sparse.nnz > 0


def test_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(cli.MigrateUsageError, match="contradict"):
        cli.run(_args("x", "--resume", "--restart"), io.StringIO(), encoders=(HashSparseEncoder(), None))
    corpus = _corpus(tmp_path / "c.jsonl")
    with pytest.raises(cli.MigrateUsageError, match="needs --to"):
        cli.run(_args("--mode", "copy", str(corpus)), io.StringIO(), encoders=(HashSparseEncoder(), None))
    with pytest.raises(cli.MigrateUsageError, match="--batch-size must be positive"):
        cli.run(_args("x", "--batch-size", "0"), io.StringIO(), encoders=(HashSparseEncoder(), None))


def test_unfinished_checkpoint_needs_resume(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    corpus = _corpus(tmp_path / "papers.jsonl")
    ck = tmp_path / "ck.json"
    argv = [
        "--mode",
        "copy",
        str(corpus),
        "--to",
        f"qdrant-edge://{tmp_path / 'edge'}",
        "--checkpoint",
        str(ck),
    ]
    state: dict[str, Any] = {
        "kind": "spladebridge-migration",
        "version": 1,
        "phase": "copy",
        "cursor": None,
        "counts": {},
        "sample": {},
        "runs": 1,
        "finalized": [],
    }
    assert cli.run(_args(*argv), io.StringIO(), encoders=(HashSparseEncoder(), None)) == 0
    saved = json.loads(ck.read_text())
    state["identity"] = saved["identity"]
    ck.write_text(json.dumps(state))
    assert cli.run(_args(*argv), io.StringIO(), encoders=(HashSparseEncoder(), None)) == 1
    assert "--resume" in capsys.readouterr().err
    assert cli.run(_args(*argv, "--resume"), io.StringIO(), encoders=(HashSparseEncoder(), None)) == 0


def test_standalone_main_reports_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["x", "--mode", "to-qdrant", "--url", "qdrant-edge://nowhere"], io.StringIO()) == 2
    assert "error" in capsys.readouterr().err


def test_wires_into_the_main_parser_with_its_common_options(tmp_path: Path) -> None:
    main_cli = pytest.importorskip("spladebridge.cli")
    common = getattr(main_cli, "_common", None)
    if common is None:
        pytest.skip("spladebridge.cli has no _common() to share")
    parser = argparse.ArgumentParser(prog="spladebridge")
    sub = parser.add_subparsers(dest="command")
    cli.add_parser(sub, parents=[common()])
    corpus = _corpus(tmp_path / "wired.jsonl", 4)
    args = parser.parse_args(
        ["migrate", "--mode", "copy", str(corpus), "--to", f"qdrant-edge://{tmp_path / 'e'}", "-q", "--json"]
    )
    out = io.StringIO()
    assert cli.run(args, out, encoders=(HashSparseEncoder(), None)) == 0
    assert json.loads(out.getvalue())["written"] == 4
