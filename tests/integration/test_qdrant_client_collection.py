"""qdrant-client specifics, in local mode: retries, per-item isolation, the stored spec, server versions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse
from qdrant_testdata import SPEC, make_docs, query_dense, query_sparse

from spladebridge.connectors.base import (
    ConnectorError,
    HybridRequest,
    IndexSpec,
    ServerFusion,
    UnsupportedOperation,
)
from spladebridge.connectors.qdrant import QdrantConnector, is_transient


class FlakyClient(QdrantClient):
    """A real local-mode client whose upserts fail: `transient` times first, always for poisoned points."""

    def __init__(self, transient: int = 0, status: int | None = None) -> None:
        super().__init__(":memory:")
        self.transient = transient
        self.status = status
        self.calls = 0

    def upsert(self, collection_name: str, points: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        self.calls += 1
        if self.calls <= self.transient:
            if self.status is None:
                raise ResponseHandlingException(ConnectionError("connection reset"))
            raise UnexpectedResponse(self.status, "Service Unavailable", b"busy", httpx.Headers())
        if any((p.payload or {}).get("poison") for p in points):
            raise UnexpectedResponse(400, "Bad Request", b"bad point", httpx.Headers())
        return super().upsert(collection_name, points, **kwargs)


class VersionedClient(QdrantClient):
    """Local mode that reports a given server version (None: the version call fails)."""

    def __init__(self, version: str | None) -> None:
        super().__init__(":memory:")
        self.version = version

    def info(self) -> Any:
        if self.version is None:
            raise ResponseHandlingException(ConnectionError("no /"))
        return models.VersionInfo(title="qdrant", version=self.version)


def test_transient_failures_are_retried_until_the_batch_lands() -> None:
    client = FlakyClient(transient=2)
    with QdrantConnector(client, SPEC, max_retries=3, backoff_s=0.001) as conn:
        report = conn.upsert(make_docs(5))
        assert report.ok
        assert {o.attempts for o in report.outcomes} == {3}
        assert conn.count() == 5
        assert client.calls == 3


def test_exhausted_retries_fail_every_item_as_retryable() -> None:
    client = FlakyClient(transient=100, status=503)
    with QdrantConnector(client, SPEC, max_retries=2, backoff_s=0.001) as conn:
        report = conn.upsert(make_docs(4))
        assert report.failed == 4
        assert all(o.retryable and o.attempts == 3 for o in report.outcomes)
        assert "UnexpectedResponse" in (report.outcomes[0].error or "")
        assert conn.count() == 0


def test_a_permanent_error_is_isolated_to_the_documents_that_cause_it() -> None:
    docs = make_docs(6)
    docs[2].metadata["poison"] = True
    docs[4].metadata["poison"] = True
    with QdrantConnector(FlakyClient(), SPEC, batch_size=4) as conn:
        report = conn.upsert(docs)
        assert [o.ok for o in report.outcomes] == [True, True, False, True, False, True]
        bad = report.outcomes[2]
        assert bad.id == docs[2].id and not bad.retryable and "400" in (bad.error or "")
        assert conn.count() == 4


def test_is_transient_separates_retryable_errors() -> None:
    headers = httpx.Headers()
    assert is_transient(ResponseHandlingException(ConnectionError()))
    assert is_transient(UnexpectedResponse(429, "Too Many Requests", b"", headers))
    assert is_transient(UnexpectedResponse(502, "Bad Gateway", b"", headers))
    assert not is_transient(UnexpectedResponse(400, "Bad Request", b"", headers))
    assert not is_transient(ValueError("bad vector"))


def test_the_spec_is_stored_in_the_collection_and_read_back(tmp_path: Path) -> None:
    spec = IndexSpec(name="stored", dense_dim=8, sparse_idf=True, options={"on_disk": True})
    with QdrantConnector(QdrantClient(path=str(tmp_path / "local")), spec) as conn:
        conn.upsert(make_docs(7))
        top = [h.id for h in conn.search_sparse(query_sparse(), 3)]
    with QdrantConnector(QdrantClient(path=str(tmp_path / "local")), collection="stored") as conn:
        assert conn.spec == spec
        assert conn.count() == 7
        assert [h.id for h in conn.search_sparse(query_sparse(), 3)] == top
        with pytest.raises(ConnectorError, match="sparse_idf: wanted False"):
            conn.ensure_index(IndexSpec(name="stored", dense_dim=8))


def test_a_foreign_collection_is_adopted_only_when_its_vectors_fit() -> None:
    client = QdrantClient(":memory:")
    client.create_collection(
        "foreign",
        vectors_config={"dense": models.VectorParams(size=8, distance=models.Distance.COSINE)},
        sparse_vectors_config={"splade": models.SparseVectorParams(), "bm25": models.SparseVectorParams()},
    )
    client.create_collection(
        "thin", vectors_config={}, sparse_vectors_config={"other": models.SparseVectorParams()}
    )
    with QdrantConnector(client, close_client=False, collection="thin") as conn:
        assert conn.spec is None
        with pytest.raises(ConnectorError, match="without the vectors"):
            conn.ensure_index(IndexSpec(name="thin", dense_dim=8))
    with QdrantConnector(client, IndexSpec(name="foreign", dense_dim=8), close_client=False) as conn:
        assert conn.upsert(make_docs(3)).ok
        assert len(conn.search_dense(query_dense(), 2)) == 2
    assert client.collection_exists("foreign")  # close_client=False left the client open


@pytest.mark.parametrize(
    ("version", "fusion", "weighted"),
    [
        ("1.10.1", set(), False),
        ("1.13.0", {"dbsf"}, False),
        ("1.15.2", {"dbsf"}, True),
        ("v1.16.0", {"rrf", "dbsf"}, True),
        ("1.17.0-rc1", {"rrf", "dbsf"}, True),
        (None, {"rrf", "dbsf"}, True),
    ],
)
def test_capabilities_follow_the_server_version(
    version: str | None, fusion: set[str], weighted: bool
) -> None:
    with QdrantConnector(VersionedClient(version), SPEC) as conn:
        caps = conn.capabilities()
        assert caps.server_fusion == frozenset(fusion)
        assert caps.weighted_fusion is weighted
        assert (version is None) == any("unknown" in n for n in caps.notes)
        request = HybridRequest(
            k=3, candidates=10, fusion=ServerFusion(), sparse=query_sparse(), dense=query_dense()
        )
        if "rrf" in fusion:
            assert len(conn.search_hybrid(request)) == 0  # an empty collection, but the query runs
        else:
            with pytest.raises(UnsupportedOperation, match="cannot run 'rrf'"):
                conn.search_hybrid(request)


def test_weighted_dbsf_needs_formula_support() -> None:
    with QdrantConnector(VersionedClient("1.12.0"), SPEC) as conn:
        conn.upsert(make_docs(5))
        plain = HybridRequest(k=3, candidates=10, fusion=ServerFusion(method="dbsf"), sparse=query_sparse())
        assert len(conn.search_hybrid(plain)) == 3
        weighted = HybridRequest(
            k=3, candidates=10, fusion=ServerFusion(method="dbsf", weights=(2.0, 1.0)), sparse=query_sparse(),
            dense=query_dense(),
        )  # fmt: skip
        with pytest.raises(UnsupportedOperation, match="formula"):
            conn.search_hybrid(weighted)
