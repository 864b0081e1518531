"""Elasticsearch connector (8.x and 9.x) on the official `elasticsearch` client: the Elasticsearch dialect of
`lucene_connector.LuceneConnector`, which holds everything the two Lucene engines share.

What is Elasticsearch's own:

* Sparse: a `sparse_vector` field (8.15+, with `index_options.prune: false` where pruning became the default)
  queried with the `sparse_vector` query (`prune: false`), or a `rank_features` field (older clusters, a node
  without the query, or by choice) queried with `should` clauses of `rank_feature` + `linear` + `boost`. Both
  score the exact dot product of the query weights with the stored weights, which Lucene keeps to 9
  significant bits (truncated; relative error < 2^-8: `connectors.lucene.lucene_dot` models it).
* Dense: `dense_vector` (float HNSW unless asked otherwise) + top-level `knn`.
* BM25: `combined_fields` (BM25F) when the text fields share one analyzer.
* Hybrid: `rrf` / `linear` retrievers where version, modules and licence allow (`capabilities()` says which).
* Versions: talks to servers of an older major than the client with `compatible-with=<server major>`
  (`CompatTransport`); reads the version from `GET /_nodes/_local` where a trimmed distribution has no `GET /`.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar, Literal

import numpy as np
from numpy.typing import NDArray

from spladebridge.connectors.base import (
    Capabilities,
    ConnectorError,
    HybridRequest,
    IndexSpec,
    ServerFusion,
    Signal,
    UnsupportedOperation,
)
from spladebridge.connectors.bulk import BulkConfig
from spladebridge.connectors.documents import DocumentError, dense_values
from spladebridge.connectors.es_bodies import (
    ANALYSIS_COMMON,
    DEFAULT_DENSE_INDEX_OPTIONS,
    MAPPER_EXTRAS,
    RANK_RRF,
    EsNode,
    EsVersion,
    SparseFieldType,
    dense_mapping,
    knn_section,
    linear_retriever,
    rrf_retriever,
    signal_retriever,
    sparse_mapping,
    sparse_vector_query,
)
from spladebridge.connectors.filters import FilterLike
from spladebridge.connectors.http_settings import ES_ENV_PREFIX, HttpSettings
from spladebridge.connectors.lucene import DEFAULT_MAX_CLAUSES, clean_query_vector
from spladebridge.connectors.lucene_client import (
    INFO_FALLBACK_STATUSES,
    NO_TRANSPORT_RETRIES,
    ElasticsearchClient,
)
from spladebridge.connectors.lucene_connector import (
    DEFAULT_MIN_NUM_CANDIDATES,
    DEFAULT_NUM_CANDIDATES_FACTOR,
    MAX_RESULT_WINDOW,
    LuceneConnector,
    PreparedSearch,
    SparseQuery,
    check_k,
    filtered,
)
from spladebridge.connectors.lucene_queries import FeatureNamer, rank_features_query
from spladebridge.encoder.sparse_vector import SparseVector

try:
    from elastic_transport import ConnectionError as _TransportConnectionError
    from elastic_transport import ConnectionTimeout as _TransportTimeout
    from elastic_transport import HttpHeaders, Transport, TransportApiResponse
    from elasticsearch import Elasticsearch
    from elasticsearch import __version__ as _es_version
except ImportError as _exc:  # pragma: no cover - exercised only without the optional dependency
    raise ImportError(
        "the Elasticsearch connector needs the elasticsearch client: "
        "pip install 'spladebridge[elasticsearch]'"
    ) from _exc

__all__ = [
    "RETRYABLE_EXCEPTIONS",
    "CompatHeaders",
    "CompatTransport",
    "DocumentError",
    "ElasticsearchConnector",
]

log = logging.getLogger(__name__)

#: Connection failures that bulk writes retry (the transport already retried the request itself).
RETRYABLE_EXCEPTIONS: tuple[type[BaseException], ...] = (_TransportConnectionError, _TransportTimeout)
_LICENSED_TIERS = frozenset({"enterprise", "trial"})
_NORMALIZERS = {"none": "none", "minmax": "minmax", "l2": "l2_norm"}
_UNREAD = object()
try:
    from elasticsearch.serializer import OrjsonSerializer as _OrjsonSerializer
except ImportError:  # orjson is optional
    _OrjsonSerializer = None  # type: ignore[assignment,misc]
_CLIENT_VERSION = ".".join(str(p) for p in _es_version)
_CLIENT_MAJOR = int(_es_version[0])
_NODE_FILTER = [
    "nodes.*.version",
    "nodes.*.build_flavor",
    "nodes.*.modules.name",
    "nodes.*.plugins.name",
]
_COMPAT_MIMETYPE = re.compile(r"application/vnd\.elasticsearch\+([\w.-]+);\s*compatible-with=\d+")
_MEDIA_HEADERS = ("accept", "content-type")


class CompatHeaders:
    """Rewrites the `compatible-with` version of elasticsearch-py's media types (mixed into its sync and
    async transports).

    elasticsearch-py sends `application/vnd.elasticsearch+json; compatible-with=<client major>` on every
    request, and per-request headers override client-level ones, so the version can only be changed below
    the client. `compat_major` pins it (a 9.x client talks to an 8.x server with `compatible-with=8`,
    which 8.x and 9.x servers both accept); `plain` sends the plain media types (`application/json`, which
    every version accepts) while the server version is not yet known. The connector sets both.
    """

    compat_major: int | None = None
    plain: bool = False

    def rewrite_headers(self, headers: Any) -> Any:
        """`headers` with the media types rewritten (as given when nothing is to change)."""
        if headers is None or not (self.plain or self.compat_major is not None):
            return headers
        out = HttpHeaders(headers)
        for name in _MEDIA_HEADERS:
            value = out.get(name)
            if not isinstance(value, str):
                continue
            if self.plain:
                out[name] = _COMPAT_MIMETYPE.sub(r"application/\1", value)
            else:
                sub = rf"application/vnd.elasticsearch+\1; compatible-with={self.compat_major}"
                out[name] = _COMPAT_MIMETYPE.sub(sub, value)
        return out


class CompatTransport(CompatHeaders, Transport):
    """elasticsearch-py's transport with `CompatHeaders`; built with
    `Elasticsearch(..., transport_class=CompatTransport)`."""

    def perform_request(  # type: ignore[override]
        self, method: str, target: str, *, headers: Any = None, **kwargs: Any
    ) -> TransportApiResponse:
        headers = self.rewrite_headers(headers)
        if headers is None:
            return super().perform_request(method, target, **kwargs)
        return super().perform_request(method, target, headers=headers, **kwargs)


class ElasticsearchConnector(LuceneConnector):
    """One Elasticsearch index. Build from settings (`url`, `api_key`, ... or the `SPLADEBRIDGE_ES_*`
    environment) or pass a ready `client` (which the caller then closes).

    `index` names an index that already exists (its spec is read from the mapping's `_meta`); `spec` is
    ensured (created or checked) on first use; or call `ensure_index(spec)` yourself.
    `vocab` (id -> token) switches feature names from ids to token strings.
    `sparse_type` picks the sparse field type for new indices ("auto": `sparse_vector` where its query runs).
    `max_query_terms` caps query tokens (the clause budget, filters included); `max_query_weight` rescales
    a query whose largest weight exceeds it (None: Elasticsearch applies `boost` outside Lucene's (0, 64]).
    kNN asks each shard for `max(k * num_candidates_factor, min_num_candidates)` candidates (<= 10,000);
    with the float HNSW mapping that new indices get (`es_bodies.DEFAULT_DENSE_INDEX_OPTIONS`; set
    `options={"dense_index_options": ...}` for int8 / bbq quantisation) that keeps recall@10 >= 0.99.
    """

    engine: ClassVar[str] = "elasticsearch"
    sparse_types: ClassVar[tuple[str, ...]] = ("sparse_vector", "rank_features")
    scan_sort: ClassVar[str] = "_shard_doc"  # the cheapest total order of a point in time

    def __init__(
        self,
        url: str | Sequence[str] | None = None,
        *,
        client: Elasticsearch | ElasticsearchClient | None = None,
        index: str | None = None,
        spec: IndexSpec | None = None,
        api_key: str | tuple[str, str] | None = None,
        username: str | None = None,
        password: str | None = None,
        ca_certs: str | None = None,
        verify_certs: bool | None = None,
        settings: HttpSettings | None = None,
        env_prefix: str = ES_ENV_PREFIX,
        vocab: Sequence[str] | None = None,
        sparse_type: Literal["auto", "sparse_vector", "rank_features"] = "auto",
        max_query_terms: int = DEFAULT_MAX_CLAUSES,
        max_query_weight: float | None = None,
        num_candidates_factor: float = DEFAULT_NUM_CANDIDATES_FACTOR,
        min_num_candidates: int = DEFAULT_MIN_NUM_CANDIDATES,
        bulk: BulkConfig | None = None,
        refresh: bool | Literal["wait_for"] = False,
        scan_keep_alive: str = "2m",
    ) -> None:
        if sparse_type not in ("auto", "sparse_vector", "rank_features"):
            raise ValueError(f"sparse_type must be auto, sparse_vector or rank_features, got {sparse_type!r}")
        if max_query_weight is not None and not (math.isfinite(max_query_weight) and max_query_weight > 0):
            raise ValueError(f"max_query_weight must be positive and finite, got {max_query_weight!r}")
        if not num_candidates_factor >= 1:
            raise ValueError(f"num_candidates_factor must be >= 1, got {num_candidates_factor}")
        if not 1 <= min_num_candidates <= MAX_RESULT_WINDOW:
            raise ValueError(
                f"min_num_candidates must be in 1..{MAX_RESULT_WINDOW}, got {min_num_candidates}"
            )
        cluster = ElasticsearchClient.open(
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
        bulk_config = bulk or BulkConfig()
        if refresh:
            kwargs = {**bulk_config.request_kwargs, "refresh": refresh}
            bulk_config = dataclasses.replace(bulk_config, request_kwargs=kwargs)
        super().__init__(
            cluster,
            index=index,
            spec=spec,
            namer=FeatureNamer(vocab),
            bulk=bulk_config,
            owns_client=client is None,
            scan_keep_alive=scan_keep_alive,
            max_query_terms=max_query_terms,
        )
        self.cluster: ElasticsearchClient = cluster
        self.sparse_type_choice = sparse_type
        self.max_query_weight = max_query_weight
        self.num_candidates_factor = num_candidates_factor
        self.min_num_candidates = min_num_candidates
        self._node: EsNode | None = None
        self._license: object = _UNREAD

    # -- cluster facts ----------------------------------------------------------------------------------

    @property
    def version(self) -> EsVersion:
        """The server version (read once, see `node`)."""
        return self.node.version

    @property
    def node(self) -> EsNode:
        """The connected node's version and modules, read once: `GET /`, else (where that is not served,
        e.g. a trimmed distribution answers 405) `GET /_nodes/_local`, which also lists the modules and
        plugins. Requests go out with plain media types until the major version is known; then, when it
        is older than the client's, with `compatible-with=<server major>` (see `CompatTransport`)."""
        if self._node is None:
            self._check_open()
            transport = self.client.transport if isinstance(self.client.transport, CompatHeaders) else None
            if transport is not None:
                transport.plain = True
            try:
                node = self._read_node()
            finally:
                if transport is not None:
                    transport.plain = False
            if transport is not None and not node.version.serverless and node.version.major < _CLIENT_MAJOR:
                transport.compat_major = node.version.major
                log.debug(
                    "elasticsearch: server %s is older than elasticsearch-py %s; sending compatible-with=%d",
                    node.version,
                    _CLIENT_VERSION,
                    node.version.major,
                )
            self.cluster.exclude_source_vectors = node.version.exclude_source_vectors
            self._node = node
        return self._node

    def _read_node(self) -> EsNode:
        info_error: str | None = None
        try:
            info = self.cluster.call("read the cluster version", self.client.info)
        except ConnectorError as exc:
            if exc.status not in INFO_FALLBACK_STATUSES:
                raise  # unreachable, bad credentials, refused headers: _nodes would fail the same way
            info_error = exc.detail
        else:
            try:
                version = EsVersion.from_info(info.body)
            except ValueError as exc:
                raise ConnectorError(str(exc)) from None
            if version.serverless:
                return EsNode(version)
        try:
            body = self.cluster.call(
                "list the node's modules",
                lambda: self.client.nodes.info(node_id="_local", filter_path=_NODE_FILTER),
            ).body
            node = EsNode.from_nodes_info(body)
        except (ConnectorError, ValueError) as exc:
            if isinstance(exc, ConnectorError) and exc.status is None:
                raise
            if info_error is not None:
                raise ConnectorError(
                    f"elasticsearch: cannot read the server version: GET / answered {info_error}; "
                    f"GET /_nodes/_local answered {exc.detail if isinstance(exc, ConnectorError) else exc}"
                ) from None
            log.info(
                "elasticsearch: cannot list the node's modules (%s); assuming the default distribution", exc
            )
            return EsNode(version)
        if info_error is None:
            return EsNode(version, node.components)
        log.info("elasticsearch: GET / answered %s; read the version from GET /_nodes/_local", info_error)
        return node

    def license_type(self) -> str | None:
        """The active licence tier (`basic`, `trial`, `enterprise`, ...), None when it cannot be read.
        Read once per connector (`refresh_license()` reads it again, e.g. after starting a trial)."""
        if self._license is _UNREAD:
            self._license = self._read_license()
        return self._license if isinstance(self._license, str) else None

    def refresh_license(self) -> None:
        self._license = _UNREAD

    def _read_license(self) -> str | None:
        try:
            body = self.cluster.call("read the licence", self.client.license.get).body
        except ConnectorError as exc:
            log.info("elasticsearch: cannot read the licence (%s); assuming no licensed features", exc)
            return None
        lic = body.get("license") or {}
        if lic.get("status") not in (None, "active"):
            return None
        tier = lic.get("type")
        return str(tier) if tier else None

    def _fusion_support(self) -> tuple[frozenset[str], bool, list[str]]:
        """Server-side fusion methods this cluster offers, whether weighted, and why not where it lacks
        one (module, licence, version). The notes are logged once per connector."""
        node = self.node
        version = node.version
        notes: list[str] = []
        fusion: set[str] = set()
        if not node.retrievers:
            notes.append(node.lacks(RANK_RRF, "server-side rrf/linear (retrievers)"))
        else:
            tier = "serverless" if version.serverless else self.license_type()
            if version.serverless or tier in _LICENSED_TIERS:
                if version.rrf_retriever:
                    fusion.add("rrf")
                else:
                    notes.append(f"the rrf retriever needs Elasticsearch 8.16+; this cluster is {version}")
                if version.linear_retriever:
                    fusion.add("linear")
                else:
                    notes.append(
                        f"the linear retriever needs Elasticsearch 8.18 / 9.0+; this cluster is {version}"
                    )
            else:
                notes.append(
                    f"server-side rrf/linear need an enterprise or trial licence; this cluster has {tier!r}"
                )
        weighted = bool(fusion) and version.weighted_rrf
        if fusion and not weighted:
            notes.append("weighted rrf needs Elasticsearch 9.2+")
        for note in notes:
            self.log_once(f"{note}; the hybrid module fuses client-side instead")
        return frozenset(fusion), weighted, notes

    def capabilities(self) -> Capabilities:
        """What this cluster can do, from its version, modules and licence; `notes` say why a feature
        is missing (a module the node lacks, the licence, the version)."""
        node = self.node
        version = node.version
        fusion, weighted, notes = self._fusion_support()
        types = node.sparse_field_types()
        if not node.rank_features:
            notes.append(node.lacks(MAPPER_EXTRAS, "the rank_features field"))
        if not version.sparse_vector_query:
            notes.append(f"the sparse_vector query needs Elasticsearch 8.15+; this cluster is {version}")
        if not types:
            notes.append("no sparse field type can be searched on this node")
        if not node.has(ANALYSIS_COMMON):
            notes.append(node.lacks(ANALYSIS_COMMON, "the English analyzer of BM25 text fields"))
        spec = self.spec
        return Capabilities(
            engine="elasticsearch",
            version=str(version),
            sparse=bool(types),
            dense=spec is None or spec.dense_field is not None,
            lexical=spec is None or spec.lexical,
            sparse_field_types=types,
            server_fusion=fusion,
            weighted_fusion=weighted,
            max_query_terms=self.max_query_terms,
            notes=tuple(notes),
        )

    def server_fusion_problem(self, fusion: ServerFusion, sub_queries: int = 2) -> str | None:
        """Why this cluster cannot run `fusion` server-side exactly (None when it can): module, licence,
        version, weights, the normaliser and the missing-document rule."""
        methods, _, notes = self._fusion_support()
        if fusion.method not in methods:
            why = "; ".join(notes) or "Elasticsearch has no such retriever"
            return f"server-side {fusion.method} is not available: {why}"
        weighted = fusion.weights is not None and any(w != 1.0 for w in fusion.weights)
        if fusion.method == "rrf" and weighted and not self.version.weighted_rrf:
            return f"weighted rrf needs Elasticsearch 9.2+; this cluster is {self.version}"
        if fusion.missing != "zero":
            return "Elasticsearch retrievers count a document missing from a list as 0 (missing='zero')"
        if fusion.method == "linear":
            if fusion.normalizer not in _NORMALIZERS:
                return f"the linear retriever has no {fusion.normalizer!r} normaliser (none, minmax, l2)"
            if fusion.normalizer == "l2" and not self.version.l2_norm:
                return (
                    f"the l2_norm normaliser needs Elasticsearch 8.19 / 9.1+; this cluster is {self.version}"
                )
        if fusion.method == "rrf" and fusion.rank_constant < 1:
            return "Elasticsearch rrf needs rank_constant >= 1"
        return self.dense_scale_problem(fusion)

    # -- index ------------------------------------------------------------------------------------------

    def _require_spec(self) -> IndexSpec:
        self._check_open()
        self.prepare_reads()
        return super()._require_spec()

    def prepare_reads(self) -> None:
        self.node  # noqa: B018 - first learn the server's major (it sets the media types every request uses)

    def prepare(self, spec: IndexSpec) -> None:
        self.node  # noqa: B018 - the media types every request uses

    def new_sparse_type(self) -> SparseFieldType:
        node = self.node
        choice = self.sparse_type_choice
        if choice == "auto":
            types = node.sparse_field_types()
            if not types:
                raise UnsupportedOperation(
                    f"no sparse field type is usable on Elasticsearch {node.version}: the sparse_vector query "
                    f"needs 8.15+, and {node.lacks(MAPPER_EXTRAS, 'rank_features')}"
                )
            return types[0]
        self._check_sparse_type(choice)
        return choice

    def _check_sparse_type(self, sparse_type: str) -> None:
        """UnsupportedOperation when this node cannot map and query `sparse_type`."""
        node = self.node
        if sparse_type == "sparse_vector" and not node.sparse_vector_query:
            raise UnsupportedOperation(
                f"sparse_vector needs Elasticsearch 8.15+ (for its query); this cluster is {node.version}"
            )
        if sparse_type == "rank_features" and not node.rank_features:
            raise UnsupportedOperation(node.lacks(MAPPER_EXTRAS, "the rank_features field"))
        return None

    def field_mappings(self, spec: IndexSpec, sparse_type: str) -> dict[str, Any]:
        """`sparse_vector` (pruning off where the version has it) or `rank_features`; `dense_vector`.

        `spec.options`: `dense_similarity` (default cosine), `dense_index_options` (default float HNSW,
        `DEFAULT_DENSE_INDEX_OPTIONS`; None: the server's default, which quantises), `sparse_prune` (default
        False), `sparse_pruning_config`."""
        opts = spec.options
        if sparse_type not in ("sparse_vector", "rank_features"):
            raise ValueError(
                f"sparse field type must be 'sparse_vector' or 'rank_features', got {sparse_type!r}"
            )
        props: dict[str, Any] = {
            spec.sparse_field: sparse_mapping(
                sparse_type,  # type: ignore[arg-type]
                self.version,
                prune=bool(opts.get("sparse_prune", False)),
                pruning_config=opts.get("sparse_pruning_config"),
            )
        }
        if spec.dense_field is not None and spec.dense_dim is not None:
            props[spec.dense_field] = dense_mapping(
                spec.dense_dim,
                str(opts.get("dense_similarity", "cosine")),
                opts.get("dense_index_options", DEFAULT_DENSE_INDEX_OPTIONS),
            )
        return props

    def index_settings(self, spec: IndexSpec) -> dict[str, Any]:
        version = self.version
        if version.exclude_source_vectors and not version.serverless:
            return {"mapping": {"exclude_source_vectors": False}}  # keep vectors readable from _source
        return {}

    def settings_body(self, index_settings: Mapping[str, Any]) -> dict[str, Any]:
        """Elasticsearch's spec declares the index settings at the top of `settings`; nested groups go
        as dotted `index.` keys (`index.mapping.exclude_source_vectors`)."""
        body: dict[str, Any] = {}
        for key, value in index_settings.items():
            if isinstance(value, Mapping):
                for sub, inner in _dotted(value, f"index.{key}"):
                    body[sub] = inner
            else:
                body[key] = value
        return body

    def check_stored(self, spec: IndexSpec, stored: Mapping[str, Any], props: Mapping[str, Any]) -> list[str]:
        problems: list[str] = []
        if spec.dense_field is not None:
            dense = props.get(spec.dense_field) or {}
            if dense.get("type") != "dense_vector" or dense.get("dims") not in (None, spec.dense_dim):
                problems.append(
                    f"field {spec.dense_field!r} is {dense.get('type') or 'missing'} with dims "
                    f"{dense.get('dims')}, wanted dense_vector with dims {spec.dense_dim}"
                )
        sparse_type = (props.get(spec.sparse_field) or {}).get("type")
        if sparse_type in self.sparse_types:
            try:
                self._check_sparse_type(sparse_type)
            except UnsupportedOperation as exc:
                raise UnsupportedOperation(f"index {spec.name!r} has a {sparse_type} field: {exc}") from None
        return problems

    def bm25_combined(self) -> bool:
        return True

    def text_analyzer(self, spec: IndexSpec) -> str | None:
        """As for every Lucene engine; but the language analyzers live in the analysis-common module, which a
        trimmed node may lack: then the default falls back to the standard analyzer (and says so), and an
        analyzer asked for by name is refused."""
        analyzer = super().text_analyzer(spec)
        if analyzer is None or self.node.has(ANALYSIS_COMMON):
            return analyzer
        if "text_analyzer" in spec.options:
            raise UnsupportedOperation(self.node.lacks(ANALYSIS_COMMON, f"the {analyzer!r} analyzer"))
        self.log_once(
            self.node.lacks(ANALYSIS_COMMON, f"the {analyzer!r} analyzer")
            + "; text fields use the standard one"
        )
        return None

    def similarity_of(self, dense_mapping: Mapping[str, Any]) -> str:
        return str(dense_mapping.get("similarity") or "cosine")  # the default of indexed dense_vector fields

    # -- queries ----------------------------------------------------------------------------------------

    def sparse_query(self, vector: SparseVector, k: int, filters: list[dict[str, Any]]) -> SparseQuery:
        """`sparse_vector` (or `rank_feature` linear clauses), capped to the clause budget minus the filter
        clauses, weights rescaled under `max_query_weight` if set (scores are scaled back)."""
        spec = self._require_spec()
        budget = max(1, self.max_query_terms - len(filters))
        cleaned = clean_query_vector(vector, max_terms=budget, max_weight=self.max_query_weight)
        if not cleaned.vector:
            return SparseQuery(None, cleaned.scale, cleaned.truncated_terms)
        features = self.namer.to_features(cleaned.vector)
        if self.sparse_type == "rank_features":
            query = rank_features_query(spec.sparse_field, features)
        else:
            opts = spec.options
            query = sparse_vector_query(
                spec.sparse_field,
                features,
                prune=bool(opts.get("sparse_prune", False)),
                pruning_config=opts.get("sparse_pruning_config"),
            )
        return SparseQuery(filtered(query, filters), cleaned.scale, cleaned.truncated_terms, cleaned.vector)

    def _knn(self, vector: NDArray[np.float32], k: int, filters: list[dict[str, Any]]) -> dict[str, Any]:
        spec = self._require_spec()
        if spec.dense_field is None:
            raise UnsupportedOperation(f"index {spec.name!r} has no dense field")
        values = dense_values(vector, spec, "dense query")
        return knn_section(spec.dense_field, values, k, self.num_candidates(k), filters)

    def dense_search_body(
        self, vector: NDArray[np.float32], k: int, filter: FilterLike = None
    ) -> dict[str, Any]:
        spec = self._require_spec()
        check_k(k)
        return self._knn_body(k, self._knn(vector, k, self.filters(filter, spec)), spec)

    def hybrid_search_body(self, request: HybridRequest) -> dict[str, Any] | None:
        """The retriever body for `request`; UnsupportedOperation says why when the cluster cannot fuse it."""
        return self._hybrid_plan(request)[0]

    def _hybrid_plan(self, request: HybridRequest) -> tuple[dict[str, Any] | None, float]:
        """The body, and the factor a lone sparse query's scores are divided by. A sparse query rescaled
        under `max_query_weight` has its linear weight divided by that scale, so that every signal's score
        is the one `search_sparse` reports (the dot product) and `normalizer="none"` sums the same scores."""
        spec = self._require_spec()
        signals = self.check_hybrid(request)
        fusion = request.fusion
        weights = tuple(fusion.weights) if fusion.weights is not None else (1.0,) * len(signals)
        window = min(MAX_RESULT_WINDOW, max(request.candidates, request.k))
        filters = self.filters(request.filter, spec)
        subs: list[dict[str, Any]] = []
        kept: list[float] = []
        scales: list[float] = []
        for signal, weight in zip(signals, weights, strict=True):
            sub, scale = self._signal_section(signal, request, window, filters, spec)
            if sub is None or weight == 0:  # an empty query or a zero weight adds nothing to any score
                continue
            subs.append(signal_retriever(signal, sub))
            kept.append(float(weight))
            scales.append(scale)
        if not subs:
            return None, 1.0
        if len(subs) == 1:  # fusion of one list keeps its order: run it plainly
            single = subs[0]
            if "knn" in single:
                return self._knn_body(request.k, single["knn"], spec), 1.0
            return self.search_body(request.k, single["standard"]["query"], spec), scales[0]
        if fusion.method == "rrf":
            unweighted = all(w == 1.0 for w in kept)
            retriever = rrf_retriever(
                subs,
                rank_constant=int(fusion.rank_constant),
                rank_window_size=window,
                weights=None if unweighted else kept,
            )
        elif fusion.method == "linear":
            retriever = linear_retriever(
                subs,
                weights=[w / scale for w, scale in zip(kept, scales, strict=True)],
                normalizer=_NORMALIZERS[fusion.normalizer],
                rank_window_size=window,
            )
        else:
            raise UnsupportedOperation(f"Elasticsearch has no {fusion.method!r} fusion")
        return self.search_body(request.k, None, spec, retriever=retriever), 1.0

    def _signal_section(
        self,
        signal: Signal,
        request: HybridRequest,
        window: int,
        filters: list[dict[str, Any]],
        spec: IndexSpec,
    ) -> tuple[dict[str, Any] | None, float]:
        if signal == "sparse":
            assert request.sparse is not None
            sparse = self.sparse_query(request.sparse, window, filters)
            return sparse.query, sparse.scale
        if signal == "dense":
            assert request.dense is not None
            return self._knn(request.dense, window, filters), 1.0
        assert request.text is not None
        return filtered(self.text_query(request.text, spec), filters), 1.0

    def prepare_hybrid(self, request: HybridRequest, spec: IndexSpec) -> PreparedSearch | None:
        body, scale = self._hybrid_plan(request)
        return None if body is None else PreparedSearch(body, request.k, "run a hybrid search", scale)

    def _knn_body(self, size: int, knn: Mapping[str, Any], spec: IndexSpec) -> dict[str, Any]:
        """A `_search` body with a top-level `knn` section (Elasticsearch's kNN search)."""
        return self.search_body(size, None, spec, knn=dict(knn))

    # -- reads ------------------------------------------------------------------------------------------

    def scroll_instead(self, exc: ConnectorError) -> bool:
        """A cluster without the point-in-time API (400 / 405) is scanned with a scroll."""
        return exc.status in (400, 405)

    def scan_scroll(
        self, index: str, batch_size: int, *, versions_only: bool = False
    ) -> Iterator[dict[str, Any]]:
        body: dict[str, Any] = {"size": batch_size, "sort": ["_doc"]}
        if versions_only:
            body.update(_source=False, seq_no_primary_term=True)
        page = self.cluster.search(body, index, what="scan the index", scroll=self.scan_keep_alive)
        scroll_id = page.get("_scroll_id")
        try:
            while page["hits"]["hits"]:
                yield from page["hits"]["hits"]
                if not scroll_id:
                    raise ConnectorError("scroll response carried no _scroll_id")
                page = self._scroll_page(scroll_id)
                scroll_id = page.get("_scroll_id", scroll_id)
        finally:
            if scroll_id:
                try:
                    self.client.clear_scroll(scroll_id=scroll_id)
                except Exception as exc:
                    log.warning("elasticsearch: could not clear scroll: %s", exc)

    def _scroll_page(self, scroll_id: str) -> dict[str, Any]:
        page: dict[str, Any] = self.cluster.call(
            "scan the index", lambda: self.client.scroll(scroll_id=scroll_id, scroll=self.scan_keep_alive)
        ).body
        return page


def _dotted(group: Mapping[str, Any], prefix: str) -> Iterator[tuple[str, Any]]:
    for key, value in group.items():
        if isinstance(value, Mapping):
            yield from _dotted(value, f"{prefix}.{key}")
        else:
            yield f"{prefix}.{key}", value


def _build_client(settings: HttpSettings) -> Elasticsearch:
    """An Elasticsearch client for `settings`: orjson where installed (several times faster on vector-heavy
    bulk bodies), `CompatTransport` (speaks to servers of an older major), and no transport retries (the
    connector's `RetryPolicy` is the only one)."""
    kwargs = {**settings.to_client_kwargs("elasticsearch"), **NO_TRANSPORT_RETRIES}
    if _OrjsonSerializer is not None:
        kwargs["serializer"] = _OrjsonSerializer()
    kwargs["transport_class"] = CompatTransport
    return Elasticsearch(**kwargs)
