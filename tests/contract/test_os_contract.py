"""Every body the OpenSearch connector sends, validated against the official OpenSearch API spec.

Bodies come from the connector itself, driven through a recording client (no server): create-index,
bulk (NDJSON action and source lines), mget, search (neural_sparse, rank_feature, knn, match, multi_match,
hybrid, point in time), search pipelines, delete PIT. Where the spec lags the server (the 3.3
`sparse_vector` field type, the 3.0 `z_score` technique), the test pins the gap: the only error is at that
spot, and the rest of the body validates.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest
from opensearchpy.serializer import JSONSerializer
from os_spec import OpenSearchSpec, load_spec

from spladebridge.connectors.base import Document, HybridRequest, IndexSpec, ServerFusion
from spladebridge.connectors.filters import Filter, Range, Term, Terms
from spladebridge.connectors.opensearch import (
    OpenSearchConnector,
    OpenSearchOptions,
    SeismicIndexParams,
    SeismicQueryParams,
)
from spladebridge.connectors.opensearch_pipelines import (
    normalization_processor,
    plan_fusion,
    score_ranker_processor,
)
from spladebridge.encoder.sparse_vector import SparseVector

SPEC = IndexSpec(name="docs", dense_dim=4)
FILTER = Filter(Term("lang", "en"), Terms("year", [2020, 2021]), Range("score", gte=0.5, lt=2))


@pytest.fixture(scope="module")
def spec() -> OpenSearchSpec:
    return load_spec()


class _Namespace:
    def __init__(self, **attrs: Any) -> None:
        self.__dict__.update(attrs)


class _Recorder:
    """Just enough of `opensearchpy.OpenSearch` for the connector; records what it would send."""

    def __init__(self, version: str = "3.3.0") -> None:
        self.sent: list[tuple[str, Any]] = []
        self.version = version
        self.store: dict[str, dict[str, Any]] = {}
        self.transport = _Namespace(serializer=JSONSerializer())
        self.indices = _Namespace(
            exists=lambda index: False,
            create=lambda index, body: self.sent.append(("indices.create.0", body)),
            get_mapping=lambda index: {index: {"mappings": self._mapping}},
            refresh=lambda index: None,
        )
        self._mapping: dict[str, Any] = {}
        self.cat = _Namespace(
            plugins=lambda params=None: [
                {"component": "opensearch-neural-search"},
                {"component": "opensearch-knn"},
            ]
        )
        self.search_pipeline = _Namespace(
            put=lambda id, body: self.sent.append(("search_pipeline.put.0", body))
        )

    def info(self) -> dict[str, Any]:
        return {"version": {"distribution": "opensearch", "number": self.version}}

    def bulk(self, body: Any, **kwargs: Any) -> dict[str, Any]:
        text = body if isinstance(body, str) else "\n".join(body)
        lines = [JSONSerializer().loads(line) for line in text.splitlines() if line.strip()]
        self.sent.append(("bulk.0", lines))
        items = []
        i = 0
        while i < len(lines):
            ((op, meta),) = lines[i].items()
            i += 1 if op == "delete" else 2
            items.append({op: {"_id": meta["_id"], "status": 200, "result": "updated"}})
        return {"errors": False, "items": items}

    def mget(self, index: str, body: Any) -> dict[str, Any]:
        self.sent.append(("mget.1", body))
        return {"docs": [{"_id": i, "found": False} for i in body["ids"]]}

    def search(self, body: Any, index: str | None = None, params: Any = None) -> dict[str, Any]:
        self.sent.append(("search.1", body))
        if "pit" in body and "search_after" not in body:
            hit = {"_id": "a", "_score": None, "_source": {"sb_meta": {"id": "a"}}, "sort": ["a"]}
            return {"hits": {"hits": [hit]}}
        return {"hits": {"hits": []}}

    def create_pit(self, index: str, params: Any = None) -> dict[str, Any]:
        return {"pit_id": "pit-1"}

    def delete_pit(self, body: Any) -> dict[str, Any]:
        self.sent.append(("delete_pit.0", body))
        return {}


def _connector(
    options: OpenSearchOptions | None = None, version: str = "3.3.0"
) -> tuple[OpenSearchConnector, _Recorder]:
    rec = _Recorder(version)
    options = options or OpenSearchOptions()
    conn = OpenSearchConnector(client=rec, options=options, streaming_bulk=None)
    rec._mapping = conn.index_body(SPEC)["mappings"]
    conn.ensure_index(SPEC)
    return conn, rec


def _check_all(spec: OpenSearchSpec, rec: _Recorder, at_least: int = 1) -> None:
    assert len(rec.sent) >= at_least
    for operation, body in rec.sent:
        content_type = "application/x-ndjson" if operation.startswith("bulk") else "application/json"
        spec.check_request(operation, body, content_type)


def test_create_index_rank_features_and_knn(spec: OpenSearchSpec) -> None:
    _, rec = _connector()
    _check_all(spec, rec)


def test_bulk_lines_and_mget(spec: OpenSearchSpec) -> None:
    conn, rec = _connector()
    docs = [
        Document(
            id=i,
            fields={"title": "t", "text": "x"},
            metadata={"lang": "en", "year": 2020},
            sparse=SparseVector([1, 7], [0.5, 2.0]),
            dense=np.ones(4, np.float32),
        )
        for i in range(3)
    ]
    assert conn.upsert(docs).ok
    assert conn.delete([1, "gone"]).ok
    conn.get([0, "x"])
    _check_all(spec, rec, at_least=4)
    for _, lines in (s for s in rec.sent if s[0] == "bulk.0"):
        for line in lines:
            if set(line) & {"index", "delete"}:
                spec.check_schema("_core.bulk.yaml", "OperationContainer", line)


@pytest.mark.parametrize("neural_version", ["3.3.0", "2.13.0"])
def test_sparse_searches_with_and_without_filters(spec: OpenSearchSpec, neural_version: str) -> None:
    conn, rec = _connector(version=neural_version)
    conn.search_sparse(SparseVector([1, 2, 3], [100.0, 1.0, 0.5]), 10)
    conn.search_sparse(SparseVector([1, 2], [1.0, 0.5]), 10, filter=FILTER)
    searches = [b for op, b in rec.sent if op == "search.1"]
    assert ("rank_feature" in str(searches)) == (neural_version == "2.13.0")
    _check_all(spec, rec, at_least=3)


def test_dense_and_text_searches(spec: OpenSearchSpec) -> None:
    conn, rec = _connector()
    conn.search_dense(np.ones(4, np.float32), 5)
    conn.search_dense(np.ones(4, np.float32), 5, filter=FILTER)
    conn.search_text("hello world", 5)
    conn.search_text("hello world", 5, filter=Term("lang", "en"))
    _check_all(spec, rec, at_least=5)


@pytest.mark.parametrize(
    "fusion",
    [
        ServerFusion(method="rrf", rank_constant=60),
        ServerFusion(method="rrf", weights=(2.0, 1.0, 1.0)),
        ServerFusion(method="linear", normalizer="minmax", missing="zero", weights=(0.2, 0.3, 0.5)),
        ServerFusion(method="linear", normalizer="l2", missing="zero", signals=("sparse", "bm25")),
    ],
)
def test_hybrid_query_and_its_pipeline(spec: OpenSearchSpec, fusion: ServerFusion) -> None:
    conn, rec = _connector()
    request = HybridRequest(
        k=5,
        candidates=50,
        fusion=fusion,
        sparse=SparseVector([1, 2], [1.0, 2.0]),
        # l2 runs server-side only without a dense signal (its (1 + cos) / 2 scores are not cosines)
        dense=None if fusion.normalizer == "l2" and fusion.method == "linear" else np.ones(4, np.float32),
        text="hello",
        filter=FILTER,
    )
    conn.search_hybrid(request)
    ops = [op for op, _ in rec.sent]
    assert "search_pipeline.put.0" in ops and "search.1" in ops
    _check_all(spec, rec, at_least=3)


def test_scan_point_in_time_bodies(spec: OpenSearchSpec) -> None:
    conn, rec = _connector()
    assert [d.id for d in conn.scan(batch_size=1)] == ["a"]
    assert any(op == "delete_pit.0" for op, _ in rec.sent)
    _check_all(spec, rec, at_least=3)


@pytest.mark.parametrize(
    "pipeline",
    [
        score_ranker_processor(10),
        normalization_processor("min_max", "harmonic_mean", [0.5, 0.5]),
        normalization_processor("l2", "geometric_mean"),
        plan_fusion(ServerFusion(method="linear", missing="zero", weights=(1.0, 4.0)), 2).pipeline,
    ],
)
def test_native_pipelines(spec: OpenSearchSpec, pipeline: Any) -> None:
    spec.check_request("search_pipeline.put.0", pipeline.body)


# -- where the spec lags the server -------------------------------------------------------------------------


def _error_paths(spec: OpenSearchSpec, operation: str, body: Any) -> list[list[Any]]:
    return [list(e.absolute_path) for e in spec.errors(spec.request_body_ref(operation), body)]


def test_seismic_mapping_only_gap_is_the_sparse_vector_type(spec: OpenSearchSpec) -> None:
    """The spec has no 3.3 `sparse_vector` field type yet; everything else in the body validates."""
    options = OpenSearchOptions(
        sparse_type="sparse_vector", seismic=SeismicIndexParams(n_postings=100, cluster_ratio=0.2)
    )
    body = OpenSearchConnector(client=_Recorder(), options=options).index_body(SPEC)
    assert _error_paths(spec, "indices.create.0", body) == [["mappings", "properties", "splade"]]
    patched = copy.deepcopy(body)
    patched["mappings"]["properties"]["splade"] = {"type": "rank_features"}
    spec.check_request("indices.create.0", patched)


def test_seismic_query_validates(spec: OpenSearchSpec) -> None:
    options = OpenSearchOptions(
        sparse_type="sparse_vector", seismic_query=SeismicQueryParams(top_n=10, heap_factor=1.1)
    )
    rec = _Recorder()
    conn = OpenSearchConnector(client=rec, options=options)
    rec._mapping = conn.index_body(SPEC)["mappings"]
    conn.ensure_index(SPEC)
    conn.search_sparse(SparseVector([1, 2], [20.0, 1.0]), 10, filter=FILTER)
    (body,) = [b for op, b in rec.sent if op == "search.1"]
    spec.check_request("search.1", body)


def test_z_score_only_gap_is_the_technique_enum(spec: OpenSearchSpec) -> None:
    body = normalization_processor("z_score").body
    assert _error_paths(spec, "search_pipeline.put.0", body) == [["phase_results_processors", 0]]
    patched = copy.deepcopy(body)
    patched["phase_results_processors"][0]["normalization-processor"]["normalization"]["technique"] = (
        "min_max"
    )
    spec.check_request("search_pipeline.put.0", patched)


def test_the_validator_catches_a_broken_body(spec: OpenSearchSpec) -> None:
    """A contract test must be able to fail: wrong types and a bad combination technique are caught."""
    conn, _ = _connector()
    body = conn.index_body(SPEC)
    body["mappings"]["properties"]["dense"]["dimension"] = "four"
    with pytest.raises(AssertionError, match="dimension"):
        spec.check_request("indices.create.0", body)
    query = {"query": {"neural_sparse": {"splade": {"query_tokens": {"1": "heavy"}}}}}
    with pytest.raises(AssertionError, match="query_tokens"):
        spec.check_request("search.1", query)
    pipeline = score_ranker_processor(60).body
    pipeline["phase_results_processors"][0]["score-ranker-processor"]["combination"]["technique"] = "borda"
    with pytest.raises(AssertionError):
        spec.check_request("search_pipeline.put.0", pipeline)
