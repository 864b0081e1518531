"""Fault injection on every write path: ingest and migrate into a real Qdrant Edge shard through
`FaultyConnector` (as `RetriedFaults`: the faults sit under a `RetryPolicy`, as a real engine's sit under
its connector's retries), with 10% and 50% of item attempts failing retryably, a share of documents rejected
for good, and an engine outage in the middle (short enough for the retries, or long enough to stop the run
and need a resume). After the run the shard holds exactly the accepted documents with the content an
uninterrupted run gives, every rejected document is in the dead-letter file once with its reason, the
counts add up, and nothing is duplicated.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from spladebridge.connectors.base import IndexSpec
from spladebridge.connectors.qdrant_edge import QdrantEdgeConnector
from spladebridge.connectors.retry import RetryPolicy
from spladebridge.ingest import IngestReport, ingest
from spladebridge.migrate import ConnectorTarget, MigrationError, RecordFileSource, migrate
from spladebridge.testing import FATAL_STATUS, FaultyConnector, InjectedOutage, rejects

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))

from ingest_fakes import HashDenseEncoder, HashSparseEncoder, RetriedFaults, corpus, doc_state, write_jsonl

N_DOCS = 300
MALFORMED = {40: "{not json", 211: '{"title": "no id here", "text": "orphan"}'}
FATAL_RATE = 0.05
SPEC = IndexSpec(name="faults", dense_field="dense", dense_dim=8)


def retries(n: int) -> RetryPolicy:
    """The connector's policy in these tests: `n` re-sends, no waiting."""
    return RetryPolicy(max_retries=n, initial_backoff=0.0)


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rows: list[Any] = list(corpus(N_DOCS))
    for position, line in MALFORMED.items():
        rows[position] = line
    return write_jsonl(tmp_path_factory.mktemp("src") / "corpus.jsonl", rows)


def shard_state(path: Path) -> dict[str, dict[str, Any]]:
    """Every stored document by id; fails when an id is stored twice or the count disagrees with the scan."""
    with QdrantEdgeConnector(path) as conn:
        docs = list(conn.scan(batch_size=128))
        assert conn.count() == len(docs)
    ids = [str(d.id) for d in docs]
    assert len(ids) == len(set(ids)), "a document is stored twice"
    return {str(d.id): doc_state(d) for d in docs}


@pytest.fixture(scope="module")
def reference(source: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """What an uninterrupted, fault-free ingest leaves."""
    path = tmp_path_factory.mktemp("reference") / "shard"
    with QdrantEdgeConnector(path, SPEC) as conn:
        report = ingest(source, conn, HashSparseEncoder(), HashDenseEncoder(), batch_size=32, progress=False)
    assert report.ok is False and report.complete and report.failed == len(MALFORMED)
    state = shard_state(path)
    assert len(state) == N_DOCS - len(MALFORMED)
    return state


def expected_state(reference: dict[str, dict[str, Any]], seed: int) -> dict[str, dict[str, Any]]:
    return {i: s for i, s in reference.items() if not rejects(i, seed=seed, fatal_rate=FATAL_RATE)}


def dead_letters(path: Path) -> list[dict[str, Any]]:
    return (
        [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] if path.exists() else []
    )


def check_dead_letters(path: Path, fatal_ids: set[str]) -> None:
    entries = dead_letters(path)
    writes = [e for e in entries if e["stage"] == "write"]
    reads = [e for e in entries if e["stage"] == "read"]
    assert sorted(e["id"] for e in writes) == sorted(fatal_ids)  # each rejected document exactly once
    assert all(FATAL_STATUS in e["error"] and e["record"]["id"] == e["id"] for e in writes)
    assert sorted(e["where"] for e in reads) == sorted(f"line {p + 1}" for p in MALFORMED)
    assert all(e["stage"] in ("write", "read") for e in entries)  # no retryable failure was dead-lettered


def check_counts(report: IngestReport) -> None:
    assert report.read == report.written + report.failed + report.skipped + report.pending


@pytest.mark.parametrize("rate", [0.1, 0.5])
@pytest.mark.parametrize("outage", [None, (4, 3)], ids=["no-outage", "short-outage"])
def test_ingest_under_item_failures(
    tmp_path: Path,
    source: Path,
    reference: dict[str, dict[str, Any]],
    rate: float,
    outage: tuple[int, int] | None,
) -> None:
    seed = int(rate * 100) + (0 if outage is None else 7)
    shard, dead = tmp_path / "shard", tmp_path / "dead.jsonl"
    with QdrantEdgeConnector(shard, SPEC) as edge:
        faulty = RetriedFaults(
            edge,
            retry=retries(40),
            retryable_rate=rate,
            fatal_rate=FATAL_RATE,
            seed=seed,
            outage=outage,
            ambiguous_timeouts=True,
        )
        report = ingest(
            source,
            faulty,
            HashSparseEncoder(),
            HashDenseEncoder(),
            batch_size=32,
            dead_letter=dead,
            progress=False,
        )
    stats = faulty.stats
    assert report.complete and report.stopped is None and report.pending == 0
    check_counts(report)
    fatal_ids = {str(i) for i in stats.fatal_ids}
    assert fatal_ids == set(reference) - set(expected_state(reference, seed))
    assert report.written == len(reference) - len(fatal_ids)
    assert report.failed == len(fatal_ids) + len(MALFORMED)
    assert stats.retryable > 0 and stats.fatal >= len(fatal_ids)
    if outage is not None:
        assert stats.outage_calls == outage[1]
    if rate >= 0.5:
        assert stats.ambiguous_writes > 0  # timeouts that landed anyway were retried without duplicating
    assert shard_state(shard) == expected_state(reference, seed)
    check_dead_letters(dead, fatal_ids)


def test_ingest_long_outage_stops_resumably_then_resume_completes(
    tmp_path: Path, source: Path, reference: dict[str, dict[str, Any]]
) -> None:
    seed = 3
    shard, dead, ckpt = tmp_path / "shard", tmp_path / "dead.jsonl", tmp_path / "ckpt.json"
    common: dict[str, Any] = {
        "batch_size": 32,
        "dead_letter": dead,
        "checkpoint": ckpt,
        "progress": False,
    }
    with QdrantEdgeConnector(shard, SPEC) as edge:
        first = RetriedFaults(
            edge, retry=retries(3), retryable_rate=0.1, fatal_rate=FATAL_RATE, seed=seed, outage=(5, 1000)
        )
        stopped = ingest(source, first, HashSparseEncoder(), HashDenseEncoder(), **common)
    assert not stopped.complete and stopped.stopped is not None and "InjectedOutage" in stopped.stopped
    assert stopped.pending > 0
    check_counts(stopped)
    # the documents the checkpoint calls settled really are in the shard
    saved = json.loads(ckpt.read_text())
    assert saved["watermark"] > 0 and not saved["complete"]
    landed = shard_state(shard)
    settled = {f"d{p}" for p in range(saved["watermark"])} | {f"d{p}" for p in saved["above"]}
    settled -= {f"d{p}" for p in MALFORMED}
    assert settled - landed.keys() <= {str(i) for i in first.stats.fatal_ids}

    with QdrantEdgeConnector(shard) as edge:
        second = RetriedFaults(edge, retry=retries(40), retryable_rate=0.1, fatal_rate=FATAL_RATE, seed=seed)
        resumed = ingest(source, second, HashSparseEncoder(), HashDenseEncoder(), **common)
    assert resumed.complete and resumed.pending == 0
    check_counts(resumed)
    assert resumed.skipped == stopped.written + stopped.failed
    assert stopped.written + resumed.written == len(expected_state(reference, seed))
    fatal_ids = {str(i) for i in first.stats.fatal_ids | second.stats.fatal_ids}
    assert stopped.failed + resumed.failed == len(fatal_ids) + len(MALFORMED)
    assert shard_state(shard) == expected_state(reference, seed)
    check_dead_letters(dead, fatal_ids)


def _migrate(source: Path, target: FaultyConnector, ckpt: Path, dead: Path, **kw: Any) -> Any:
    return migrate(
        RecordFileSource(source),
        ConnectorTarget(target, SPEC),
        HashSparseEncoder(),
        HashDenseEncoder(),
        batch_size=32,
        checkpoint=ckpt,
        dead_letter=dead,
        verify_after=False,
        **kw,
    )


@pytest.mark.parametrize("rate", [0.1, 0.5])
def test_migrate_under_item_failures_with_a_short_outage(
    tmp_path: Path, source: Path, reference: dict[str, dict[str, Any]], rate: float
) -> None:
    seed = 11 + int(rate * 10)
    shard, dead, ckpt = tmp_path / "shard", tmp_path / "dead.jsonl", tmp_path / "ckpt.json"
    with QdrantEdgeConnector(shard) as edge:
        faulty = RetriedFaults(
            edge,
            retry=retries(40),
            retryable_rate=rate,
            fatal_rate=FATAL_RATE,
            seed=seed,
            outage=(6, 4),
            ambiguous_timeouts=True,
        )
        report = _migrate(source, faulty, ckpt, dead)
    assert report.finished and report.stopped is None
    totals = report.totals
    assert totals["read"] == N_DOCS == totals["written"] + totals["failed"]
    fatal_ids = {str(i) for i in faulty.stats.fatal_ids}
    assert totals["failed"] == len(fatal_ids) + len(MALFORMED)
    assert faulty.stats.outage_calls == 4 and faulty.stats.retryable > 0
    assert shard_state(shard) == expected_state(reference, seed)
    check_dead_letters(dead, fatal_ids)


def test_migrate_long_outage_fails_then_resume_completes(
    tmp_path: Path, source: Path, reference: dict[str, dict[str, Any]]
) -> None:
    seed = 5
    shard, dead, ckpt = tmp_path / "shard", tmp_path / "dead.jsonl", tmp_path / "ckpt.json"
    with QdrantEdgeConnector(shard) as edge:
        first = RetriedFaults(
            edge, retry=retries(2), retryable_rate=0.1, fatal_rate=FATAL_RATE, seed=seed, outage=(8, 1000)
        )
        with pytest.raises((MigrationError, InjectedOutage)):
            _migrate(source, first, ckpt, dead)
    saved = json.loads(ckpt.read_text())
    assert saved["phase"] == "copy" and 0 < saved["cursor"]["position"] < N_DOCS
    with QdrantEdgeConnector(shard) as edge:
        second = RetriedFaults(edge, retry=retries(40), retryable_rate=0.1, fatal_rate=FATAL_RATE, seed=seed)
        report = _migrate(source, second, ckpt, dead, resume=True)
    assert report.finished and report.resumed
    assert report.totals["read"] == N_DOCS == report.totals["written"] + report.totals["failed"]
    fatal_ids = {str(i) for i in first.stats.fatal_ids | second.stats.fatal_ids}
    assert shard_state(shard) == expected_state(reference, seed)
    check_dead_letters(dead, fatal_ids)


def test_fault_decisions_are_deterministic_and_near_the_rates() -> None:
    from ingest_fakes import MemoryConnector

    from spladebridge.connectors.base import Document

    def run(seed: int) -> list[tuple[str, bool, str]]:
        faulty = FaultyConnector(MemoryConnector(), retryable_rate=0.3, fatal_rate=0.1, seed=seed)
        docs = [Document(id=f"x{i}", fields={"text": "t"}) for i in range(2000)]
        return [(str(o.id), o.ok, o.status) for o in faulty.upsert(docs).outcomes]

    first = run(1)
    assert first == run(1) and first != run(2)
    fatal = sum(status == FATAL_STATUS for _, _, status in first) / len(first)
    retryable = sum(not ok and status != FATAL_STATUS for _, ok, status in first) / len(first)
    assert 0.07 < fatal < 0.13
    assert 0.22 < retryable < 0.32  # 30% of the 90% not rejected
    assert {s for _, ok, s in first if not ok} == {FATAL_STATUS, "429", "connection reset", "timeout"}


def test_real_default_encoders_through_faults_give_the_fault_free_state(tmp_path: Path) -> None:
    """One run with the bundled SPLADE-tiny and all-MiniLM-L6-v2 models: what lands under faults is exactly
    what a fault-free run writes, vectors included."""
    from importlib import resources

    from spladebridge.encoder.dense import DenseEncoder
    from spladebridge.encoder.splade import SpladeEncoder

    lines = resources.files("spladebridge").joinpath("data/demo_corpus.jsonl").read_text("utf-8").splitlines()
    src = tmp_path / "demo.jsonl"
    src.write_text("\n".join(lines[:24]) + "\n", encoding="utf-8")
    sparse, dense = SpladeEncoder(device="cpu"), DenseEncoder(device="cpu")
    spec = IndexSpec(name="real", dense_field="dense", dense_dim=dense.dim)
    with QdrantEdgeConnector(tmp_path / "clean", spec) as conn:
        clean = ingest(src, conn, sparse, dense, batch_size=16, progress=False)
    assert clean.ok and clean.written == 24
    with QdrantEdgeConnector(tmp_path / "faulty", spec) as edge:
        faulty = RetriedFaults(
            edge, retry=retries(40), retryable_rate=0.3, fatal_rate=0.1, seed=4, ambiguous_timeouts=True
        )
        report = ingest(
            src, faulty, sparse, dense, batch_size=16, dead_letter=tmp_path / "dead.jsonl", progress=False
        )
    rejected = {str(i) for i in faulty.stats.fatal_ids}
    assert rejected and report.complete and report.failed == len(rejected)
    expected = {i: s for i, s in shard_state(tmp_path / "clean").items() if i not in rejected}
    assert shard_state(tmp_path / "faulty") == expected
    assert {e["id"] for e in dead_letters(tmp_path / "dead.jsonl")} == rejected
