"""Engine URLs: parsing, flavour detection from a real (local) `GET /`, and missing-client hints."""

from __future__ import annotations

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
    """A local HTTP server answering GET / with `state["body"]` (status `state["status"]`)."""
    state: dict[str, Any] = {"body": ES_ROOT, "status": 200, "auth": []}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state["auth"].append(self.headers.get("Authorization"))
            payload = json.dumps(state["body"]).encode()
            self.send_response(state["status"])
            self.send_header("Content-Type", "application/json")
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
