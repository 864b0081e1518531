"""Every public entry point on every real Elasticsearch and OpenSearch node, with the default models on real text.

The adi collection (82 documents, 35 judged queries, ../shared/datasets/adi) is ingested once per node with
`spladebridge.connect` + `spladebridge.ingest`; then the exact dot product, hybrid search with server-side and
client-side fusion, the command line (`index`, `search`, `stats`, `engines`, `eval --engine URL`) and a
migration through the CLI are checked against what the node really returns.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import ADI, LiveNode, ingest_adi, raw_client

import spladebridge as sb
from spladebridge.cli import main as cli_main
from spladebridge.connectors.base import Connector, Document, IndexSpec
from spladebridge.connectors.lucene import lucene_dot
from spladebridge.encoder.sparse_vector import SparseVector
from spladebridge.hybrid.settings import RRF, WeightedSum

EXPECTED_EDGE = json.loads(
    (Path(__file__).resolve().parents[1] / "integration" / "eval_adi_expected.json").read_text()
)


def cli(*argv: str) -> tuple[int, str]:
    """Run the `spladebridge` command in-process (the same `main` the console script calls); its stdout."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli_main(list(argv), out=out)
    return code, out.getvalue()


@pytest.fixture(scope="module")
def adi_index(
    lucene_node: LiveNode,
    adi: dict[str, Any],
    encoders: tuple[Any, Any],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Connector, str]]:
    dense = encoders[1]
    name = f"sb-adi-{lucene_node.name.replace('.', '-')}"
    raw_client(lucene_node).indices.delete(index=name, ignore_unavailable=True)
    spec = IndexSpec(name=name, dense_dim=dense.dim, text_fields=("title", "text"))
    conn = sb.connect(lucene_node.url, index=name, spec=spec)
    ingest_adi(conn, spec, adi, encoders, tmp_path_factory.mktemp("ingest"))
    yield conn, name
    conn.close()
    raw_client(lucene_node).indices.delete(index=name, ignore_unavailable=True)


def test_connect_reopens_the_index_from_its_stored_spec(
    lucene_node: LiveNode, adi_index: tuple[Connector, str], adi: dict[str, Any], encoders: tuple[Any, Any]
) -> None:
    conn, name = adi_index
    with sb.connect(lucene_node.url, index=name) as again:
        assert again.existing_spec() == conn.spec
        assert again.count() == len(adi["corpus"])
        doc = adi["corpus"][7]
        (got,) = again.get([doc["_id"]])
        assert got is not None and str(got.id) == doc["_id"]
        assert got.fields["title"] == doc["title"]
        expected = encoders[0].encode_documents([f"{doc['title']}\n{doc['text']}"])[0]
        assert got.sparse is not None
        assert set(got.sparse.indices.tolist()) == set(expected.indices.tolist())


def test_sparse_scores_are_the_lucene_dot_product_of_real_splade_vectors(
    adi_index: tuple[Connector, str], adi: dict[str, Any], encoders: tuple[Any, Any]
) -> None:
    conn, _ = adi_index
    sparse, _ = encoders
    stored = {str(d.id): d.sparse for d in conn.scan(batch_size=50)}
    assert len(stored) == len(adi["corpus"])
    queries = sparse.encode_queries([q["text"] for q in adi["queries"][:8]])
    for query in queries:
        hits = conn.search_sparse(query, 10)
        model = sorted(
            ((lucene_dot(query, v), doc_id) for doc_id, v in stored.items() if v is not None), reverse=True
        )
        assert hits, "no sparse hit for a real query"
        for hit in hits:
            vec = stored[str(hit.id)]
            assert vec is not None
            assert hit.score == pytest.approx(lucene_dot(query, vec), rel=2e-6)
        # the node's top 10 is the model's top 10 (ties at the cut aside)
        cut = model[len(hits) - 1][0]
        assert {str(h.id) for h in hits} >= {d for s, d in model[: len(hits)] if s > cut}


def _ranking(hits: list[Any]) -> list[tuple[float, str]]:
    return [(round(h.score, 6), str(h.id)) for h in hits]


@pytest.mark.parametrize(
    ("fusion", "signals"),
    [
        (RRF(k=60), None),
        (WeightedSum(normalize="minmax"), None),
        # l2 sees Lucene's (1 + cos) / 2 dense scores: with dense it fuses client-side (checked below)
        (WeightedSum(weights=(0.2, 0.5, 0.3), normalize="l2"), None),
        (WeightedSum(weights=(0.6, 0.4), normalize="l2"), ("sparse", "bm25")),
    ],
    ids=["rrf", "minmax", "l2-weighted", "l2-sparse-bm25"],
)
def test_hybrid_searcher_server_and_client_fusion_agree_on_adi(
    adi_index: tuple[Connector, str],
    adi: dict[str, Any],
    encoders: tuple[Any, Any],
    fusion: Any,
    signals: tuple[str, ...] | None,
) -> None:
    conn, _ = adi_index
    sparse, dense = encoders
    queries = [q["text"] for q in adi["queries"]]
    options: dict[str, Any] = {"fusion": fusion, "candidates": 30, "signals": signals}
    client = sb.HybridSearcher(conn, sparse, dense, server_fusion=False, **options)
    auto = sb.HybridSearcher(conn, sparse, dense, signal_details=False, **options)  # server-side where it can
    client_hits = client.search_batch(queries, k=10)
    if auto.server_fusion_problem is not None:
        # the engine cannot fuse with these semantics: the searcher says why and fuses client-side
        assert isinstance(auto.server_fusion_problem, str) and auto.server_fusion_problem
        assert [_ranking(h) for h in auto.search_batch(queries, k=10)] == [_ranking(h) for h in client_hits]
        pytest.skip(f"fused client-side: {auto.server_fusion_problem}")
    server_hits = auto.search_batch(queries, k=10)
    tolerance = 1e-6 if isinstance(fusion, RRF) else 2e-3  # OpenSearch min_max floors the minimum at 0.001
    for query, server, twin in zip(queries, server_hits, client_hits, strict=True):
        twin_scores = {str(h.id): h.score for h in twin}
        shared = [h for h in server if str(h.id) in twin_scores]
        assert len(shared) >= 9, f"server and client top 10 differ for {query!r}"
        for hit in shared:
            assert hit.score == pytest.approx(twin_scores[str(hit.id)], abs=tolerance), query


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_cli_index_search_stats_engines(
    lucene_node: LiveNode, adi: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    name = f"sb-cli-{lucene_node.name.replace('.', '-')}"
    client = raw_client(lucene_node)
    client.indices.delete(index=name, ignore_unavailable=True)
    docs = _write_jsonl(tmp_path / "docs.jsonl", adi["corpus"][:24])
    url = lucene_node.url

    code, out = cli("index", str(docs), "--url", url, "--index", name, "--json", "--quiet")
    assert code == 0, out
    assert json.loads(out)["written"] == 24

    code, out = cli(
        "search", "computer retrieval of documents", "--url", url, "--index", name, "-k", "5", "--json"
    )
    assert code == 0, out
    hits = json.loads(out)["hits"]
    assert len(hits) == 5 and {h["id"] for h in hits} <= {d["_id"] for d in adi["corpus"][:24]}

    code, out = cli("stats", "--url", url, "--index", name, "--json")
    assert code == 0, out
    assert json.loads(out)["count"] == 24

    code, out = cli("engines", "--url", url, "--json")
    assert code == 0, out
    assert lucene_node.engine in out

    # read-only commands never create an index
    code, _ = cli("search", "anything", "--url", url, "--index", f"{name}-typo", "--json")
    assert code == 2
    assert not client.indices.exists(index=f"{name}-typo")
    client.indices.delete(index=name, ignore_unavailable=True)


def test_cli_eval_on_the_node_matches_the_embedded_engine(lucene_node: LiveNode, tmp_path: Path) -> None:
    """`spladebridge eval --engine URL`: SPLADE on a Lucene node scores what it scores on Qdrant Edge (the
    same dot product, up to Lucene's 9-bit weights)."""
    code, out = cli(
        "eval",
        "--dataset",
        str(ADI),
        "--engine",
        lucene_node.url,
        "--signals",
        "splade,bm25_engine",
        "--fusion",
        "none",
        "--pruning",
        "none",
        "--cache-dir",
        str(tmp_path / "cache"),
        "--json",
    )
    assert code == 0, out
    systems = json.loads(out)["systems"]
    splade = systems["splade"]["ndcg@10"]
    assert math.isclose(splade, EXPECTED_EDGE["systems"]["splade"]["ndcg@10"], abs_tol=0.01), systems
    assert 0.2 < systems["bm25_engine"]["ndcg@10"] < 0.7, systems


def test_cli_migrate_reindex_then_search_through_the_alias(
    lucene_node: LiveNode, adi: dict[str, Any], encoders: tuple[Any, Any], tmp_path: Path
) -> None:
    client = raw_client(lucene_node)
    old, alias, new = "sb-bm25-adi-1", "sb-bm25-adi", "sb-bm25-adi-2"
    for index in (old, new):
        client.indices.delete(index=index, ignore_unavailable=True)
    body = {"mappings": {"properties": {"title": {"type": "text"}, "text": {"type": "text"}}}}
    client.indices.create(index=old, body=body)
    for doc in adi["corpus"]:
        client.index(index=old, id=doc["_id"], body={"title": doc["title"], "text": doc["text"]})
    client.indices.refresh(index=old)
    client.indices.update_aliases(body={"actions": [{"add": {"index": old, "alias": alias}}]})

    code, out = cli(
        "migrate",
        alias,
        "--url",
        lucene_node.url,
        "--mode",
        "reindex",
        "--new-index",
        new,
        "--text-field",
        "title,text",
        "--state-dir",
        str(tmp_path / "state"),
        "--json",
        "--quiet",
    )
    assert code == 0, out
    report = json.loads(out)
    assert report["written"] == len(adi["corpus"]) and report["failed"] == 0, report

    aliases = client.indices.get_alias(name=alias)
    assert set(aliases) == {new}
    # field by field: every original field is kept, and the sparse vector is the encoder's
    sparse, _ = encoders
    with sb.connect(lucene_node.url, index=alias) as conn:
        assert conn.count() == len(adi["corpus"])
        docs = {d["_id"]: d for d in adi["corpus"]}
        for got in conn.scan(batch_size=40):
            source = docs[str(got.id)]
            assert got.fields.get("title") == source["title"] and got.fields.get("text") == source["text"]
            assert got.sparse is not None and got.sparse.nnz > 0
        hits = sb.HybridSearcher(conn, sparse).search(adi["queries"][0]["text"], k=5)
        assert len(hits) == 5
    # every CLI command opens the migrated index by its alias, with no spec given
    code, out = cli("search", adi["queries"][0]["text"], "--url", lucene_node.url, "--index", alias, "--json")
    assert code == 0, out
    assert len(json.loads(out)["hits"]) == 10
    code, out = cli("stats", "--url", lucene_node.url, "--index", alias, "--json")
    assert code == 0, out
    assert json.loads(out)["count"] == len(adi["corpus"])
    client.indices.delete(index=new, ignore_unavailable=True)
    client.indices.delete(index=old, ignore_unavailable=True)


def test_sparse_vector_round_trips_exactly(adi_index: tuple[Connector, str]) -> None:
    """What `get` returns is what was written (the stored source), not the 9-bit indexed value."""
    conn, _ = adi_index
    vec = SparseVector([5, 900, 2047], [0.123456, 1.5, 2.75])
    doc = Document(id="rt-1", fields={"title": "t", "text": "x"}, sparse=vec)
    assert conn.upsert([doc]).ok
    (back,) = conn.get(["rt-1"])
    assert back is not None and back.sparse == vec
    assert conn.delete(["rt-1"]).ok
