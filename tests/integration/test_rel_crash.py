"""Crash safety: `kill -9` of an ingestion or a migration into Qdrant Edge at random points (several seeds),
then a resume, gives exactly the state of an uninterrupted run (ids, payload, sparse and dense vectors), and
the shard is readable after every kill (reopen and count). The child writes through `FaultyConnector`
(retryable and rejected items, retried under a `RetryPolicy` as a connector retries: `RetriedFaults`), so
retries and dead letters are in flight when the kill lands.
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

import numpy as np
import pytest

from spladebridge.connectors.base import IndexSpec
from spladebridge.connectors.qdrant_edge import QdrantEdgeConnector
from spladebridge.connectors.retry import RetryPolicy
from spladebridge.ingest import ingest
from spladebridge.migrate import ConnectorTarget, RecordFileSource, migrate
from spladebridge.testing import rejects

UNIT = Path(__file__).resolve().parents[1] / "unit"
sys.path.insert(0, str(UNIT))

from ingest_fakes import (  # noqa: E402
    HashDenseEncoder,
    HashSparseEncoder,
    RetriedFaults,
    corpus,
    doc_state,
    write_jsonl,
)

N_DOCS = 1500
BATCH = 50
MALFORMED = {123: "{broken", 1400: '{"_id": "", "text": "empty id"}'}
FAULTS: dict[str, Any] = {"retryable_rate": 0.1, "fatal_rate": 0.02, "seed": 99}
SPEC = IndexSpec(name="crash", dense_field="dense", dense_dim=8)
SEEDS = [1, 2, 3]

# The child: one run of ingest or migrate with the settings the in-process reference uses, a little slower.
DRIVER = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, sys.argv[1])
    from ingest_fakes import HashDenseEncoder, HashSparseEncoder, RetriedFaults
    from spladebridge.connectors.base import IndexSpec
    from spladebridge.connectors.qdrant_edge import QdrantEdgeConnector
    from spladebridge.connectors.retry import RetryPolicy
    mode, src, shard, ckpt, dead = sys.argv[2:7]
    spec = IndexSpec(name="crash", dense_field="dense", dense_dim=8)
    faults = dict(retryable_rate=0.1, fatal_rate=0.02, seed=99)
    with QdrantEdgeConnector(shard) as edge:
        target = RetriedFaults(edge, retry=RetryPolicy(max_retries=20, initial_backoff=0.0), **faults)
        if mode == "ingest":
            from spladebridge.ingest import ingest
            ingest(src, target, HashSparseEncoder(delay_s=0.02), HashDenseEncoder(), spec=spec, batch_size=50,
                   checkpoint=ckpt, dead_letter=dead, progress=False)
        else:
            from spladebridge.migrate import ConnectorTarget, RecordFileSource, migrate
            migrate(RecordFileSource(src), ConnectorTarget(target, spec), HashSparseEncoder(delay_s=0.02),
                    HashDenseEncoder(), batch_size=100, checkpoint=ckpt, resume=True, dead_letter=dead,
                    verify_after=False)
    """
)


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rows: list[Any] = list(corpus(N_DOCS))
    for position, line in MALFORMED.items():
        rows[position] = line
    return write_jsonl(tmp_path_factory.mktemp("crash-src") / "corpus.jsonl", rows)


def shard_state(path: Path) -> dict[str, dict[str, Any]]:
    with QdrantEdgeConnector(path) as conn:
        docs = list(conn.scan(batch_size=500))
        assert conn.count() == len(docs)
    assert len({str(d.id) for d in docs}) == len(docs), "a document is stored twice"
    return {str(d.id): doc_state(d) for d in docs}


def run_in_process(mode: str, src: Path, shard: Path, ckpt: Path, dead: Path) -> None:
    with QdrantEdgeConnector(shard) as edge:
        target = RetriedFaults(edge, retry=RetryPolicy(max_retries=20, initial_backoff=0.0), **FAULTS)
        if mode == "ingest":
            report = ingest(
                src,
                target,
                HashSparseEncoder(),
                HashDenseEncoder(),
                spec=SPEC,
                batch_size=BATCH,
                checkpoint=ckpt,
                dead_letter=dead,
                progress=False,
            )
            assert report.complete and report.pending == 0
        else:
            result = migrate(
                RecordFileSource(src),
                ConnectorTarget(target, SPEC),
                HashSparseEncoder(),
                HashDenseEncoder(),
                batch_size=2 * BATCH,
                checkpoint=ckpt,
                resume=True,
                dead_letter=dead,
                verify_after=False,
            )
            assert result.finished


@pytest.fixture(scope="module")
def reference(source: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, dict[str, Any]]]:
    out = {}
    for mode in ("ingest", "migrate"):
        folder = tmp_path_factory.mktemp(f"ref-{mode}")
        run_in_process(mode, source, folder / "shard", folder / "ckpt.json", folder / "dead.jsonl")
        out[mode] = shard_state(folder / "shard")
        rejected = {f"d{i}" for i in range(N_DOCS) if i not in MALFORMED and rejects(f"d{i}", **_fatal())}
        assert set(out[mode]) == {f"d{i}" for i in range(N_DOCS) if i not in MALFORMED} - rejected
    return out


def _fatal() -> dict[str, Any]:
    return {"seed": FAULTS["seed"], "fatal_rate": FAULTS["fatal_rate"]}


def progress(mode: str, ckpt: Path) -> int:
    """How far the child got by its checkpoint (settled watermark, or migration cursor position)."""
    try:
        data = json.loads(ckpt.read_text())
    except (OSError, ValueError):
        return 0
    if mode == "ingest":
        return int(data.get("watermark", 0))
    return int((data.get("cursor") or {}).get("position", 0)) + (N_DOCS if data.get("phase") != "copy" else 0)


def kill_at(mode: str, args: list[str], ckpt: Path, threshold: int, extra_s: float) -> bool:
    """Start the child, SIGKILL it once its progress reaches `threshold` (plus `extra_s`); False if it ended."""
    child = subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(UNIT), mode, *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while child.poll() is None and time.monotonic() < deadline and progress(mode, ckpt) < threshold:
            time.sleep(0.005)
        time.sleep(extra_s)
        if child.poll() is not None:
            stderr = child.stderr.read().decode() if child.stderr else ""
            assert child.returncode == 0, stderr[-2000:]
            return False
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        assert child.returncode == -signal.SIGKILL
        return True
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if child.stderr:
            child.stderr.close()


@pytest.mark.parametrize("mode", ["ingest", "migrate"])
@pytest.mark.parametrize("seed", SEEDS)
def test_kill9_at_random_points_then_resume_matches_an_uninterrupted_run(
    tmp_path: Path,
    source: Path,
    reference: dict[str, dict[str, dict[str, Any]]],
    mode: str,
    seed: int,
) -> None:
    rng = np.random.default_rng(seed)
    shard, ckpt, dead = tmp_path / "shard", tmp_path / "ckpt.json", tmp_path / "dead.jsonl"
    args = [str(source), str(shard), str(ckpt), str(dead)]
    # two kills at increasing random points (the second one interrupts a resumed run), the first possibly
    # during start-up (before any checkpoint exists)
    thresholds = sorted(int(t) for t in rng.integers(0, N_DOCS, size=2))
    kills = 0
    for threshold in thresholds:
        if kill_at(mode, args, ckpt, threshold, float(rng.uniform(0.0, 0.05))):
            kills += 1
            if shard.exists() and (shard / "spladebridge-index.json").exists():
                with QdrantEdgeConnector(shard) as reopened:  # never left unreadable
                    assert reopened.count() >= 0
                    assert len(list(reopened.scan(batch_size=1000))) == reopened.count()
    assert kills >= 1
    run_in_process(mode, source, shard, ckpt, dead)
    assert shard_state(shard) == reference[mode]
    # every rejected or unreadable document is dead-lettered (a kill between the dead-letter write and the
    # checkpoint save may repeat an entry: dead-lettering is at-least-once)
    entries = [json.loads(line) for line in dead.read_text().splitlines()]
    rejected = {f"d{i}" for i in range(N_DOCS) if i not in MALFORMED and rejects(f"d{i}", **_fatal())}
    assert {e["id"] for e in entries if e["stage"] == "write"} == rejected
    assert {e["where"] for e in entries if e["stage"] == "read"} == {f"line {p + 1}" for p in MALFORMED}
