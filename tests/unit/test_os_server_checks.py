"""OpenSearchConnector: refusing non-OpenSearch servers, the real shard count, scan completeness, and
client exceptions turned into ConnectorError (fake node: real opensearch-py client, in-memory index)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from test_os_node_fake import NodeFake

from spladebridge.connectors.base import ConnectorError, Document, IndexSpec, ServerFusion
from spladebridge.connectors.lucene_documents import META_FIELD
from spladebridge.connectors.opensearch import OpenSearchConnector, OpenSearchOptions
from spladebridge.encoder.sparse_vector import SparseVector

SPEC = IndexSpec(name="docs", dense_dim=3)
ES_ROOT = {"name": "n", "version": {"number": "9.1.0"}, "tagline": "You Know, for Search"}
ES_405 = {"error": "Incorrect HTTP method for uri [/] and method [GET], allowed: [DELETE]", "status": 405}


def _docs(n: int) -> list[Document]:
    return [
        Document(id=f"d{i}", fields={"title": f"t{i}"}, sparse=SparseVector([i], [1.0]), dense=np.ones(3))
        for i in range(n)
    ]


@pytest.mark.parametrize(
    ("root", "message"),
    [
        ((200, ES_ROOT), r"is not OpenSearch: its GET / answers as Elasticsearch 9\.1\.0"),
        ((200, {"version": {"number": "8.19.0"}}), r"answers as Elasticsearch 8\.19\.0"),
        (
            (200, {"version": {"distribution": "other", "number": "1.0"}}),
            "answers version.distribution 'other'",
        ),
        ((405, ES_405), r"not OpenSearch: it answered HTTP 405 to GET / \(405 Incorrect HTTP method"),
    ],
)
def test_an_elasticsearch_node_is_refused_with_one_clear_error(root: tuple[int, Any], message: str) -> None:
    fake = NodeFake(root=root)
    conn = OpenSearchConnector(client=fake.client())
    with pytest.raises(ConnectorError, match=message) as raised:
        conn.capabilities()
    assert "ElasticsearchConnector" in str(raised.value)
    assert raised.value.__cause__ is None  # not an opensearch-py exception with a chained traceback
    with pytest.raises(ConnectorError, match="not OpenSearch"):
        conn.ensure_index(SPEC)
    assert fake.index_bodies == {}  # nothing was created on the wrong engine


def test_rrf_before_3_5_reads_the_real_shard_count_of_an_existing_index() -> None:
    fake = NodeFake(version="2.19.0")
    creator = OpenSearchConnector(client=fake.client(), options=OpenSearchOptions(shards=3))
    creator.ensure_index(SPEC)
    rrf = ServerFusion(method="rrf")
    # options say one shard, the index has three: RRF would rank per shard
    conn = OpenSearchConnector(client=fake.client(), index="docs")
    problem = conn.server_fusion_problem(rrf, 2)
    assert problem is not None and "3 shards" in problem
    assert len(fake.calls("GET", "/docs/_settings")) == 1
    conn.server_fusion_problem(rrf, 2)
    assert len(fake.calls("GET", "/docs/_settings")) == 1  # read once
    # and the other way round: options say four shards, the existing index has one
    fake_one = NodeFake(version="2.19.0")
    OpenSearchConnector(client=fake_one.client()).ensure_index(SPEC)
    many = OpenSearchConnector(client=fake_one.client(), index="docs", options=OpenSearchOptions(shards=4))
    assert many.server_fusion_problem(rrf, 2) is None
    # before the index exists, the shard count it will be created with counts
    fresh = OpenSearchConnector(
        client=NodeFake(version="2.19.0").client(), spec=SPEC, options=OpenSearchOptions(shards=2)
    )
    assert "2 shards" in (fresh.server_fusion_problem(rrf, 2) or "")
    assert (
        OpenSearchConnector(client=NodeFake(version="3.5.0").client(), index="docs").server_fusion_problem(
            rrf, 2
        )
        is None
    )


def test_scan_returns_documents_without_sb_id() -> None:
    fake = NodeFake()
    conn = OpenSearchConnector(client=fake.client(), spec=SPEC)
    assert conn.upsert(_docs(3)).ok
    fake.indices["docs"]["foreign-1"] = {"title": "written by another tool"}
    fake.indices["docs"]["foreign-2"] = {"title": "also without sb_id"}
    seen = {str(d.id): d for d in conn.scan(batch_size=2)}  # page boundaries fall between the foreign docs
    assert set(seen) == {"d0", "d1", "d2", "foreign-1", "foreign-2"}
    assert seen["foreign-2"].fields["title"] == "also without sb_id"
    pages = [r.body for r in fake.requests if r.path == "/_search"]
    assert all(b["sort"] == ["_id"] for b in pages) and pages[1]["search_after"] == ["d1"]
    assert META_FIELD not in fake.indices["docs"]["foreign-1"]


def test_scan_falls_back_to_scroll_where_id_fielddata_is_disabled(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = NodeFake(id_fielddata=False)
    conn = OpenSearchConnector(client=fake.client(), spec=SPEC)
    conn.upsert(_docs(2))

    def fake_scroll(client: Any, **kwargs: Any) -> Any:
        yield from ({"_id": i, "_source": src} for i, src in fake.indices[kwargs["index"]].items())

    monkeypatch.setattr("opensearchpy.helpers.scan", fake_scroll)
    assert sorted(str(d.id) for d in conn.scan(batch_size=5)) == ["d0", "d1"]
    assert fake.pits == {}  # the point in time was closed


def test_client_exceptions_become_connector_errors_naming_operation_and_index() -> None:
    fake = NodeFake()
    conn = OpenSearchConnector(client=fake.client(), spec=SPEC)
    conn.upsert(_docs(2))
    del fake.indices["docs"]  # the index vanishes under the connector
    with pytest.raises(
        ConnectorError, match=r"cannot run a sparse search \(index 'docs'\): 404 index_not_found"
    ):
        conn.search_sparse(SparseVector([1], [1.0]), 3)
    with pytest.raises(ConnectorError, match=r"cannot count documents \(index 'docs'\): 404"):
        conn.count()
    with pytest.raises(ConnectorError, match=r"cannot scan the index \(index 'docs'\)"):
        list(conn.scan())
    missing = OpenSearchConnector(client=fake.client(), index="nope")
    with pytest.raises(ConnectorError, match=r"there is no index 'nope'"):
        missing.count()


@pytest.mark.parametrize("how", ["arguments", "url"])
def test_an_unreachable_node_is_a_connector_error_without_credentials(how: str) -> None:
    if how == "arguments":
        conn = OpenSearchConnector("http://127.0.0.1:9", username="admin", password="hunter2-secret")
    else:
        conn = OpenSearchConnector("http://admin:hunter2-secret@127.0.0.1:9")
    conn.client.transport.max_retries = 0
    with pytest.raises(ConnectorError) as raised:
        conn.capabilities()
    text = str(raised.value)
    assert "cannot read the server version" in text and "unreachable" in text and "127.0.0.1:9" in text
    assert "hunter2" not in text and raised.value.__cause__ is None
    conn.close()
