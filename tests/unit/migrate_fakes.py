"""Deterministic fakes for the migration tests: hashing encoders, an in-memory target, a recording
Elasticsearch / OpenSearch client. Real implementations of the interfaces, no models or servers.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from spladebridge.connectors.base import Connector, DocId, Document, ItemOutcome, WriteReport
from spladebridge.encoder.sparse_vector import SparseVector

VOCAB = 30522


def token_id(word: str, salt: str = "") -> int:
    digest = hashlib.blake2b((salt + word).encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big") % VOCAB


class HashSparseEncoder:
    """Bag of lower-cased words hashed into 30522 ids (weight 1 + log count); `salt` = another "model"."""

    def __init__(self, salt: str = "", fail_on: str | None = None, delay_s: float = 0.0) -> None:
        self.salt = salt
        self.fail_on = fail_on
        self.delay_s = delay_s
        self.texts: list[str] = []

    def _one(self, text: str) -> SparseVector:
        if self.fail_on is not None and self.fail_on in text:
            raise ValueError(f"cannot encode text containing {self.fail_on!r}")
        counts: dict[int, int] = {}
        for word in text.lower().split():
            tid = token_id(word.strip(".,;:!?"), self.salt)
            counts[tid] = counts.get(tid, 0) + 1
        return SparseVector.from_dict({k: 1.0 + float(np.log(v)) for k, v in counts.items()})

    def encode_documents(self, texts: Sequence[str]) -> list[SparseVector]:
        if self.delay_s:
            time.sleep(self.delay_s)
        self.texts.extend(texts)
        return [self._one(t) for t in texts]

    def encode_queries(self, texts: Sequence[str]) -> list[SparseVector]:
        return [self._one(t) for t in texts]


class HashDenseEncoder:
    """An 8-dimensional L2-normalised hashing embedding (never all-zero)."""

    dim = 8

    def encode(self, texts: Sequence[str]) -> NDArray[np.float32]:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            out[row, 0] = 0.1
            for word in text.lower().split():
                out[row, token_id(word) % self.dim] += 1.0
        return out / np.linalg.norm(out, axis=1, keepdims=True)


class MemoryTarget:
    """A `MigrationTarget` over a dict; `fail_ids` fail permanently, `flaky` ones retryably once."""

    def __init__(
        self, fail_ids: Sequence[DocId] = (), flaky: Sequence[DocId] = (), raise_times: int = 0
    ) -> None:
        self.docs: dict[DocId, Document] = {}
        self.fail_ids = set(fail_ids)
        self.flaky = set(flaky)
        self.raise_times = raise_times
        self.writes: list[list[DocId]] = []
        self.prepared = 0
        self.finalized = 0

    def describe(self) -> dict[str, Any]:
        return {"kind": "memory"}

    def prepare(self) -> list[str]:
        self.prepared += 1
        return ["memory ready"]

    def write(self, documents: Sequence[Document]) -> WriteReport:
        if self.raise_times > 0:
            self.raise_times -= 1
            raise ConnectionError("engine unreachable")
        self.writes.append([d.id for d in documents])
        outcomes = []
        for doc in documents:
            if doc.id in self.fail_ids:
                outcomes.append(ItemOutcome(doc.id, ok=False, status="400", error="mapper_parsing_exception"))
            elif doc.id in self.flaky:
                self.flaky.discard(doc.id)
                outcomes.append(ItemOutcome(doc.id, ok=False, status="429", error="busy", retryable=True))
            else:
                self.docs[doc.id] = doc
                outcomes.append(ItemOutcome(doc.id, ok=True, status="upserted"))
        return WriteReport(outcomes)

    def flush(self) -> None:
        return None

    def count(self) -> int:
        return len(self.docs)

    def get(self, ids: Sequence[DocId]) -> list[Document | None]:
        return [self.docs.get(i) for i in ids]

    def search_connector(self) -> Connector | None:
        return None

    def finalize(self) -> list[str]:
        self.finalized += 1
        return ["memory live"]

    def close(self) -> None:
        return None


# -- a tiny Elasticsearch / OpenSearch cluster behind the real clients ----------------------------------


def _truncate9(value: float) -> float:
    arr = np.asarray([value], dtype=np.float32)
    return float((arr.view(np.uint32) >> np.uint32(15) << np.uint32(15)).view(np.float32)[0])


def _error(status: int, kind: str, reason: str) -> tuple[int, Any]:
    err = {"type": kind, "reason": reason}
    return status, {"error": {"root_cause": [err], **err}, "status": status}


class MiniLucene:
    """A tiny Elasticsearch or OpenSearch node behind the real clients: indices, aliases, PITs, bulk
    index / update (`{"doc": {...}}`), mget, count, the server facts the connectors read (`GET /`; ES
    `GET /_nodes/_local` and `GET /_license`; OS `GET /_cat/plugins`), and the search shapes the migration
    and the connectors send (PIT pages sorted on `_id` / `_shard_doc`, match / multi_match /
    combined_fields as word overlap, rank_feature linear, sparse_vector, neural_sparse, kNN by dot
    product, bool with term / terms / range filters). ES 9.2+ leaves vector fields out of `_source` unless
    the index setting or the request asks for them. Every request is recorded as (method, path, query
    params, body)."""

    def __init__(
        self,
        flavor: str = "elasticsearch",
        version: str | None = None,
        *,
        plugins: Sequence[str] = ("opensearch-knn",),
        license_type: str = "basic",
    ) -> None:
        self.flavor = flavor
        self.version = version or ("9.1.0" if flavor == "elasticsearch" else "2.19.0")
        self.plugins = tuple(plugins)
        self.license_type = license_type
        self.indices: dict[str, dict[str, Any]] = {}
        self.aliases: dict[str, dict[str, dict[str, Any]]] = {}
        self.pits: dict[str, tuple[str, list[str]]] = {}
        self.requests: list[tuple[str, str, dict[str, Any], Any]] = []
        self.fail_update: set[str] = set()
        #: errors (status, type, reason) that the next point-in-time searches answer, one each
        self.fail_pit_search: list[tuple[int, str, str]] = []
        self._pit_counter = 0
        self._params: dict[str, Any] = {}

    # -- set-up helpers -------------------------------------------------------------------------------

    def add_index(
        self,
        name: str,
        docs: dict[str, dict[str, Any]],
        mappings: dict[str, Any] | None = None,
        settings: dict[str, Any] | None = None,
    ) -> None:
        self.indices[name] = {
            "mappings": mappings or {"properties": {"title": {"type": "text"}, "text": {"type": "text"}}},
            "settings": settings
            or {
                "index": {
                    "number_of_shards": "1",
                    "number_of_replicas": "0",
                    "uuid": "abc",
                    "creation_date": "1",
                    "provided_name": name,
                    "version": {"created": "1"},
                }
            },
            "docs": dict(docs),
        }

    def client(self) -> Any:
        if self.flavor == "elasticsearch":
            from es_fake import FakeCluster

            return FakeCluster(self._handle_es).client()
        from opensearchpy import OpenSearch
        from os_fake import FakeConnection

        owner = self

        class _Conn(FakeConnection):
            fake = owner  # type: ignore[assignment]

        return OpenSearch(hosts=[{"host": "fake-os", "port": 9200}], connection_class=_Conn, max_retries=0)

    def calls(self) -> list[str]:
        """`METHOD /path` of every request, in order."""
        return [f"{m} {p}" for m, p, _, _ in self.requests]

    def bodies(self, method: str, suffix: str) -> list[Any]:
        return [b for m, p, _, b in self.requests if m == method and p.endswith(suffix)]

    def bulk_lines(self) -> list[Any]:
        """Every NDJSON line of every `_bulk` request, in order."""
        return [line for m, p, _, b in self.requests if p.endswith("/_bulk") for line in b]

    # -- dispatch -------------------------------------------------------------------------------------

    def _handle_es(self, req: Any) -> tuple[int, Any]:
        return self.route(req.method, req.path, dict(req.query), req.body)

    def handle(self, req: Any) -> tuple[int, Any]:  # opensearch-py FakeConnection entry point
        return self.route(req.method, req.path, dict(req.params), req.body)

    def _server(self, parts: list[str]) -> tuple[int, Any] | None:
        """Answers to the requests that read server facts (None when `parts` is not one of them)."""
        if not parts:
            version: dict[str, Any] = {"number": self.version}
            if self.flavor == "opensearch":
                version["distribution"] = "opensearch"
            else:
                version["build_flavor"] = "default"
            return 200, {
                "version": version,
                "tagline": "The OpenSearch Project"
                if self.flavor == "opensearch"
                else "You Know, for Search",
            }
        if parts[:2] == ["_nodes", "_local"] and self.flavor == "elasticsearch":
            modules = [{"name": m} for m in ("mapper-extras", "rank-rrf", "x-pack-core")]
            node = {"version": self.version, "build_flavor": "default", "modules": modules}
            return 200, {"nodes": {"node-1": node}}
        if parts == ["_license"] and self.flavor == "elasticsearch":
            return 200, {"license": {"status": "active", "type": self.license_type}}
        if parts == ["_cat", "plugins"] and self.flavor == "opensearch":
            return 200, [{"name": "node-1", "component": p, "version": self.version} for p in self.plugins]
        return None

    def route(self, method: str, path: str, params: dict[str, Any], body: Any) -> tuple[int, Any]:
        from urllib.parse import unquote

        self.requests.append((method, path, params, body))
        self._params = params
        parts = [unquote(p) for p in path.split("/") if p]
        server = self._server(parts)
        if server is not None:
            return server
        if parts[0] == "_bulk":
            return self._bulk(body)
        if parts[0] == "_aliases":
            return self._update_aliases(body)
        if parts[0] == "_alias":
            found = {i: {"aliases": {parts[1]: o}} for i, o in self.aliases.get(parts[1], {}).items()}
            if method == "HEAD":
                return (200 if found else 404), None
            return (200, found) if found else _error(404, "aliases_not_found_exception", parts[1])
        if parts == ["_pit"] and method == "DELETE":
            self.pits.pop(body["id"], None)
            return 200, {"succeeded": True, "num_freed": 1}
        if parts == ["_search", "point_in_time"] and method == "DELETE":
            for pit in body["pit_id"]:
                self.pits.pop(pit, None)
            return 200, {"pits": [{"pit_id": p, "successful": True} for p in body["pit_id"]]}
        if parts == ["_search"]:
            return self._pit_search(body)
        name = self._resolve(parts[0])
        if len(parts) == 1:
            if method == "HEAD":
                return (200 if name in self.indices else 404), None
            if method == "PUT":
                if name in self.indices:
                    return _error(400, "resource_already_exists_exception", name)
                self.indices[name] = {
                    "mappings": body.get("mappings", {}),
                    "settings": body.get("settings", {}),
                    "docs": {},
                }
                return 200, {"acknowledged": True, "index": name}
            if method == "DELETE":
                self.indices.pop(name, None)
                return 200, {"acknowledged": True}
        index = self.indices.get(name)
        if index is None:
            return _error(404, "index_not_found_exception", f"no such index [{name}]")
        op = "/".join(parts[1:])
        if op == "_mapping":
            if method == "GET":
                return 200, {name: {"mappings": index["mappings"]}}
            props = index["mappings"].setdefault("properties", {})
            props.update(body.get("properties", {}))
            if "_meta" in body:
                index["mappings"]["_meta"] = body["_meta"]
            return 200, {"acknowledged": True}
        if op == "_settings":
            return 200, {name: {"settings": index["settings"]}}
        if op == "_refresh":
            return 200, {"_shards": {"total": 1, "successful": 1, "failed": 0}}
        if op == "_count":
            return 200, {"count": len(index["docs"])}
        if op in ("_pit", "_search/point_in_time"):
            self._pit_counter += 1
            pit = f"pit-{self._pit_counter}"
            self.pits[pit] = (name, sorted(index["docs"]))
            return 200, ({"pit_id": pit} if self.flavor == "opensearch" else {"id": pit})
        if op == "_mget":
            docs = []
            for doc_id in body["ids"]:
                src = index["docs"].get(doc_id)
                docs.append(
                    {
                        "_index": name,
                        "_id": doc_id,
                        "found": src is not None,
                        **({"_source": self._source(src, {}, name)} if src is not None else {}),
                    }
                )
            return 200, {"docs": docs}
        if op == "_search":
            return self._search(name, index, body)
        return _error(400, "unsupported", f"{method} {path}")

    def _resolve(self, name: str) -> str:
        targets = self.aliases.get(name)
        return next(iter(targets)) if targets and len(targets) == 1 else name

    # -- handlers -------------------------------------------------------------------------------------

    def _update_aliases(self, body: Any) -> tuple[int, Any]:
        for action in body["actions"]:
            ((kind, args),) = action.items()
            if kind == "remove" and args["index"] not in self.aliases.get(args["alias"], {}):
                return _error(404, "aliases_not_found_exception", args["alias"])
            if kind == "remove_index" and args["index"] not in self.indices:
                return _error(404, "index_not_found_exception", args["index"])
        for action in body["actions"]:
            ((kind, args),) = action.items()
            if kind == "add":
                opts = {k: v for k, v in args.items() if k not in ("index", "alias")}
                self.aliases.setdefault(args["alias"], {})[args["index"]] = opts
            elif kind == "remove":
                self.aliases[args["alias"]].pop(args["index"])
                if not self.aliases[args["alias"]]:
                    del self.aliases[args["alias"]]
            elif kind == "remove_index":
                self.indices.pop(args["index"])
        return 200, {"acknowledged": True}

    def _bulk(self, lines: list[Any]) -> tuple[int, Any]:
        items = []
        i = 0
        while i < len(lines):
            ((op, meta),) = lines[i].items()
            body = lines[i + 1]
            i += 2
            index = self.indices.get(self._resolve(meta["_index"]))
            doc_id = meta["_id"]
            item: dict[str, Any] = {"_index": meta["_index"], "_id": doc_id}
            if index is None:
                item.update(status=404, error={"type": "index_not_found_exception", "reason": meta["_index"]})
            elif op == "index":
                index["docs"][doc_id] = body
                item.update(status=201, result="created")
            elif op == "update":
                if doc_id not in index["docs"] or doc_id in self.fail_update:
                    item.update(
                        status=404,
                        error={
                            "type": "document_missing_exception",
                            "reason": f"[{doc_id}]: document missing",
                        },
                    )
                else:
                    index["docs"][doc_id] = {**index["docs"][doc_id], **body["doc"]}
                    item.update(status=200, result="updated")
            items.append({op: item})
        errors = any("error" in next(iter(it.values())) for it in items)
        return 200, {"took": 1, "errors": errors, "items": items}

    def _vector_fields(self, name: str) -> set[str]:
        """ES 9.2+ leaves vector fields out of `_source` unless the index or the request asks for them."""
        if self.flavor != "elasticsearch" or tuple(int(x) for x in self.version.split(".")[:2]) < (9, 2):
            return set()
        index = self.indices[name]
        setting = index["settings"].get("index", {}).get("mapping", {}).get("exclude_source_vectors", True)
        if (
            str(setting).lower() == "false"
            or str(self._params.get("_source_exclude_vectors")).lower() == "false"
        ):
            return set()
        props = index["mappings"].get("properties", {})
        return {k for k, v in props.items() if v.get("type") in ("sparse_vector", "dense_vector")}

    def _source(self, src: dict[str, Any], body: dict[str, Any], name: str = "") -> dict[str, Any]:
        excludes = (
            (body.get("_source") or {}).get("excludes", []) if isinstance(body.get("_source"), dict) else []
        )
        hidden = self._vector_fields(name) if name else set()
        return {k: v for k, v in src.items() if k not in excludes and k not in hidden}

    def _pit_search(self, body: dict[str, Any]) -> tuple[int, Any]:
        if self.fail_pit_search:
            return _error(*self.fail_pit_search.pop(0))
        pit_id = body["pit"]["id"]
        if pit_id not in self.pits:
            return _error(
                404, "search_context_missing_exception", f"No search context found for id [{pit_id}]"
            )
        name, ids = self.pits[pit_id]
        docs = self.indices[name]["docs"]
        field = body["sort"][0]
        rows = [(i if field == "_id" else n, i) for n, i in enumerate(ids) if i in docs]
        after = body.get("search_after")
        if after is not None:
            rows = [r for r in rows if r[0] > after[0]]
        rows = rows[: body["size"]]
        hits = [
            {"_index": name, "_id": i, "_score": None, "_source": self._source(docs[i], body), "sort": [key]}
            for key, i in rows
        ]
        return 200, {"pit_id": pit_id, "hits": {"hits": hits}}

    def _matches(self, clause: dict[str, Any], src: dict[str, Any]) -> bool:
        """A filter-context clause (term / terms / range; `x.keyword` is the exact value of `x`)."""
        ((kind, args),) = clause.items()
        if kind == "bool":
            return all(self._matches(c, src) for c in args.get("filter", []))
        ((fld, cond),) = args.items()
        value = src.get(fld.removesuffix(".keyword"))
        if kind == "term":
            return bool(value == cond["value"])
        if kind == "terms":
            return value in cond
        if kind == "range":
            ops = {"gt": float.__gt__, "gte": float.__ge__, "lt": float.__lt__, "lte": float.__le__}
            return value is not None and all(ops[op](float(value), float(b)) for op, b in cond.items())
        raise AssertionError(f"unexpected filter {kind}")

    def _score(self, query: dict[str, Any], src: dict[str, Any]) -> float:
        ((kind, args),) = query.items()
        if kind in ("match", "multi_match", "combined_fields"):
            if kind == "match":
                ((fld, spec),) = args.items()
                fields, text = [fld], spec["query"]
            else:
                fields, text = args["fields"], args["query"]
            words = set(text.lower().split())
            return float(
                max((len(words & set(str(src.get(f, "")).lower().split())) for f in fields), default=0)
            )
        if kind == "match_all":
            return 1.0
        if kind == "bool":
            if not all(self._matches(c, src) for c in args.get("filter", [])):
                return 0.0
            must = [self._score(q, src) for q in args.get("must", [])]
            if any(m <= 0 for m in must):
                return 0.0
            return sum(must) + sum(self._score(q, src) for q in args.get("should", []))
        if kind == "rank_feature":
            fld, name = args["field"].split(".", 1)
            stored = (src.get(fld) or {}).get(name)
            return float(args.get("boost", 1.0)) * _truncate9(stored) if stored else 0.0
        if kind == "sparse_vector":
            stored = src.get(args["field"]) or {}
            return sum(w * _truncate9(stored[n]) for n, w in args["query_vector"].items() if n in stored)
        if kind == "neural_sparse":
            ((fld, spec),) = args.items()
            stored = src.get(fld) or {}
            return sum(w * _truncate9(stored[n]) for n, w in spec["query_tokens"].items() if n in stored)
        if kind == "knn":
            ((fld, spec),) = args.items()
            vec = src.get(fld)
            if not vec or not all(
                self._matches(c, src) for c in spec.get("filter", {}).get("bool", {}).get("filter", [])
            ):
                return 0.0
            ip = float(np.dot(vec, spec["vector"]))
            return ip + 1.0 if ip >= 0 else 1.0 / (1.0 - ip)  # OpenSearch's inner-product score
        raise AssertionError(f"unexpected query {kind}")

    def _search(self, name: str, index: dict[str, Any], body: dict[str, Any]) -> tuple[int, Any]:
        scored = []
        for doc_id, src in index["docs"].items():
            if "knn" in body:
                knn = body["knn"]
                vec = src.get(knn["field"])
                allowed = all(self._matches(c, src) for c in knn.get("filter", []))
                score = (1.0 + float(np.dot(vec, knn["query_vector"]))) / 2.0 if vec and allowed else 0.0
            else:
                score = self._score(body["query"], src)
            if score > 0:
                scored.append((-score, doc_id))
        scored.sort()
        hits = [
            {"_index": name, "_id": i, "_score": -s, "_source": self._source(index["docs"][i], body, name)}
            for s, i in scored[: body.get("size", 10)]
        ]
        return 200, {"hits": {"hits": hits}}
