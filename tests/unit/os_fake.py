"""A fake OpenSearch node for unit tests: the real `opensearch-py` client talks to an in-memory index.

The client, its serializer and `helpers.streaming_bulk` run for real; only the HTTP connection is replaced
(`FakeConnection`), so every request the connector makes is recorded (method, path, params, parsed body)
and answered by `FakeOpenSearch`, which keeps documents per index and scores the query shapes the connector
sends (neural_sparse, rank_feature linear clauses, knn innerproduct, term/terms/range filters) the way
OpenSearch does: Lucene's 9-bit stored feature values, faiss' inner-product score.
Per-item bulk failures are scripted with `fail_plan` (id -> statuses for successive attempts) and
`reject` (a source predicate giving a mapping error).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import numpy as np
from opensearchpy import OpenSearch
from opensearchpy.connection import Connection

from spladebridge.connectors.lucene import truncate_9bit


@dataclass
class Request:
    method: str
    path: str
    params: dict[str, Any]
    body: Any = None


def _parse(body: bytes | str | None) -> Any:
    if body is None:
        return None
    text = body.decode() if isinstance(body, bytes) else body
    text = text.strip()
    if not text:
        return None
    if "\n" in text:
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    return json.loads(text)


def _knn_score(ip: float) -> float:
    return ip + 1.0 if ip >= 0 else 1.0 / (1.0 - ip)


@dataclass
class FakeOpenSearch:
    """In-memory OpenSearch: version, plugins, indices, pipelines; records every request."""

    version: str = "3.3.0"
    plugins: tuple[str, ...] = ("opensearch-neural-search", "opensearch-knn")
    indices: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    index_bodies: dict[str, Any] = field(default_factory=dict)
    pipelines: dict[str, Any] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    fail_plan: dict[str, list[int]] = field(default_factory=dict)
    reject: Callable[[dict[str, Any]], str | None] | None = None
    search_handler: Callable[[Request], dict[str, Any]] | None = None
    pits: dict[str, str] = field(default_factory=dict)
    bulk_status_plan: list[int] = field(default_factory=list)  # whole-request statuses, one per bulk call

    def client(self) -> OpenSearch:
        owner = self

        class _Conn(FakeConnection):
            fake = owner

        return OpenSearch(hosts=[{"host": "fake-os", "port": 9200}], connection_class=_Conn, max_retries=0)

    def calls(self, method: str, suffix: str) -> list[Request]:
        return [r for r in self.requests if r.method == method and r.path.endswith(suffix)]

    # -- routing ----------------------------------------------------------------------------------------

    def handle(self, req: Request) -> tuple[int, Any]:
        self.requests.append(req)
        parts = [unquote(p) for p in req.path.strip("/").split("/") if p]
        if not parts:
            return 200, {"version": {"distribution": "opensearch", "number": self.version}}
        if parts == ["_cat", "plugins"]:
            return 200, [{"name": "node", "component": c, "version": self.version} for c in self.plugins]
        if parts[0] == "_search" and len(parts) >= 3 and parts[1] == "pipeline":
            self.pipelines[parts[2]] = req.body
            return 200, {"acknowledged": True}
        if parts[0] == "_search" and len(parts) == 2 and parts[1] == "point_in_time":
            for pid in req.body["pit_id"]:
                self.pits.pop(pid, None)
            return 200, {"pits": []}
        if parts == ["_search"]:
            return self._search(req, None)
        if parts == ["_bulk"] or parts[-1] == "_bulk":
            return self._bulk(req)
        index = parts[0]
        if len(parts) == 1:
            if req.method == "HEAD":
                return (200 if index in self.indices else 404), None
            if req.method == "PUT":
                if index in self.indices:
                    return 400, {"error": {"type": "resource_already_exists_exception", "reason": index}}
                self.indices[index] = {}
                self.index_bodies[index] = req.body
                return 200, {"acknowledged": True, "index": index}
        if index not in self.indices:
            return 404, {"error": {"type": "index_not_found_exception", "reason": index}}
        op = parts[1]
        if op == "_mapping":
            return 200, {index: {"mappings": self.index_bodies[index]["mappings"]}}
        if op == "_refresh":
            return 200, {"_shards": {"total": 1, "successful": 1, "failed": 0}}
        if op == "_count":
            return 200, {"count": len(self.indices[index])}
        if op == "_mget":
            docs = []
            for key in req.body["ids"]:
                src = self.indices[index].get(key)
                docs.append(
                    {"_id": key, "found": src is not None, **({"_source": src} if src is not None else {})}
                )
            return 200, {"docs": docs}
        if op == "_search" and len(parts) >= 3 and parts[2] == "point_in_time":
            pid = f"pit-{len(self.pits)}"
            self.pits[pid] = index
            return 200, {"pit_id": pid}
        if op == "_search":
            return self._search(req, index)
        return 400, {"error": {"type": "fake_unsupported", "reason": req.path}}

    # -- bulk -------------------------------------------------------------------------------------------

    def _bulk(self, req: Request) -> tuple[int, Any]:
        if self.bulk_status_plan:
            status = self.bulk_status_plan.pop(0)
            return status, {
                "error": {"type": "rejected_execution_exception", "reason": "scripted"},
                "status": status,
            }
        lines = req.body
        items = []
        i = 0
        while i < len(lines):
            action = lines[i]
            ((op, meta),) = action.items()
            i += 1
            source: dict[str, Any] = {}
            if op != "delete":
                source = lines[i]
                i += 1
            index, doc_id = meta["_index"], meta["_id"]
            plan = self.fail_plan.get(doc_id)
            if plan:
                status = plan.pop(0)
                items.append(
                    {
                        op: {
                            "_index": index,
                            "_id": doc_id,
                            "status": status,
                            "error": {
                                "type": "es_rejected_execution_exception" if status == 429 else "fake_error",
                                "reason": f"scripted {status}",
                            },
                        }
                    }
                )
                continue
            if op == "delete":
                found = self.indices.get(index, {}).pop(doc_id, None) is not None
                status = 200 if found else 404
                items.append(
                    {
                        op: {
                            "_index": index,
                            "_id": doc_id,
                            "status": status,
                            "result": "deleted" if found else "not_found",
                        }
                    }
                )
                continue
            reason = self.reject(source) if self.reject is not None else None
            if reason is not None:
                items.append(
                    {
                        op: {
                            "_index": index,
                            "_id": doc_id,
                            "status": 400,
                            "error": {"type": "mapper_parsing_exception", "reason": reason},
                        }
                    }
                )
                continue
            store = self.indices.setdefault(index, {})
            created = doc_id not in store
            store[doc_id] = source
            items.append(
                {
                    op: {
                        "_index": index,
                        "_id": doc_id,
                        "status": 201 if created else 200,
                        "result": "created" if created else "updated",
                    }
                }
            )
        errors = any(not 200 <= next(iter(it.values()))["status"] < 300 for it in items)
        return 200, {"took": 1, "errors": errors, "items": items}

    # -- search -----------------------------------------------------------------------------------------

    def _search(self, req: Request, index: str | None) -> tuple[int, Any]:
        body = req.body or {}
        if self.search_handler is not None and "pit" not in body:
            return 200, self.search_handler(req)
        if "pit" in body:
            index = self.pits[body["pit"]["id"]]
        assert index is not None
        docs = self.indices[index]
        scored: list[tuple[float, str, dict[str, Any]]] = []
        for doc_id, src in docs.items():
            score = _score(body.get("query", {"match_all": {}}), src)
            if score is not None:
                scored.append((score, doc_id, src))
        if "sort" in body:
            scored.sort(key=lambda t: t[1])  # `_id` order
            after = body.get("search_after")
            if after is not None:
                scored = [t for t in scored if t[1] > after[0]]
        else:
            scored.sort(key=lambda t: (-t[0], t[1]))
        size = body.get("size", 10)
        excludes = (
            set(body.get("_source", {}).get("excludes", []))
            if isinstance(body.get("_source"), dict)
            else set()
        )
        hits = []
        for score, doc_id, src in scored[:size]:
            hit = {
                "_id": doc_id,
                "_score": score,
                "_source": {k: v for k, v in src.items() if k not in excludes},
            }
            if "sort" in body:
                hit["sort"] = [doc_id]
            hits.append(hit)
        return 200, {"hits": {"total": {"value": len(scored)}, "hits": hits}}


def _get_path(src: dict[str, Any], path: str) -> Any:
    path = path.removesuffix(".keyword")  # a text field's keyword sub-field holds the exact text
    cur: Any = src
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return cur


def _matches_filter(clause: dict[str, Any], src: dict[str, Any]) -> bool:
    ((kind, spec),) = clause.items()
    if kind == "bool":
        return all(_matches_filter(c, src) for c in spec.get("filter", []))
    ((path, value),) = spec.items()
    actual = _get_path(src, path)
    if kind == "term":
        expected = value["value"] if isinstance(value, dict) else value
        return bool(actual == expected)
    if kind == "terms":
        return actual in value
    if kind == "range":
        if actual is None:
            return False
        ops = {
            "gte": actual >= value.get("gte", -np.inf),
            "gt": actual > value.get("gt", -np.inf),
            "lte": actual <= value.get("lte", np.inf),
            "lt": actual < value.get("lt", np.inf),
        }
        return all(ops.values())
    raise AssertionError(f"fake cannot filter with {kind}")


def _feature_dot(features: dict[str, float], stored: dict[str, float] | None) -> float | None:
    if not stored:
        return None
    total = 0.0
    hit = False
    for name, weight in features.items():
        if name in stored:
            assert 0 < weight <= 64, f"Lucene rejects linear feature weight {weight}"
            total += weight * float(truncate_9bit(float(stored[name])))
            hit = True
    return total if hit else None


def _score(query: dict[str, Any], src: dict[str, Any]) -> float | None:
    ((kind, spec),) = query.items()
    if kind == "match_all":
        return 1.0
    if kind == "bool":
        if not all(_matches_filter(c, src) for c in spec.get("filter", [])):
            return None
        if "must" in spec:
            scores = [_score(q, src) for q in spec["must"]]
            return None if any(s is None for s in scores) else float(sum(s for s in scores if s is not None))
        should = [_score(q, src) for q in spec.get("should", [])]
        found = [s for s in should if s is not None]
        return float(sum(found)) if found else None
    if kind == "neural_sparse":
        ((fname, body),) = spec.items()
        return _feature_dot(body["query_tokens"], src.get(fname))
    if kind == "rank_feature":
        fname, _, feature = spec["field"].rpartition(".")
        stored = src.get(fname) or {}
        if feature not in stored:
            return None
        return float(spec.get("boost", 1.0)) * float(truncate_9bit(float(stored[feature])))
    if kind == "knn":
        ((fname, body),) = spec.items()
        if "filter" in body and not _matches_filter(body["filter"], src):
            return None
        vec = src.get(fname)
        if vec is None:
            return None
        return _knn_score(float(np.dot(np.asarray(vec, np.float32), np.asarray(body["vector"], np.float32))))
    if kind in ("match", "multi_match"):  # BM25 stand-in: the number of query words a field holds
        if kind == "match":
            ((fname, body),) = spec.items()
            fields, text = [fname], body["query"]
        else:
            fields, text = spec["fields"], spec["query"]
        words = set(str(text).lower().split())
        best = max((len(words & set(str(src.get(f, "")).lower().split())) for f in fields), default=0)
        return float(best) if best else None
    raise AssertionError(f"fake cannot score {kind}")


class FakeConnection(Connection):
    """An opensearch-py connection that hands each request to `fake` instead of the network."""

    fake: FakeOpenSearch

    def perform_request(  # type: ignore[override]
        self,
        method: str,
        url: str,
        params: Any = None,
        body: Any = None,
        timeout: Any = None,
        ignore: Any = (),
        headers: Any = None,
    ) -> tuple[int, dict[str, str], str]:
        path, _, _ = url.partition("?")
        req = Request(method, path, dict(params or {}), _parse(body))
        status, payload = self.fake.handle(req)
        raw = "" if payload is None else json.dumps(payload)
        if not 200 <= status < 300 and status not in (ignore or ()):
            if method == "HEAD":
                return status, {}, raw
            self._raise_error(status, raw, "application/json")
        return status, {"content-type": "application/json"}, raw
