"""What the connector learns about the node: version without `GET /`, modules behind features, and the
`compatible-with` media types a 9.x client must send to an 8.x server."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from elastic_transport import HttpHeaders
from elastic_transport._node import NodeApiResponse
from elasticsearch import Elasticsearch
from es_fake import FakeNode, MiniES, Request

from spladebridge.connectors.base import ConnectorError, IndexSpec, UnsupportedOperation
from spladebridge.connectors.elasticsearch import CompatTransport, ElasticsearchConnector
from spladebridge.connectors.es_bodies import EsNode, EsVersion

SPEC = IndexSpec(name="docs", dense_dim=4)
#: What the integ-test distribution (server + x-pack-core + security) lists under `modules`.
TRIMMED = ("apm", "transport-netty4", "x-pack-core", "x-pack-security")
DEFAULT = (*TRIMMED, "mapper-extras", "rank-rrf", "analysis-common")


def _trimmed(es: MiniES, modules: Sequence[str] = TRIMMED, *, root: bool = False) -> MiniES:
    """Make `es` answer like a trimmed node: `GET /` is 405 (unless `root`), `_nodes/_local` lists
    `modules`."""
    inner = es.cluster.handler

    def handler(r: Request) -> tuple[int, Any]:
        parts = [p for p in r.path.split("/") if p]
        if r.method == "GET" and not parts and not root:
            reason = "Incorrect HTTP method for uri [/] and method [GET], allowed: [DELETE]"
            return 405, {"error": reason, "status": 405}
        if parts[:2] == ["_nodes", "_local"]:
            node = {
                "version": es.version,
                "build_flavor": "default",
                "modules": [{"name": m} for m in modules],
            }
            return 200, {"nodes": {"n1": node}}
        return inner(r)

    es.cluster.handler = handler
    return es


def _strict_client(es: MiniES, seen: list[dict[str, str]]) -> Elasticsearch:
    """A client with the connector's transport on a node that checks media types like a real server: an
    8.x node refuses `compatible-with=9` (plain JSON and `compatible-with=8` are fine)."""
    major = int(es.version.split(".")[0])

    class _Node(FakeNode):
        owner = es.cluster

        def perform_request(  # type: ignore[override]
            self,
            method: str,
            target: str,
            body: bytes | None = None,
            headers: HttpHeaders | None = None,
            **kw: Any,
        ) -> NodeApiResponse:
            sent = {
                k.lower(): v for k, v in (headers or {}).items() if k.lower() in ("accept", "content-type")
            }
            seen.append(sent)
            too_new = any(f"compatible-with={major + 1}" in v for v in sent.values())
            es.reject_compat = too_new
            try:
                return super().perform_request(method, target, body=body, headers=headers, **kw)
            finally:
                es.reject_compat = False

    return Elasticsearch(
        "http://fake-es:9200", node_class=_Node, transport_class=CompatTransport, max_retries=0
    )


def test_version_comes_from_nodes_local_when_get_root_is_405() -> None:
    es = _trimmed(MiniES("8.19.21"))
    conn = ElasticsearchConnector(client=es.client())
    assert conn.version == EsVersion(8, 19, 21)
    assert conn.node.components == frozenset(TRIMMED)
    conn.ensure_index(SPEC)  # the index is created on the version read from _nodes
    assert conn.sparse_type == "sparse_vector"
    assert len(es.cluster.calls("GET", "/_nodes/_local")) == 1  # read once


def test_no_version_anywhere_is_one_connector_error() -> None:
    es = MiniES("9.1.0")

    def handler(r: Request) -> tuple[int, Any]:
        return 405, {"error": "Incorrect HTTP method", "status": 405}

    es.cluster.handler = handler
    with pytest.raises(ConnectorError, match=r"GET / answered 405.*GET /_nodes/_local answered 405"):
        ElasticsearchConnector(client=es.client()).capabilities()


def test_capabilities_follow_the_modules_the_node_has() -> None:
    caps = ElasticsearchConnector(client=_trimmed(MiniES("9.5.3", "trial")).client()).capabilities()
    assert caps.sparse_field_types == ("sparse_vector",)  # no mapper-extras: no rank_features
    assert caps.server_fusion == frozenset()  # no rank-rrf module, whatever the licence says
    assert any("rank-rrf module" in n for n in caps.notes)
    assert any("mapper-extras module" in n for n in caps.notes)
    full = ElasticsearchConnector(client=_trimmed(MiniES("9.5.3", "trial"), DEFAULT, root=True).client())
    caps = full.capabilities()
    assert caps.sparse_field_types == ("sparse_vector", "rank_features")
    assert caps.server_fusion == {"rrf", "linear"}
    assert full.version == EsVersion(9, 5, 3)


def test_a_missing_module_is_one_clear_error_not_a_server_traceback() -> None:
    es = _trimmed(MiniES("8.19.21"))
    with pytest.raises(UnsupportedOperation, match=r"rank_features field needs the mapper-extras module"):
        ElasticsearchConnector(client=es.client(), sparse_type="rank_features").ensure_index(SPEC)
    assert not es.cluster.calls("PUT", "/docs")  # nothing was sent that the node would refuse
    old = _trimmed(MiniES("8.13.4"))  # neither the sparse_vector query nor rank_features
    with pytest.raises(UnsupportedOperation, match=r"no sparse field type is usable.*8\.15\+"):
        ElasticsearchConnector(client=old.client()).ensure_index(SPEC)
    fusion = ElasticsearchConnector(client=_trimmed(MiniES("9.5.3", "trial")).client())
    from spladebridge.connectors.base import ServerFusion

    problem = fusion.server_fusion_problem(ServerFusion("rrf"))
    assert problem is not None and "rank-rrf module" in problem


def test_nodes_info_parsing() -> None:
    body = {
        "nodes": {"x": {"version": "9.5.3", "modules": [{"name": "a"}], "plugins": [{"name": "rank-rrf"}]}}
    }
    node = EsNode.from_nodes_info(body)
    assert node.version == EsVersion(9, 5, 3) and node.components == {"a", "rank-rrf"}
    assert node.retrievers and not node.rank_features
    assert EsNode(EsVersion(9, 1)).rank_features  # unknown modules: the default distribution is assumed
    with pytest.raises(ValueError, match="no node"):
        EsNode.from_nodes_info({"nodes": {}})


@pytest.mark.parametrize("root", [True, False])
def test_a_9x_client_speaks_compatible_with_8_to_an_8x_server(root: bool) -> None:
    seen: list[dict[str, str]] = []
    es = _trimmed(MiniES("8.19.21"), root=root)
    conn = ElasticsearchConnector(client=_strict_client(es, seen))
    conn.ensure_index(SPEC)
    assert conn.count() == 0
    assert seen[0]["accept"] == "application/json"  # the version probe: plain JSON, which any version takes
    later = seen[-1]
    assert later["accept"] == "application/vnd.elasticsearch+json; compatible-with=8"
    assert all("compatible-with=9" not in v for s in seen for v in s.values())


def test_bulk_ndjson_is_pinned_too_and_9x_servers_keep_the_client_major() -> None:
    import numpy as np

    from spladebridge.connectors.base import Document
    from spladebridge.encoder.sparse_vector import SparseVector

    seen: list[dict[str, str]] = []
    es = MiniES("8.19.0")
    conn = ElasticsearchConnector(client=_strict_client(es, seen))
    conn.ensure_index(SPEC)
    doc = Document(
        id="a", fields={"title": "t"}, sparse=SparseVector([1], [1.0]), dense=np.ones(4, np.float32)
    )
    assert conn.upsert([doc]).ok
    assert "application/vnd.elasticsearch+x-ndjson; compatible-with=8" in {
        s.get("content-type") for s in seen
    }
    seen9: list[dict[str, str]] = []
    conn9 = ElasticsearchConnector(client=_strict_client(MiniES("9.5.3"), seen9))
    conn9.ensure_index(SPEC)
    assert seen9[-1]["accept"].endswith("compatible-with=9")


def test_the_connectors_own_client_uses_the_compat_transport() -> None:
    conn = ElasticsearchConnector(url="http://127.0.0.1:9")  # nothing is sent at construction
    assert isinstance(conn.client.transport, CompatTransport)
    conn.close()


def test_compat_rewrite_logs_once_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[dict[str, str]] = []
    conn = ElasticsearchConnector(client=_strict_client(MiniES("8.19.0"), seen))
    with caplog.at_level("DEBUG", logger="spladebridge.connectors.elasticsearch"):
        conn.ensure_index(SPEC)
        conn.count()
        conn.capabilities()
    lines = [r for r in caplog.records if "compatible-with=8" in r.getMessage()]
    assert len(lines) == 1 and lines[0].levelname == "DEBUG"


def test_text_fields_get_the_english_analyzer_where_the_node_has_it() -> None:
    es = _trimmed(MiniES("9.1.0"), DEFAULT)
    ElasticsearchConnector(client=es.client()).ensure_index(SPEC)
    (create,) = [r for r in es.cluster.requests if r.method == "PUT"]
    assert create.body["mappings"]["properties"]["title"]["analyzer"] == "english"


def test_a_node_without_analysis_common_falls_back_to_standard_and_refuses_a_named_analyzer() -> None:
    es = _trimmed(MiniES("9.1.0"), (*TRIMMED, "mapper-extras"))
    conn = ElasticsearchConnector(client=es.client())
    conn.ensure_index(SPEC)  # the default analyzer: falls back, with a note
    (create,) = [r for r in es.cluster.requests if r.method == "PUT"]
    assert "analyzer" not in create.body["mappings"]["properties"]["title"]
    assert any("analysis-common" in note for note in conn.capabilities().notes)
    named = IndexSpec(name="named", dense_dim=4, options={"text_analyzer": "english"})
    with pytest.raises(UnsupportedOperation, match="analysis-common"):
        ElasticsearchConnector(client=es.client()).ensure_index(named)
