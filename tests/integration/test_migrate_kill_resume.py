"""Kill and resume: a real child process migrating JSONL -> Qdrant Edge is terminated with SIGKILL mid-run;
`resume` then finishes the job with every document present once, with the right content, and without
re-encoding what the checkpoint says was written."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from spladebridge.connectors.base import IndexSpec
from spladebridge.connectors.qdrant_edge import QdrantEdgeConnector
from spladebridge.migrate import ConnectorTarget, RecordFileSource, migrate

FAKES = Path(__file__).resolve().parents[1] / "unit" / "migrate_fakes.py"
N_DOCS = 60
BATCH = 5

DRIVER = textwrap.dedent(
    """
    import importlib.util, sys
    spec = importlib.util.spec_from_file_location("migrate_fakes", sys.argv[1])
    fakes = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fakes)
    from spladebridge.connectors.base import IndexSpec
    from spladebridge.connectors.qdrant_edge import QdrantEdgeConnector
    from spladebridge.migrate import ConnectorTarget, RecordFileSource, migrate

    corpus, shard, checkpoint = sys.argv[2:5]
    with QdrantEdgeConnector(shard) as edge:
        migrate(
            RecordFileSource(corpus),
            ConnectorTarget(edge, IndexSpec(name="kill", dense_field=None)),
            fakes.HashSparseEncoder(delay_s=0.25),
            batch_size=int(sys.argv[5]),
            checkpoint=checkpoint,
        )
    """
)


def _corpus(path: Path) -> Path:
    with path.open("w", encoding="utf-8") as fh:
        for i in range(N_DOCS):
            fh.write(
                json.dumps(
                    {
                        "id": i,
                        "title": f"doc {i}",
                        "text": f"body of document {i} with words w{i % 9}",
                        "shard": i % 3,
                    }
                )
                + "\n"
            )
    return path


def _load_fakes():  # type: ignore[no-untyped-def]
    import importlib.util

    spec = importlib.util.spec_from_file_location("migrate_fakes_kill", FAKES)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_sigkill_mid_run_then_resume(tmp_path: Path) -> None:
    corpus = _corpus(tmp_path / "corpus.jsonl")
    shard, ck = tmp_path / "shard", tmp_path / "ck.json"
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER, encoding="utf-8")
    child = subprocess.Popen(
        [sys.executable, str(driver), str(FAKES), str(corpus), str(shard), str(ck), str(BATCH)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    saved: dict[str, object] = {}
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and child.poll() is None:
            if ck.exists():
                try:
                    saved = json.loads(ck.read_text())
                except json.JSONDecodeError:  # pragma: no cover - the file is replaced atomically
                    raise
                if saved.get("counts", {}).get("written", 0) >= 3 * BATCH:  # type: ignore[union-attr]
                    break
            time.sleep(0.05)
        assert child.poll() is None, "the child ended before it could be killed:\n" + (
            child.stdout.read().decode() if child.stdout else ""
        )
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL
    at_kill = json.loads(ck.read_text())
    assert at_kill["phase"] == "copy" and 3 * BATCH <= at_kill["cursor"]["position"] < N_DOCS
    assert at_kill["counts"]["written"] == at_kill["cursor"]["position"]

    fakes = _load_fakes()
    encoder = fakes.HashSparseEncoder()
    with QdrantEdgeConnector(shard) as edge:
        report = migrate(
            RecordFileSource(corpus),
            ConnectorTarget(edge, IndexSpec(name="kill", dense_field=None)),
            encoder,
            batch_size=BATCH,
            checkpoint=ck,
            resume=True,
        )
        assert report.ok and report.resumed, report.summary()
        assert report.read == N_DOCS - at_kill["cursor"]["position"]
        assert len(encoder.texts) == report.read  # nothing before the checkpoint was encoded again
        assert edge.count() == N_DOCS  # no duplicates, none missing
        docs = edge.get(list(range(N_DOCS)))
    reference = fakes.HashSparseEncoder()
    for i, doc in enumerate(docs):
        assert doc is not None and doc.id == i
        assert doc.fields == {"title": f"doc {i}", "text": f"body of document {i} with words w{i % 9}"}
        assert doc.metadata == {"shard": i % 3}
        assert doc.sparse == reference.encode_documents([doc.text(("title", "text"))])[0]
    final = json.loads(ck.read_text())
    assert final["phase"] == "finished" and final["runs"] == 2 and final["counts"]["written"] == N_DOCS
    assert report.verification is not None and report.verification.ok
