"""Qdrant Edge specifics: the persistent shard, its stored spec, the exclusive lock, optimize and close."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from qdrant_testdata import SPEC, make_docs, query_sparse

from spladebridge.connectors.base import ConnectorError, IndexSpec
from spladebridge.connectors.qdrant_edge import SPEC_FILE, QdrantEdgeConnector

OPEN_IN_CHILD = textwrap.dedent(
    """
    import sys
    from spladebridge.connectors.base import ConnectorError
    from spladebridge.connectors.qdrant_edge import QdrantEdgeConnector
    try:
        with QdrantEdgeConnector(sys.argv[1]) as conn:
            print("opened", conn.count())
    except ConnectorError as exc:
        print("ConnectorError:", exc)
        sys.exit(3)
    """
)


def _open_in_child(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", OPEN_IN_CHILD, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_second_process_gets_a_clear_error_and_the_data_survives(tmp_path: Path) -> None:
    path = tmp_path / "shard"
    docs = make_docs(20)
    with QdrantEdgeConnector(path, SPEC) as conn:
        conn.upsert(docs)
        child = _open_in_child(path)
        assert child.returncode == 3, child.stdout + child.stderr
        assert "already open" in child.stdout and "pid" in child.stdout
        with pytest.raises(ConnectorError, match="already open"):
            QdrantEdgeConnector(path)  # a second connector in the same process too
        assert conn.count() == 20
        top = [h.id for h in conn.search_sparse(query_sparse(), 5)]
    child = _open_in_child(path)  # released on close
    assert child.returncode == 0, child.stdout + child.stderr
    assert child.stdout.strip() == "opened 20"
    with QdrantEdgeConnector(path) as again:
        assert [h.id for h in again.search_sparse(query_sparse(), 5)] == top


def test_a_reopened_shard_reads_its_spec_back(tmp_path: Path) -> None:
    path = tmp_path / "shard"
    spec = IndexSpec(
        name="reopen", dense_dim=8, text_fields=("text",), sparse_idf=True, options={"bm25": {"k": 1.5}}
    )
    with QdrantEdgeConnector(path, spec) as conn:
        conn.upsert(make_docs(5))
    stored = json.loads((path / SPEC_FILE).read_text())
    assert stored["sparse_idf"] is True and stored["text_fields"] == ["text"]
    with QdrantEdgeConnector(path) as conn:
        assert conn.spec == spec
        assert conn.count() == 5
        conn.ensure_index(IndexSpec(name="other-name", dense_dim=8, text_fields=("text",), sparse_idf=True))
        with pytest.raises(ConnectorError, match=r"dense_dim: wanted 16, index has 8"):
            conn.ensure_index(IndexSpec(dense_dim=16, text_fields=("text",), sparse_idf=True))
    with pytest.raises(ConnectorError, match="does not match"):
        QdrantEdgeConnector(path, IndexSpec(dense_field=None))
    with QdrantEdgeConnector(path) as conn:  # the failed open released its lock
        assert conn.count() == 5


def test_an_empty_folder_waits_for_ensure_index(tmp_path: Path) -> None:
    with QdrantEdgeConnector(tmp_path / "new") as conn:
        assert conn.spec is None
        with pytest.raises(ConnectorError, match="ensure_index"):
            conn.count()
        conn.ensure_index(SPEC)
        assert conn.upsert(make_docs(3)).ok
        assert conn.count() == 3


def test_a_corrupt_spec_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "shard"
    QdrantEdgeConnector(path, SPEC).close()
    (path / SPEC_FILE).write_text("{not json")
    with pytest.raises(ConnectorError, match="cannot read the index spec"):
        QdrantEdgeConnector(path)


def test_optimize_after_a_bulk_load_keeps_results(tmp_path: Path) -> None:
    with QdrantEdgeConnector(tmp_path / "shard", SPEC, batch_size=16) as conn:
        report = conn.upsert(make_docs(100))
        assert report.ok and len(report) == 100
        before = [(h.id, h.score) for h in conn.search_sparse(query_sparse(), 10)]
        assert isinstance(conn.optimize(), bool)
        conn.flush()
        after = [(h.id, h.score) for h in conn.search_sparse(query_sparse(), 10)]
        assert [i for i, _ in after] == [i for i, _ in before]
        assert conn.count() == 100
