"""The clients the Lucene connectors build retry nothing on their own: against a server that answers every
bulk request with 429 (or 503), a document is sent exactly `max_retries + 1` times, through the real
`elasticsearch` / `opensearch-py` transports over HTTP, not `max_retries + 1` times the transport's own
retries."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from spladebridge.connectors.bulk import BulkAction, BulkConfig
from spladebridge.connectors.elasticsearch import ElasticsearchConnector
from spladebridge.connectors.lucene_connector import LuceneConnector
from spladebridge.connectors.opensearch import OpenSearchConnector, OpenSearchOptions
from spladebridge.connectors.retry import RetryPolicy


class _Busy(BaseHTTPRequestHandler):
    """Answers every request with `status` and counts the `_bulk` ones."""

    status = 429
    bulk_requests = 0
    lock = threading.Lock()

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        self.rfile.read(length)
        if self.path.split("?")[0].endswith("/_bulk"):
            with _Busy.lock:
                _Busy.bulk_requests += 1
        body = json.dumps({"error": {"type": "es_rejected_execution_exception", "reason": "busy"}}).encode()
        self.send_response(self.status)
        self.send_header("content-type", "application/json")
        self.send_header("x-elastic-product", "Elasticsearch")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_PUT = do_POST

    def log_message(self, format: str, *args: object) -> None:
        return None


@pytest.fixture
def busy_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Busy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Busy.bulk_requests = 0
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _connector(engine: str, url: str, max_retries: int) -> LuceneConnector:
    bulk = BulkConfig(retry=RetryPolicy(max_retries=max_retries, initial_backoff=0.0))
    if engine == "elasticsearch":
        return ElasticsearchConnector(url, bulk=bulk)
    return OpenSearchConnector(url, options=OpenSearchOptions(bulk=bulk))


@pytest.mark.parametrize("status", [429, 503])
@pytest.mark.parametrize("engine", ["elasticsearch", "opensearch"])
@pytest.mark.parametrize("max_retries", [0, 2])
def test_a_busy_server_gets_each_document_exactly_max_retries_plus_one_times(
    busy_url: str, engine: str, status: int, max_retries: int
) -> None:
    _Busy.status = status
    conn = _connector(engine, busy_url, max_retries)
    try:
        action = BulkAction("index", "docs", "d0", {"title": "x"}, item_id="d0")
        report = conn.cluster.bulk([action], conn.bulk_config)
    finally:
        conn.close()
    (outcome,) = report.outcomes
    assert not outcome.ok and outcome.retryable and outcome.attempts == max_retries + 1
    assert _Busy.bulk_requests == max_retries + 1


def test_a_given_elasticsearch_client_keeps_its_retries_for_other_calls_but_not_for_bulk(
    busy_url: str,
) -> None:
    from elasticsearch import Elasticsearch

    _Busy.status = 429
    client = Elasticsearch(busy_url, max_retries=3, retry_on_status=(429,))
    conn = ElasticsearchConnector(
        client=client, bulk=BulkConfig(retry=RetryPolicy(max_retries=1, initial_backoff=0.0))
    )
    action = BulkAction("index", "docs", "d0", {"title": "x"}, item_id="d0")
    conn.cluster.bulk([action], conn.bulk_config)
    assert _Busy.bulk_requests == 2  # not 2 x 4
    assert client.transport.max_retries == 3  # the caller's client is left as it was
    client.close()
