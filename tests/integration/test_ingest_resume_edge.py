"""Resumable ingest into a real Qdrant Edge shard: a killed process and a Ctrl-C both resume to the same state.

Fast hashing encoders stand in for the models here (the models are exercised in test_ingest_models_edge.py);
what is under test is the pipeline, the checkpoint and the engine's durability across a SIGKILL.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from spladebridge.connectors.qdrant_edge import QdrantEdgeConnector
from spladebridge.ingest import IngestInterrupted, ingest

UNIT = Path(__file__).resolve().parents[1] / "unit"
sys.path.insert(0, str(UNIT))

from ingest_fakes import HashDenseEncoder, HashSparseEncoder, corpus, doc_state, write_jsonl  # noqa: E402

N_DOCS = 300


def shard_state(path: Path) -> dict[str, dict[str, Any]]:
    with QdrantEdgeConnector(path) as conn:
        return {str(d.id): doc_state(d) for d in conn.scan()}


def reference_state(tmp_path: Path, src: Path) -> dict[str, dict[str, Any]]:
    with QdrantEdgeConnector(tmp_path / "reference") as conn:
        report = ingest(src, conn, HashSparseEncoder(), HashDenseEncoder(), batch_size=25, progress=False)
        assert report.complete and report.written == N_DOCS - 1 and report.failed == 1
    return shard_state(tmp_path / "reference")


@pytest.fixture
def source(tmp_path: Path) -> Path:
    rows: list[Any] = corpus(N_DOCS)
    rows[200] = {
        "_id": "d3",
        "title": "again",
        "text": "a later version of d3",
    }  # duplicate id after the kill
    rows[150] = "{oops"  # a malformed line
    return write_jsonl(tmp_path / "corpus.jsonl", rows)


def test_sigkill_mid_run_then_resume_matches_an_uninterrupted_run(tmp_path: Path, source: Path) -> None:
    shard, ckpt, dead = tmp_path / "shard", tmp_path / "ckpt.json", tmp_path / "dead.jsonl"
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(UNIT)!r})
        from ingest_fakes import HashDenseEncoder, HashSparseEncoder
        from spladebridge.connectors.qdrant_edge import QdrantEdgeConnector
        from spladebridge.ingest import ingest
        conn = QdrantEdgeConnector({str(shard)!r})
        ingest({str(source)!r}, conn, HashSparseEncoder(delay_s=0.03), HashDenseEncoder(), batch_size=10,
               checkpoint={str(ckpt)!r}, dead_letter={str(dead)!r}, progress=False)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    watermark = 0
    while time.monotonic() < deadline and proc.poll() is None:
        if ckpt.exists():
            watermark = json.loads(ckpt.read_text())["watermark"]
            if watermark >= 60:
                break
        time.sleep(0.02)
    assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 60 <= watermark < N_DOCS

    # every position the checkpoint calls settled really is in the shard (no document marked done unwritten)
    saved = json.loads(ckpt.read_text())
    landed = shard_state(shard)
    settled_ids = {f"d{i}" for i in range(saved["watermark"])} | {f"d{i}" for i in saved["above"]}
    settled_ids -= {"d150"}  # the malformed line, which went to the dead-letter file instead
    assert settled_ids <= set(landed)

    sparse = HashSparseEncoder()
    with QdrantEdgeConnector(shard) as conn:
        report = ingest(
            source,
            conn,
            sparse,
            HashDenseEncoder(),
            batch_size=10,
            checkpoint=ckpt,
            dead_letter=dead,
            progress=False,
        )
    assert report.complete and report.skipped >= saved["watermark"]
    assert len(sparse.texts) <= N_DOCS - saved["watermark"]  # landed documents were not encoded again
    assert shard_state(shard) == reference_state(tmp_path, source)
    assert [json.loads(line)["where"] for line in dead.read_text().splitlines()] == ["line 151"]


def test_ctrl_c_then_resume_matches_an_uninterrupted_run(tmp_path: Path, source: Path) -> None:
    shard, ckpt = tmp_path / "shard", tmp_path / "ckpt.json"
    with QdrantEdgeConnector(shard) as conn, pytest.raises(IngestInterrupted) as info:
        ingest(
            source,
            conn,
            HashSparseEncoder(interrupt_on_call=9),
            HashDenseEncoder(),
            batch_size=20,
            checkpoint=ckpt,
            progress=False,
        )
    partial = info.value.report
    assert partial.written == 8 * 20 and partial.failed == 1  # eight batches landed, and the malformed line
    with QdrantEdgeConnector(shard) as conn:
        report = ingest(
            source,
            conn,
            HashSparseEncoder(),
            HashDenseEncoder(),
            batch_size=20,
            checkpoint=ckpt,
            progress=False,
        )
    assert report.complete and report.skipped == 161 and report.written == N_DOCS - 161
    assert shard_state(shard) == reference_state(tmp_path, source)
