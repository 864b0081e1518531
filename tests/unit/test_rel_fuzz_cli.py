"""The CLI under fuzzed arguments (hypothesis): any mix of commands, flags and bad values ends with exit code
0, 1 or 2 and, for mistakes, one `spladebridge: error:` line, never a traceback. The models are swapped for
hashing fakes so that the arguments that happen to be valid run for real in milliseconds, against a Qdrant
Edge shard in a scratch folder.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spladebridge import cli

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest_fakes import HashDenseEncoder, HashSparseEncoder


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        docs = [
            {"_id": f"d{i}", "title": f"t{i}", "text": f"word{i % 5} text {i}", "year": i} for i in range(20)
        ]
        (folder / "corpus.jsonl").write_text("\n".join(json.dumps(d) for d in docs) + "\n", encoding="utf-8")
        (folder / "broken.jsonl").write_bytes(b'{"_id": 1, "text": "ok"}\n{oops\n\xff\xfe\n')
        (folder / "corpus.csv").write_bytes(b"_id,text\n1,hello\n2,\xffbad\n")
        (folder / "bad.toml").write_text("url = [unclosed\n", encoding="utf-8")
        (folder / "types.toml").write_text("batch_size = 'many'\n", encoding="utf-8")
        (folder / "unknown.toml").write_text("colour = 'red'\n", encoding="utf-8")
        (folder / "folder.jsonl").mkdir()
        yield folder


def _values(*items: str) -> st.SearchStrategy[str]:
    return st.sampled_from(items) | st.text(max_size=8)


WITH_VALUE = {
    "--url": _values(
        "qdrant-edge://shard", "ftp://x", "http://", "qdrant://[bad", "http://h:99999", "", "qdrant-edge://"
    ),
    "--index": _values("../etc", "a/b", "UPPER", "", "*", "ok", "a,b", "_all"),
    "--engine": _values("elasticsearch", "opensearch", "solr"),
    "--batch-size": _values("0", "-1", "x", "10", "1e3"),
    "--max-retries": _values("-1", "0", "two"),
    "--max-text-chars": _values("0", "-5", "10"),
    "--timeout": _values("-1", "nan", "inf", "x", "5"),
    "--weights": _values("a,b", "1,2,3", "nan", "-1", "1", "1,1"),
    "--signals": _values("foo", "sparse", "sparse,sparse", "", "dense,bm25"),
    "--filter": _values("junk", "a=", "=b", "year>3", "year=3", "title=t1"),
    "--format": _values("jsonl", "xml", "csv"),
    "--config": _values("/nonexistent.toml", "bad.toml", "types.toml", "unknown.toml"),
    "--text-field": _values("text", ",", "", "nope"),
    "--id-field": _values("_id", "missing", ""),
    "--candidates": _values("0", "-3", "5", "x"),
    "--top-k": _values("0", "-1", "3"),
    "--limit": _values("0", "-3", "5"),
    "--rrf-k": _values("nan", "-5", "60", "x"),
    "--checkpoint": _values("ck.json", "folder.jsonl", "/proc/nope/ck.json"),
    "--dead-letter": _values("dead.jsonl", "folder.jsonl"),
    "--state-dir": _values("state", "/proc/nope"),
    "-k": _values("0", "-1", "3", "x"),
}
BARE = [
    "--json",
    "--quiet",
    "--restart",
    "--insecure",
    "--dense",
    "--no-dense",
    "--explain",
    "--query",
    "-v",
    "--help",
]
POSITIONAL = st.sampled_from(
    ["corpus.jsonl", "missing.jsonl", "broken.jsonl", "corpus.csv", "folder.jsonl", "q", "word1 text", ""]
) | st.text(max_size=10)
COMMANDS = st.sampled_from(["index", "search", "encode", "stats", "engines", "migrate", "bogus", "--version"])


@st.composite
def argvs(draw: st.DrawFn) -> list[str]:
    argv = [draw(COMMANDS)]
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.integers(0, 2))
        if kind == 0:
            flag = draw(st.sampled_from(sorted(WITH_VALUE)))
            argv += [flag, draw(WITH_VALUE[flag])]
        elif kind == 1:
            argv.append(draw(st.sampled_from(BARE)))
        else:
            argv.append(draw(POSITIONAL))
    return argv


def run(argv: list[str], folder: Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPLADEBRIDGE_")}
    env["SPLADEBRIDGE_URL"] = "qdrant-edge://shard"
    with (
        contextlib.chdir(folder),
        mock.patch.dict(os.environ, env, clear=True),
        mock.patch.object(cli, "_sparse_encoder", lambda settings: HashSparseEncoder()),
        mock.patch.object(
            cli, "_dense_encoder", lambda settings: HashDenseEncoder() if settings["dense"] else None
        ),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        try:
            code = cli.main(argv, out=out)
        except SystemExit as exc:  # argparse: --help / --version (0) and usage errors (2)
            code = exc.code if isinstance(exc.code, int) else 2
    return code, out.getvalue(), err.getvalue()


@settings(max_examples=150)
@given(argv=argvs())
def test_fuzzed_arguments_never_give_a_traceback(workdir: Path, argv: list[str]) -> None:
    code, _, err = run(argv, workdir)
    assert code in (0, 1, 2), (argv, code, err)
    if "-v" not in argv:  # --verbose adds the details on purpose
        assert "Traceback" not in err, (argv, err)
    if code == 2 and "usage:" not in err:
        lines = [line for line in err.splitlines() if line.startswith("spladebridge: error:")]
        assert len(lines) == 1, (argv, err)
    # a command that failed half-way released the shard: a connector opens it again
    from spladebridge.connectors.qdrant_edge import QdrantEdgeConnector

    if (workdir / "shard").exists():
        QdrantEdgeConnector(workdir / "shard").close()


def test_valid_commands_work_with_the_fakes(workdir: Path) -> None:
    """The fuzz runs real commands too: indexing then searching the scratch corpus succeeds."""
    code, out, err = run(["index", "corpus.jsonl", "--index", "valid", "--quiet"], workdir)
    assert code == 0, err
    code, out, err = run(["search", "word1 text", "--index", "valid", "--json"], workdir)
    assert code == 0, err
    assert json.loads(out)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["index", "missing.jsonl"], "input file not found"),
        (["index", "corpus.jsonl", "--batch-size", "0"], "--batch-size must be >= 1"),
        (["search", "q", "--weights", "a,b"], "expected comma-separated numbers"),
        (["search", "q", "--url", "ftp://x"], "unknown engine URL scheme"),
        (["search", "q", "--url", "http://h:99999"], "Port out of range"),
        (
            ["search", "q", "--index", "../etc", "--url", "http://127.0.0.1:9", "--engine", "opensearch"],
            "not usable",
        ),
        (["engines", "--config", "bad.toml"], "not valid TOML"),
        (["engines", "--config", "types.toml"], "expected an integer"),
        (["search", "q", "--rrf-k", "nan"], "finite"),
    ],
)
def test_user_mistakes_are_one_clear_line_and_exit_2(workdir: Path, argv: list[str], message: str) -> None:
    code, _, err = run(argv, workdir)
    assert code == 2
    (line,) = err.strip().splitlines()
    assert line.startswith("spladebridge: error:") and message in line, line
