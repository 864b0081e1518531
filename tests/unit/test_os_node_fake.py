"""`NodeFake`: `os_fake.FakeOpenSearch` plus what the connector now also asks a node, and tests of it.

Adds, the way OpenSearch 2.19 answers them: `GET /INDEX/_settings` (the shard count the index was created
with, as a string), point-in-time pages sorted on `_id` (with `search_after` on `_id`, or the 400 a node
with `indices.id_field_data.enabled: false` gives), and a scripted `GET /` (`root`: status, body) to play an
Elasticsearch node. (These could move into `os_fake.py`.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import pytest
from os_fake import FakeOpenSearch, Request

from spladebridge.connectors.lucene_documents import META_FIELD


@dataclass
class NodeFake(FakeOpenSearch):
    root: tuple[int, Any] | None = None
    id_fielddata: bool = True

    def handle(self, req: Request) -> tuple[int, Any]:
        parts = [unquote(p) for p in req.path.strip("/").split("/") if p]
        if not parts and self.root is not None:
            self.requests.append(req)
            return self.root
        if len(parts) == 2 and parts[1] == "_settings" and req.method == "GET":
            self.requests.append(req)
            index = parts[0]
            if index not in self.indices:
                return 404, {"error": {"type": "index_not_found_exception", "reason": index}}
            shards = self.index_bodies[index]["settings"]["index"]["number_of_shards"]
            return 200, {index: {"settings": {"index": {"number_of_shards": str(shards)}}}}
        body = req.body if isinstance(req.body, dict) else {}
        if parts == ["_search"] and "pit" in body and body.get("sort") == ["_id"]:
            self.requests.append(req)
            return self._pit_by_id(body)
        return super().handle(req)

    def _pit_by_id(self, body: dict[str, Any]) -> tuple[int, Any]:
        if not self.id_fielddata:
            reason = "Fielddata access on the _id field is disallowed, you can re-enable it by updating ..."
            return 400, {
                "error": {
                    "root_cause": [{"type": "illegal_argument_exception", "reason": reason}],
                    "type": "search_phase_execution_exception",
                    "reason": "all shards failed",
                },
                "status": 400,
            }
        docs = sorted(self.indices[self.pits[body["pit"]["id"]]].items())
        after = body.get("search_after")
        if after is not None:
            docs = [(i, src) for i, src in docs if i > after[0]]
        page = docs[: body.get("size", 10)]
        hits = [{"_id": i, "_score": None, "_source": src, "sort": [i]} for i, src in page]
        return 200, {"hits": {"total": {"value": len(docs)}, "hits": hits}}


def test_node_fake_reports_the_created_shard_count_and_pages_on_id() -> None:
    fake = NodeFake()
    client = fake.client()
    client.indices.create(index="x", body={"settings": {"index": {"number_of_shards": 3}}, "mappings": {}})
    assert client.indices.get_settings(index="x")["x"]["settings"]["index"]["number_of_shards"] == "3"
    fake.indices["x"] = {"b": {META_FIELD: {"id": "b"}}, "a": {}, "c": {}}
    pit = client.create_pit(index="x", params={"keep_alive": "1m"})["pit_id"]
    first = client.search(body={"size": 2, "pit": {"id": pit}, "sort": ["_id"]})["hits"]["hits"]
    assert [h["_id"] for h in first] == ["a", "b"]
    rest = client.search(body={"size": 2, "pit": {"id": pit}, "sort": ["_id"], "search_after": ["b"]})
    assert [h["_id"] for h in rest["hits"]["hits"]] == ["c"]


def test_node_fake_plays_a_node_without_id_fielddata() -> None:
    from opensearchpy.exceptions import RequestError

    fake = NodeFake(id_fielddata=False)
    fake.indices["x"] = {"a": {}}
    client = fake.client()
    pit = client.create_pit(index="x", params={"keep_alive": "1m"})["pit_id"]
    with pytest.raises(RequestError, match="Fielddata access on the _id field"):
        client.search(body={"size": 2, "pit": {"id": pit}, "sort": ["_id"]})
