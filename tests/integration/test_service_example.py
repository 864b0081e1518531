"""The README's FastAPI example runs as written: uvicorn serves it on a free port, its startup opens the
searcher, answers over HTTP are the sync `HybridSearcher`'s hits, and its shutdown closes the searcher and the
index (the shard's lock is released)."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

import spladebridge as sb
from spladebridge.connectors.qdrant_edge import QdrantEdgeConnector

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "spladebridge" / "data"


def service_example() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(r"<!-- SERVICE-EXAMPLE[^>]*-->\s*```python\n(.*?)```", readme, re.S)
    assert match, "README has no marked service example"
    return match.group(1)


def test_the_example_is_about_thirty_lines() -> None:
    lines = [line for line in service_example().splitlines() if line.strip()]
    assert len(lines) <= 32, len(lines)


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str, timeout: float = 30) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_the_fastapi_example_serves_the_sync_searchers_hits_over_http(tmp_path: Path) -> None:
    pytest.importorskip("fastapi")
    pytest.importorskip("uvicorn")
    index = tmp_path / "demo-index"
    sparse, dense = sb.SpladeEncoder(), sb.DenseEncoder()
    queries = [q["text"] for q in _jsonl(DATA / "demo_queries.jsonl")]
    with QdrantEdgeConnector(index) as store:
        report = sb.ingest(
            _jsonl(DATA / "demo_corpus.jsonl"),
            store,
            sparse,
            dense_encoder=dense,
            text_fields=["title", "text"],
            progress=False,
        )
        assert report.complete and report.failed == 0
        want = sb.HybridSearcher(store, sparse, dense).search_batch(queries, k=5)

    (tmp_path / "app.py").write_text(service_example(), encoding="utf-8")
    port = _free_port()
    env = {**os.environ, "INDEX_PATH": str(index), "HF_HUB_OFFLINE": "1"}
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "app:app", "--host", "127.0.0.1", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert server.poll() is None, server.communicate()[0][-3000:]
            try:
                status, _ = _get(f"{base}/openapi.json", timeout=2)
                if status == 200:
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            assert time.monotonic() < deadline, "the service did not start"
            time.sleep(0.3)
        for text, expected in zip(queries, want, strict=True):
            status, hits = _get(f"{base}/search?{urllib.parse.urlencode({'q': text, 'k': 5})}")
            assert status == 200, hits
            assert [h["id"] for h in hits] == [h.id for h in expected], text
            assert [h["score"] for h in hits] == pytest.approx([h.score for h in expected], rel=1e-4)
            assert [h["title"] for h in hits] == [h.fields.get("title") for h in expected]
            assert hits[0]["signals"] == {s: r.rank for s, r in expected[0].signals.items()}
        status, body = _get(f"{base}/search?q=bike&k=0")
        assert status == 422, body  # checked by FastAPI before the searcher sees it
        with pytest.raises(Exception, match="already open"):  # the running service holds the shard
            QdrantEdgeConnector(index)
    finally:
        server.send_signal(signal.SIGINT)  # uvicorn's graceful shutdown runs the lifespan's exit
        output = server.communicate(timeout=60)[0]
    assert server.returncode == 0, output[-3000:]
    assert "Application shutdown complete" in output, output[-3000:]
    with QdrantEdgeConnector(index) as again:  # shutdown closed the searcher and released the shard
        assert again.count() == 300
