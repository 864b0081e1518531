"""Ingest with the real bundled models into a real Qdrant Edge shard, then search it; and the console script."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from spladebridge.connectors.qdrant_edge import QdrantEdgeConnector
from spladebridge.encoder.dense import DenseEncoder
from spladebridge.encoder.splade import SpladeEncoder
from spladebridge.hybrid.searcher import HybridSearcher
from spladebridge.ingest import ingest

pytestmark = pytest.mark.slow

TOPICS = [
    (
        "Boundary layer transition on swept wings",
        "Measurements of laminar flow breakdown at high Reynolds number.",
    ),
    ("Heat transfer in hypersonic flow", "Stagnation point heating rates for blunt bodies at Mach 8."),
    ("Protein folding kinetics", "Fast folding of small proteins observed with temperature jumps."),
    ("Library cataloguing practice", "How subject headings are assigned to new acquisitions."),
    ("Gene expression in yeast", "Transcription factors controlling the response to osmotic stress."),
    ("Vitamin D and bone density", "A randomised trial of supplements in older adults."),
]


@pytest.fixture(scope="module")
def encoders() -> tuple[SpladeEncoder, DenseEncoder]:
    return SpladeEncoder(), DenseEncoder()


@pytest.fixture
def source(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "docs.jsonl"
    with path.open("w") as handle:
        for i, (title, text) in enumerate(TOPICS * 4):
            handle.write(
                json.dumps({"_id": f"doc{i}", "title": f"{title} ({i})", "text": text, "n": i}) + "\n"
            )
        handle.write(json.dumps({"_id": "long", "title": "long", "text": "wing " * 5000}) + "\n")
    yield path


def test_real_models_land_exact_vectors_and_are_searchable(
    tmp_path: Path, source: Path, encoders: tuple[SpladeEncoder, DenseEncoder]
) -> None:
    sparse, dense = encoders
    with QdrantEdgeConnector(tmp_path / "shard") as conn:
        report = ingest(
            source, conn, sparse, dense, batch_size=8, checkpoint=tmp_path / "c.json", progress=False
        )
        assert report.ok and report.written == len(TOPICS) * 4 + 1
        assert conn.count() == report.written
        [stored] = conn.get(["doc9"])
        assert stored is not None and stored.metadata == {"n": 9}
        text = stored.text(("title", "text"))
        [expected_sparse] = sparse.encode_documents([text])
        assert stored.sparse is not None
        np.testing.assert_array_equal(stored.sparse.indices, expected_sparse.indices)
        np.testing.assert_allclose(stored.sparse.values, expected_sparse.values, rtol=1e-4, atol=1e-5)
        assert stored.dense is not None
        expected_dense = dense.encode([text])[0]
        cosine = float(np.dot(stored.dense, expected_dense) / np.linalg.norm(expected_dense))
        assert cosine == pytest.approx(1.0, abs=1e-4)

        searcher = HybridSearcher(conn, sparse, dense, signals=["sparse", "dense"])
        hits = searcher.search("stagnation point heating of blunt bodies at hypersonic speed", k=4)
        heat = {f"doc{i}" for i in range(1, 24, 6)}  # the four copies of the heat-transfer topic
        assert {str(h.id) for h in hits} == heat


def test_console_script_encodes_and_reports_usage_errors(tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name("spladebridge")
    done = subprocess.run(
        [str(exe), "encode", "swept wing transition", "--json", "--top-k", "5"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    data: dict[str, Any] = json.loads(done.stdout)
    assert len(data["terms"]) == 5 and data["nnz"] >= 5
    assert {"wing", "transition"} & {t for t, _ in data["terms"]}
    bad = subprocess.run(
        [str(exe), "index", "absent.jsonl"], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert (
        bad.returncode == 2
        and bad.stderr.strip() == "spladebridge: error: input file not found: absent.jsonl"
    )
