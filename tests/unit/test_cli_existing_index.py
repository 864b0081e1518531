"""Read-only commands open an existing index by name with its stored spec (never create one or check it
against CLI defaults); `--filter` values and `--rrf-k` are parsed strictly."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from es_fake import MiniES
from ingest_fakes import HashDenseEncoder, HashSparseEncoder

from spladebridge import cli
from spladebridge.connectors.base import Connector, Document, IndexSpec
from spladebridge.connectors.elasticsearch import ElasticsearchConnector
from spladebridge.connectors.filters import Term

URL = "http://fake-es:9200"


@pytest.fixture
def es(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> MiniES:
    """The CLI's `connect` answers with an ElasticsearchConnector on an in-memory node."""
    node = MiniES("9.1.0")
    monkeypatch.setattr(cli, "_sparse_encoder", lambda settings: HashSparseEncoder())
    monkeypatch.setattr(cli, "_dense_encoder", lambda settings: HashDenseEncoder(dim=8))
    monkeypatch.chdir(tmp_path)
    for name in ("URL", "INDEX", "CONFIG", "DENSE", "TEXT_FIELDS"):
        monkeypatch.delenv(f"SPLADEBRIDGE_{name}", raising=False)

    def fake_connect(url: str, *, index: str, spec: IndexSpec | None = None, **_: Any) -> Connector:
        assert url == URL
        return ElasticsearchConnector(client=node.client(), index=index, spec=spec)

    monkeypatch.setattr(cli, "connect", fake_connect)
    return node


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = cli.main(list(argv), out=out)
    return code, out.getvalue()


def _stored_index(es: MiniES) -> None:
    """An index whose stored spec differs from the CLI defaults: one text field `body`, dense 8."""
    spec = IndexSpec(
        name="papers", dense_dim=8, text_fields=("body",), options={"dense_similarity": "cosine"}
    )
    conn = ElasticsearchConnector(client=es.client())
    conn.ensure_index(spec)
    sparse = HashSparseEncoder().encode_documents(["alpha beta", "gamma delta"])
    dense = [np.asarray(v, np.float32) for v in HashDenseEncoder(dim=8).encode(["alpha beta", "gamma delta"])]
    docs = [
        Document(id=f"p{i}", fields={"body": t}, metadata={"code": "007"}, sparse=s, dense=d)
        for i, (t, s, d) in enumerate(zip(["alpha beta", "gamma delta"], sparse, dense, strict=True))
    ]
    assert conn.upsert(docs).ok


@pytest.mark.parametrize("command", [["search", "alpha"], ["stats"]])
def test_read_only_commands_on_a_missing_index_exit_2_and_create_nothing(
    es: MiniES, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    code, _ = run(*command, "--url", URL, "--index", "typo")
    err = capsys.readouterr().err
    assert code == 2
    assert "no index 'typo' at http://fake-es:9200" in err and "Traceback" not in err
    assert not [r for r in es.cluster.requests if r.method == "PUT"]
    assert "typo" not in es.indices


def test_search_and_stats_use_the_stored_spec_not_the_cli_defaults(es: MiniES) -> None:
    _stored_index(es)
    puts_before = len([r for r in es.cluster.requests if r.method == "PUT"])
    code, out = run(
        "search",
        "alpha",
        "--url",
        URL,
        "--index",
        "papers",
        "--json",
        "--signals",
        "sparse,bm25",
        "--no-server-fusion",
    )
    data = json.loads(out)
    assert code == 0, out
    assert data["hits"][0]["id"] == "p0" and data["hits"][0]["fields"]["body"] == "alpha beta"
    code, out = run("stats", "--url", URL, "--index", "papers", "--json")
    assert code == 0 and json.loads(out)["count"] == 2
    assert len([r for r in es.cluster.requests if r.method == "PUT"]) == puts_before  # nothing (re)created


def test_filter_keeps_non_canonical_numbers_as_strings(es: MiniES) -> None:
    assert cli._parse_filters(["code=007", "n=7", "x=2.5", "e=1e3", "s=+5", "f=nan", "b=True"]) == [
        Term("code", "007"),
        Term("n", 7),
        Term("x", 2.5),
        Term("e", "1e3"),
        Term("s", "+5"),
        Term("f", "nan"),
        Term("b", True),
    ]
    _stored_index(es)
    code, out = run(
        "search",
        "alpha",
        "--url",
        URL,
        "--index",
        "papers",
        "--json",
        "--signals",
        "bm25",
        "--filter",
        "code=007",
    )
    assert code == 0 and [h["id"] for h in json.loads(out)["hits"]] == ["p0"]


@pytest.mark.parametrize("value", ["60.5", "0", "nan", "x"])
def test_rrf_k_must_be_a_whole_number_at_least_1(
    es: MiniES, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    with pytest.raises(SystemExit) as exc:
        run("search", "q", "--url", URL, "--rrf-k", value)
    assert exc.value.code == 2
    assert "--rrf-k: expected a finite whole number >= 1" in capsys.readouterr().err
    assert not es.cluster.requests  # refused before anything was sent


def test_index_spec_defaults_are_a_valid_spec() -> None:
    spec = IndexSpec()
    assert spec.dense_field is None and spec.dense_dim is None
    dense = IndexSpec(dense_dim=384)
    assert dense.dense_field == "dense"
    assert IndexSpec(dense_field="emb", dense_dim=3).dense_field == "emb"
    with pytest.raises(ValueError, match="needs a positive dense_dim"):
        IndexSpec(dense_field="emb")
