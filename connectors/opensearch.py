"""OpenSearch connector (2.x, 3.x; `opensearch-py`): the OpenSearch dialect of
`lucene_connector.LuceneConnector`, which holds everything the two Lucene engines share (document layout,
stored spec, writes, reads, scans, BM25, filters, the server-side fusion gate).

What is OpenSearch's own:

* Sparse: a `rank_features` field queried with `neural_sparse` + `query_tokens` (2.14+; an exact dot product
  over Lucene's 9-bit stored weights; query weights must lie in (0, 64], so a query is rescaled uniformly
  when needed and scores are scaled back). Without the neural-search plugin (or before 2.14) the same dot
  product runs as `rank_feature` + `linear` clauses with the weight as boost. Optionally the 3.3+
  `sparse_vector` field with the SEISMIC method (`index.sparse: true`) for approximate search at scale: its
  keys are integer token ids below 32768 and document weights are byte-quantised under
  `quantization_ceiling_ingest`, so documents whose (scaled) weights would clip are rejected per item.
* Dense: `knn_vector` (`index.knn: true`), queried with the `knn` query (filters inside the k-NN search).
* Hybrid: the `hybrid` query with a search pipeline created by content-hash name (`opensearch_pipelines`),
  only where OpenSearch computes exactly the requested fusion (plugin, version, RRF over one shard before
  3.5, the missing-document rule); otherwise `search_hybrid` raises `UnsupportedOperation` with the reason,
  as on Elasticsearch, and `HybridSearcher` fuses client-side.
* A server that is not OpenSearch (Elasticsearch) is refused with a clear error.
* `scan()` sorts a point in time (2.4+) on `_id` (unique per document, so `search_after` skips none; 2.x has
  no `_shard_doc`), or scrolls on older servers or where `_id` fielddata is disabled.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from spladebridge.connectors.base import (
    Capabilities,
    ConnectorError,
    Hit,
    HybridRequest,
    IndexSpec,
    ServerFusion,
    Signal,
    UnsupportedOperation,
)
from spladebridge.connectors.bulk import StreamingBulk
from spladebridge.connectors.filters import FilterLike
from spladebridge.connectors.http_settings import OS_ENV_PREFIX, HttpSettings
from spladebridge.connectors.lucene import knn_score_to_similarity
from spladebridge.connectors.lucene_client import NO_TRANSPORT_RETRIES, OpenSearchClient
from spladebridge.connectors.lucene_connector import (
    LuceneConnector,
    PreparedSearch,
    SparseQuery,
    check_k,
    filtered,
)
from spladebridge.connectors.lucene_documents import Layout
from spladebridge.connectors.lucene_queries import FeatureNamer
from spladebridge.connectors.opensearch_bodies import (
    MAX_KNN_K,
    SEISMIC_MAX_TOKEN_ID,
    DocumentError,
    KnnParams,
    OpenSearchOptions,
    SeismicIndexParams,
    SeismicQueryParams,
    knn_clause,
    seismic_problem,
    sparse_clause,
    suggest_sparse_scale,
)
from spladebridge.connectors.opensearch_pipelines import (
    MAX_SUB_QUERIES,
    FusionPlan,
    PipelineError,
    SearchPipeline,
    fusion_problem,
    plan_fusion,
)
from spladebridge.connectors.versions import parse_version
from spladebridge.encoder.sparse_vector import SparseVector

__all__ = [
    "MAX_KNN_K",
    "SEISMIC_MAX_TOKEN_ID",
    "DocumentError",
    "KnnParams",
    "OpenSearchConnector",
    "OpenSearchOptions",
    "SeismicIndexParams",
    "SeismicQueryParams",
    "knn_clause",
    "knn_score_to_similarity",
    "sparse_clause",
    "suggest_sparse_scale",
]

log = logging.getLogger(__name__)

_OS_META_KEY = "opensearch"  # OpenSearch-only facts kept next to the shared spec in `_meta`
_NEURAL_PLUGIN = "opensearch-neural-search"
_KNN_PLUGIN = "opensearch-knn"
# A plugin loaded from the classpath (embedded nodes, test runners) is listed by its class name instead.
_PLUGIN_CLASSES = {
    _NEURAL_PLUGIN: "org.opensearch.neuralsearch.plugin.NeuralSearch",
    _KNN_PLUGIN: "org.opensearch.knn.plugin.KNNPlugin",
}


@dataclass(frozen=True, slots=True)
class _ServerInfo:
    version: tuple[int, int, int]
    version_text: str
    plugins: frozenset[str] | None  # None when the plugin list could not be read

    def has(self, plugin: str) -> bool:
        return self.plugins is None or plugin in self.plugins or _PLUGIN_CLASSES.get(plugin) in self.plugins


class OpenSearchConnector(LuceneConnector):
    """One OpenSearch index.

    Connection: `url` plus credentials (an argument wins over `SPLADEBRIDGE_OS_*` environment variables;
    TLS certificates are verified unless `verify_certs=False`), or ready `settings`, or an already built
    `client` (an `opensearchpy.OpenSearch`). Index: `spec` (created on first use if absent), or `index` alone
    to open an existing one (its spec is kept in the mapping `_meta`).
    """

    engine: ClassVar[str] = "opensearch"
    sparse_types: ClassVar[tuple[str, ...]] = ("rank_features", "sparse_vector")
    scan_sort: ClassVar[str] = "_id"

    def __init__(
        self,
        url: str | Sequence[str] | None = None,
        *,
        client: Any = None,
        index: str | None = None,
        spec: IndexSpec | None = None,
        api_key: str | tuple[str, str] | None = None,
        username: str | None = None,
        password: str | None = None,
        ca_certs: str | None = None,
        verify_certs: bool | None = None,
        settings: HttpSettings | None = None,
        env_prefix: str = OS_ENV_PREFIX,
        options: OpenSearchOptions | None = None,
        streaming_bulk: StreamingBulk | None = None,
    ) -> None:
        self.options = options or OpenSearchOptions()
        cluster = OpenSearchClient.open(
            client,
            _build_client,
            url=url,
            api_key=api_key,
            username=username,
            password=password,
            ca_certs=ca_certs,
            verify_certs=verify_certs,
            settings=settings,
            env_prefix=env_prefix,
        )
        self.settings = cluster.settings
        if streaming_bulk is not None:
            cluster.streaming_bulk = lambda: streaming_bulk  # type: ignore[method-assign]
        namer = FeatureNamer(None if self.options.sparse_type == "sparse_vector" else self.options.vocab)
        super().__init__(
            cluster,
            index=index,
            spec=spec,
            namer=namer,
            bulk=self.options.bulk,
            owns_client=client is None,
            scan_keep_alive=self.options.scan_keep_alive,
            max_query_terms=self.options.max_query_terms,
        )
        self.cluster: OpenSearchClient = cluster
        self.num_candidates_factor = self.options.num_candidates_factor
        self.min_num_candidates = self.options.min_num_candidates
        self._info: _ServerInfo | None = None
        self._pipelines: set[str] = set()
        self._shards: dict[str, int] = {}
        self._lock = threading.Lock()

    # -- server facts ------------------------------------------------------------------------------------

    def server_info(self) -> _ServerInfo:
        """Version and installed plugins, read once. ConnectorError when the server is not OpenSearch."""
        if self._info is None:
            self._check_open()
            self._info = self._read_server_info()
        return self._info

    def _read_server_info(self) -> _ServerInfo:
        try:
            info = self.cluster.call("read the server version", self.client.info)
        except ConnectorError as exc:
            if exc.status == 405:  # e.g. a minimal Elasticsearch distribution, which has no GET /
                raise ConnectorError(
                    f"{self.cluster.where} is not OpenSearch: it answered HTTP 405 to GET / "
                    f"({exc.detail}), which every OpenSearch node serves; Elasticsearch "
                    "nodes without a GET / handler answer this way. Use ElasticsearchConnector, or "
                    "spladebridge.connect(url) / --engine elasticsearch",
                    status=405,
                ) from None
            raise
        version = info.get("version") if isinstance(info, Mapping) else None
        version = version if isinstance(version, Mapping) else {}
        distribution = version.get("distribution")
        if distribution != "opensearch":  # every OpenSearch release says so; Elasticsearch has no such field
            number = version.get("number")
            tagline = info.get("tagline") if isinstance(info, Mapping) else None
            if distribution is None and (number is not None or tagline == "You Know, for Search"):
                what = (
                    f"answers as Elasticsearch {number}" if number is not None else "answers as Elasticsearch"
                )
            else:
                what = f"answers version.distribution {distribution!r}"
            raise ConnectorError(
                f"{self.cluster.where} is not OpenSearch: its GET / {what} (OpenSearch says "
                "version.distribution 'opensearch'); use ElasticsearchConnector, or "
                "spladebridge.connect(url) / --engine elasticsearch"
            )
        text = str(version.get("number", "0.0"))
        plugins: frozenset[str] | None
        try:
            rows = self.client.cat.plugins(params={"format": "json"})
            plugins = frozenset(str(r.get("component")) for r in rows if isinstance(r, Mapping))
        except Exception as exc:  # permissions or an old server: assume present, say so
            log.warning("could not list OpenSearch plugins (%s); assuming neural-search and k-NN exist", exc)
            plugins = None
        try:
            parsed = parse_version(text)
        except ValueError:
            parsed = (0, 0, 0)
        return _ServerInfo(parsed, text, plugins)

    def _neural_query_tokens(self) -> bool:
        info = self.server_info()
        return info.has(_NEURAL_PLUGIN) and info.version >= (2, 14)

    def server_fusion_problem(self, fusion: ServerFusion, sub_queries: int = 2) -> str | None:
        """Why this server cannot run `fusion` with exactly the hybrid module's semantics, or None."""
        info = self.server_info()
        if not info.has(_NEURAL_PLUGIN):
            return "the neural-search plugin is not installed, so there is no hybrid query"
        if not 1 <= sub_queries <= MAX_SUB_QUERIES:
            return f"a hybrid query takes 1 to {MAX_SUB_QUERIES} sub-queries, got {sub_queries}"
        problem = fusion_problem(fusion)
        if problem is not None:
            return problem
        try:
            plan = plan_fusion(fusion, sub_queries)
        except PipelineError as exc:
            return str(exc)
        if info.version < plan.pipeline.min_version:
            need = ".".join(map(str, plan.pipeline.min_version))
            return f"this fusion needs OpenSearch {need}+ (server is {info.version_text})"
        if fusion.method == "rrf" and info.version < (3, 5):
            shards = self.index_shards()
            if shards > 1:
                return (
                    f"before 3.5, OpenSearch's RRF ranks documents per shard and the index has {shards} "
                    "shards; use one shard or fuse client-side"
                )
        return self.dense_scale_problem(fusion)

    def index_shards(self) -> int:
        """The index's primary shard count: `number_of_shards` from its settings when it exists (read once),
        else `options.shards`, which it will be created with."""
        name = self.named_index()
        if name is None:
            return self.options.shards
        cached = self._shards.get(name)
        if cached is not None:
            return cached
        if not self.cluster.exists(name):
            return self.options.shards
        try:
            shards = int(self.cluster.index_settings(name)["number_of_shards"])
        except (KeyError, TypeError, ValueError):
            raise ConnectorError(f"index {name!r}: its settings carry no readable number_of_shards") from None
        self._shards[name] = shards
        return shards

    def capabilities(self) -> Capabilities:
        info = self.server_info()
        neural = info.has(_NEURAL_PLUGIN)
        server_fusion: set[str] = set()
        if neural and info.version >= (2, 10):
            server_fusion.add("linear")
        if neural and info.version >= (2, 19):
            server_fusion.add("rrf")
        field_types = ["rank_features"]
        if neural and info.version >= (3, 3):
            field_types.append("sparse_vector")
        notes = [
            "linear fusion runs server-side only as normalizer minmax or l2 with missing='zero' "
            "(OpenSearch's arithmetic_mean counts a sub-query that did not return a document as 0 with "
            "its full weight; scores are scaled back by the weights' sum); other settings fuse client-side",
            "rrf: score = sum w_i / (rank_constant + rank_i), 1-based ranks, as hybrid.fusion.rrf; "
            "weights need 3.1+",
            "min_max gives the lowest score of a sub-query 0.001 instead of 0",
            f"sparse queries keep their {self.options.max_query_terms} largest weights (one clause each)",
        ]
        if not neural:
            notes.append("neural-search plugin missing: sparse search uses rank_feature linear clauses")
        return Capabilities(
            engine="opensearch",
            version=info.version_text,
            sparse=True,
            dense=info.has(_KNN_PLUGIN),
            lexical=True,
            sparse_field_types=tuple(field_types),
            server_fusion=frozenset(server_fusion),
            # normalization-processor takes weights since 2.10; weighted RRF (3.1+) is checked per fusion
            # by server_fusion_problem through the pipeline's min_version
            weighted_fusion=neural,
            max_query_terms=self.options.max_query_terms,
            notes=tuple(notes),
        )

    # -- index ----------------------------------------------------------------------------------------

    def prepare(self, spec: IndexSpec) -> None:
        info = self.server_info()
        if self.options.sparse_type == "sparse_vector" and (
            info.version < (3, 3) or not info.has(_NEURAL_PLUGIN)
        ):
            raise UnsupportedOperation(
                "sparse_vector (SEISMIC) needs OpenSearch 3.3+ with neural-search "
                f"(server is {info.version_text})"
            )
        if spec.dense_field is not None and not info.has(_KNN_PLUGIN):
            raise UnsupportedOperation("a dense field needs the k-NN plugin, which this server lacks")
        self._shards.pop(spec.name, None)

    def new_sparse_type(self) -> str:
        return self.options.sparse_type

    def field_mappings(self, spec: IndexSpec, sparse_type: str) -> dict[str, Any]:
        """`rank_features` (or the SEISMIC `sparse_vector`); `knn_vector` with the `KnnParams` method."""
        props: dict[str, Any] = {}
        if sparse_type == "sparse_vector":
            props[spec.sparse_field] = {"type": "sparse_vector", "method": self.options.seismic.to_method()}
        elif sparse_type == "rank_features":
            props[spec.sparse_field] = {"type": "rank_features"}
        else:
            raise ValueError(
                f"OpenSearch sparse fields are rank_features or sparse_vector, got {sparse_type!r}"
            )
        if spec.dense_field is not None:
            props[spec.dense_field] = {
                "type": "knn_vector",
                "dimension": spec.dense_dim,
                "method": self.options.knn.to_method(),
            }
        return props

    def shard_settings(self) -> dict[str, Any]:
        settings: dict[str, Any] = {"number_of_shards": self.options.shards}
        if self.options.replicas is not None:
            settings["number_of_replicas"] = self.options.replicas
        return settings

    def index_settings(self, spec: IndexSpec) -> dict[str, Any]:
        settings: dict[str, Any] = {}
        if self.options.sparse_type == "sparse_vector":
            settings["sparse"] = True
        if spec.dense_field is not None:
            settings["knn"] = True
        return settings

    def engine_meta(self) -> dict[str, Any]:
        return {_OS_META_KEY: {"sparse_scale": self.options.sparse_scale}}

    def check_stored(self, spec: IndexSpec, stored: Mapping[str, Any], props: Mapping[str, Any]) -> list[str]:
        problems: list[str] = []
        if "sb_id" in props and "metadata" in props and "sb_meta" not in props:
            problems.append(
                "it was written by spladebridge before OpenSearch shared the Lucene document layout (`sb_id` "
                "and `metadata.*` instead of top-level metadata and `sb_meta`); re-index it (spladebridge "
                "index, or migrate --mode copy) to search it with this version"
            )
        stored_scale = (stored.get(_OS_META_KEY) or {}).get("sparse_scale")
        if stored_scale is not None and float(stored_scale) != self.options.sparse_scale:
            problems.append(
                f"it was written with sparse_scale={stored_scale}, this connector uses "
                f"{self.options.sparse_scale}; use the same scale or documents would not be comparable"
            )
        found = (props.get(spec.sparse_field) or {}).get("type")
        if found in self.sparse_types and found != self.options.sparse_type:
            problems.append(
                f"field {spec.sparse_field!r} is {found!r}, this connector uses {self.options.sparse_type!r} "
                "(OpenSearchOptions.sparse_type)"
            )
        if spec.dense_field is not None:
            dense = props.get(spec.dense_field) or {}
            if dense.get("type") != "knn_vector" or int(dense.get("dimension", -1)) != spec.dense_dim:
                problems.append(
                    f"field {spec.dense_field!r} is {dense.get('type') or 'missing'} with dimension "
                    f"{dense.get('dimension')}, wanted knn_vector of dimension {spec.dense_dim}"
                )
        return problems

    def similarity_of(self, dense_mapping: Mapping[str, Any]) -> str:
        method = dense_mapping.get("method") or {}
        return str(method.get("space_type") or dense_mapping.get("space_type") or "l2")  # the k-NN default

    def layout_for(self, spec: IndexSpec, stamp: bool) -> Layout:
        options = self.options

        def check_sparse(vector: SparseVector) -> str | None:
            return seismic_problem(vector, options) if options.sparse_type == "sparse_vector" else None

        def check_dense(vector: NDArray[np.float32]) -> str | None:
            if options.knn.space_type == "cosinesimil" and not np.any(vector):
                return "an all-zero dense vector has no cosine similarity (space_type cosinesimil)"
            return None

        return Layout(
            spec,
            self.namer,
            stamp=stamp,
            sparse_scale=options.sparse_scale,
            check_sparse=check_sparse,
            check_dense=check_dense,
        )

    # -- reads ----------------------------------------------------------------------------------------

    def scan_hits(
        self, index: str, batch_size: int, *, versions_only: bool = False
    ) -> Iterator[dict[str, Any]]:
        """A point in time sorted on `_id` (2.4+); a scroll on older servers or without `_id` fielddata."""
        if self.server_info().version < (2, 4):
            return self.scan_scroll(index, batch_size, versions_only=versions_only)
        return super().scan_hits(index, batch_size, versions_only=versions_only)

    def scroll_instead(self, exc: ConnectorError) -> bool:
        """`indices.id_field_data.enabled: false`: no sort on `_id`; a scroll skips nothing either."""
        return "fielddata" in str(exc).lower()

    def scan_scroll(
        self, index: str, batch_size: int, *, versions_only: bool = False
    ) -> Iterator[dict[str, Any]]:
        from opensearchpy.helpers import scan as scroll_scan

        query: dict[str, Any] = {"query": {"match_all": {}}}
        if versions_only:
            query.update(_source=False, seq_no_primary_term=True)
        hits = scroll_scan(self.client, index=index, query=query, size=batch_size)
        while (hit := self.cluster.call("scan the index", lambda: next(hits, None), index)) is not None:
            yield hit

    # -- search ---------------------------------------------------------------------------------------

    def sparse_query(self, vector: SparseVector, k: int, filters: list[dict[str, Any]]) -> SparseQuery:
        """`neural_sparse` (rank_feature linear clauses without the plugin; SEISMIC on `sparse_vector`)."""
        spec = self._require_spec()
        neural = self._neural_query_tokens()
        if not neural and self.options.sparse_type == "rank_features":
            self.log_once(
                "neural_sparse with query_tokens needs OpenSearch 2.14+ and the neural-search plugin; "
                "using rank_feature linear clauses (the same dot product)",
                logging.WARNING,
            )
        return sparse_clause(vector, spec, self.options, self.namer, k=k, filters=filters, neural=neural)

    def dense_search_body(
        self, vector: NDArray[np.float32], k: int, filter: FilterLike = None
    ) -> dict[str, Any]:
        spec = self._require_spec()
        check_k(k)
        clause = knn_clause(vector, spec, k=self.num_candidates(k), filters=self.filters(filter, spec))
        return self.search_body(k, clause, spec)

    # -- hybrid ---------------------------------------------------------------------------------------

    def hybrid_queries(self, request: HybridRequest) -> tuple[list[Signal], list[dict[str, Any]]]:
        """The sub-queries of `request`'s hybrid query, in `SIGNALS` order (empty sparse queries left out)."""
        spec = self._require_spec()
        filters = self.filters(request.filter, spec)
        signals: list[Signal] = []
        queries: list[dict[str, Any]] = []
        depth = request.candidates
        for signal in request.signals():
            if signal == "sparse" and request.sparse is not None:
                clause = self.sparse_query(request.sparse, depth, filters)
                if clause.query is None:
                    continue
                queries.append(clause.query)
            elif signal == "dense" and request.dense is not None:
                queries.append(knn_clause(request.dense, spec, k=self.num_candidates(depth), filters=filters))
            elif signal == "bm25" and request.text is not None:
                queries.append(filtered(self.text_query(request.text, spec), filters))
            signals.append(signal)
        return signals, queries

    def ensure_pipeline(self, pipeline: SearchPipeline) -> str:
        """Create (or overwrite, same content) the search pipeline; returns its name."""
        name = pipeline.name
        with self._lock:
            if name not in self._pipelines:
                self.cluster.call(
                    "create the search pipeline",
                    lambda: self.client.search_pipeline.put(id=name, body=pipeline.body),
                )
                self._pipelines.add(name)
        return name

    def prepare_hybrid(self, request: HybridRequest, spec: IndexSpec) -> PreparedSearch | None:
        all_signals = request.signals()
        signals, queries = self.hybrid_queries(request)
        if not queries:
            return None
        fusion = request.fusion
        if len(signals) != len(all_signals) and fusion.weights is not None:
            kept = [fusion.weights[all_signals.index(s)] for s in signals]
            fusion = dataclasses.replace(fusion, weights=tuple(kept), signals=tuple(signals))
        plan: FusionPlan = plan_fusion(fusion, len(queries))
        body = self._hybrid_body(request.candidates, queries, spec)
        return PreparedSearch(
            body,
            request.k,
            "run a hybrid search",
            1.0 / plan.score_scale,
            {"search_pipeline": plan.pipeline.name},
            setup=plan.pipeline,
        )

    def needs_setup(self, prepared: PreparedSearch) -> bool:
        """Whether the search pipeline of `prepared` is not yet known to exist."""
        setup = prepared.setup
        return isinstance(setup, SearchPipeline) and setup.name not in self._pipelines

    def run_setup(self, setup: object) -> None:
        """Create the search pipeline a hybrid search names (once per connector)."""
        if isinstance(setup, SearchPipeline):
            self.ensure_pipeline(setup)

    def _hybrid_body(self, size: int, queries: list[dict[str, Any]], spec: IndexSpec) -> dict[str, Any]:
        body = self.search_body(size, {"hybrid": {"queries": queries}}, spec)
        body.pop("track_total_hits")  # the hybrid query counts its own totals
        return body

    def hybrid_search_with(self, request: HybridRequest, pipeline: SearchPipeline) -> list[Hit]:
        """The hybrid query fused by an OpenSearch-native pipeline of your choice (z_score, geometric...)."""
        spec = self._require_spec()
        _, queries = self.hybrid_queries(request)
        if not queries:
            return []
        name = self.ensure_pipeline(pipeline)
        body = self._hybrid_body(request.candidates, queries, spec)
        return self.run_search(body, request.k, what="run a hybrid search", search_pipeline=name)


def _build_client(settings: HttpSettings) -> Any:
    """An OpenSearch client for `settings`, with no transport retries (the `RetryPolicy` is the only one)."""
    from opensearchpy import OpenSearch

    return OpenSearch(**settings.to_client_kwargs("opensearch"), **NO_TRANSPORT_RETRIES)
