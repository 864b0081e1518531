"""OpenSearch connector (2.x, 3.x; `opensearch-py`): neural sparse, k-NN, BM25 and server-side hybrid search.

What goes where:

* Sparse: a `rank_features` field queried with `neural_sparse` + `query_tokens` (2.14+; an exact dot product
  over Lucene's 9-bit stored weights; query weights must lie in (0, 64], so a query is rescaled uniformly
  when needed and scores are scaled back). Without the neural-search plugin (or before 2.14) the same dot
  product runs as `rank_feature` + `linear` clauses with the weight as boost. Optionally the 3.3+
  `sparse_vector` field with the SEISMIC method (`index.sparse: true`) for approximate search at scale: its
  keys are integer token ids below 32768 and document weights are byte-quantised under
  `quantization_ceiling_ingest`, so documents whose (scaled) weights would clip are rejected per item.
* Doc-only (inference-free) search needs nothing special: pass the encoder's IDF-mode query vector to
  `search_sparse`; its weights travel as `query_tokens` unchanged (rescaled only when above the cap).
* Dense: `knn_vector` (`index.knn: true`), queried with `knn` (filters inside the k-NN query).
* Lexical: `match` / `multi_match` over the text fields (BM25).
* Hybrid: the `hybrid` query with a search pipeline created by content-hash name (see
  `opensearch_pipelines`). Where OpenSearch cannot compute the requested fusion exactly (plugin missing,
  version too old, RRF over several shards before 3.5, different semantics) `server_fusion_problem` says
  why and `search_hybrid` raises `UnsupportedOperation`, as on Elasticsearch; `HybridSearcher` checks first
  and fuses client-side (`spladebridge.hybrid.fusion`).
* Errors: opensearch-py's exceptions become one `ConnectorError` naming the operation and the index, with
  credentials redacted. A server that is not OpenSearch (Elasticsearch) is refused with a clear error.
* Writes go through `bulk.run_bulk`: explicit `_id`s, per-item outcomes, 429 retries with backoff.
* `scan()` uses a point in time (2.4+) sorted on `_id` (unique per document, so `search_after` skips none,
  even documents written by other tools without `sb_id`), or a scroll on older servers or where `_id`
  fielddata is disabled.

Bodies are built by pure functions in `opensearch_bodies`, search pipelines in `opensearch_pipelines`;
this module talks to the server.

Token names: token ids as strings by default; with `vocab` (id -> token) the token strings, encoded with
`token_names.encode_token` so that names are reversible and dot-free. Metadata lives under `metadata.*`
(strings mapped as `keyword`); a filter on a text field matches its `.keyword` sub-field, any other filter
field is a metadata key.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Concatenate, ParamSpec, TypeVar

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
from spladebridge.connectors.bulk import BulkAction, StreamingBulk, run_bulk
from spladebridge.connectors.es_bodies import check_index_name
from spladebridge.connectors.filters import FilterLike
from spladebridge.connectors.http_settings import OS_ENV_PREFIX, HttpSettings, redact_userinfo
from spladebridge.connectors.index_meta import SPEC_META_KEY, spec_from_meta, spec_to_meta
from spladebridge.connectors.lucene_queries import FeatureNamer
from spladebridge.connectors.opensearch_bodies import (
    ID_FIELD,
    MAX_KNN_K,
    METADATA_FIELD,
    SEISMIC_MAX_TOKEN_ID,
    DocumentError,
    KnnParams,
    OpenSearchOptions,
    SeismicIndexParams,
    SeismicQueryParams,
    SparseClause,
    build_document,
    build_index_body,
    filter_clauses,
    knn_clause,
    knn_score_to_similarity,
    opensearch_id,
    read_document,
    sparse_clause,
    suggest_sparse_scale,
    text_clause,
)
from spladebridge.connectors.opensearch_pipelines import (
    MAX_SUB_QUERIES,
    FusionPlan,
    PipelineError,
    SearchPipeline,
    fusion_problem,
    plan_fusion,
)
from spladebridge.encoder.sparse_vector import SparseVector

__all__ = [
    "ID_FIELD",
    "MAX_KNN_K",
    "METADATA_FIELD",
    "SEISMIC_MAX_TOKEN_ID",
    "DocumentError",
    "KnnParams",
    "OpenSearchConnector",
    "OpenSearchOptions",
    "SeismicIndexParams",
    "SeismicQueryParams",
    "build_document",
    "build_index_body",
    "filter_clauses",
    "knn_clause",
    "knn_score_to_similarity",
    "read_document",
    "sparse_clause",
    "suggest_sparse_scale",
    "text_clause",
]

log = logging.getLogger(__name__)

Version = tuple[int, int]

#: The field `scan()` sorts a point in time on: unique per document, present on every document.
SCAN_SORT_FIELD = "_id"
_OS_META_KEY = "opensearch"  # OpenSearch-only facts kept next to the shared spec in `_meta`
_NEURAL_PLUGIN = "opensearch-neural-search"
_KNN_PLUGIN = "opensearch-knn"
# A plugin loaded from the classpath (embedded nodes, test runners) is listed by its class name instead.
_PLUGIN_CLASSES = {
    _NEURAL_PLUGIN: "org.opensearch.neuralsearch.plugin.NeuralSearch",
    _KNN_PLUGIN: "org.opensearch.knn.plugin.KNNPlugin",
}


P = ParamSpec("P")
T = TypeVar("T")


def _wrapped(
    what: str,
) -> Callable[
    [Callable[Concatenate[OpenSearchConnector, P], T]], Callable[Concatenate[OpenSearchConnector, P], T]
]:
    """Run a public method inside `OpenSearchConnector._errors(what)` (client exceptions -> ConnectorError)."""

    def decorate(
        method: Callable[Concatenate[OpenSearchConnector, P], T],
    ) -> Callable[Concatenate[OpenSearchConnector, P], T]:
        @functools.wraps(method)
        def run(self: OpenSearchConnector, /, *args: P.args, **kwargs: P.kwargs) -> T:
            with self._errors(what):
                return method(self, *args, **kwargs)

        return run

    return decorate


def _parse_version(text: str) -> Version:
    parts = text.split("-")[0].split(".")
    try:
        return int(parts[0]), int(parts[1]) if len(parts) > 1 else 0
    except ValueError:
        return (0, 0)


# -- the connector ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _ServerInfo:
    version: Version
    version_text: str
    plugins: frozenset[str] | None  # None when the plugin list could not be read

    def has(self, plugin: str) -> bool:
        return self.plugins is None or plugin in self.plugins or _PLUGIN_CLASSES.get(plugin) in self.plugins


class OpenSearchConnector(Connector):
    """One OpenSearch index.

    Connection: `url` plus credentials (an argument wins over `SPLADEBRIDGE_OS_*` environment variables;
    TLS certificates are verified unless `verify_certs=False`), or ready `settings`, or an already built
    `client` (an `opensearchpy.OpenSearch`, or a test double). Index: `spec` (created on first use if
    absent), or `index` alone to open one this connector created (its spec is kept in the mapping `_meta`).
    """

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
        connection_args = (url, api_key, username, password, ca_certs, verify_certs, settings)
        if client is not None and any(a is not None for a in connection_args):
            raise ValueError("pass either a client or connection settings (url, api_key, ...), not both")
        if spec is not None and index is not None and spec.name != index:
            raise ValueError(f"index {index!r} differs from the spec's name {spec.name!r}")
        for name in (index, spec.name if spec is not None else None):
            if name is not None:
                check_index_name(name)  # before it reaches a URL path ("*", "a,b" and "_all" mean many)
        self.options = options or OpenSearchOptions()
        self.namer = FeatureNamer(None if self.options.sparse_type == "sparse_vector" else self.options.vocab)
        self._owns_client = client is None
        self.settings: HttpSettings | None = None
        if client is None:
            from opensearchpy import OpenSearch

            resolved = settings or HttpSettings.resolve(
                url,
                api_key=api_key,
                username=username,
                password=password,
                ca_certs=ca_certs,
                verify_certs=verify_certs,
                env_prefix=env_prefix,
            )
            self.settings = resolved
            log.info("connecting to OpenSearch at %s", resolved.describe())
            client = OpenSearch(**resolved.to_client_kwargs("opensearch"))
        self.client = client
        self._pending_spec = spec
        self._index_name = index
        if streaming_bulk is None:
            from opensearchpy.helpers import streaming_bulk as default_streaming_bulk

            streaming_bulk = default_streaming_bulk
        self._streaming_bulk = streaming_bulk
        self._info: _ServerInfo | None = None
        self._pipelines: set[str] = set()
        self._shards: dict[str, int] = {}
        self._logged: set[str] = set()
        self._lock = threading.Lock()
        self._closed = False

    # -- server facts ------------------------------------------------------------------------------------

    def server_info(self) -> _ServerInfo:
        """Version and installed plugins, read once. ConnectorError when the server is not OpenSearch."""
        if self._info is None:
            with self._errors("read the server version", index=False):
                self._info = self._read_server_info()
        return self._info

    def _where(self) -> str:
        return self.settings.describe().split(" ")[0] if self.settings is not None else "the server"

    def _read_server_info(self) -> _ServerInfo:
        from opensearchpy.exceptions import TransportError

        try:
            info = self.client.info()
        except TransportError as exc:
            if exc.status_code == 405:  # e.g. a minimal Elasticsearch distribution, which has no GET /
                raise ConnectorError(
                    f"{self._where()} is not OpenSearch: it answered HTTP 405 to GET / "
                    f"({_transport_error_text(exc)}), which every OpenSearch node serves; Elasticsearch "
                    "nodes without a GET / handler answer this way. Use ElasticsearchConnector, or "
                    "spladebridge.connect(url) / --engine elasticsearch"
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
                f"{self._where()} is not OpenSearch: its GET / {what} (OpenSearch says "
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
        return _ServerInfo(_parse_version(text), text, plugins)

    def _index_label(self) -> str | None:
        if self.spec is not None:
            return self.spec.name
        if self._pending_spec is not None:
            return self._pending_spec.name
        return self._index_name

    @contextmanager
    def _errors(self, what: str, *, index: bool | str = True) -> Iterator[None]:
        """Turn opensearch-py's exceptions into one ConnectorError naming the operation and the index.

        Messages carry the status, error type and reason (or, for a connection failure, where and why),
        never credentials: settings' secrets and any `user:password@` are redacted."""
        from opensearchpy.exceptions import ConnectionError as OSConnectionError
        from opensearchpy.exceptions import OpenSearchException, TransportError

        try:
            yield
        except OSConnectionError as exc:
            message = self._error_message(what, index, f"{self._where()} is unreachable ({exc.error})")
            raise ConnectorError(message) from None
        except TransportError as exc:
            raise ConnectorError(self._error_message(what, index, _transport_error_text(exc))) from None
        except OpenSearchException as exc:  # ImproperlyConfigured, SerializationError, ...
            raise ConnectorError(self._error_message(what, index, f"{type(exc).__name__}: {exc}")) from None

    def _error_message(self, what: str, index: bool | str, detail: str) -> str:
        name = index if isinstance(index, str) else self._index_label() if index else None
        on = f" (index {name!r})" if name is not None else ""
        text = f"opensearch: cannot {what}{on}: {detail}"
        return self.settings.redact(text) if self.settings is not None else redact_userinfo(text)

    def _log_once(self, reason: str) -> None:
        if reason not in self._logged:
            self._logged.add(reason)
            log.warning("%s", reason)

    def _neural_query_tokens(self) -> bool:
        info = self.server_info()
        return info.has(_NEURAL_PLUGIN) and info.version >= (2, 14)

    @_wrapped("check server-side fusion")
    def server_fusion_problem(self, fusion: ServerFusion, sub_queries: int) -> str | None:
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
        return None

    def index_shards(self) -> int:
        """The index's primary shard count: `number_of_shards` from its settings when it exists (read once),
        else `options.shards`, which it will be created with."""
        name = self._index_label()
        if name is None:
            return self.options.shards
        cached = self._shards.get(name)
        if cached is not None:
            return cached
        with self._errors("read the index settings", index=name):
            if not self.client.indices.exists(index=name):
                return self.options.shards
            response = self.client.indices.get_settings(index=name)
        try:
            entry = response[name] if name in response else next(iter(response.values()))
            shards = int(entry["settings"]["index"]["number_of_shards"])
        except (KeyError, StopIteration, TypeError, ValueError, AttributeError):
            raise ConnectorError(f"index {name!r}: its settings carry no readable number_of_shards") from None
        self._shards[name] = shards
        return shards

    @_wrapped("read the server capabilities")
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

    def _spec(self) -> IndexSpec:
        if self.spec is None and self._pending_spec is not None:
            pending, self._pending_spec = self._pending_spec, None
            self.ensure_index(pending)
        if self.spec is None and self._index_name is not None:
            self._open_existing(self._index_name)
        if self.spec is None:
            raise ConnectorError("no index: pass index=... or spec=..., or call ensure_index(spec) first")
        return self.spec

    @_wrapped("open the index")
    def existing_spec(self) -> IndexSpec:
        """The spec stored in the named index's mapping `_meta`; never creates anything (IndexNotFound
        when there is no such index)."""
        if self.spec is not None:
            return self.spec
        name = self._index_label()
        if name is None:
            raise IndexNotFound("no index named: pass index=... or spec=...")
        self._open_existing(name)
        assert self.spec is not None
        return self.spec

    def index_body(self, spec: IndexSpec) -> dict[str, Any]:
        """The create-index body this connector sends for `spec` (the spec itself goes into `_meta`)."""
        body = build_index_body(spec, self.options)
        meta = spec_to_meta(spec, self.options.sparse_type, self.namer.mode)
        meta[_OS_META_KEY] = {"sparse_scale": self.options.sparse_scale}
        body["mappings"]["_meta"] = {SPEC_META_KEY: meta}
        return body

    def _read_mapping(self, name: str) -> Mapping[str, Any]:
        from opensearchpy.exceptions import NotFoundError

        try:
            response = self.client.indices.get_mapping(index=name)
        except NotFoundError:
            raise IndexNotFound(
                f"index {name!r} does not exist on {self._where()}; create it with ensure_index(spec) "
                "(or `spladebridge index`)"
            ) from None
        if not isinstance(response, Mapping) or not response:
            raise ConnectorError(f"index {name!r}: empty mapping response")
        mappings = next(iter(response.values())).get("mappings", {})
        return mappings if isinstance(mappings, Mapping) else {}

    def _open_existing(self, name: str) -> None:
        meta = (self._read_mapping(name).get("_meta") or {}).get(SPEC_META_KEY)
        try:
            spec = spec_from_meta(name, meta or {})
        except ValueError as exc:
            raise ConnectorError(f"{exc}; call ensure_index(spec) to describe it") from None
        self.ensure_index(spec)

    def ensure_index(self, spec: IndexSpec) -> None:
        check_index_name(spec.name)
        with self._errors("create or check the index", index=spec.name):
            self._ensure_index(spec)

    def _ensure_index(self, spec: IndexSpec) -> None:
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
        if not self.client.indices.exists(index=spec.name):
            try:
                self.client.indices.create(index=spec.name, body=self.index_body(spec))
                log.info("created OpenSearch index %r", spec.name)
            except Exception as exc:
                if "resource_already_exists" not in str(exc):
                    raise
        self._check_existing(spec)
        self._shards.pop(spec.name, None)
        self.spec = spec

    def _check_existing(self, spec: IndexSpec) -> None:
        mappings = self._read_mapping(spec.name)
        meta = (mappings.get("_meta") or {}).get(SPEC_META_KEY) or {}
        stored_mode = meta.get("feature_names")
        if stored_mode is not None and stored_mode != self.namer.mode:
            raise ConnectorError(
                f"index {spec.name!r} stores feature names as {stored_mode}, this connector writes "
                f"{self.namer.mode}; pass the same vocab (or none) as when the index was created"
            )
        stored_scale = (meta.get(_OS_META_KEY) or {}).get("sparse_scale")
        if stored_scale is not None and float(stored_scale) != self.options.sparse_scale:
            raise ConnectorError(
                f"index {spec.name!r} was written with sparse_scale={stored_scale}, this connector uses "
                f"{self.options.sparse_scale}; use the same scale or documents would not be comparable"
            )
        props = mappings.get("properties", {})
        sparse = props.get(spec.sparse_field)
        want = self.options.sparse_type
        if sparse is None or sparse.get("type") != want:
            found = None if sparse is None else sparse.get("type")
            raise ConnectorError(
                f"index {spec.name!r}: field {spec.sparse_field!r} is {found!r}, expected {want!r}"
            )
        if spec.dense_field is not None:
            dense = props.get(spec.dense_field)
            if (
                dense is None
                or dense.get("type") != "knn_vector"
                or int(dense.get("dimension", -1)) != spec.dense_dim
            ):
                raise ConnectorError(
                    f"index {spec.name!r}: field {spec.dense_field!r} is {dense!r}, expected knn_vector of "
                    f"dimension {spec.dense_dim}"
                )

    # -- writes ---------------------------------------------------------------------------------------

    def _retryable_exceptions(self) -> tuple[type[BaseException], ...]:
        try:
            from opensearchpy.exceptions import ConnectionError as OSConnectionError
        except ImportError:  # pragma: no cover - opensearch-py is a dependency of this module
            return ()
        return (OSConnectionError,)

    def _actions(self, documents: Iterable[Document], spec: IndexSpec) -> Iterator[BulkAction | ItemOutcome]:
        for i, doc in enumerate(documents):
            doc_id = getattr(doc, "id", None)
            try:
                if not isinstance(doc, Document):
                    raise DocumentError(f"expected a Document, got {type(doc).__name__}")
                source = build_document(doc, spec, self.options, self.namer)
                yield BulkAction("index", spec.name, opensearch_id(doc.id), source, item_id=doc.id)
            except (DocumentError, ValueError) as exc:
                yield ItemOutcome(
                    id=doc_id if isinstance(doc_id, str | int) else i,
                    ok=False,
                    status="invalid",
                    error=f"document {i} (id {doc_id!r}): {exc}",
                )

    @_wrapped("write documents")
    def upsert(self, documents: Iterable[Document]) -> WriteReport:
        spec = self._spec()
        return run_bulk(
            self._streaming_bulk,
            self.client,
            self._actions(documents, spec),
            self.options.bulk,
            retryable_exceptions=self._retryable_exceptions(),
        )

    @_wrapped("delete documents")
    def delete(self, ids: Iterable[DocId]) -> WriteReport:
        spec = self._spec()

        def actions() -> Iterator[BulkAction | ItemOutcome]:
            for i, doc_id in enumerate(ids):
                try:
                    yield BulkAction(
                        "delete", spec.name, opensearch_id(doc_id), item_id=doc_id, missing_ok=True
                    )
                except DocumentError as exc:
                    yield ItemOutcome(id=i, ok=False, status="invalid", error=f"id {i} ({doc_id!r}): {exc}")

        return run_bulk(
            self._streaming_bulk,
            self.client,
            actions(),
            self.options.bulk,
            retryable_exceptions=self._retryable_exceptions(),
        )

    @_wrapped("refresh the index")
    def flush(self) -> None:
        self.client.indices.refresh(index=self._spec().name)

    # -- reads ----------------------------------------------------------------------------------------

    @_wrapped("get documents")
    def get(self, ids: Sequence[DocId]) -> list[Document | None]:
        spec = self._spec()
        if not ids:
            return []
        keys = [opensearch_id(i) for i in ids]
        response = self.client.mget(index=spec.name, body={"ids": keys})
        out: list[Document | None] = []
        for key, entry in zip(keys, response.get("docs", []), strict=False):
            if entry.get("found"):
                out.append(read_document(entry.get("_source", {}), spec, self.options, self.namer, key))
            else:
                out.append(None)
        if len(out) != len(keys):
            raise ConnectorError(f"mget answered {len(out)} of {len(keys)} ids")
        return out

    @_wrapped("count documents")
    def count(self) -> int:
        return int(self.client.count(index=self._spec().name)["count"])

    def scan(self, batch_size: int = 500) -> Iterator[Document]:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        with self._errors("scan the index"):
            spec = self._spec()
            if self.server_info().version >= (2, 4):
                yield from self._scan_pit(spec, batch_size)
            else:
                yield from self._scan_scroll(spec, batch_size)

    def _scan_pit(self, spec: IndexSpec, batch_size: int) -> Iterator[Document]:
        from opensearchpy.exceptions import RequestError

        keep_alive = self.options.scan_keep_alive
        pit = self.client.create_pit(index=spec.name, params={"keep_alive": keep_alive})
        pit_id = pit["pit_id"]
        try:
            search_after: list[Any] | None = None
            while True:
                body: dict[str, Any] = {
                    "size": batch_size,
                    "query": {"match_all": {}},
                    "pit": {"id": pit_id, "keep_alive": keep_alive},
                    # search_after needs a sort value unique per document, or documents sharing the last
                    # value of a page are skipped: `_id` is (documents written by other tools may lack
                    # sb_id); OpenSearch 2.x has no `_shard_doc`. A bare field sorts ascending.
                    "sort": [SCAN_SORT_FIELD],
                }
                if search_after is not None:
                    body["search_after"] = search_after
                try:
                    hits = self.client.search(body=body)["hits"]["hits"]
                except RequestError as exc:
                    if search_after is not None or "fielddata" not in str(exc).lower():
                        raise
                    # `indices.id_field_data.enabled: false`: no sort on _id; a scroll skips nothing either
                    log.info("cannot sort a point in time on _id (%s); scanning with scroll", exc.error)
                    yield from self._scan_scroll(spec, batch_size)
                    return
                for hit in hits:
                    yield read_document(hit.get("_source", {}), spec, self.options, self.namer, hit["_id"])
                if len(hits) < batch_size:
                    return
                search_after = hits[-1]["sort"]
        finally:
            try:
                self.client.delete_pit(body={"pit_id": [pit_id]})
            except Exception as exc:  # the PIT expires on its own after keep_alive
                log.warning("could not delete point in time: %s", exc)

    def _scan_scroll(self, spec: IndexSpec, batch_size: int) -> Iterator[Document]:
        from opensearchpy.helpers import scan as scroll_scan

        for hit in scroll_scan(
            self.client, index=spec.name, query={"query": {"match_all": {}}}, size=batch_size
        ):
            yield read_document(hit.get("_source", {}), spec, self.options, self.namer, hit["_id"])

    # -- search ---------------------------------------------------------------------------------------

    def _source_filter(self, spec: IndexSpec) -> dict[str, Any]:
        excludes = [spec.sparse_field] + ([spec.dense_field] if spec.dense_field else [])
        return {"excludes": excludes}

    def _run(
        self, spec: IndexSpec, query: dict[str, Any], size: int, params: dict[str, Any] | None = None
    ) -> list[Hit]:
        body = {"size": size, "query": query, "_source": self._source_filter(spec)}
        response = self.client.search(index=spec.name, body=body, params=params or {})
        return self._hits(response, spec, size)

    def _hits(self, response: Mapping[str, Any], spec: IndexSpec, k: int, scale: float = 1.0) -> list[Hit]:
        hits: list[Hit] = []
        for rank, hit in enumerate(response.get("hits", {}).get("hits", [])[:k], start=1):
            source = hit.get("_source") or {}
            doc_id: DocId = source.get(ID_FIELD, hit.get("_id"))
            fields: dict[str, Any] = {n: source[n] for n in spec.text_fields if n in source}
            fields.update(source.get(METADATA_FIELD) or {})
            score = float(hit.get("_score") or 0.0) / scale
            hits.append(Hit(id=doc_id, score=score, rank=rank, fields=fields))
        return hits

    @_wrapped("build the sparse query")
    def sparse_query(self, vector: SparseVector, k: int, filter: FilterLike = None) -> SparseClause:
        """The sparse clause `search_sparse` sends (neural_sparse, or rank_feature without the plugin)."""
        spec = self._spec()
        neural = self._neural_query_tokens()
        if not neural and self.options.sparse_type == "rank_features":
            self._log_once(
                "neural_sparse with query_tokens needs OpenSearch 2.14+ and the neural-search plugin; "
                "using rank_feature linear clauses (the same dot product)"
            )
        clause = sparse_clause(vector, spec, self.options, self.namer, k=k, filter=filter, neural=neural)
        if clause.truncated_terms:
            log.info(
                "sparse query cut to its %d largest weights (%d dropped)",
                self.options.max_query_terms,
                clause.truncated_terms,
            )
        return clause

    @_wrapped("run a sparse search")
    def search_sparse(self, vector: SparseVector, k: int, filter: FilterLike = None) -> list[Hit]:
        spec = self._spec()
        _check_k(k)
        clause = self.sparse_query(vector, k, filter)
        if clause.query is None:
            return []
        body = {"size": k, "query": clause.query, "_source": self._source_filter(spec)}
        response = self.client.search(index=spec.name, body=body)
        return self._hits(response, spec, k, scale=clause.scale)

    @_wrapped("run a dense (k-NN) search")
    def search_dense(self, vector: NDArray[np.float32], k: int, filter: FilterLike = None) -> list[Hit]:
        spec = self._spec()
        _check_k(k)
        return self._run(spec, knn_clause(vector, spec, k=k, filter=filter), k)

    @_wrapped("run a text (BM25) search")
    def search_text(self, text: str, k: int, filter: FilterLike = None) -> list[Hit]:
        spec = self._spec()
        _check_k(k)
        if not isinstance(text, str):
            raise ValueError(f"query text must be a string, got {type(text).__name__}")
        if not text.strip():
            return []
        return self._run(spec, text_clause(text, spec, filter=filter), k)

    # -- hybrid ---------------------------------------------------------------------------------------

    @_wrapped("build the hybrid query")
    def hybrid_queries(self, request: HybridRequest) -> tuple[list[Signal], list[dict[str, Any]]]:
        """The sub-queries of `request`'s hybrid query, in `SIGNALS` order (empty sparse queries left out)."""
        spec = self._spec()
        signals: list[Signal] = []
        queries: list[dict[str, Any]] = []
        depth = request.candidates
        for signal in request.signals():
            if signal == "sparse" and request.sparse is not None:
                clause = self.sparse_query(request.sparse, depth, request.filter)
                if clause.query is None:
                    continue
                queries.append(clause.query)
            elif signal == "dense" and request.dense is not None:
                queries.append(knn_clause(request.dense, spec, k=depth, filter=request.filter))
            elif signal == "bm25" and request.text is not None:
                queries.append(text_clause(request.text, spec, filter=request.filter))
            signals.append(signal)
        return signals, queries

    @_wrapped("create the search pipeline")
    def ensure_pipeline(self, pipeline: SearchPipeline) -> str:
        """Create (or overwrite, same content) the search pipeline; returns its name."""
        name = pipeline.name
        with self._lock:
            if name not in self._pipelines:
                self.client.search_pipeline.put(id=name, body=pipeline.body)
                self._pipelines.add(name)
        return name

    @_wrapped("run a hybrid search")
    def search_hybrid(self, request: HybridRequest) -> list[Hit]:
        spec = self._spec()
        _check_k(request.k)
        if request.candidates < request.k:
            raise ValueError(f"candidates ({request.candidates}) must be >= k ({request.k})")
        all_signals = request.signals()
        if not all_signals:
            raise ValueError("a hybrid request needs at least one of sparse, dense or text")
        problem = self.server_fusion_problem(request.fusion, len(all_signals))
        if problem is not None:  # as Elasticsearch: the caller (HybridSearcher) fuses client-side
            raise UnsupportedOperation(f"OpenSearch cannot fuse this request server-side: {problem}")
        signals, queries = self.hybrid_queries(request)
        if not queries:
            return []
        fusion = request.fusion
        if len(signals) != len(all_signals) and fusion.weights is not None:
            kept = [fusion.weights[all_signals.index(s)] for s in signals]
            fusion = ServerFusion(
                fusion.method, fusion.rank_constant, tuple(kept), fusion.normalizer, fusion.missing
            )
        plan: FusionPlan = plan_fusion(fusion, len(queries))
        name = self.ensure_pipeline(plan.pipeline)
        body = {
            "size": request.candidates,
            "query": {"hybrid": {"queries": queries}},
            "_source": self._source_filter(spec),
        }
        response = self.client.search(index=spec.name, body=body, params={"search_pipeline": name})
        return self._hits(response, spec, request.k, scale=1.0 / plan.score_scale)

    @_wrapped("run a hybrid search")
    def hybrid_search_with(self, request: HybridRequest, pipeline: SearchPipeline) -> list[Hit]:
        """The hybrid query fused by an OpenSearch-native pipeline of your choice (z_score, geometric...)."""
        spec = self._spec()
        _, queries = self.hybrid_queries(request)
        if not queries:
            return []
        name = self.ensure_pipeline(pipeline)
        body = {
            "size": request.candidates,
            "query": {"hybrid": {"queries": queries}},
            "_source": self._source_filter(spec),
        }
        response = self.client.search(index=spec.name, body=body, params={"search_pipeline": name})
        return self._hits(response, spec, request.k)

    # -- lifecycle ------------------------------------------------------------------------------------

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._owns_client:
            try:
                self.client.close()
            except Exception as exc:  # closing must not raise
                log.debug("closing the OpenSearch client failed: %s", exc)


def _transport_error_text(exc: Any) -> str:
    """`STATUS type: reason` of an opensearch-py TransportError (the root cause when the body has one)."""
    info = exc.info if isinstance(exc.info, Mapping) else {}
    error = info.get("error")
    if isinstance(error, Mapping):
        causes = error.get("root_cause")
        root = causes[0] if isinstance(causes, list) and causes and isinstance(causes[0], Mapping) else error
        return f"{exc.status_code} {root.get('type')}: {root.get('reason')}"
    if isinstance(error, str) and error:
        return f"{exc.status_code} {error}"
    return f"{exc.status_code} {exc.error}"


def _check_k(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
