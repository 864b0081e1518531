"""Concurrency on one Qdrant Edge shard: query threads running hybrid searches while another thread ingests
see no errors and consistent results (filtered to the documents that were there before the load, the
results never change); two processes (or two connectors) opening one shard path get a clear error and leave
the shard intact. Timings and memory over a longer soak are `benchmarks/load_bench.py`, not tests.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from spladebridge.connectors.base import ConnectorError, IndexSpec
from spladebridge.connectors.filters import Term
from spladebridge.connectors.qdrant_edge import QdrantEdgeConnector
from spladebridge.hybrid.searcher import HybridSearcher
from spladebridge.hybrid.settings import RRF
from spladebridge.ingest import ingest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))

from ingest_fakes import HashDenseEncoder, HashSparseEncoder

WORDS = [f"w{i}" for i in range(300)]
SPEC = IndexSpec(name="load", dense_field="dense", dense_dim=8)
N_BEFORE, N_DURING, QUERY_THREADS = 400, 1000, 4


def docs(n: int, start: int, batch: int, seed: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    return [
        {
            "_id": f"d{i}",
            "title": " ".join(rng.choice(WORDS, 3)),
            "text": " ".join(rng.choice(WORDS, 25)),
            "batch": batch,
        }
        for i in range(start, start + n)
    ]


def signature(hits: list[Any]) -> tuple[tuple[float, ...], tuple[frozenset[str], ...]]:
    """The scores in order, and the ids of each score group: the order among tied hits is the engine's
    choice (it may change as segments change), and the last group may be cut at k, so it is left out."""
    scores = tuple(round(float(h.score), 5) for h in hits)
    groups: dict[float, set[str]] = {}
    for h, score in zip(hits, scores, strict=True):
        groups.setdefault(score, set()).add(str(h.id))
    return scores, tuple(frozenset(groups[s]) for s in sorted(groups, reverse=True)[:-1])


def test_hybrid_queries_stay_consistent_while_another_thread_ingests(tmp_path: Path) -> None:
    queries = [" ".join(np.random.default_rng(100 + q).choice(WORDS, 4)) for q in range(12)]
    errors: list[str] = []
    with QdrantEdgeConnector(tmp_path / "shard", SPEC) as conn:
        before = ingest(
            docs(N_BEFORE, 0, 0, 1), conn, HashSparseEncoder(), HashDenseEncoder(), progress=False
        )
        assert before.written == N_BEFORE
        fused = HybridSearcher(
            conn,
            HashSparseEncoder(),
            HashDenseEncoder(),
            signals=("sparse", "dense"),
            fusion=RRF(k=60),
            server_fusion=True,
        )
        everything = HybridSearcher(conn, HashSparseEncoder(), HashDenseEncoder(), fusion=RRF(k=60))
        old = Term("batch", 0)
        baseline = {q: signature(fused.search(q, k=10, filter=old)) for q in queries}
        assert all(len(v[0]) == 10 for v in baseline.values())
        done = threading.Event()
        rounds = [0] * QUERY_THREADS
        counts: list[int] = []

        def writer() -> None:
            try:
                report = ingest(
                    docs(N_DURING, N_BEFORE, 1, 2),
                    conn,
                    HashSparseEncoder(),
                    HashDenseEncoder(),
                    batch_size=50,
                    progress=False,
                )
                if report.written != N_DURING:
                    errors.append(f"ingest wrote {report.written}: {report.summary()}")
            except Exception as exc:  # any error is a test failure, reported below
                errors.append(f"writer: {type(exc).__name__}: {exc}")
            finally:
                done.set()

        def reader(n: int) -> None:
            try:
                while not done.is_set() or rounds[n] < 3:
                    for q in queries:
                        got = signature(fused.search(q, k=10, filter=old))
                        if got != baseline[q]:
                            errors.append(f"query {q!r}: {got} != {baseline[q]}")
                        hits = everything.search(q, k=10)
                        ids = [h.id for h in hits]
                        if len(set(ids)) != len(ids) or [h.rank for h in hits] != list(
                            range(1, len(hits) + 1)
                        ):
                            errors.append(f"query {q!r}: bad unfiltered hits {ids}")
                    counts.append(conn.count())
                    rounds[n] += 1
            except Exception as exc:
                errors.append(f"reader {n}: {type(exc).__name__}: {exc}")

        threads = [threading.Thread(target=reader, args=(n,)) for n in range(QUERY_THREADS)]
        threads.append(threading.Thread(target=writer))
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert not any(t.is_alive() for t in threads)
        assert errors == []
        assert min(rounds) >= 3
        assert all(N_BEFORE <= c <= N_BEFORE + N_DURING for c in counts)
        assert conn.count() == N_BEFORE + N_DURING
        new = fused.search(queries[0], k=10, filter=Term("batch", 1))
        assert len(new) == 10 and all(str(h.id) >= "d" for h in new)
        assert {q: signature(fused.search(q, k=10, filter=old)) for q in queries} == baseline


HOLDER = textwrap.dedent(
    """
    import sys, time
    from spladebridge.connectors.qdrant_edge import QdrantEdgeConnector
    conn = QdrantEdgeConnector(sys.argv[1])
    print("open", conn.count(), flush=True)
    time.sleep(60)
    """
)


def _fill(path: Path, n: int) -> None:
    with QdrantEdgeConnector(path, SPEC) as conn:
        report = ingest(docs(n, 0, 0, 3), conn, HashSparseEncoder(), HashDenseEncoder(), progress=False)
        assert report.written == n


def test_second_process_gets_a_clear_error_and_the_shard_stays_intact(tmp_path: Path) -> None:
    shard = tmp_path / "shard"
    _fill(shard, 120)
    child = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(shard)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().split() == ["open", "120"]
        for _ in range(3):
            with pytest.raises(ConnectorError, match=rf"already open .*pid {child.pid}"):
                QdrantEdgeConnector(shard)
        os.kill(child.pid, signal.SIGKILL)  # the lock dies with its holder
        child.wait()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    with QdrantEdgeConnector(shard) as conn:
        assert conn.count() == 120
        assert len(list(conn.scan())) == 120


def test_second_connector_in_one_process_is_refused_until_the_first_closes(tmp_path: Path) -> None:
    shard = tmp_path / "shard"
    _fill(shard, 30)
    first = QdrantEdgeConnector(shard)
    try:
        with pytest.raises(ConnectorError, match="already open"):
            QdrantEdgeConnector(shard)
        assert first.count() == 30  # the refused attempt did not disturb the open shard
    finally:
        first.close()
    with QdrantEdgeConnector(shard) as again:
        assert again.count() == 30


def test_two_processes_racing_to_create_one_shard(tmp_path: Path) -> None:
    """Both start at once: exactly one creates and fills the shard, the other fails cleanly."""
    shard = tmp_path / "shard"
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).resolve().parents[1] / "unit")!r})
        from ingest_fakes import HashDenseEncoder, HashSparseEncoder
        from spladebridge.connectors.base import ConnectorError, IndexSpec
        from spladebridge.connectors.qdrant_edge import QdrantEdgeConnector
        from spladebridge.ingest import ingest
        try:
            conn = QdrantEdgeConnector(sys.argv[1], IndexSpec(name="load", dense_field="dense", dense_dim=8))
        except ConnectorError as exc:
            print("refused:", exc)
            sys.exit(3)
        rows = [{{"_id": f"r{{i}}", "text": f"row {{i}}"}} for i in range(200)]
        ingest(rows, conn, HashSparseEncoder(), HashDenseEncoder(), progress=False)
        conn.close()
        print("wrote")
        """
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", script, str(shard)], stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=60)[0] for p in procs]
    codes = sorted(p.returncode for p in procs)
    # either one was refused (exit 3, a clear message) or they ran one after the other; never a crash
    assert codes in ([0, 0], [0, 3]), outs
    assert any("wrote" in o for o in outs)
    assert all(
        "refused: Qdrant Edge shard" in o for o, p in zip(outs, procs, strict=True) if p.returncode == 3
    )
    with QdrantEdgeConnector(shard) as conn:
        assert conn.count() == 200
