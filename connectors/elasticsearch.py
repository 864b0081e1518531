"""Elasticsearch connector (8.x and 9.x) on the official `elasticsearch` client.

* Sparse: a `sparse_vector` field (8.15+, with `index_options.prune: false` where pruning became the default)
  queried with the `sparse_vector` query (`prune: false`), or a `rank_features` field (older clusters, or by
  choice) queried with `should` clauses of `rank_feature` + `linear` + `boost`. Both score the exact dot
  product of the query weights with the stored weights, which Lucene keeps to 9 significant bits
  (truncated; relative error < 2^-8: `connectors.lucene.lucene_dot` models it).
* Feature names: token ids as decimal strings, or with `vocab` the encoded token strings (see
  `lucene_queries.FeatureNamer`); stored vectors decode back to ids.
* Dense: `dense_vector` + `knn`. Lexical: `match` / `multi_match` over the text fields (BM25).
* Hybrid: `rrf` / `linear` retrievers where version and licence allow (`capabilities()` says which, and logs
  why not); otherwise the hybrid module fuses client-side.
* Writes: `connectors.bulk.run_bulk` over `helpers.streaming_bulk` (explicit `_id`, per-item outcomes,
  429 / connection-error retries). Reads: `mget`, and `scan()` through a point in time + `search_after`
  (scroll where PIT is unavailable).
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Literal, TypeVar
from urllib.parse import quote

import numpy as np
from numpy.typing import NDArray

from spladebridge.connectors.base import (
    Capabilities,
    Connector,
    ConnectorError,
    DocId,
    Document,
    Hit,
    HybridRequest,
    IndexNotFound,
    IndexSpec,
    ItemOutcome,
    ServerFusion,
    Signal,
    UnsupportedOperation,
    WriteReport,
)
from spladebridge.connectors.bulk import BulkAction, BulkConfig, run_bulk
from spladebridge.connectors.es_bodies import (
    MAPPER_EXTRAS,
    META_FIELD,
    RANK_RRF,
    EsNode,
    EsVersion,
    SparseFieldType,
    bm25_query,
    check_index_name,
    filtered,
    index_body,
    knn_section,
    linear_retriever,
    pit_search_body,
    rrf_retriever,
    search_body,
    signal_retriever,
    sparse_vector_query,
)
from spladebridge.connectors.es_documents import (
    DocumentError,
    dense_values,
    document_from_source,
    document_source,
    es_id,
)
from spladebridge.connectors.filters import FilterLike
from spladebridge.connectors.http_settings import ES_ENV_PREFIX, HttpSettings
from spladebridge.connectors.index_meta import SPEC_META_KEY, spec_from_meta
from spladebridge.connectors.lucene import (
    DEFAULT_MAX_CLAUSES,
    clean_query_vector,
    truncate_9bit,
)
from spladebridge.connectors.lucene_queries import (
    FeatureNameError,
    FeatureNamer,
    filter_clauses,
    rank_features_query,
)
from spladebridge.encoder.sparse_vector import SparseVector

try:
    from elastic_transport import ConnectionError as _TransportConnectionError
    from elastic_transport import ConnectionTimeout as _TransportTimeout
    from elastic_transport import HttpHeaders, Transport, TransportApiResponse
    from elasticsearch import ApiError, BadRequestError, Elasticsearch, NotFoundError
    from elasticsearch import __version__ as _es_version
    from elasticsearch.helpers import streaming_bulk
except ImportError as _exc:  # pragma: no cover - exercised only without the optional dependency
    raise ImportError(
        "the Elasticsearch connector needs the elasticsearch client: "
        "pip install 'spladebridge[elasticsearch]'"
    ) from _exc

__all__ = ["RETRYABLE_EXCEPTIONS", "CompatTransport", "DocumentError", "ElasticsearchConnector"]

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Connection failures that bulk writes retry (the transport already retried the request itself).
RETRYABLE_EXCEPTIONS: tuple[type[BaseException], ...] = (_TransportConnectionError, _TransportTimeout)
_MAX_RESULT_WINDOW = 10_000
#: kNN candidates per shard: k * factor, at least the minimum. With `DEFAULT_DENSE_INDEX_OPTIONS` (float
#: HNSW m=32, ef_construction=200), 20,000 random 384-d unit vectors force-merged to one segment (the
#: hardest case: no structure, one graph) and 50 queries, 8.19 measured recall@10 0.872 at 200, 0.994
#: at 500 and 0.998 at 1,000 candidates (the old 2k = 20 with the server's int8_hnsw: 0.11-0.51).
DEFAULT_NUM_CANDIDATES_FACTOR = 50.0
DEFAULT_MIN_NUM_CANDIDATES = 500
_LICENSED_TIERS = frozenset({"enterprise", "trial"})
_NORMALIZERS = {"none": "none", "minmax": "minmax", "l2": "l2_norm"}
_UNREAD = object()
try:
    from elasticsearch.serializer import OrjsonSerializer as _OrjsonSerializer
except ImportError:  # orjson is optional
    _OrjsonSerializer = None  # type: ignore[assignment,misc]
_CLIENT_VERSION = ".".join(str(p) for p in _es_version)
_SEARCH_HAS_EXCLUDE_VECTORS = "source_exclude_vectors" in inspect.signature(Elasticsearch.search).parameters
_CLIENT_MAJOR = int(_es_version[0])
_NODE_FILTER = [
    "nodes.*.version",
    "nodes.*.build_flavor",
    "nodes.*.modules.name",
    "nodes.*.plugins.name",
]
_COMPAT_MIMETYPE = re.compile(r"application/vnd\.elasticsearch\+([\w.-]+);\s*compatible-with=\d+")
_MEDIA_HEADERS = ("accept", "content-type")
#: `GET /` answers that mean "not served here" (a trimmed distribution answers 405): ask `_nodes` instead.
_INFO_FALLBACK_STATUSES = frozenset({403, 404, 405, 410, 501})
#: BM25 field types: `semantic_text` is not one (a `match` on it runs inference, not BM25).
_BM25_TYPES = frozenset({"text", "match_only_text"})


class CompatTransport(Transport):
    """elasticsearch-py's transport, able to change the `compatible-with` version of the media types.

    elasticsearch-py sends `application/vnd.elasticsearch+json; compatible-with=<client major>` on every
    request, and per-request headers override client-level ones, so the version can only be changed below
    the client. `compat_major` pins it (a 9.x client talks to an 8.x server with `compatible-with=8`,
    which 8.x and 9.x servers both accept); `plain` sends the plain media types (`application/json`, which
    every version accepts) while the server version is not yet known. The connector sets both; built with
    `Elasticsearch(..., transport_class=CompatTransport)`.
    """

    compat_major: int | None = None
    plain: bool = False

    def perform_request(  # type: ignore[override]
        self, method: str, target: str, *, headers: Any = None, **kwargs: Any
    ) -> TransportApiResponse:
        if headers is not None and (self.plain or self.compat_major is not None):
            headers = self._rewrite(headers)
        if headers is None:
            return super().perform_request(method, target, **kwargs)
        return super().perform_request(method, target, headers=headers, **kwargs)

    def _rewrite(self, headers: Mapping[str, Any]) -> HttpHeaders:
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


class ElasticsearchConnector(Connector):
    """One Elasticsearch index. Build from settings (`url`, `api_key`, ... or the `SPLADEBRIDGE_ES_*`
    environment) or pass a ready `client` (which the caller then closes).

    `index` names an index that already exists (its spec is read from the mapping's `_meta`); `spec` is
    ensured (created or checked) on first use; or call `ensure_index(spec)` yourself.
    `vocab` (id -> token) switches feature names from ids to token strings.
    `sparse_type` picks the sparse field type for new indices ("auto": `sparse_vector` on 8.15+).
    `max_query_terms` caps query tokens (the clause budget, filters included); `max_query_weight` rescales
    a query whose largest weight exceeds it (None: Elasticsearch applies `boost` outside Lucene's (0, 64]).
    kNN asks each shard for `max(k * num_candidates_factor, min_num_candidates)` candidates (<= 10,000);
    with the float HNSW mapping that new indices get (`es_bodies.DEFAULT_DENSE_INDEX_OPTIONS`; set
    `options={"dense_index_options": ...}` for int8 / bbq quantisation) that keeps recall@10 >= 0.99.
    Talks to servers of an older major than the client with `compatible-with=<server major>`.
    """

    def __init__(
        self,
        url: str | Sequence[str] | None = None,
        *,
        client: Elasticsearch | None = None,
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
        connection_args = (url, api_key, username, password, ca_certs, verify_certs, settings)
        if client is not None and any(a is not None for a in connection_args):
            raise ValueError("pass either a client or connection settings (url, api_key, ...), not both")
        if sparse_type not in ("auto", "sparse_vector", "rank_features"):
            raise ValueError(f"sparse_type must be auto, sparse_vector or rank_features, got {sparse_type!r}")
        if max_query_terms < 1:
            raise ValueError(f"max_query_terms must be >= 1, got {max_query_terms}")
        if max_query_weight is not None and not (math.isfinite(max_query_weight) and max_query_weight > 0):
            raise ValueError(f"max_query_weight must be positive and finite, got {max_query_weight!r}")
        if not num_candidates_factor >= 1:
            raise ValueError(f"num_candidates_factor must be >= 1, got {num_candidates_factor}")
        if not 1 <= min_num_candidates <= _MAX_RESULT_WINDOW:
            raise ValueError(
                f"min_num_candidates must be in 1..{_MAX_RESULT_WINDOW}, got {min_num_candidates}"
            )
        self._owns_client = client is None
        if client is None:
            self.settings: HttpSettings | None = settings or HttpSettings.resolve(
                url,
                api_key=api_key,
                username=username,
                password=password,
                ca_certs=ca_certs,
                verify_certs=verify_certs,
                env_prefix=env_prefix,
            )
            client_kwargs = self.settings.to_client_kwargs("elasticsearch")
            if _OrjsonSerializer is not None:  # several times faster on vector-heavy bulk bodies
                client_kwargs["serializer"] = _OrjsonSerializer()
            client_kwargs["transport_class"] = CompatTransport  # speaks to older majors (see there)
            try:
                client = Elasticsearch(**client_kwargs)
            except ValueError as exc:
                raise ConnectorError(
                    f"cannot build an Elasticsearch client for {self.settings.describe()}: {exc}"
                ) from None
            log.info("elasticsearch: connecting to %s", self.settings.describe())
        else:
            self.settings = None
        self.client: Elasticsearch = client
        self.namer = FeatureNamer(vocab)
        self.sparse_type_choice = sparse_type
        self.max_query_terms = max_query_terms
        self.max_query_weight = max_query_weight
        self.num_candidates_factor = num_candidates_factor
        self.min_num_candidates = min_num_candidates
        self.bulk_config = bulk or BulkConfig()
        if refresh:
            kwargs = {**self.bulk_config.request_kwargs, "refresh": refresh}
            self.bulk_config = dataclasses.replace(self.bulk_config, request_kwargs=kwargs)
        self.scan_keep_alive = scan_keep_alive
        self.spec: IndexSpec | None = None
        self.sparse_type: SparseFieldType | None = None
        if spec is not None and index is not None and spec.name != index:
            raise ValueError(f"index {index!r} differs from the spec's name {spec.name!r}")
        self._pending_spec = spec
        self._index_name = check_index_name(index) if index is not None else None
        self._node: EsNode | None = None
        self._combined_fields = False
        self._license: object = _UNREAD
        self._logged: set[str] = set()
        self._closed = False

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
            transport = self.client.transport if isinstance(self.client.transport, CompatTransport) else None
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
            self._node = node
        return self._node

    def _read_node(self) -> EsNode:
        info_error: str | None = None
        try:
            info = self._call("read the cluster version", self.client.info)
        except ConnectorError as exc:
            cause = exc.__cause__
            if not isinstance(cause, ApiError) or cause.status_code not in _INFO_FALLBACK_STATUSES:
                raise  # unreachable, bad credentials, refused headers: _nodes would fail the same way
            info_error = _api_error_text(cause)
        else:
            try:
                version = EsVersion.from_info(info.body)
            except ValueError as exc:
                raise ConnectorError(str(exc)) from None
            if version.serverless:
                return EsNode(version)
        try:
            body = self.client.nodes.info(node_id="_local", filter_path=_NODE_FILTER).body
            node = EsNode.from_nodes_info(body)
        except (ApiError, ValueError) as exc:
            reason = _api_error_text(exc) if isinstance(exc, ApiError) else str(exc)
            if info_error is not None:
                raise ConnectorError(
                    f"elasticsearch: cannot read the server version: GET / answered {info_error}; "
                    f"GET /_nodes/_local answered {reason}"
                ) from None
            log.info(
                "elasticsearch: cannot list the node's modules (%s); assuming the default distribution",
                reason,
            )
            return EsNode(version)
        except (_TransportConnectionError, _TransportTimeout) as exc:
            raise ConnectorError(
                f"elasticsearch: cannot read the server version: unreachable ({exc})"
            ) from exc
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
            body = self.client.license.get().body
        except ApiError as exc:
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
            if note not in self._logged:  # once per connector, not on every hybrid query
                self._logged.add(note)
                log.info("elasticsearch: %s; the hybrid module fuses client-side instead", note)
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
        """Why this cluster cannot run `fusion` server-side exactly (None when it can). Finer than
        `Capabilities.supports_server_fusion`: it also checks the normaliser and missing-document rule."""
        methods, _, notes = self._fusion_support()
        if fusion.method not in methods:
            why = "; ".join(notes) or "unsupported"
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
        return None

    # -- index ------------------------------------------------------------------------------------------

    def ensure_index(self, spec: IndexSpec) -> None:
        name = check_index_name(spec.name)
        if spec.sparse_idf:
            raise UnsupportedOperation(
                "Elasticsearch has no IDF weighting for sparse fields (sparse_idf=True); weight the query "
                "client-side instead (the score stays a dot product)"
            )
        version = self.version
        if self._call("check the index", lambda: self.client.indices.exists(index=name)).body:
            self._adopt_existing(spec)
            return
        sparse_type = self._choose_sparse_type(version)
        body = index_body(spec, version, sparse_type=sparse_type, namer_mode=self.namer.mode)
        try:
            self.client.indices.create(index=name, body=body)
            log.info("elasticsearch: created index %r (%s, %s names)", name, sparse_type, self.namer.mode)
        except ApiError as exc:
            if _error_type(exc) == "resource_already_exists_exception":  # created concurrently
                self._adopt_existing(spec)
                return
            raise ConnectorError(f"cannot create index {name!r}: {_api_error_text(exc)}") from exc
        self._combined_fields = True  # every text field is `text` with the standard analyzer
        self._index_name, self.spec, self.sparse_type = name, spec, sparse_type

    def _choose_sparse_type(self, version: EsVersion) -> SparseFieldType:
        node = self.node
        choice = self.sparse_type_choice
        if choice == "auto":
            types = node.sparse_field_types()
            if not types:
                raise UnsupportedOperation(
                    f"no sparse field type is usable on Elasticsearch {version}: the sparse_vector query "
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

    def _read_mapping(self, name: str) -> dict[str, Any]:
        try:
            body = self._call("read the mapping", lambda: self.client.indices.get_mapping(index=name)).body
        except ConnectorError as exc:
            if isinstance(exc.__cause__, NotFoundError):
                raise IndexNotFound(f"there is no index {name!r} on this Elasticsearch cluster") from None
            raise
        if not body:
            raise ConnectorError(f"index {name!r} returned no mapping")
        mapping: dict[str, Any] = next(iter(body.values())).get("mappings", {})
        return mapping

    def _adopt_existing(self, spec: IndexSpec) -> None:
        """Check an existing index against `spec` and use it; ConnectorError lists every difference."""
        mapping = self._read_mapping(spec.name)
        props = mapping.get("properties", {})
        problems: list[str] = []
        sparse = props.get(spec.sparse_field, {})
        sparse_type = sparse.get("type")
        if sparse_type not in ("sparse_vector", "rank_features"):
            problems.append(
                f"field {spec.sparse_field!r} is {sparse_type or 'missing'}, not sparse_vector/rank_features"
            )
        if spec.dense_field is not None:
            dense = props.get(spec.dense_field, {})
            if dense.get("type") != "dense_vector" or dense.get("dims") not in (None, spec.dense_dim):
                problems.append(
                    f"field {spec.dense_field!r} is {dense.get('type') or 'missing'} with dims "
                    f"{dense.get('dims')}, wanted dense_vector with dims {spec.dense_dim}"
                )
        if spec.lexical:
            for name in spec.text_fields:
                kind = props.get(name, {}).get("type")
                if kind == "semantic_text":
                    problems.append(
                        f"text field {name!r} is semantic_text, where a match query runs the inference "
                        "endpoint instead of BM25; name text fields (or pass lexical=False)"
                    )
                elif kind not in _BM25_TYPES:
                    problems.append(f"text field {name!r} is {kind or 'missing'}, not text")
        meta = (mapping.get("_meta") or {}).get(SPEC_META_KEY) or {}
        stored_mode = meta.get("feature_names")
        if stored_mode is not None and stored_mode != self.namer.mode:
            problems.append(
                f"stored feature names are {stored_mode!r} but this connector uses {self.namer.mode!r} "
                "(pass the same vocab as when the index was written)"
            )
        if problems:
            raise ConnectorError(
                f"index {spec.name!r} exists but does not fit the spec: " + "; ".join(problems)
            )
        try:
            self._check_sparse_type(sparse_type)
        except UnsupportedOperation as exc:
            raise UnsupportedOperation(f"index {spec.name!r} has a {sparse_type} field: {exc}") from None
        self._combined_fields = _one_text_analyzer(props, spec.text_fields)
        self._index_name, self.spec, self.sparse_type = spec.name, spec, sparse_type

    def _require_spec(self) -> IndexSpec:
        self._check_open()
        self.node  # noqa: B018 - first learn the server's major (it sets the media types every request uses)
        if self.spec is None and self._pending_spec is not None:
            pending, self._pending_spec = self._pending_spec, None
            self.ensure_index(pending)
        if self.spec is None:
            if self._index_name is None:
                raise ConnectorError("no index: pass index=... or call ensure_index(spec) first")
            mapping = self._read_mapping(self._index_name)
            meta = (mapping.get("_meta") or {}).get(SPEC_META_KEY)
            try:
                spec = spec_from_meta(self._index_name, meta or {})
            except ValueError as exc:
                raise ConnectorError(f"{exc}; call ensure_index(spec) to describe it") from None
            self._adopt_existing(spec)
        assert self.spec is not None
        return self.spec

    def existing_spec(self) -> IndexSpec:
        """The spec stored in the named index's mapping (IndexNotFound when there is no such index)."""
        return self._require_spec()

    @property
    def index(self) -> str:
        return self._require_spec().name

    # -- writes -----------------------------------------------------------------------------------------

    def upsert(self, documents: Iterable[Document]) -> WriteReport:
        spec = self._require_spec()
        dropped = {"weights": 0, "docs": 0}

        def actions() -> Iterator[BulkAction | ItemOutcome]:
            for pos, doc in enumerate(documents):
                try:
                    prepared = document_source(doc, pos, spec, self.namer)
                except (DocumentError, FeatureNameError) as exc:
                    doc_id = doc.id if isinstance(doc, Document) else pos
                    yield ItemOutcome(id=doc_id, ok=False, status="invalid", error=str(exc))
                    continue
                if prepared.dropped:
                    dropped["weights"] += prepared.dropped
                    dropped["docs"] += 1
                yield BulkAction("index", spec.name, prepared.es_id, prepared.source, item_id=doc.id)

        report = self._bulk(actions())
        if dropped["weights"]:
            log.warning(
                "elasticsearch: dropped %d sparse weight(s) below 2^-126 (Lucene rejects subnormal feature "
                "values) in %d document(s)",
                dropped["weights"],
                dropped["docs"],
            )
        return report

    def delete(self, ids: Iterable[DocId]) -> WriteReport:
        spec = self._require_spec()

        def actions() -> Iterator[BulkAction | ItemOutcome]:
            for pos, doc_id in enumerate(ids):
                try:
                    target = es_id(doc_id, f"id {pos}")
                except DocumentError as exc:
                    yield ItemOutcome(id=doc_id, ok=False, status="invalid", error=str(exc))
                    continue
                yield BulkAction("delete", spec.name, target, item_id=doc_id, missing_ok=True)

        return self._bulk(actions())

    def _bulk(self, actions: Iterable[BulkAction | ItemOutcome]) -> WriteReport:
        return run_bulk(
            streaming_bulk, self.client, actions, self.bulk_config, retryable_exceptions=RETRYABLE_EXCEPTIONS
        )

    def flush(self) -> None:
        """Refresh the index so that written documents are searchable."""
        name = self.index
        self._call("refresh the index", lambda: self.client.indices.refresh(index=name))

    # -- reads ------------------------------------------------------------------------------------------

    def _source_params(self) -> dict[str, Any]:
        """On 9.2+ vectors are left out of `_source` unless asked for (indices this connector creates keep
        them anyway). Clients older than the parameter cannot ask; then only our own indices round-trip."""
        if self.version.exclude_source_vectors and _SEARCH_HAS_EXCLUDE_VECTORS:
            return {"source_exclude_vectors": False}
        return {}

    def get(self, ids: Sequence[DocId]) -> list[Document | None]:
        spec = self._require_spec()
        if not ids:
            return []
        es_ids = [es_id(doc_id, f"id {pos}") for pos, doc_id in enumerate(ids)]
        body = self._call("read documents", lambda: self._mget(spec.name, es_ids))
        out: list[Document | None] = []
        for doc_id, item in zip(ids, body.get("docs", []), strict=True):
            out.append(self._document(doc_id, item.get("_source")) if item.get("found") else None)
        return out

    def _mget(self, index: str, es_ids: list[str]) -> dict[str, Any]:
        """Realtime multi-get; on 9.2+ asks for the vectors in `_source` (the client's `mget` has no
        `_source_exclude_vectors` parameter, so the request is sent as is)."""
        if not self.version.exclude_source_vectors:
            body: dict[str, Any] = self.client.mget(index=index, ids=es_ids).body
            return body
        response = self.client.perform_request(
            "POST",
            f"/{quote(index, safe='')}/_mget",
            params={"_source_exclude_vectors": "false"},
            headers={"accept": "application/json", "content-type": "application/json"},
            body={"ids": es_ids},
        )
        result: dict[str, Any] = response.body
        return result

    def _document(self, fallback_id: DocId, source: Mapping[str, Any] | None) -> Document:
        return document_from_source(fallback_id, source, self._require_spec(), self.namer)

    def scan(self, batch_size: int = 500) -> Iterator[Document]:
        """Every document, through a point in time + `search_after` (a consistent snapshot); falls back to
        scroll where the cluster has no PIT API."""
        spec = self._require_spec()
        if not 1 <= batch_size <= _MAX_RESULT_WINDOW:
            raise ValueError(f"batch_size must be in 1..{_MAX_RESULT_WINDOW}, got {batch_size}")
        try:
            opened = self.client.open_point_in_time(index=spec.name, keep_alive=self.scan_keep_alive)
        except ApiError as exc:
            if exc.status_code in (400, 404, 405) and not isinstance(exc, NotFoundError):
                log.info("elasticsearch: no point in time (%s); scanning with scroll", _api_error_text(exc))
                yield from self._scan_scroll(spec, batch_size)
                return
            raise ConnectorError(
                f"cannot open a point in time on {spec.name!r}: {_api_error_text(exc)}"
            ) from exc
        except (_TransportConnectionError, _TransportTimeout) as exc:
            raise ConnectorError(
                f"cannot open a point in time on {spec.name!r}: unreachable ({exc})"
            ) from exc
        pit_id: str = opened.body["id"]
        try:
            after: list[Any] | None = None
            while True:
                body = pit_search_body(pit_id, batch_size, self.scan_keep_alive, after)
                page = self._pit_page(body)
                pit_id = page.get("pit_id", pit_id)
                hits = page["hits"]["hits"]
                for hit in hits:
                    yield self._document(hit["_id"], hit.get("_source"))
                if len(hits) < batch_size:
                    return
                after = hits[-1]["sort"]
        finally:
            try:
                self.client.close_point_in_time(id=pit_id)
            except ApiError as exc:  # the PIT expires by itself; never hide the scan's own outcome
                log.warning("elasticsearch: could not close point in time: %s", _api_error_text(exc))

    def _pit_page(self, body: dict[str, Any]) -> dict[str, Any]:
        page: dict[str, Any] = self._call(
            "scan", lambda: self.client.search(body=body, **self._source_params())
        ).body
        return page

    def _scan_scroll(self, spec: IndexSpec, batch_size: int) -> Iterator[Document]:
        page = self._call(
            "scan",
            lambda: self.client.search(
                index=spec.name,
                scroll=self.scan_keep_alive,
                size=batch_size,
                sort=["_doc"],
                **self._source_params(),
            ),
        ).body
        scroll_id = page.get("_scroll_id")
        try:
            while page["hits"]["hits"]:
                for hit in page["hits"]["hits"]:
                    yield self._document(hit["_id"], hit.get("_source"))
                page = self._scroll_page(scroll_id)
                scroll_id = page.get("_scroll_id", scroll_id)
        finally:
            if scroll_id:
                try:
                    self.client.clear_scroll(scroll_id=scroll_id)
                except ApiError as exc:
                    log.warning("elasticsearch: could not clear scroll: %s", _api_error_text(exc))

    def _scroll_page(self, scroll_id: str | None) -> dict[str, Any]:
        if not scroll_id:
            raise ConnectorError("scroll response carried no _scroll_id")
        page: dict[str, Any] = self._call(
            "scan", lambda: self.client.scroll(scroll_id=scroll_id, scroll=self.scan_keep_alive)
        ).body
        return page

    def count(self) -> int:
        name = self.index
        return int(self._call("count", lambda: self.client.count(index=name)).body["count"])

    # -- queries (bodies) -------------------------------------------------------------------------------

    def _filters(self, filter: FilterLike, spec: IndexSpec) -> list[dict[str, Any]]:
        text = set(spec.text_fields)
        return filter_clauses(filter, lambda f: f"{f}.keyword" if f in text else f)

    def sparse_query(self, vector: SparseVector, filters_count: int = 0) -> dict[str, Any] | None:
        """The scoring query for `vector` (None when nothing is left to match), capped to the clause budget
        minus the filter clauses, weights rescaled under `max_query_weight` if set."""
        spec = self._require_spec()
        budget = max(1, self.max_query_terms - filters_count)
        cleaned = clean_query_vector(vector, max_terms=budget, max_weight=self.max_query_weight)
        if cleaned.truncated_terms:
            log.info("elasticsearch: query capped to %d of %d terms (clause budget)", budget, vector.nnz)
        if not cleaned.vector:
            return None
        features = self.namer.to_features(cleaned.vector)
        if self.sparse_type == "rank_features":
            return rank_features_query(spec.sparse_field, features)
        opts = spec.options
        return sparse_vector_query(
            spec.sparse_field,
            features,
            prune=bool(opts.get("sparse_prune", False)),
            pruning_config=opts.get("sparse_pruning_config"),
        )

    def _knn(self, vector: NDArray[np.float32], k: int, filters: list[dict[str, Any]]) -> dict[str, Any]:
        spec = self._require_spec()
        if spec.dense_field is None:
            raise UnsupportedOperation(f"index {spec.name!r} has no dense field")
        values = dense_values(vector, spec, "dense query")
        num_candidates = self.num_candidates(k)
        return knn_section(spec.dense_field, values, k, num_candidates, filters)

    def num_candidates(self, k: int) -> int:
        """kNN candidates per shard for `k` results: `k * num_candidates_factor`, at least
        `min_num_candidates`, at most 10,000 (Elasticsearch's limit)."""
        wanted = max(k, self.min_num_candidates, math.ceil(k * self.num_candidates_factor))
        return min(_MAX_RESULT_WINDOW, wanted)

    def _text_query(self, text: str) -> dict[str, Any]:
        spec = self._require_spec()
        if not spec.lexical:
            raise UnsupportedOperation(f"index {spec.name!r} was created with lexical=False")
        if not isinstance(text, str):
            raise TypeError(f"text query must be a string, got {type(text).__name__}")
        return bm25_query(text, spec.text_fields, combined=self._combined_fields)

    def _source_excludes(self, spec: IndexSpec) -> list[str]:
        return [spec.sparse_field] + ([spec.dense_field] if spec.dense_field else [])

    def sparse_search_body(
        self, vector: SparseVector, k: int, filter: FilterLike = None
    ) -> dict[str, Any] | None:
        spec = self._require_spec()
        _check_k(k)
        filters = self._filters(filter, spec)
        query = self.sparse_query(vector, len(filters))
        if query is None:
            return None
        return search_body(k, query=filtered(query, filters), source_excludes=self._source_excludes(spec))

    def dense_search_body(
        self, vector: NDArray[np.float32], k: int, filter: FilterLike = None
    ) -> dict[str, Any]:
        spec = self._require_spec()
        _check_k(k)
        knn = self._knn(vector, k, self._filters(filter, spec))
        return search_body(k, knn=knn, source_excludes=self._source_excludes(spec))

    def text_search_body(self, text: str, k: int, filter: FilterLike = None) -> dict[str, Any]:
        spec = self._require_spec()
        _check_k(k)
        query = filtered(self._text_query(text), self._filters(filter, spec))
        return search_body(k, query=query, source_excludes=self._source_excludes(spec))

    def hybrid_search_body(self, request: HybridRequest) -> dict[str, Any] | None:
        """The retriever body for `request`; UnsupportedOperation says why when the cluster cannot fuse it."""
        spec = self._require_spec()
        _check_k(request.k)
        _check_k(request.candidates, "candidates")
        problem = self.server_fusion_problem(request.fusion)
        if problem is not None:
            if problem not in self._logged:
                self._logged.add(problem)
                log.info("elasticsearch: server-side fusion unavailable: %s", problem)
            raise UnsupportedOperation(problem)
        signals = request.signals()
        if not signals:
            raise ValueError("a hybrid request needs at least one of sparse, dense or text")
        fusion = request.fusion
        weights = tuple(fusion.weights) if fusion.weights is not None else (1.0,) * len(signals)
        if len(weights) != len(signals):
            raise ValueError(f"fusion has {len(weights)} weights for {len(signals)} signals {signals}")
        window = min(_MAX_RESULT_WINDOW, max(request.candidates, request.k))
        filters = self._filters(request.filter, spec)
        subs: list[dict[str, Any]] = []
        kept: list[float] = []
        for signal, weight in zip(signals, weights, strict=True):
            sub = self._signal_section(signal, request, window, filters)
            if sub is None or weight == 0:  # an empty query or a zero weight adds nothing to any score
                continue
            subs.append(signal_retriever(signal, sub))
            kept.append(float(weight))
        if not subs:
            return None
        if len(subs) == 1:  # fusion of one list keeps its order: run it plainly
            single = subs[0]
            if "knn" in single:
                return search_body(request.k, knn=single["knn"], source_excludes=self._source_excludes(spec))
            return search_body(
                request.k, query=single["standard"]["query"], source_excludes=self._source_excludes(spec)
            )
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
                subs, weights=kept, normalizer=_NORMALIZERS[fusion.normalizer], rank_window_size=window
            )
        else:
            raise UnsupportedOperation(f"Elasticsearch has no {fusion.method!r} fusion")
        return search_body(request.k, retriever=retriever, source_excludes=self._source_excludes(spec))

    def _signal_section(
        self, signal: Signal, request: HybridRequest, window: int, filters: list[dict[str, Any]]
    ) -> dict[str, Any] | None:
        if signal == "sparse":
            assert request.sparse is not None
            query = self.sparse_query(request.sparse, len(filters))
            return None if query is None else filtered(query, filters)
        if signal == "dense":
            assert request.dense is not None
            return self._knn(request.dense, window, filters)
        assert request.text is not None
        return filtered(self._text_query(request.text), filters)

    def explain_sparse(self, vector: SparseVector, doc_id: DocId) -> list[tuple[int, str, float]]:
        """Per-token terms of the sparse score the engine gives `doc_id` for `vector`: `(token id, token
        (from `vocab`, else the id), query weight x 9-bit stored weight)`, largest first. They sum to the
        hit's score (the same query capping and rescaling as `search_sparse` applies)."""
        (doc,) = self.get([doc_id])
        if doc is None or doc.sparse is None:
            return []
        budget = max(1, self.max_query_terms)
        query = clean_query_vector(vector, max_terms=budget, max_weight=self.max_query_weight).vector
        shared, qi, di = np.intersect1d(
            query.indices, doc.sparse.indices, assume_unique=True, return_indices=True
        )
        stored = truncate_9bit(doc.sparse.values[di]).astype(np.float64)
        terms = query.values[qi].astype(np.float64) * stored
        order = np.lexsort((shared, -terms))
        return [(int(shared[i]), self.namer.label(int(shared[i])), float(terms[i])) for i in order]

    # -- queries (execution) ----------------------------------------------------------------------------

    def search_sparse(self, vector: SparseVector, k: int, filter: FilterLike = None) -> list[Hit]:
        body = self.sparse_search_body(vector, k, filter)
        return [] if body is None else self._search(body)

    def search_dense(self, vector: NDArray[np.float32], k: int, filter: FilterLike = None) -> list[Hit]:
        return self._search(self.dense_search_body(vector, k, filter))

    def search_text(self, text: str, k: int, filter: FilterLike = None) -> list[Hit]:
        return self._search(self.text_search_body(text, k, filter))

    def search_hybrid(self, request: HybridRequest) -> list[Hit]:
        body = self.hybrid_search_body(request)
        return [] if body is None else self._search(body)

    def _search(self, body: dict[str, Any]) -> list[Hit]:
        name = self.index
        resp = self._call("search", lambda: self.client.search(index=name, body=dict(body))).body
        hits: list[Hit] = []
        for rank, hit in enumerate(resp["hits"]["hits"], start=1):
            source = dict(hit.get("_source") or {})
            meta = source.pop(META_FIELD, None) or {}
            hits.append(
                Hit(
                    id=meta.get("id", hit["_id"]), score=float(hit["_score"] or 0.0), rank=rank, fields=source
                )
            )
        return hits

    # -- plumbing ---------------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise ConnectorError("this ElasticsearchConnector is closed")

    def _call(self, what: str, call: Callable[[], T]) -> T:
        self._check_open()
        try:
            return call()
        except BadRequestError as exc:
            if "Accept version" in str(exc) or "compatible-with" in str(exc):
                raise ConnectorError(
                    f"the cluster rejects elasticsearch-py {_CLIENT_VERSION}'s compatibility headers "
                    f"({_api_error_text(exc)}); pass url=... instead of a client (the connector's own "
                    "client sends compatible-with=<server major>), or use an 8.x client for 8.x servers: "
                    "pip install 'elasticsearch>=8.11,<9'"
                ) from exc
            raise ConnectorError(f"elasticsearch: cannot {what}: {_api_error_text(exc)}") from exc
        except ApiError as exc:
            raise ConnectorError(f"elasticsearch: cannot {what}: {_api_error_text(exc)}") from exc
        except (_TransportConnectionError, _TransportTimeout) as exc:
            where = self.settings.describe() if self.settings is not None else "the cluster"
            raise ConnectorError(f"elasticsearch: cannot {what}: {where} is unreachable ({exc})") from exc

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._owns_client:
            self.client.close()


def _one_text_analyzer(props: Mapping[str, Any], fields: Sequence[str]) -> bool:
    """Whether `fields` are all `text` with one analyzer, as `combined_fields` (BM25F) needs."""
    mappings = [props.get(name) or {} for name in fields]
    if any(m.get("type") != "text" for m in mappings):
        return False
    analyzers = {(m.get("analyzer"), m.get("search_analyzer", m.get("analyzer"))) for m in mappings}
    return len(analyzers) == 1


def _check_k(k: int, name: str = "k") -> None:
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= _MAX_RESULT_WINDOW:
        raise ValueError(f"{name} must be an integer in 1..{_MAX_RESULT_WINDOW}, got {k!r}")


def _error_type(exc: ApiError) -> str | None:
    body = exc.body if isinstance(exc.body, Mapping) else {}
    error = body.get("error")
    return error.get("type") if isinstance(error, Mapping) else None


def _api_error_text(exc: ApiError) -> str:
    body = exc.body if isinstance(exc.body, Mapping) else {}
    error = body.get("error")
    if isinstance(error, Mapping):
        root = (error.get("root_cause") or [error])[0]
        return f"{exc.status_code} {root.get('type')}: {root.get('reason')}"
    return f"{exc.status_code} {exc.message}"
