"""An application writing to a live index through its alias while it is migrated, and the end-state check.

`Writer` indexes new documents, rewrites and partially updates existing ones and deletes others, through the
alias, until the migration's write block stops it; it then retries one probe document through the alias
until that lands (after the swap, in the new index), as the README tells writers to. `final_state` reads
an index's documents; `assert_migrated` checks that a target holds exactly those documents with the vectors
the real encoders give their final text.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

WORDS = ["solar", "river", "bread", "piano", "garden", "rocket", "coffee", "winter", "signal", "archive"]
PROBE_ID = "after-swap-probe"


def _blocked(exc: BaseException) -> bool:
    """The engine's answer to a write on a write-blocked index: 403 cluster_block_exception."""
    return getattr(exc, "status_code", None) == 403 and "cluster_block_exception" in str(exc)


def _missing(exc: BaseException) -> bool:
    return getattr(exc, "status_code", None) == 404


class Writer(threading.Thread):
    """Index / rewrite / partial update / delete through `alias` at about `rate` operations a second."""

    def __init__(
        self, client: Any, alias: str, ids: Sequence[str], *, rate: float = 40.0, seed: int = 7
    ) -> None:
        super().__init__(daemon=True)
        self.client = client
        self.alias = alias
        self.ids = list(ids)
        self.rate = rate
        self.rng = random.Random(seed)
        self.stop_event = threading.Event()
        self.ops: dict[str, int] = {"index": 0, "rewrite": 0, "update": 0, "delete": 0}
        self.blocked = 0
        self.block_error = ""
        self.probe_attempts = 0
        self.probe_landed = False
        self.error: BaseException | None = None
        self._n = 0

    def _text(self) -> str:
        return " ".join(self.rng.choice(WORDS) for _ in range(self.rng.randint(3, 9)))

    def _one(self) -> None:
        op = self.rng.choices(["index", "rewrite", "update", "delete"], [3, 3, 2, 2])[0]
        if op == "index" or not self.ids:
            self._n += 1
            doc_id = f"w{self._n}"
            body = {"title": f"new {self._text()}", "text": self._text(), "year": 3000 + self._n}
            self.client.index(index=self.alias, id=doc_id, body=body)
            self.ids.append(doc_id)
            self.ops["index"] += 1
            return
        doc_id = self.rng.choice(self.ids)
        try:
            if op == "rewrite":
                body = {"title": f"rewritten {self._text()}", "text": self._text(), "year": 4000}
                self.client.index(index=self.alias, id=doc_id, body=body)
            elif op == "update":
                self.client.update(index=self.alias, id=doc_id, body={"doc": {"text": self._text()}})
            else:
                self.client.delete(index=self.alias, id=doc_id)
                self.ids.remove(doc_id)
            self.ops[op] += 1
        except Exception as exc:
            if not _missing(exc):
                raise

    def run(self) -> None:
        try:
            while not self.stop_event.is_set():
                try:
                    self._one()
                except Exception as exc:
                    if not _blocked(exc):
                        raise
                    self.blocked += 1
                    self.block_error = str(exc)
                    self._retry_probe()
                    return
                time.sleep(1.0 / self.rate)
        except BaseException as exc:  # the test thread reads it
            self.error = exc

    def _retry_probe(self) -> None:
        """What a writer does on the block: back off and retry through the alias until it lands."""
        body = {"title": "written after the swap", "text": "probe", "year": 1}
        while not self.stop_event.is_set():
            self.probe_attempts += 1
            try:
                self.client.index(index=self.alias, id=PROBE_ID, body=body)
                self.probe_landed = True
                return
            except Exception as exc:
                if not _blocked(exc):
                    raise
                time.sleep(0.05)

    def total(self) -> int:
        return sum(self.ops.values())

    def finish(self, timeout: float = 60) -> None:
        self.join(timeout)
        if self.is_alive():
            self.stop_event.set()
            self.join(10)
        if self.error is not None:
            raise self.error


def final_state(client: Any, index: str) -> dict[str, dict[str, Any]]:
    """Every document of `index`: `_id` -> `_source` (a refresh first, so every acknowledged write is seen)."""
    client.indices.refresh(index=index)
    out: dict[str, dict[str, Any]] = {}
    body = {"size": 10_000, "query": {"match_all": {}}}
    response = client.search(index=index, body=body)
    response = getattr(response, "body", response)
    for hit in response["hits"]["hits"]:
        out[str(hit["_id"])] = dict(hit["_source"])
    return out


def _sparse_close(got: Any, want: Any) -> bool:
    a = dict(zip(got.indices.tolist(), got.values.tolist(), strict=True))
    b = dict(zip(want.indices.tolist(), want.values.tolist(), strict=True))
    keys = set(a) | set(b)
    return all(abs(a.get(k, 0.0) - b.get(k, 0.0)) <= 1e-3 * max(1.0, abs(b.get(k, 0.0))) for k in keys)


def assert_migrated(
    expected: dict[str, dict[str, Any]],
    get: Callable[[list[str]], list[Any]],
    target_count: int,
    sparse: Any,
    dense: Any | None,
    *,
    text_fields: Sequence[str] = ("title", "text"),
) -> None:
    """The target holds exactly `expected` (ids, text fields, metadata) with the vectors `sparse` / `dense`
    give each document's final text: 0 lost, 0 stale, 0 resurrected."""
    assert target_count == len(expected), f"target holds {target_count} documents, source {len(expected)}"
    ids = sorted(expected)
    docs = get(ids)
    lost = [i for i, d in zip(ids, docs, strict=True) if d is None]
    assert not lost, f"lost: {lost[:10]}"
    texts = []
    for doc_id, doc in zip(ids, docs, strict=True):
        want = expected[doc_id]
        assert doc.fields == {f: want[f] for f in text_fields if f in want}, f"stale fields of {doc_id}"
        assert doc.metadata == {k: v for k, v in want.items() if k not in text_fields}, doc_id
        texts.append("\n".join(want[f] for f in text_fields if want.get(f)))
    want_sparse = sparse.encode_documents(texts)
    stale = [i for i, d, w in zip(ids, docs, want_sparse, strict=True) if not _sparse_close(d.sparse, w)]
    detail = [
        (
            i,
            d.fields,
            d.sparse.nnz,
            w.nnz,
            sorted(set(d.sparse.indices.tolist()) ^ set(w.indices.tolist()))[:5],
        )
        for i, d, w in zip(ids, docs, want_sparse, strict=True)
        if i in stale[:3]
    ]
    assert not stale, f"stale sparse vectors: {stale[:10]} {detail}"
    if dense is not None:
        want_dense = np.asarray(dense.encode(texts), dtype=np.float32)
        got_dense = np.stack([np.asarray(d.dense, dtype=np.float32) for d in docs])
        assert np.allclose(got_dense, want_dense, atol=1e-4), "stale dense vectors"
