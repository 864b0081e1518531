"""A fake Elasticsearch node for unit tests: the real `elasticsearch` client talks to a recorder.

The client, its serializers and `helpers.streaming_bulk` all run for real; only the HTTP node is replaced by
`FakeNode`, which records every request (method, path, query, parsed JSON or NDJSON body) and answers with
what a handler returns. Transport retries are off (`max_retries=0`) so each call reaches the node once.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from elastic_transport import ApiResponseMeta, BaseNode, HttpHeaders, NodeConfig
from elastic_transport._node import NodeApiResponse
from elasticsearch import Elasticsearch


@dataclass
class Request:
    """One recorded HTTP request."""

    method: str
    path: str
    query: dict[str, str]
    body: Any = None  # parsed JSON object, a list of parsed NDJSON lines, or None

    @property
    def lines(self) -> list[Any]:
        return list(self.body) if isinstance(self.body, list) else []


Reply = tuple[int, Any]
Handler = Callable[[Request], Reply]


@dataclass
class FakeCluster:
    """Routes requests to `handler` (or raises `raise_next` once) and keeps every request in `requests`."""

    handler: Handler
    requests: list[Request] = field(default_factory=list)
    raise_next: list[BaseException] = field(default_factory=list)

    def calls(self, method: str, path_suffix: str) -> list[Request]:
        return [r for r in self.requests if r.method == method and r.path.endswith(path_suffix)]

    def client(self) -> Elasticsearch:
        cluster = self

        class _Node(FakeNode):
            owner = cluster

        return Elasticsearch("http://fake-es:9200", node_class=_Node, max_retries=0)


def _parse_body(body: bytes | None) -> Any:
    if not body:
        return None
    text = body.decode("utf-8")
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return [json.loads(line) for line in text.splitlines() if line.strip()]


class FakeNode(BaseNode):
    owner: FakeCluster

    def __init__(self, config: NodeConfig) -> None:
        super().__init__(config)

    def perform_request(  # type: ignore[override]
        self,
        method: str,
        target: str,
        body: bytes | None = None,
        headers: HttpHeaders | None = None,
        request_timeout: Any = None,
    ) -> NodeApiResponse:
        parts = urlsplit(target)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        request = Request(method, parts.path, query, _parse_body(body))
        self.owner.requests.append(request)
        if self.owner.raise_next:
            raise self.owner.raise_next.pop(0)
        status, payload = self.owner.handler(request)
        headers_out = HttpHeaders({"content-type": "application/json", "x-elastic-product": "Elasticsearch"})
        meta = ApiResponseMeta(
            status=status, http_version="1.1", headers=headers_out, duration=0.0, node=self.config
        )
        return NodeApiResponse(meta, json.dumps(payload).encode("utf-8") if payload is not None else b"")


def bulk_reply(
    request: Request, statuses: dict[str, int] | None = None, errors: dict[str, Any] | None = None
) -> Reply:
    """A `_bulk` response: per-item status by `_id` (default 201/200), with optional error bodies."""
    statuses = statuses or {}
    errors = errors or {}
    items: list[dict[str, Any]] = []
    lines = request.lines
    i = 0
    while i < len(lines):
        ((op, meta),) = lines[i].items()
        i += 1 if op == "delete" else 2
        doc_id = meta["_id"]
        status = statuses.get(doc_id, 200 if op == "delete" else 201)
        item: dict[str, Any] = {"_index": meta.get("_index", "idx"), "_id": doc_id, "status": status}
        if 200 <= status < 300:
            item["result"] = "deleted" if op == "delete" else "created"
        elif status == 404 and op == "delete":
            item["result"] = "not_found"
        else:
            item["error"] = errors.get(doc_id, {"type": "es_rejected_execution_exception", "reason": "busy"})
        items.append({op: item})
    has_errors = any(not 200 <= next(iter(it.values()))["status"] < 300 for it in items)
    return 200, {"took": 1, "errors": has_errors, "items": items}


def _truncate9(value: float) -> float:
    import numpy as np

    arr = np.asarray([value], dtype=np.float32)
    return float((arr.view(np.uint32) >> np.uint32(15) << np.uint32(15)).view(np.float32)[0])


class MiniES:
    """A tiny in-memory Elasticsearch for connector tests: indices, bulk, mget, count, PIT pages, and scoring
    of the sparse queries (sparse_vector / rank_feature linear, with Lucene's 9-bit stored values), kNN
    (cosine), a word-overlap stand-in for BM25, and term/terms/range filters. Retriever bodies are recorded
    and answered with `retriever_hits`."""

    def __init__(self, version: str = "9.1.0", license_type: str | None = "trial") -> None:
        self.version = version
        self.license_type = license_type
        self.indices: dict[str, dict[str, Any]] = {}
        self.reject: dict[str, tuple[int, dict[str, Any]]] = {}
        self.retriever_hits: list[str] = []
        self.pits: set[str] = set()
        self.pit_supported = True
        self.reject_compat = False  # answer like an 8.x server to a 9.x client's compatible-with=9 headers
        self.scrolls: dict[str, tuple[str, int]] = {}
        self.cluster = FakeCluster(self.handle)

    def client(self) -> Elasticsearch:
        return self.cluster.client()

    # -- routing ------------------------------------------------------------------------------------------
    def handle(self, r: Request) -> Reply:
        parts = [p for p in r.path.split("/") if p]
        if self.reject_compat:
            reason = "Accept version must be either version 8 or 7, but found 9."
            err = {"type": "media_type_header_exception", "reason": reason}
            return 400, {"error": {"root_cause": [err], **err}, "status": 400}
        if parts == ["_search", "scroll"]:
            return self.scroll(r)
        if r.method == "GET" and not parts:
            return 200, {
                "version": {"number": self.version, "build_flavor": "default"},
                "tagline": "You Know",
            }
        if parts == ["_license"]:
            if self.license_type is None:
                return 403, {"error": {"type": "security_exception", "reason": "no privilege"}, "status": 403}
            return 200, {"license": {"status": "active", "type": self.license_type}}
        if parts[-1] == "_bulk":
            return self.bulk(r)
        if parts == ["_pit"] and r.method == "DELETE":
            self.pits.discard(r.body["id"])
            return 200, {"succeeded": True, "num_freed": 1}
        if parts == ["_search"]:
            return self.search(self.pit_index(r.body), r.body)
        name = parts[0]
        if len(parts) == 1:
            if r.method == "HEAD":
                return (200 if name in self.indices else 404), None
            if r.method == "PUT":
                if name in self.indices:
                    err = {"type": "resource_already_exists_exception", "reason": "exists"}
                    return 400, {"error": {"root_cause": [err], **err}, "status": 400}
                self.indices[name] = {**(r.body or {}), "docs": {}}
                return 200, {"acknowledged": True, "index": name}
        index = self.indices.get(name)
        if index is None:
            err = {"type": "index_not_found_exception", "reason": f"no such index [{name}]"}
            return 404, {"error": {"root_cause": [err], **err}, "status": 404}
        op = parts[1]
        if op == "_mapping":
            return 200, {name: {"mappings": index.get("mappings", {})}}
        if op == "_refresh":
            return 200, {"_shards": {"total": 1, "successful": 1, "failed": 0}}
        if op == "_count":
            return 200, {"count": len(index["docs"])}
        if op == "_mget":
            docs = []
            for doc_id in r.body["ids"]:
                src = index["docs"].get(doc_id)
                docs.append(
                    {
                        "_index": name,
                        "_id": doc_id,
                        "found": src is not None,
                        **({"_source": src} if src else {}),
                    }
                )
            return 200, {"docs": docs}
        if op == "_pit":
            if not self.pit_supported:
                err = {"type": "illegal_argument_exception", "reason": "no handler found for uri [/_pit]"}
                return 400, {"error": {"root_cause": [err], **err}, "status": 400}
            pit = f"pit-{name}-{len(self.pits)}"
            self.pits.add(pit)
            return 200, {"id": pit}
        if op == "_search" and "scroll" in r.query:
            scroll_id = f"scroll-{len(self.scrolls)}"
            self.scrolls[scroll_id] = (name, 0)
            return self.scroll_page(scroll_id, int((r.body or {}).get("size", r.query.get("size", 10))))
        if op == "_search":
            return self.search(name, r.body)
        raise AssertionError(f"MiniES: unhandled {r.method} {r.path}")

    def scroll(self, r: Request) -> Reply:
        if r.method == "DELETE":
            ids = r.body["scroll_id"]
            for scroll_id in [ids] if isinstance(ids, str) else ids:
                self.scrolls.pop(scroll_id, None)
            return 200, {"succeeded": True, "num_freed": 1}
        return self.scroll_page(r.body["scroll_id"], None)

    def scroll_page(self, scroll_id: str, size: int | None) -> Reply:
        name, start = self.scrolls[scroll_id]
        size = size or self.scroll_size
        self.scroll_size = size
        docs = self.indices[name]["docs"]
        page = sorted(docs)[start : start + size]
        self.scrolls[scroll_id] = (name, start + len(page))
        hits = [{"_id": d, "_source": docs[d]} for d in page]
        return 200, {"_scroll_id": scroll_id, "hits": {"hits": hits}}

    scroll_size = 10

    def pit_index(self, body: dict[str, Any]) -> str:
        pit = body["pit"]["id"]
        assert pit in self.pits, "search on a closed PIT"
        return pit.split("-")[1]

    # -- writes -------------------------------------------------------------------------------------------
    def bulk(self, r: Request) -> Reply:
        items = []
        lines = r.lines
        i = 0
        while i < len(lines):
            ((op, meta),) = lines[i].items()
            source = lines[i + 1] if op != "delete" else None
            i += 1 if op == "delete" else 2
            index = self.indices[meta["_index"]]
            doc_id = meta["_id"]
            item: dict[str, Any] = {"_index": meta["_index"], "_id": doc_id}
            if doc_id in self.reject:
                status, error = self.reject[doc_id]
                item.update(status=status, error=error)
            elif op == "delete":
                found = index["docs"].pop(doc_id, None) is not None
                item.update(status=200 if found else 404, result="deleted" if found else "not_found")
            else:
                problem = self.check_source(index, source or {})
                if problem:
                    item.update(status=400, error={"type": "document_parsing_exception", "reason": problem})
                else:
                    created = doc_id not in index["docs"]
                    index["docs"][doc_id] = source
                    item.update(status=201 if created else 200, result="created" if created else "updated")
            items.append({op: item})
        return 200, {
            "took": 1,
            "errors": any(not 200 <= next(iter(x.values()))["status"] < 300 for x in items),
            "items": items,
        }

    @staticmethod
    def check_source(index: dict[str, Any], source: dict[str, Any]) -> str | None:
        for name_, mapping in index.get("mappings", {}).get("properties", {}).items():
            value = source.get(name_)
            if value is None:
                continue
            if mapping.get("type") in ("rank_features", "sparse_vector"):
                for name, weight in value.items():
                    if mapping["type"] == "rank_features" and "." in name:
                        return (
                            f"[rank_features] fields do not support dots in feature names but found [{name}]"
                        )
                    if not weight > 0:
                        kind = mapping["type"]
                        return f"[{kind}] only supports positive values, found [{weight}] for [{name}]"
            if mapping.get("type") == "dense_vector" and len(value) != mapping["dims"]:
                return f"dense_vector has {len(value)} dims, mapping says {mapping['dims']}"
        return None

    # -- search -------------------------------------------------------------------------------------------
    def search(self, name: str, body: dict[str, Any]) -> Reply:
        index = self.indices[name]
        docs: dict[str, dict[str, Any]] = index["docs"]
        size = body.get("size", 10)
        if "pit" in body:
            ids = sorted(docs)
            start = 0
            if "search_after" in body:
                start = ids.index(body["search_after"][0]) + 1
            page = ids[start : start + size]
            hits = [{"_id": d, "_source": docs[d], "sort": [d]} for d in page]
            return 200, {"pit_id": body["pit"]["id"], "hits": {"hits": hits}}
        if "retriever" in body and "standard" not in body["retriever"]:
            hits = [
                {"_id": d, "_score": 1.0 / (i + 1), "_source": self.shown(docs[d], body)}
                for i, d in enumerate(self.retriever_hits)
            ]
            return 200, {"hits": {"hits": hits[:size]}}
        scored: list[tuple[float, str]] = []
        for doc_id, src in docs.items():
            if "knn" in body:
                knn = body["knn"]
                if not all(self.matches(c, src) for c in knn.get("filter", [])):
                    continue
                score = self.cosine(knn["query_vector"], src.get(knn["field"]))
            else:
                score = self.score(body["query"], src)
            if score is not None:
                scored.append((score, doc_id))
        scored.sort(key=lambda t: (-t[0], t[1]))
        hits = [{"_id": d, "_score": s, "_source": self.shown(docs[d], body)} for s, d in scored[:size]]
        return 200, {"hits": {"hits": hits}}

    @staticmethod
    def shown(src: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        excludes = (
            (body.get("_source") or {}).get("excludes", []) if isinstance(body.get("_source"), dict) else []
        )
        return {k: v for k, v in src.items() if k not in excludes}

    @staticmethod
    def cosine(query: list[float], vec: list[float] | None) -> float | None:
        import numpy as np

        if vec is None:
            return None
        q, v = np.asarray(query), np.asarray(vec)
        return float((1 + q @ v / (np.linalg.norm(q) * np.linalg.norm(v))) / 2)

    def score(self, query: dict[str, Any], src: dict[str, Any]) -> float | None:
        ((kind, q),) = query.items()
        if kind == "bool":
            if not all(self.matches(c, src) for c in q.get("filter", [])):
                return None
            total, matched = 0.0, False
            for clause in q.get("must", []):
                s = self.score(clause, src)
                if s is None:
                    return None
                total, matched = total + s, True
            for clause in q.get("should", []):
                s = self.score(clause, src)
                if s is not None:
                    total, matched = total + s, True
            return total if matched else None
        if kind == "sparse_vector":
            assert q["prune"] is False
            stored = src.get(q["field"]) or {}
            common = [n for n in q["query_vector"] if n in stored]
            return sum(q["query_vector"][n] * _truncate9(stored[n]) for n in common) if common else None
        if kind == "rank_feature":
            assert "linear" in q, "only the linear function is a dot product"
            field, _, name = q["field"].partition(".")
            value = (src.get(field) or {}).get(name)
            return None if value is None else q.get("boost", 1.0) * _truncate9(value)
        if kind in ("match", "multi_match", "combined_fields"):
            if kind == "match":
                ((field, spec),) = q.items()
                fields, text = [field], spec["query"]
            else:
                fields, text = q["fields"], q["query"]
            words = set(text.lower().split())
            hits = sum(len(words & set(str(src.get(f, "")).lower().split())) for f in fields)
            return float(hits) if hits else None
        raise AssertionError(f"MiniES: unhandled query {kind}")

    @staticmethod
    def matches(clause: dict[str, Any], src: dict[str, Any]) -> bool:
        ((kind, body),) = clause.items()
        ((field, value),) = body.items()
        actual = src.get(field.removesuffix(".keyword"))
        if kind == "term":
            return actual == (value["value"] if isinstance(value, dict) else value)
        if kind == "terms":
            return actual in value
        if kind == "range":
            if actual is None:
                return False
            ops = {"gte": actual >= value.get("gte", actual), "gt": "gt" not in value or actual > value["gt"]}
            ops2 = {
                "lte": actual <= value.get("lte", actual),
                "lt": "lt" not in value or actual < value["lt"],
            }
            return all(ops.values()) and all(ops2.values())
        raise AssertionError(f"MiniES: unhandled filter {kind}")
