"""Client-side cost of ElasticsearchConnector.upsert: Document -> `_source` -> NDJSON -> per-item outcomes.

No server: the real `elasticsearch` client and `helpers.streaming_bulk` run against an in-process node that
acknowledges every item (201), so the figure is what this library adds per document, not cluster speed.
Documents carry SPLADE-like vectors (`--nnz` active tokens, default 120) and a 384-dim dense vector.

Usage: python benchmarks/es_bulk_overhead.py [--docs 20000] [--nnz 120] [--json]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from typing import Any

import numpy as np
from elastic_transport import ApiResponseMeta, BaseNode, HttpHeaders
from elastic_transport._node import NodeApiResponse
from elasticsearch import Elasticsearch

from spladebridge.connectors.base import Document, IndexSpec
from spladebridge.connectors.bulk import BulkConfig
from spladebridge.connectors.elasticsearch import ElasticsearchConnector
from spladebridge.encoder.sparse_vector import SparseVector

_HEADERS = HttpHeaders({"content-type": "application/json", "x-elastic-product": "Elasticsearch"})


class AckNode(BaseNode):
    """Answers `GET /` as 9.1.0, index creation, and every `_bulk` item with 201."""

    sent_bytes = 0

    def perform_request(
        self, method: str, target: str, body: bytes | None = None, **_: Any
    ) -> NodeApiResponse:
        path = target.split("?", 1)[0]
        payload: Any
        if path.endswith("/_bulk"):
            AckNode.sent_bytes += len(body or b"")
            lines = (body or b"").split(b"\n")
            items = []
            i = 0
            while i < len(lines) and lines[i]:
                action = json.loads(lines[i])
                ((op, meta),) = action.items()
                items.append({op: {"_id": meta["_id"], "status": 201, "result": "created"}})
                i += 1 if op == "delete" else 2
            payload = {"took": 1, "errors": False, "items": items}
        elif path == "/":
            payload = {"version": {"number": "9.1.0"}}
        elif method == "HEAD":
            return NodeApiResponse(self._meta(404), b"")
        else:
            payload = {"acknowledged": True}
        return NodeApiResponse(self._meta(200), json.dumps(payload).encode())

    def _meta(self, status: int) -> ApiResponseMeta:
        return ApiResponseMeta(
            status=status, http_version="1.1", headers=_HEADERS, duration=0.0, node=self.config
        )


def _documents(n: int, nnz: int, seed: int = 0) -> list[Document]:
    rng = np.random.default_rng(seed)
    docs = []
    for i in range(n):
        ids = rng.choice(30522, size=nnz, replace=False)
        docs.append(
            Document(
                id=i,
                fields={"title": f"title {i}", "text": "some text " * 20},
                metadata={"source": "bench", "year": 2000 + i % 20},
                sparse=SparseVector(ids, rng.gamma(1.0, 0.5, size=nnz) + 1e-3),
                dense=rng.normal(size=384).astype(np.float32),
            )
        )
    return docs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=20_000)
    parser.add_argument("--nnz", type=int, default=120)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args()
    docs = _documents(args.docs, args.nnz)
    extra: dict[str, Any] = {}
    try:  # what ElasticsearchConnector uses when it builds its own client
        from elasticsearch.serializer import OrjsonSerializer

        extra["serializer"] = OrjsonSerializer()
    except ImportError:
        pass
    client = Elasticsearch("http://bench:9200", node_class=AckNode, max_retries=0, **extra)
    conn = ElasticsearchConnector(client=client, bulk=BulkConfig(chunk_size=500))
    conn.ensure_index(IndexSpec(name="bench", dense_field="dense", dense_dim=384))
    start = time.perf_counter()
    report = conn.upsert(docs)
    seconds = time.perf_counter() - start
    assert report.ok and len(report) == args.docs
    result = {
        "benchmark": "es_bulk_overhead",
        "docs": args.docs,
        "nnz": args.nnz,
        "dense_dim": 384,
        "seconds": round(seconds, 3),
        "docs_per_s": round(args.docs / seconds, 1),
        "mb_sent": round(AckNode.sent_bytes / 1e6, 2),
        "serializer": type(client.transport.serializers.get_serializer("application/json")).__name__,
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['docs_per_s']} docs/s client-side ({args.docs} docs, nnz {args.nnz}, dense 384)")


if __name__ == "__main__":
    main()
