"""Engine URLs: parsing, flavour detection from a real (local) `GET /`, and missing-client hints."""

from __future__ import annotations

import base64
import importlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from spladebridge import engines
from spladebridge.connectors.http_settings import HttpSettings
from spladebridge.engines import EngineConfigError, detect_http_engine, parse_engine_url

ES_ROOT = {
    "name": "n",
    "cluster_name": "c",
    "version": {"number": "9.1.0"},
    "tagline": "You Know, for Search",
}
OS_ROOT = {
    "name": "n",
    "version": {"distribution": "opensearch", "number": "3.3.0"},
    "tagline": "The OpenSearch...",
}


@pytest.fixture
def root_server() -> Iterator[tuple[str, dict[str, Any]]]:
    """A local HTTP server answering GET / with `state["body"]` (status `state["status"]`, extra headers
    `state["headers"]`), and other paths from `state["paths"]` (path -> (status, body))."""
    state: dict[str, Any] = {"body": ES_ROOT, "status": 200, "auth": [], "headers": {}, "paths": {}}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state["auth"].append(self.headers.get("Authorization"))
            status, body = state["paths"].get(self.path, (state["status"], state["body"]))
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            for name, value in state["headers"].items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: Any) -> None:
            return None

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", state
    server.shutdown()
    server.server_close()


def test_parse_urls() -> None:
    edge = parse_engine_url(None)
    assert edge.kind == "qdrant-edge" and edge.path == Path(".spladebridge")
    assert parse_engine_url("qdrant-edge:///var/lib/sb").path == Path("/var/lib/sb")
    q = parse_engine_url("qdrants://vectors.example:7000")
    assert (q.kind, q.host, q.port, q.https) == ("qdrant", "vectors.example", 7000, True)
    assert parse_engine_url("qdrant://localhost").port == 6333
    http = parse_engine_url("https://user:pw@es.example:9200")
    assert http.kind is None and http.https and http.describe() == "https://***@es.example:9200"
    assert parse_engine_url("http://os:9200", "opensearch").kind == "opensearch"


@pytest.mark.parametrize(
    ("url", "engine", "message"),
    [
        ("localhost:9200", None, "has no scheme"),
        ("redis://x", None, "unknown engine URL scheme"),
        ("qdrant-edge://", None, "names no folder"),
        ("http://", None, "names no host"),
        ("qdrant://x:notaport", None, "invalid port"),
        ("qdrant://x", "elasticsearch", "contradicts the URL"),
        ("http://x:9200", "qdrant", "does not take an http"),
        ("http://x:9200", "solr", "unknown engine 'solr'"),
    ],
)
def test_bad_urls(url: str, engine: str | None, message: str) -> None:
    with pytest.raises(EngineConfigError, match=message):
        parse_engine_url(url, engine)


def test_detects_elasticsearch_and_opensearch(root_server: tuple[str, dict[str, Any]]) -> None:
    url, state = root_server
    settings = HttpSettings.resolve(url, username="elastic", password="pw", environ={})
    assert detect_http_engine(settings) == "elasticsearch"
    assert state["auth"][-1].startswith("Basic ")
    state["body"] = OS_ROOT
    assert detect_http_engine(settings) == "opensearch"
    state["body"] = {"hello": "world"}
    with pytest.raises(EngineConfigError, match="does not look like Elasticsearch or OpenSearch"):
        detect_http_engine(settings)
    state["status"] = 401
    with pytest.raises(EngineConfigError, match="answered HTTP 401"):
        detect_http_engine(settings)


ES_405 = {"error": "Incorrect HTTP method for uri [/] and method [GET], allowed: [DELETE]", "status": 405}


def test_a_minimal_elasticsearch_without_get_root_is_recognised_by_its_header(
    root_server: tuple[str, dict[str, Any]],
) -> None:
    url, state = root_server
    settings = HttpSettings.resolve(url, environ={})
    state["status"], state["body"] = 405, ES_405
    with pytest.raises(EngineConfigError, match="answered HTTP 405"):  # no product header: unknown
        detect_http_engine(settings)
    state["headers"] = {"X-Elastic-Product": "Elasticsearch"}
    nodes = {"nodes": {"abc": {"version": "9.1.4"}}}
    state["paths"] = {"/_nodes/_local?filter_path=nodes.*.version": (200, nodes)}
    assert detect_http_engine(settings) == "elasticsearch"
    assert engines.probe_http_engine(settings) == engines.HttpEngine("elasticsearch", "9.1.4")
    state["paths"] = {}  # the version cannot be read: still Elasticsearch
    assert engines.probe_http_engine(settings) == engines.HttpEngine("elasticsearch", None)


def test_elasticsearch_without_distribution_is_never_taken_for_opensearch(
    root_server: tuple[str, dict[str, Any]],
) -> None:
    url, state = root_server
    settings = HttpSettings.resolve(url, environ={})
    state["body"] = {"name": "n", "version": {"number": "8.19.2"}}  # no tagline, no distribution
    with pytest.raises(EngineConfigError, match="does not look like"):
        detect_http_engine(settings)
    state["headers"] = {"X-Elastic-Product": "Elasticsearch"}
    assert engines.probe_http_engine(settings) == engines.HttpEngine("elasticsearch", "8.19.2")
    state["body"], state["headers"] = OS_ROOT, {}
    assert engines.probe_http_engine(settings) == engines.HttpEngine("opensearch", "3.3.0")


def test_detection_uses_opensearch_credentials_when_only_those_are_set(
    root_server: tuple[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, state = root_server
    state["status"], state["body"] = 401, {"error": "unauthorized"}
    monkeypatch.setenv("SPLADEBRIDGE_OS_USERNAME", "admin")
    monkeypatch.setenv("SPLADEBRIDGE_OS_PASSWORD", "pw")
    for name in ("API_KEY", "USERNAME", "PASSWORD"):
        monkeypatch.delenv(f"SPLADEBRIDGE_ES_{name}", raising=False)
    with pytest.raises(EngineConfigError, match="answered HTTP 401"):
        engines.connect(url, index="docs")
    assert state["auth"][-1] == "Basic " + base64.b64encode(b"admin:pw").decode()


def test_connect_opens_an_opensearch_index_by_name(root_server: tuple[str, dict[str, Any]]) -> None:
    from os_fake import FakeOpenSearch

    from spladebridge.connectors.base import IndexSpec
    from spladebridge.connectors.opensearch import OpenSearchConnector

    url, state = root_server
    state["body"] = OS_ROOT
    conn = engines.connect(url, index="docs")  # detected from GET /
    assert isinstance(conn, OpenSearchConnector)
    assert conn.settings is not None and conn.settings.urls == (url,)
    # the index the caller named is the one it opens: its spec comes from the mapping's _meta
    fake = FakeOpenSearch()
    spec = IndexSpec(name="docs", dense_dim=3)
    OpenSearchConnector(client=fake.client(), spec=spec).ensure_index(spec)
    conn.client = fake.client()
    assert conn.count() == 0 and conn.spec == spec
    conn.close()
    with engines.connect(url, spec=IndexSpec(name="papers", dense_dim=3), engine="opensearch") as lazy:
        assert isinstance(lazy, OpenSearchConnector)
        lazy.client = fake.client()
        assert lazy.count() == 0 and "papers" in fake.indices  # the spec is created on first use


def test_unreachable_engine_is_a_clear_error() -> None:
    settings = HttpSettings.resolve("http://127.0.0.1:9", environ={})
    with pytest.raises(EngineConfigError, match=r"cannot reach http://127\.0\.0\.1:9"):
        detect_http_engine(settings, timeout=2)


def test_missing_client_library_gives_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.import_module

    def fake_import(name: str, package: str | None = None) -> Any:
        if name == "spladebridge.connectors.elasticsearch":
            raise ModuleNotFoundError("No module named 'elasticsearch'", name="elasticsearch")
        return real(name, package)

    monkeypatch.setattr(engines.importlib, "import_module", fake_import)
    with pytest.raises(EngineConfigError, match=r"pip install 'spladebridge\[elasticsearch\]'"):
        engines.connect("http://localhost:9200", engine="elasticsearch")


def test_qdrant_edge_index_lives_in_its_own_folder(tmp_path: Path) -> None:
    with engines.connect(f"qdrant-edge://{tmp_path}", index="papers") as conn:
        assert type(conn).__name__ == "QdrantEdgeConnector"
    assert (tmp_path / "papers").is_dir()
    with pytest.raises(EngineConfigError, match="not usable"):
        engines.connect(f"qdrant-edge://{tmp_path}", index="../escape")
