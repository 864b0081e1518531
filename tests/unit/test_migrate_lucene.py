"""The Elasticsearch / OpenSearch migration flows, driven through the real clients (wrapped in the connectors'
`LuceneClient`) against a recording fake cluster: reindex (create -> PIT scan -> bulk -> verify -> one
`_aliases` call with remove + add) and in-place (put mapping -> PIT scan -> bulk partial update), resume after
a kill, the set-up errors, and that a migrated index is an ordinary index: the Elasticsearch and OpenSearch
connectors open it by name or alias with no spec, read its documents with their vectors, and search it."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from migrate_fakes import HashDenseEncoder, HashSparseEncoder, MiniLucene

from spladebridge.connectors.base import ConnectorError
from spladebridge.connectors.elasticsearch import ElasticsearchConnector
from spladebridge.connectors.lucene_client import LuceneClient, lucene_client
from spladebridge.connectors.lucene_connector import LuceneConnector
from spladebridge.connectors.opensearch import OpenSearchConnector
from spladebridge.connectors.retry import RetryPolicy
from spladebridge.encoder.sparse_vector import SparseVector
from spladebridge.hybrid.searcher import HybridSearcher
from spladebridge.migrate import migrate
from spladebridge.migrate.lucene_bodies import MIGRATION_META_KEY, AddedFields
from spladebridge.migrate.lucene_cluster import (
    InPlaceTarget,
    LuceneIndexSource,
    MigrationSetupError,
    ReindexTarget,
    default_new_index,
    resolve_reindex,
)

WORDS = ["apple", "banana", "cherry", "grape", "lemon", "mango", "olive", "peach"]


def _docs(n: int) -> dict[str, dict[str, Any]]:
    docs = {}
    for i in range(n):
        a, b = WORDS[i % 8], WORDS[(i * 3 + 1) % 8]
        docs[f"doc{i:03d}"] = {
            "title": f"{a} {b}",
            "text": f"about {a} and {b} number {i}",
            "tag": f"t{i % 3}",
            "n": i,
        }
    docs["empty"] = {"title": "", "tag": "none", "n": -1}
    return docs


def _reindex_setup(
    cluster: MiniLucene, *, dense: bool = False
) -> tuple[LuceneClient, LuceneIndexSource, ReindexTarget]:
    settings = {
        "index": {"number_of_shards": "3", "number_of_replicas": "0", "uuid": "abc", "creation_date": "1"}
    }
    cluster.add_index("products-v1", _docs(25), settings=settings)
    cluster.aliases["products"] = {"products-v1": {"is_write_index": True}}
    api = lucene_client(cluster.client())
    old, alias, options = resolve_reindex(api, "products")
    added = AddedFields(
        sparse_field="splade",
        sparse_type="sparse_vector" if api.dialect == "elasticsearch" else "rank_features",
        dense_field="emb" if dense else None,
        dense_dim=8 if dense else None,
    )
    source = LuceneIndexSource(api, old, ("title", "text"), added=added)
    target = ReindexTarget(
        api, old, default_new_index(old), alias, ("title", "text"), added, alias_options=options
    )
    return api, source, target


@pytest.mark.parametrize("flavor", ["elasticsearch", "opensearch"])
def test_reindex_flow_creates_scans_writes_verifies_then_swaps_once(flavor: str, tmp_path: Path) -> None:
    cluster = MiniLucene(flavor)
    _, source, target = _reindex_setup(cluster, dense=True)
    report = migrate(
        source,
        target,
        HashSparseEncoder(),
        HashDenseEncoder(),
        batch_size=10,
        checkpoint=tmp_path / "ck.json",
        sample_queries=["apple banana", "mango"],
        mode="reindex",
    )
    assert report.ok, report.summary()
    calls = cluster.calls()
    create = calls.index("PUT /products-v1-splade")
    pit_open = next(
        i for i, c in enumerate(calls) if c.endswith("/_pit") or c.endswith("/_search/point_in_time")
    )
    first_bulk = calls.index("POST /_bulk" if "POST /_bulk" in calls else "PUT /_bulk")
    swap = calls.index("POST /_aliases")
    assert create < pit_open < first_bulk < swap
    assert calls.count("POST /_aliases") == 1 and swap > max(
        i for i, c in enumerate(calls) if c.endswith("/_mget")
    )
    swap_body = cluster.bodies("POST", "/_aliases")[0]
    assert swap_body == {
        "actions": [
            {"remove": {"index": "products-v1", "alias": "products"}},
            {"add": {"index": "products-v1-splade", "alias": "products", "is_write_index": True}},
        ]
    }
    assert cluster.aliases["products"] == {"products-v1-splade": {"is_write_index": True}}
    assert "products-v1" in cluster.indices  # kept without --delete-old
    new = cluster.indices["products-v1-splade"]
    assert set(new["docs"]) == set(cluster.indices["products-v1"]["docs"])
    assert (
        new["settings"]["index"].get("uuid") is None and new["settings"]["index"]["number_of_shards"] == "3"
    )
    assert new["mappings"]["properties"]["title"] == {"type": "text"}
    assert new["mappings"]["_meta"][MIGRATION_META_KEY]["source_index"] == "products-v1"
    doc = new["docs"]["doc004"]
    old = cluster.indices["products-v1"]["docs"]["doc004"]
    assert {k: doc[k] for k in old} == old and len(doc["emb"]) == 8
    assert doc["splade"] and all(name.isdigit() for name in doc["splade"])
    assert "splade" not in new["docs"]["empty"]  # no text: no sparse field rather than {}
    assert not cluster.pits  # every PIT was closed
    verification = report.verification
    assert verification is not None and verification.source_count == verification.target_count == 26
    assert [q.query for q in verification.queries] == ["apple banana", "mango"]
    apple = verification.queries[0]
    assert apple.error is None and apple.bm25 and apple.hybrid and apple.overlap >= 1
    assert "hybrid (after)" in verification.summary()


def test_reindex_of_an_index_used_by_name_needs_delete_old(tmp_path: Path) -> None:
    cluster = MiniLucene("elasticsearch")
    cluster.add_index("docs", _docs(5))
    api = lucene_client(cluster.client())
    old, alias, _ = resolve_reindex(api, "docs")
    assert (old, alias) == ("docs", "docs")
    with pytest.raises(MigrationSetupError, match="delete_old"):
        ReindexTarget(api, old, "docs-splade", alias, ("title", "text"), AddedFields())
    target = ReindexTarget(api, old, "docs-splade", alias, ("title", "text"), AddedFields(), delete_old=True)
    report = migrate(
        LuceneIndexSource(api, old, ("title", "text")), target, HashSparseEncoder(), mode="reindex"
    )
    assert report.ok
    assert cluster.bodies("POST", "/_aliases") == [
        {"actions": [{"remove_index": {"index": "docs"}}, {"add": {"index": "docs-splade", "alias": "docs"}}]}
    ]
    assert "docs" not in cluster.indices and cluster.aliases["docs"] == {"docs-splade": {}}


def test_named_alias_is_created_on_the_old_index_first() -> None:
    cluster = MiniLucene("opensearch")
    cluster.add_index("docs", _docs(3))
    api = lucene_client(cluster.client())
    assert resolve_reindex(api, "docs", alias="search") == ("docs", "search", {})
    assert cluster.aliases["search"] == {"docs": {}}
    cluster.aliases["multi"] = {"docs": {}, "other": {}}
    with pytest.raises(MigrationSetupError, match="2 indices"):
        resolve_reindex(api, "multi")
    with pytest.raises(MigrationSetupError, match="no index or alias"):
        resolve_reindex(api, "missing")


@pytest.mark.parametrize("flavor", ["elasticsearch", "opensearch"])
def test_in_place_adds_mappings_and_updates_partially(flavor: str, tmp_path: Path) -> None:
    cluster = MiniLucene(flavor)
    cluster.add_index("kb", _docs(12))
    cluster.indices["kb"]["mappings"]["_meta"] = {"owner": "search-team"}
    cluster.fail_update = {"doc003"}
    api = lucene_client(cluster.client())
    added = AddedFields(sparse_field="splade")
    target = InPlaceTarget(api, "kb", ("title", "text"), added)
    before = json.loads(json.dumps(cluster.indices["kb"]["docs"]))
    report = migrate(
        LuceneIndexSource(api, "kb", ("title", "text"), added=added),
        target,
        HashSparseEncoder(),
        batch_size=5,
        dead_letter=tmp_path / "dead.jsonl",
        mode="in-place",
        require_verified=False,
    )
    calls = cluster.calls()
    assert calls.index("PUT /kb/_mapping") < next(i for i, c in enumerate(calls) if "_bulk" in c)
    mapping_body = cluster.bodies("PUT", "/kb/_mapping")[0]
    assert mapping_body["properties"] == {"splade": {"type": "rank_features"}}
    assert mapping_body["_meta"]["owner"] == "search-team"  # _meta is merged, not replaced
    updates = [
        line for body in cluster.bodies("POST", "/_bulk") + cluster.bodies("PUT", "/_bulk") for line in body
    ]
    docs_lines = [line for line in updates if "doc" in line]
    assert docs_lines and all(set(line["doc"]) == {"splade"} for line in docs_lines)
    after = cluster.indices["kb"]["docs"]
    for doc_id, src in before.items():
        assert {k: after[doc_id][k] for k in src} == src  # source fields untouched
    assert "splade" not in after["empty"]
    assert (
        report.failed == 1
        and report.failures[0].id == "doc003"
        and "document_missing" in report.failures[0].error
    )
    assert (tmp_path / "dead.jsonl").read_text().count("doc003") >= 1
    assert report.verification is not None and report.verification.counts_ok


def test_in_place_dense_on_opensearch_needs_knn_setting() -> None:
    cluster = MiniLucene("opensearch")
    cluster.add_index("kb", _docs(2))
    api = lucene_client(cluster.client())
    target = InPlaceTarget(api, "kb", ("title", "text"), AddedFields(dense_field="emb", dense_dim=8))
    with pytest.raises(MigrationSetupError, match=r"index\.knn"):
        target.prepare()


def test_existing_field_of_another_type_is_refused() -> None:
    cluster = MiniLucene("elasticsearch")
    cluster.add_index(
        "kb", _docs(2), mappings={"properties": {"splade": {"type": "keyword"}, "text": {"type": "text"}}}
    )
    api = lucene_client(cluster.client())
    with pytest.raises(ValueError, match="already exists as 'keyword'"):
        InPlaceTarget(api, "kb", ("text",), AddedFields()).prepare()


@pytest.mark.parametrize("flavor", ["elasticsearch", "opensearch"])
def test_kill_then_resume_continues_after_the_saved_sort_values(flavor: str, tmp_path: Path) -> None:
    cluster = MiniLucene(flavor)
    _, source, target = _reindex_setup(cluster)
    ck = tmp_path / "ck.json"

    class Killed(BaseException):
        pass

    encoder = HashSparseEncoder()
    calls = {"n": 0}
    original = encoder.encode_documents

    def dying(texts: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 3:
            raise Killed
        return original(texts)

    encoder.encode_documents = dying  # type: ignore[method-assign]
    with pytest.raises(Killed):
        migrate(source, target, encoder, batch_size=8, checkpoint=ck, mode="reindex")
    saved = json.loads(ck.read_text())
    assert saved["counts"]["written"] == 16 and saved["cursor"]["position"] == 16
    written_before = set(cluster.indices["products-v1-splade"]["docs"])
    assert len(written_before) == 16
    assert saved["cursor"]["pit_id"] in cluster.pits  # left open for the resumed run
    fresh_encoder = HashSparseEncoder()
    api2 = lucene_client(cluster.client())
    _, alias, options = resolve_reindex(api2, "products")
    source2 = LuceneIndexSource(api2, "products-v1", ("title", "text"), added=target.added)
    target2 = ReindexTarget(
        api2,
        "products-v1",
        "products-v1-splade",
        alias,
        ("title", "text"),
        target.added,
        alias_options=options,
    )
    report = migrate(
        source2, target2, fresh_encoder, batch_size=8, checkpoint=ck, resume=True, mode="reindex"
    )
    assert report.ok and report.read == 10 and len(fresh_encoder.texts) == 10
    assert len(cluster.indices["products-v1-splade"]["docs"]) == 26
    assert cluster.calls().count("POST /_aliases") == 1 and not cluster.pits
    again = migrate(source2, target2, HashSparseEncoder(), checkpoint=ck, resume=True, mode="reindex")
    assert again.already_finished and cluster.calls().count("POST /_aliases") == 1


def test_expired_pit_with_shard_doc_order_restarts_the_scan(tmp_path: Path) -> None:
    cluster = MiniLucene("elasticsearch")
    cluster.add_index("kb", _docs(9))
    api = lucene_client(cluster.client())
    source = LuceneIndexSource(api, "kb", ("title", "text"))
    assert source.sort_field == "_shard_doc" and not source.stable_sort
    first = next(iter(source.read(None, 4)))
    cluster.pits.clear()  # the PIT expired
    batches = list(source.read(first.cursor, 4))
    assert source.restarts == 1
    assert sum(len(b.documents) for b in batches) == 10 and batches[0].first_position == 0
    stable = LuceneIndexSource(api, "kb", ("title", "text"), sort_field="_id")
    first = next(iter(stable.read(None, 4)))
    cluster.pits.clear()
    rest = list(stable.read(first.cursor, 4))
    assert stable.restarts == 0 and sum(len(b.documents) for b in rest) == 6
    assert rest[0].documents[0].id == "doc004"


def test_default_new_index_names() -> None:
    assert default_new_index("products") == "products-splade"
    assert default_new_index("products-splade") == "products-splade-2"
    assert default_new_index("products-splade-2") == "products-splade-3"


def test_elasticsearch_9_2_reads_samples_back_with_their_vectors(tmp_path: Path) -> None:
    cluster = MiniLucene("elasticsearch", version="9.2.0")
    cluster.add_index("kb", _docs(6))
    api = lucene_client(cluster.client())
    added = AddedFields(sparse_type="sparse_vector")
    report = migrate(
        LuceneIndexSource(api, "kb", ("title", "text"), added=added),
        InPlaceTarget(api, "kb", ("title", "text"), added),
        HashSparseEncoder(),
        sample_size=7,
    )
    assert report.ok, report.summary()
    fetches = [params for method, path, params, body in cluster.requests if path == "/kb/_mget"]
    assert fetches and all(p.get("_source_exclude_vectors") == "false" for p in fetches)
    samples = report.verification.samples if report.verification is not None else []
    assert len(samples) == 7 and all(s.sparse_nnz for s in samples if s.has_text)
    # without the parameter the vectors would be missing, and verification would say so
    assert "splade" not in cluster.route("GET", "/kb/_mget", {}, {"ids": ["doc001"]})[1]["docs"][0]["_source"]


def test_kill_between_swap_and_checkpoint_does_not_swap_twice(tmp_path: Path) -> None:
    cluster = MiniLucene("opensearch")
    _, source, target = _reindex_setup(cluster)
    ck = tmp_path / "ck.json"
    assert migrate(source, target, HashSparseEncoder(), checkpoint=ck).ok
    state = json.loads(ck.read_text())
    state["phase"], state["finalized"] = "verified", []  # as if killed right after the _aliases call
    ck.write_text(json.dumps(state))
    again = migrate(source, target, HashSparseEncoder(), checkpoint=ck, resume=True, verify_after=False)
    assert again.finished and again.finalized == ["alias 'products' already points at 'products-v1-splade'"]
    assert cluster.calls().count("POST /_aliases") == 1


def test_other_errors_on_a_saved_pit_are_not_taken_for_expiry() -> None:
    cluster = MiniLucene("elasticsearch")
    cluster.add_index("kb", _docs(9))
    api = lucene_client(cluster.client())
    source = LuceneIndexSource(api, "kb", ("title", "text"))
    first = next(iter(source.read(None, 4)))
    cluster.fail_pit_search = [(500, "search_phase_execution_exception", "all shards failed")]
    with pytest.raises(ConnectorError) as raised:
        next(iter(source.read(first.cursor, 4)))
    assert raised.value.status == 500 and source.restarts == 0
    assert first.cursor["pit_id"] in cluster.pits  # the saved PIT is neither dropped nor replaced
    assert sum(1 for c in cluster.calls() if c.endswith("/_pit") and c.startswith("POST")) == 1


def test_a_transient_error_on_a_page_is_called_again_under_the_one_retry_policy() -> None:
    cluster = MiniLucene("elasticsearch")
    cluster.add_index("kb", _docs(9))
    api = lucene_client(cluster.client())
    waits: list[float] = []
    api.retry = RetryPolicy(max_retries=2, initial_backoff=0.5, sleep=waits.append)
    source = LuceneIndexSource(api, "kb", ("title", "text"))
    first = next(iter(source.read(None, 4)))
    cluster.fail_pit_search = [(503, "unavailable_shards_exception", "primary shard is not active")] * 2
    second = next(iter(source.read(first.cursor, 4)))
    assert len(second.documents) == 4 and waits == [0.5, 1.0]  # two re-calls, then the page
    cluster.fail_pit_search = [(503, "unavailable_shards_exception", "primary shard is not active")] * 3
    with pytest.raises(ConnectorError) as raised:  # three sends in all, then the error
        next(iter(source.read(second.cursor, 4)))
    assert raised.value.status == 503 and cluster.fail_pit_search == []


# -- a migrated index is an ordinary index ------------------------------------------------------------


def _open(cluster: MiniLucene, index: str) -> LuceneConnector:
    """A connector of the cluster's engine on `index`, given no spec (it must read the stored one)."""
    if cluster.flavor == "elasticsearch":
        return ElasticsearchConnector(client=cluster.client(), index=index)
    return OpenSearchConnector(client=cluster.client(), index=index)


def _query(text: str) -> SparseVector:
    return HashSparseEncoder().encode_queries([text])[0]


@pytest.mark.parametrize("flavor", ["elasticsearch", "opensearch"])
def test_a_reindexed_index_opens_by_its_alias_with_no_spec(flavor: str, tmp_path: Path) -> None:
    cluster = MiniLucene(flavor)
    _, source, target = _reindex_setup(cluster, dense=True)
    assert migrate(source, target, HashSparseEncoder(), HashDenseEncoder(), mode="reindex").ok
    connector = _open(cluster, "products")
    assert connector.existing_spec() == dataclasses.replace(target.spec, name="products")
    assert connector.count() == 26
    doc, empty, missing = connector.get(["doc004", "empty", "nope"])
    original = cluster.indices["products-v1"]["docs"]["doc004"]
    assert doc is not None and doc.id == "doc004" and missing is None
    assert doc.fields == {"title": original["title"], "text": original["text"]}
    assert doc.metadata == {"tag": original["tag"], "n": original["n"]}
    assert (
        doc.sparse is not None
        and doc.sparse == HashSparseEncoder().encode_documents([doc.text(("title", "text"))])[0]
    )
    assert doc.dense is not None and doc.dense.shape == (8,)
    assert empty is not None and empty.sparse is not None and empty.sparse.nnz == 0
    hits = connector.search_sparse(_query("mango"), 5)
    assert hits and all("mango" in f"{h.fields['title']} {h.fields['text']}" for h in hits)
    searcher = HybridSearcher(connector, HashSparseEncoder(), HashDenseEncoder())
    assert searcher.signals == ("sparse", "dense", "bm25")
    top = searcher.search("apple banana", 5)[0]
    assert top.fields["title"] == "apple banana"  # hybrid ranks a document holding both words first


@pytest.mark.parametrize(
    ("flavor", "version"), [("elasticsearch", "9.1.0"), ("elasticsearch", "9.2.0"), ("opensearch", "2.19.0")]
)
def test_an_index_migrated_in_place_opens_with_no_spec(flavor: str, version: str) -> None:
    cluster = MiniLucene(flavor, version=version)
    cluster.add_index("kb", _docs(12), settings={"index": {"number_of_shards": "1", "knn": "true"}})
    api = lucene_client(cluster.client())
    added = AddedFields(dense_field="emb", dense_dim=8)
    target = InPlaceTarget(api, "kb", ("title", "text"), added)
    report = migrate(
        LuceneIndexSource(api, "kb", ("title", "text"), added=added),
        target,
        HashSparseEncoder(),
        HashDenseEncoder(),
        mode="in-place",
    )
    assert report.ok, report.summary()
    connector = _open(cluster, "kb")
    assert connector.existing_spec() == target.spec
    (doc,) = connector.get(["doc007"])
    assert doc is not None and doc.fields["title"] == cluster.indices["kb"]["docs"]["doc007"]["title"]
    assert doc.sparse is not None and doc.sparse.nnz > 0
    assert doc.dense is not None and doc.dense.shape == (8,)
    assert connector.search_sparse(_query("lemon"), 3)


@pytest.mark.parametrize("flavor", ["elasticsearch", "opensearch"])
def test_list_valued_text_fields_round_trip_exactly_through_a_reindex(flavor: str) -> None:
    cluster = MiniLucene(flavor)
    docs: dict[str, dict[str, Any]] = {
        "a": {"title": "lists", "text": ["first mango paragraph", "second paragraph"], "tags": ["x", "y"]},
        "b": {"title": "plain", "text": "one string", "tags": []},
        "c": {"title": ["one", "two"], "text": ["solo"]},
    }
    cluster.add_index("notes", docs)
    api = lucene_client(cluster.client())
    old, alias, _ = resolve_reindex(api, "notes", alias="notes-live")
    added = AddedFields()
    target = ReindexTarget(api, old, "notes-2", alias, ("title", "text"), added)
    encoder = HashSparseEncoder()
    report = migrate(LuceneIndexSource(api, old, ("title", "text"), added=added), target, encoder)
    assert report.ok, report.summary()
    assert "first mango paragraph\nsecond paragraph" in " ".join(encoder.texts)  # encoded as one text
    copied = cluster.indices["notes-2"]["docs"]
    for doc_id, src in docs.items():
        assert {k: copied[doc_id][k] for k in src} == src  # lists stay lists, strings stay strings
    connector = _open(cluster, "notes-live")
    (a,) = connector.get(["a"])
    assert a is not None and a.fields["text"] == "first mango paragraph\nsecond paragraph"
    assert a.metadata["text"] == ["first mango paragraph", "second paragraph"]
    # writing the document back through the connector restores the list
    assert connector.upsert([a]).ok
    assert cluster.indices["notes-2"]["docs"]["a"]["text"] == docs["a"]["text"]


def test_in_place_on_an_index_that_already_maps_the_fields_still_stores_the_spec() -> None:
    """An index whose vector field was mapped by hand (no stored spec) gets the spec all the same, so the
    migration's own writes and any later connector can open it."""
    cluster = MiniLucene("opensearch")
    props = {"title": {"type": "text"}, "text": {"type": "text"}, "splade": {"type": "rank_features"}}
    cluster.add_index("kb", _docs(4), mappings={"properties": props, "_meta": {"owner": "me"}})
    api = lucene_client(cluster.client())
    target = InPlaceTarget(api, "kb", ("title", "text"), AddedFields())
    assert migrate(LuceneIndexSource(api, "kb", ("title", "text")), target, HashSparseEncoder()).ok
    assert cluster.indices["kb"]["mappings"]["_meta"]["owner"] == "me"
    assert _open(cluster, "kb").existing_spec() == target.spec
    again = InPlaceTarget(api, "kb", ("title", "text"), AddedFields())
    puts = len(cluster.bodies("PUT", "/kb/_mapping"))
    assert again.prepare() == ["mappings of splade already in 'kb'"]
    assert len(cluster.bodies("PUT", "/kb/_mapping")) == puts  # nothing left to add: no second update


@pytest.mark.parametrize("flavor", ["elasticsearch", "opensearch"])
def test_a_keyword_text_field_is_migrated_and_stored_without_bm25(flavor: str) -> None:
    """Encoding a keyword field is legitimate; the stored spec then says lexical=False, which the connectors
    open (a spec promising BM25 over a keyword field would be refused)."""
    cluster = MiniLucene(flavor)
    props = {"title": {"type": "keyword"}, "text": {"type": "text"}}
    cluster.add_index("kb", _docs(6), mappings={"properties": props})
    api = lucene_client(cluster.client())
    old, alias, _ = resolve_reindex(api, "kb", alias="kb-live")
    target = ReindexTarget(api, old, "kb-2", alias, ("title", "text"), AddedFields())
    report = migrate(LuceneIndexSource(api, old, ("title", "text")), target, HashSparseEncoder())
    assert report.ok, report.summary()
    spec = _open(cluster, "kb-live").existing_spec()
    assert spec.lexical is False and spec == dataclasses.replace(target.spec, name="kb-live")
    assert cluster.indices["kb-2"]["mappings"]["properties"]["title"] == {"type": "keyword"}
