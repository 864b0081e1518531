"""The Lucene engine family (Elasticsearch, OpenSearch) written once: index lifecycle, document layout,
writes, reads, scans, searches and the server-side fusion gate. `ElasticsearchConnector` and
`OpenSearchConnector` are dialects of it: each supplies only what differs (field mappings, the sparse and
k-NN query shapes, version and plugin facts, how it fuses server-side).

The same on both engines: one `_source` layout (`lucene_documents`), one stored spec (`index_meta`), one error
type with the same fields (`lucene_client`), one bulk path with one retry policy (`bulk.run_bulk`), filters on
top-level fields (a text field's exact value through its `.keyword` sub-field), `sparse_idf` refused (Lucene
stores learned weights; an IDF factor would make the score no longer the model's dot product),
`lexical=False` refusing BM25 searches, and `search_hybrid` raising `UnsupportedOperation` with the reason
whenever the engine cannot fuse with exactly the hybrid module's semantics (the searcher then fuses
client-side and says why).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from abc import abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

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
from spladebridge.connectors.bulk import BulkAction, BulkConfig, item_version
from spladebridge.connectors.filters import FilterLike
from spladebridge.connectors.index_meta import SPEC_META_KEY, spec_from_json, spec_to_json
from spladebridge.connectors.lucene import DEFAULT_MAX_CLAUSES, knn_score_to_similarity, truncate_9bit
from spladebridge.connectors.lucene_client import DocVersion, LuceneClient
from spladebridge.connectors.lucene_client import ElasticsearchClient as ElasticsearchClientType
from spladebridge.connectors.lucene_documents import (
    META_FIELD,
    DocumentError,
    Layout,
    document_from_source,
    document_source,
    lucene_id,
    vector_fields,
)
from spladebridge.connectors.lucene_queries import FeatureNameError, FeatureNamer, bm25_query, filter_clauses
from spladebridge.connectors.names import check_index_name
from spladebridge.connectors.retry import RetryPolicy
from spladebridge.encoder.sparse_vector import SparseVector

__all__ = [
    "BM25_FIELD_TYPES",
    "DEFAULT_TEXT_ANALYZER",
    "MAX_RESULT_WINDOW",
    "LuceneConnector",
    "SparseQuery",
    "check_index_name",
    "check_k",
    "filtered",
    "lucene_connector",
    "pit_page_body",
    "text_mappings",
]

log = logging.getLogger(__name__)

#: kNN candidates per shard: k * factor, at least the minimum. With float HNSW (m=32, ef_construction=200),
#: 20,000 random 384-d unit vectors force-merged to one segment (the hardest case: no structure, one graph)
#: and 50 queries, Elasticsearch 8.19 measured recall@10 0.872 at 200, 0.994 at 500 and 0.998 at 1,000
#: candidates.
DEFAULT_NUM_CANDIDATES_FACTOR = 50.0
DEFAULT_MIN_NUM_CANDIDATES = 500
#: The analyzer BM25 text fields get unless `IndexSpec.options["text_analyzer"]` says otherwise.
DEFAULT_TEXT_ANALYZER = "english"
#: `from + size` of a search, and the kNN `k` / `num_candidates`, are capped at this by both engines.
MAX_RESULT_WINDOW = 10_000
_KEYWORD_IGNORE_ABOVE = 8191  # keyword terms are capped at 32766 bytes; 8191 characters always fit in UTF-8
#: Field types a BM25 (`match`) query scores as BM25; `semantic_text` is not one (a match on it runs inference).
BM25_FIELD_TYPES = frozenset({"text", "match_only_text"})


def check_k(k: int, name: str = "k") -> None:
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_RESULT_WINDOW:
        raise ValueError(f"{name} must be an integer in 1..{MAX_RESULT_WINDOW}, got {k!r}")


def text_mappings(text_fields: Sequence[str], analyzer: str | None = None) -> dict[str, Any]:
    """`text` fields (BM25) with a `.keyword` sub-field for exact-value filters."""
    out: dict[str, Any] = {}
    for name in text_fields:
        mapping: dict[str, Any] = {
            "type": "text",
            "fields": {"keyword": {"type": "keyword", "ignore_above": _KEYWORD_IGNORE_ABOVE}},
        }
        if analyzer is not None:
            mapping["analyzer"] = analyzer
        out[name] = mapping
    return out


def pit_page_body(
    pit_id: str,
    size: int,
    keep_alive: str,
    sort: Sequence[str],
    search_after: Sequence[Any] | None = None,
    source_excludes: Sequence[str] = (),
    *,
    versions: bool = False,
    source: bool = True,
) -> dict[str, Any]:
    """One page of a point-in-time scan (no index in the path: the PIT names it), sorted ascending on the
    `sort` fields (names alone: a bare field name sorts ascending). `versions`: each hit carries `_seq_no`
    and `_primary_term`; `source=False`: no `_source` (an id and version scan reads no stored document)."""
    body: dict[str, Any] = {
        "size": size,
        "query": {"match_all": {}},
        "pit": {"id": pit_id, "keep_alive": keep_alive},
        "sort": list(sort),
        "track_total_hits": False,
    }
    if search_after is not None:
        body["search_after"] = list(search_after)
    if versions:
        body["seq_no_primary_term"] = True
    if not source:
        body["_source"] = False
    elif source_excludes:
        body["_source"] = {"excludes": list(source_excludes)}
    return body


def lucene_connector(
    cluster: LuceneClient,
    *,
    index: str | None = None,
    spec: IndexSpec | None = None,
    vocab: Sequence[str] | None = None,
    bulk: BulkConfig | None = None,
) -> LuceneConnector:
    """The dialect connector on `cluster` (its client, settings and redaction; the caller keeps and closes it)."""
    if isinstance(cluster, ElasticsearchClientType):
        from spladebridge.connectors.elasticsearch import ElasticsearchConnector

        return ElasticsearchConnector(client=cluster, index=index, spec=spec, vocab=vocab, bulk=bulk)
    from spladebridge.connectors.opensearch import OpenSearchConnector, OpenSearchOptions

    options = OpenSearchOptions(vocab=vocab, bulk=bulk or BulkConfig())
    return OpenSearchConnector(client=cluster, index=index, spec=spec, options=options)


@dataclass(frozen=True, slots=True)
class SparseQuery:
    """A sparse scoring query (filters applied; None when nothing is left to match) and the factor its
    scores are divided by to give the dot product of the query with the stored weights."""

    query: dict[str, Any] | None
    scale: float = 1.0
    truncated_terms: int = 0
    vector: SparseVector | None = None  # the query weights as sent (capped, rescaled)


@dataclass(frozen=True, slots=True)
class PreparedSearch:
    """A `_search` ready to send, built without I/O (shared by the sync and async connectors): its body and
    query-string `params`, what it does (for errors), and how its hits are read back (`k`, scores divided by
    `scale`, kNN scores turned back into `similarity`). `setup` names a search pipeline it needs first."""

    body: dict[str, Any]
    k: int
    what: str
    scale: float = 1.0
    params: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    similarity: str | None = None
    setup: object = None


class LuceneConnector(Connector):
    """One Elasticsearch or OpenSearch index; see the module doc. Subclasses are the dialects."""

    engine: ClassVar[str]
    #: Sparse field types this dialect can adopt in an existing index.
    sparse_types: ClassVar[tuple[str, ...]] = ("rank_features",)
    num_candidates_factor: float = DEFAULT_NUM_CANDIDATES_FACTOR
    min_num_candidates: int = DEFAULT_MIN_NUM_CANDIDATES
    #: `_source` sort of a point-in-time scan: `_shard_doc` (Elasticsearch) or `_id` (OpenSearch 2.x).
    scan_sort: ClassVar[str] = "_id"

    def __init__(
        self,
        cluster: LuceneClient,
        *,
        index: str | None,
        spec: IndexSpec | None,
        namer: FeatureNamer,
        bulk: BulkConfig,
        owns_client: bool,
        scan_keep_alive: str = "2m",
        max_query_terms: int = DEFAULT_MAX_CLAUSES,
    ) -> None:
        if spec is not None and index is not None and spec.name != index:
            raise ValueError(f"index {index!r} differs from the spec's name {spec.name!r}")
        for name in (index, spec.name if spec is not None else None):
            if name is not None:
                check_index_name(name)  # before it reaches a URL path ("*", "a,b" and "_all" mean many)
        if max_query_terms < 1:
            raise ValueError(f"max_query_terms must be >= 1, got {max_query_terms}")
        self.cluster = cluster
        self.namer = namer
        self.bulk_config = bulk
        cluster.retry = bulk.retry  # reads are re-called under the same policy as writes
        self.scan_keep_alive = scan_keep_alive
        self.max_query_terms = max_query_terms
        self.spec: IndexSpec | None = None
        self.sparse_type: str | None = None
        #: The similarity the dense field is indexed with (its kNN scores are reported as that similarity).
        self.dense_similarity: str | None = None
        self.layout: Layout | None = None
        self._pending_spec = spec
        self._index_name = index
        self._combined_fields = False
        self._logged: set[str] = set()
        self._owns_client = owns_client
        self._closed = False

    @property
    def retry(self) -> RetryPolicy:
        """The write retry policy (the bulk config's): a document is sent at most `max_retries + 1` times."""
        return self.bulk_config.retry

    @retry.setter
    def retry(self, policy: RetryPolicy) -> None:
        self.bulk_config = dataclasses.replace(self.bulk_config, retry=policy)
        self.cluster.retry = policy

    @property
    def client(self) -> Any:
        """The official client this connector talks through."""
        return self.cluster.client

    @client.setter
    def client(self, value: Any) -> None:
        self.cluster.client = value

    # -- dialect hooks ----------------------------------------------------------------------------------

    @abstractmethod
    def prepare(self, spec: IndexSpec) -> None:
        """Refuse, before anything is created, a spec this server cannot hold (UnsupportedOperation)."""

    @abstractmethod
    def new_sparse_type(self) -> str:
        """The sparse field type a new index gets."""

    @abstractmethod
    def field_mappings(self, spec: IndexSpec, sparse_type: str) -> dict[str, Any]:
        """Mappings of the vector fields: the sparse field, and the dense field if the spec has one."""

    @abstractmethod
    def index_settings(self, spec: IndexSpec) -> dict[str, Any]:
        """`settings.index` entries a new index (or a migration's copy of one) needs for the vector fields."""

    def shard_settings(self) -> dict[str, Any]:
        """Shard and replica counts a new index of this connector gets (a migration's copy keeps the old
        index's)."""
        return {}

    def settings_body(self, index_settings: Mapping[str, Any]) -> dict[str, Any]:
        """The create-index `settings` object for `settings.index` entries (OpenSearch: nested under
        `index`)."""
        return {"index": dict(index_settings)}

    def engine_meta(self) -> dict[str, Any]:
        """Engine facts stored with the spec beside `sparse_type` and `feature_names`."""
        return {}

    def check_stored(self, spec: IndexSpec, stored: Mapping[str, Any], props: Mapping[str, Any]) -> list[str]:
        """Dialect-specific differences between an existing index and this connector (empty: it fits)."""
        return []

    @abstractmethod
    def similarity_of(self, dense_mapping: Mapping[str, Any]) -> str:
        """The similarity a dense field's mapping scores with (the engine's name for it)."""

    def layout_for(self, spec: IndexSpec, stamp: bool) -> Layout:
        return Layout(spec, self.namer, stamp=stamp)

    @abstractmethod
    def sparse_query(self, vector: SparseVector, k: int, filters: list[dict[str, Any]]) -> SparseQuery:
        """The scoring query for `vector`, restricted by `filters`."""

    @abstractmethod
    def dense_search_body(
        self, vector: NDArray[np.float32], k: int, filter: FilterLike = None
    ) -> dict[str, Any]:
        """A `_search` body for the `k` nearest dense vectors."""

    @abstractmethod
    def prepare_hybrid(self, request: HybridRequest, spec: IndexSpec) -> PreparedSearch | None:
        """The search that fuses `request` server-side (the gate in `search_hybrid` has passed); None when
        nothing is left to match."""

    def text_analyzer(self, spec: IndexSpec) -> str | None:
        """The analyzer of the text fields of a new index: `options["text_analyzer"]`, English (stemming,
        stop words) by default; None or "standard" for Lucene's standard analyzer."""
        analyzer = spec.options.get("text_analyzer", DEFAULT_TEXT_ANALYZER)
        return None if analyzer in (None, "standard") else str(analyzer)

    def bm25_combined(self) -> bool:
        """Whether BM25 over several text fields may use `combined_fields` (BM25F)."""
        return False

    # -- index ------------------------------------------------------------------------------------------

    def index_body(self, spec: IndexSpec) -> dict[str, Any]:
        """The create-index body for `spec`: text fields, vector fields, a `sb_meta` object that is kept but
        not indexed, metadata strings as `keyword`, and the spec in `_meta`."""
        sparse_type = self.new_sparse_type()
        properties: dict[str, Any] = {
            **text_mappings(spec.text_fields, self.text_analyzer(spec)),
            **self.field_mappings(spec, sparse_type),
            META_FIELD: {"type": "object", "enabled": False},
        }
        mappings: dict[str, Any] = {
            "_meta": {SPEC_META_KEY: self.spec_meta(spec, sparse_type)},
            "dynamic_templates": [
                {
                    "strings_as_keywords": {
                        "match_mapping_type": "string",
                        "mapping": {"type": "keyword", "ignore_above": _KEYWORD_IGNORE_ABOVE},
                    }
                }
            ],
            "properties": properties,
        }
        settings = {**self.shard_settings(), **self.index_settings(spec)}
        opts = spec.options
        if "shards" in opts:
            settings["number_of_shards"] = int(opts["shards"])
        if "replicas" in opts:
            settings["number_of_replicas"] = int(opts["replicas"])
        body: dict[str, Any] = {"mappings": mappings}
        if settings:
            body["settings"] = self.settings_body(settings)
        return body

    def spec_meta(self, spec: IndexSpec, sparse_type: str) -> dict[str, Any]:
        """The stored spec (`_meta.spladebridge`) with the facts a reader needs."""
        return spec_to_json(
            spec, sparse_type=sparse_type, feature_names=self.namer.mode, **self.engine_meta()
        )

    def ensure_index(self, spec: IndexSpec) -> None:
        self._check_open()
        check_index_name(spec.name)
        if spec.sparse_idf:
            raise UnsupportedOperation(
                f"{self.cluster.engine_label} stores learned weights and scores their dot product; it has no "
                "IDF weighting for sparse fields (sparse_idf=True). Weight the query client-side instead "
                "(SpladeEncoder's IDF query mode), so the score stays a dot product"
            )
        self.prepare(spec)
        if not self.cluster.exists(spec.name) and self.cluster.create_index(spec.name, self.index_body(spec)):
            log.info("%s: created index %r (%s names)", self.engine, spec.name, self.namer.mode)
        self._adopt(spec)

    def _adopt(self, spec: IndexSpec) -> None:
        """Check an existing index against `spec` and use it; ConnectorError lists every difference."""
        mapping = self.cluster.mappings(spec.name)
        props = mapping.get("properties") or {}
        stored = (mapping.get("_meta") or {}).get(SPEC_META_KEY) or {}
        problems: list[str] = []
        sparse_type = (props.get(spec.sparse_field) or {}).get("type")
        if sparse_type not in self.sparse_types:
            problems.append(
                f"field {spec.sparse_field!r} is {sparse_type or 'missing'}, not {' or '.join(self.sparse_types)}"
            )
        if spec.lexical:
            for name in spec.text_fields:
                kind = (props.get(name) or {}).get("type")
                if kind == "semantic_text":
                    problems.append(
                        f"text field {name!r} is semantic_text, where a match query runs the inference "
                        "endpoint instead of BM25; name text fields (or pass lexical=False)"
                    )
                elif kind not in BM25_FIELD_TYPES:
                    problems.append(f"text field {name!r} is {kind or 'missing'}, not text")
        stored_mode = stored.get("feature_names")
        if stored_mode is not None and stored_mode != self.namer.mode:
            problems.append(
                f"stored feature names are {stored_mode!r} but this connector uses {self.namer.mode!r} "
                "(pass the same vocab as when the index was written)"
            )
        problems += self.check_stored(spec, stored, props)
        if problems:
            raise ConnectorError(
                f"index {spec.name!r} exists but does not fit the spec: " + "; ".join(problems),
                index=spec.name,
            )
        self._combined_fields = _one_text_analyzer(props, spec.text_fields)
        self.dense_similarity = (
            self.similarity_of(props.get(spec.dense_field) or {}) if spec.dense_field is not None else None
        )
        self.sparse_type = str(sparse_type)
        self.layout = self.layout_for(spec, stamp=META_FIELD in props)
        self._index_name, self.spec = spec.name, spec

    def _require_spec(self) -> IndexSpec:
        self._check_open()
        if self.spec is None and self._pending_spec is not None:
            pending, self._pending_spec = self._pending_spec, None
            self.ensure_index(pending)
        if self.spec is None:
            if self._index_name is None:
                raise ConnectorError("no index: pass index=... or spec=..., or call ensure_index(spec) first")
            self._open_existing(self._index_name)
        assert self.spec is not None
        return self.spec

    def _open_existing(self, name: str) -> None:
        try:
            mapping = self.cluster.mappings(name)
        except IndexNotFound:
            raise IndexNotFound(
                f"there is no index {name!r} on this {self.cluster.engine_label} cluster; create it with "
                "ensure_index(spec) (or `spladebridge index`)",
                index=name,
                status=404,
            ) from None
        try:
            spec = spec_from_json((mapping.get("_meta") or {}).get(SPEC_META_KEY), name)
        except ValueError as exc:
            raise ConnectorError(f"{exc}; call ensure_index(spec) to describe it", index=name) from None
        self._adopt(spec)

    def named_index(self) -> str | None:
        """The index this connector is about, before or after it was opened: the open spec's, the given
        spec's, or `index=`; None when nothing names one."""
        if self.spec is not None:
            return self.spec.name
        if self._pending_spec is not None:
            return self._pending_spec.name
        return self._index_name

    def existing_spec(self) -> IndexSpec:
        """The spec of the existing index this connector names (`index=`, or the name of the `spec=` it was
        given, which is then checked against the index); never creates anything (IndexNotFound when there
        is no such index)."""
        self._check_open()
        if self.spec is not None:
            return self.spec
        pending = self._pending_spec
        name = self.named_index()
        if name is None:
            raise IndexNotFound("no index named: pass index=... or spec=...")
        self.prepare_reads()
        if pending is None:
            self._open_existing(name)
        elif not self.cluster.exists(name):
            raise IndexNotFound(
                f"there is no index {name!r} on this {self.cluster.engine_label} cluster", index=name
            )
        else:
            self._adopt(pending)
            self._pending_spec = None
        assert self.spec is not None
        return self.spec

    def prepare_reads(self) -> None:
        """What the dialect must learn before its first request (Elasticsearch: the server's major)."""

    @property
    def index(self) -> str:
        return self._require_spec().name

    def _layout(self) -> Layout:
        self._require_spec()
        assert self.layout is not None
        return self.layout

    # -- writes -----------------------------------------------------------------------------------------

    def upsert(self, documents: Iterable[Document]) -> WriteReport:
        layout = self._layout()
        dropped = {"weights": 0, "docs": 0}

        def actions() -> Iterator[BulkAction | ItemOutcome]:
            for pos, doc in enumerate(documents):
                try:
                    prepared = document_source(doc, pos, layout)
                except (DocumentError, FeatureNameError) as exc:
                    doc_id = getattr(doc, "id", pos)
                    yield ItemOutcome(
                        id=doc_id if isinstance(doc_id, str | int) else pos,
                        ok=False,
                        status="invalid",
                        error=str(exc),
                    )
                    continue
                if prepared.dropped:
                    dropped["weights"] += prepared.dropped
                    dropped["docs"] += 1
                yield BulkAction("index", layout.spec.name, prepared.id, prepared.source, item_id=doc.id)

        report = self.cluster.bulk(actions(), self.bulk_config)
        if dropped["weights"]:
            log.warning(
                "%s: dropped %d sparse weight(s) below 2^-126 (Lucene rejects subnormal feature values) in "
                "%d document(s)",
                self.engine,
                dropped["weights"],
                dropped["docs"],
            )
        return report

    def update_vectors(
        self, documents: Iterable[Document], versions: Mapping[str, DocVersion] | None = None
    ) -> WriteReport:
        """Write only the vector fields of existing documents (a partial `update` each; the rest of their
        `_source` is left as it is): re-encoding in place. A document with nothing to add is a no-op.

        `versions` (by Lucene id): each such update is conditional on that `(seq_no, primary_term)`, so a
        document changed since it was read answers 409 instead of getting vectors of its older text; the
        outcomes carry the version each update produced."""
        layout = self._layout()
        conditions = versions or {}

        def actions() -> Iterator[BulkAction | ItemOutcome]:
            for pos, doc in enumerate(documents):
                try:
                    target = lucene_id(doc.id, f"document {pos}")
                    vectors, _ = vector_fields(doc, pos, layout)
                except (DocumentError, FeatureNameError) as exc:
                    yield ItemOutcome(doc.id, ok=False, status="invalid", error=str(exc))
                    continue
                if not vectors:
                    yield ItemOutcome(doc.id, ok=True, status="noop (no text, nothing to add)")
                    continue
                seq_no, term = conditions.get(target, (None, None))
                yield BulkAction(
                    "update",
                    layout.spec.name,
                    target,
                    {"doc": vectors},
                    item_id=doc.id,
                    if_seq_no=seq_no,
                    if_primary_term=term,
                )

        return self.cluster.bulk(actions(), self.bulk_config)

    def clear_vectors(self, ids: Sequence[DocId], versions: Mapping[str, DocVersion]) -> WriteReport:
        """Empty the sparse field of existing documents, each update conditional on its version.

        A partial update merges objects, so new sparse weights written over old ones would keep the old
        tokens beside them: a document that may carry vectors of an older text is cleared first (its
        outcome carries the version the clearing produced, for the update that follows). The field becomes
        `[]` (no features; `rank_features` refuses null), which the next partial update replaces whole;
        dense vectors are arrays, which a partial update replaces anyway."""
        spec = self._require_spec()
        cleared: dict[str, Any] = {spec.sparse_field: []}

        def clear(target: str, doc_id: DocId) -> BulkAction:
            seq_no, term = versions.get(target, (None, None))
            return BulkAction(
                "update",
                spec.name,
                target,
                {"doc": cleared},
                item_id=doc_id,
                if_seq_no=seq_no,
                if_primary_term=term,
            )

        return self.cluster.bulk(_by_lucene_id(ids, clear), self.bulk_config)

    def delete(self, ids: Iterable[DocId]) -> WriteReport:
        spec = self._require_spec()

        def delete(target: str, doc_id: DocId) -> BulkAction:
            return BulkAction("delete", spec.name, target, item_id=doc_id, missing_ok=True)

        return self.cluster.bulk(_by_lucene_id(ids, delete), self.bulk_config)

    def flush(self) -> None:
        """Refresh the index so that written documents are searchable."""
        self.cluster.refresh(self._require_spec().name)

    # -- reads ------------------------------------------------------------------------------------------

    def get(self, ids: Sequence[DocId]) -> list[Document | None]:
        layout = self._layout()
        if not ids:
            return []
        keys = [lucene_id(doc_id, f"id {pos}") for pos, doc_id in enumerate(ids)]
        entries = self.cluster.mget(layout.spec.name, keys, with_vectors=True)
        return [
            document_from_source(doc_id, entry.get("_source"), layout) if entry.get("found") else None
            for doc_id, entry in zip(ids, entries, strict=True)
        ]

    def count(self) -> int:
        return self.cluster.count(self._require_spec().name)

    def scan(self, batch_size: int = 500) -> Iterator[Document]:
        """Every document, through a point in time + `search_after` (a consistent snapshot)."""
        layout = self._layout()
        if not 1 <= batch_size <= MAX_RESULT_WINDOW:
            raise ValueError(f"batch_size must be in 1..{MAX_RESULT_WINDOW}, got {batch_size}")
        for hit in self.scan_hits(layout.spec.name, batch_size):
            yield document_from_source(hit["_id"], hit.get("_source"), layout)

    def scan_versions(self, index: str, batch_size: int = 5000) -> Iterator[tuple[str, DocVersion]]:
        """`(_id, (seq_no, primary_term))` of every document of `index`, read without `_source` (a consistent
        snapshot): what a migration compares to find the documents changed meanwhile. A scroll in index
        order (`_doc`), the cheapest full scan on both engines: no order is needed, and OpenSearch's point in
        time sorts on `_id` through fielddata, several times slower."""
        if not 1 <= batch_size <= MAX_RESULT_WINDOW:
            raise ValueError(f"batch_size must be in 1..{MAX_RESULT_WINDOW}, got {batch_size}")
        for hit in self.scan_scroll(index, batch_size, versions_only=True):
            version = item_version(hit)
            if version is None:
                raise ConnectorError(
                    f"{self.engine}: the scan of {index!r} returned {hit.get('_id')!r} without _seq_no and "
                    "_primary_term",
                    index=index,
                )
            yield str(hit["_id"]), version

    def scan_hits(
        self, index: str, batch_size: int, *, versions_only: bool = False
    ) -> Iterator[dict[str, Any]]:
        """Raw hits of a point-in-time scan in `scan_sort` order; a scroll where the dialect says the point in
        time cannot serve (`scroll_instead`) before any hit came back. `versions_only`: ids and versions,
        no `_source`."""
        started = False
        try:
            for hit in self._scan_pit(index, batch_size, versions_only):
                started = True
                yield hit
        except ConnectorError as exc:
            if started or not self.scroll_instead(exc):
                raise
            log.info("%s: scanning %r with a scroll (%s)", self.engine, index, exc.detail)
            yield from self.scan_scroll(index, batch_size, versions_only=versions_only)

    def scroll_instead(self, exc: ConnectorError) -> bool:
        """Whether a failed point-in-time scan should be a scroll instead."""
        return False

    def scan_scroll(
        self, index: str, batch_size: int, *, versions_only: bool = False
    ) -> Iterator[dict[str, Any]]:
        raise NotImplementedError(f"{type(self).__name__} has no scroll")

    def _scan_pit(self, index: str, batch_size: int, versions_only: bool = False) -> Iterator[dict[str, Any]]:
        pit_id = self.cluster.open_pit(index, self.scan_keep_alive, what="scan the index")
        try:
            after: list[Any] | None = None
            while True:
                body = pit_page_body(
                    pit_id,
                    batch_size,
                    self.scan_keep_alive,
                    [self.scan_sort],
                    after,
                    versions=versions_only,
                    source=not versions_only,
                )
                page = self.cluster.search(body, what="scan the index")
                pit_id = str(page.get("pit_id") or pit_id)
                hits = page["hits"]["hits"]
                yield from hits
                if len(hits) < batch_size:
                    return
                after = list(hits[-1]["sort"])
        finally:
            self.cluster.close_pit(pit_id)

    # -- searches ---------------------------------------------------------------------------------------

    def filters(self, filter: FilterLike, spec: IndexSpec) -> list[dict[str, Any]]:
        """The filter as clauses on top-level fields (a text field's exact value through `.keyword`)."""
        text = set(spec.text_fields)
        return filter_clauses(filter, lambda f: f"{f}.keyword" if f in text else f)

    def source_excludes(self, spec: IndexSpec) -> list[str]:
        return [spec.sparse_field] + ([spec.dense_field] if spec.dense_field else [])

    def search_body(
        self, size: int, query: Mapping[str, Any] | None, spec: IndexSpec, **sections: Any
    ) -> dict[str, Any]:
        """A `_search` body (a `query`, and other top-level `sections` such as Elasticsearch's `knn` or
        `retriever`); the vector fields are left out of `_source`, and totals are not tracked (lets Lucene
        skip non-competitive hits)."""
        body: dict[str, Any] = {"size": size, "track_total_hits": False}
        if query is not None:
            body["query"] = dict(query)
        body.update(sections)
        body["_source"] = {"excludes": self.source_excludes(spec)}
        return body

    def sparse_search_body(
        self, vector: SparseVector, k: int, filter: FilterLike = None
    ) -> dict[str, Any] | None:
        """The body `search_sparse` sends (None when the query is empty)."""
        return self._sparse_search(vector, k, filter)[0]

    def _sparse_search(
        self, vector: SparseVector, k: int, filter: FilterLike
    ) -> tuple[dict[str, Any] | None, float]:
        spec = self._require_spec()
        check_k(k)
        sparse = self.sparse_query(vector, k, self.filters(filter, spec))
        if sparse.truncated_terms:
            log.info(
                "%s: sparse query cut to its largest weights (%d dropped)",
                self.engine,
                sparse.truncated_terms,
            )
        if sparse.query is None:
            return None, sparse.scale
        return self.search_body(k, sparse.query, spec), sparse.scale

    def num_candidates(self, k: int) -> int:
        """kNN candidates per shard for `k` results: `k * num_candidates_factor`, at least
        `min_num_candidates`, at most 10,000 (both engines' limit). HNSW explores this many, so recall@10
        stays near 1 (with k alone, Lucene explores only k)."""
        wanted = max(k, self.min_num_candidates, math.ceil(k * self.num_candidates_factor))
        return min(MAX_RESULT_WINDOW, wanted)

    def text_query(self, text: str, spec: IndexSpec) -> dict[str, Any]:
        if not spec.lexical:
            raise UnsupportedOperation(f"index {spec.name!r} was created with lexical=False")
        if not isinstance(text, str):
            raise TypeError(f"text query must be a string, got {type(text).__name__}")
        return bm25_query(text, spec.text_fields, combined=self._combined_fields and self.bm25_combined())

    def text_search_body(self, text: str, k: int, filter: FilterLike = None) -> dict[str, Any]:
        spec = self._require_spec()
        check_k(k)
        return self.search_body(k, filtered(self.text_query(text, spec), self.filters(filter, spec)), spec)

    def prepare_sparse(
        self, vector: SparseVector, k: int, filter: FilterLike = None
    ) -> PreparedSearch | None:
        """The sparse search for `vector` (None when the query is empty)."""
        body, scale = self._sparse_search(vector, k, filter)
        return None if body is None else PreparedSearch(body, k, "run a sparse search", scale)

    def prepare_dense(self, vector: NDArray[np.float32], k: int, filter: FilterLike = None) -> PreparedSearch:
        """The kNN search for `vector`; its hits are scored with the similarity itself (see `search_dense`)."""
        body = self.dense_search_body(vector, k, filter)
        similarity = self.dense_similarity or "cosine"
        return PreparedSearch(body, k, "run a dense (k-NN) search", similarity=similarity)

    def prepare_text(self, text: str, k: int, filter: FilterLike = None) -> PreparedSearch | None:
        """The BM25 search for `text` (None when the text is blank)."""
        body = self.text_search_body(text, k, filter)
        if not text.strip():
            return None
        return PreparedSearch(body, k, "run a text (BM25) search")

    def prepare_hybrid_search(self, request: HybridRequest) -> PreparedSearch | None:
        """The server-side fused search for `request`; UnsupportedOperation (with the reason) when the
        engine cannot fuse with exactly the hybrid module's semantics."""
        spec = self._require_spec()
        self.check_hybrid(request)
        return self.prepare_hybrid(request, spec)

    def search_sparse(self, vector: SparseVector, k: int, filter: FilterLike = None) -> list[Hit]:
        return self.execute(self.prepare_sparse(vector, k, filter))

    def search_dense(self, vector: NDArray[np.float32], k: int, filter: FilterLike = None) -> list[Hit]:
        """The `k` nearest documents, scored with the similarity itself (cosine, dot product; -d^2 for l2),
        not Lucene's positive transform of it, so dense scores mean the same on every engine."""
        return self.execute(self.prepare_dense(vector, k, filter))

    def execute(self, prepared: PreparedSearch | None) -> list[Hit]:
        """Send a prepared search (after its setup, once) and read its hits; [] for None."""
        if prepared is None:
            return []
        if prepared.setup is not None:
            self.run_setup(prepared.setup)
        index = self._layout().spec.name
        response = self.cluster.search(prepared.body, index, what=prepared.what, **prepared.params)
        return self.read_hits(prepared, response)

    def needs_setup(self, prepared: PreparedSearch) -> bool:
        """Whether `prepared.setup` still has to run before the search is sent (a dialect's business)."""
        return prepared.setup is not None

    def run_setup(self, setup: object) -> None:
        """Create what a prepared search needs first (OpenSearch: its search pipeline)."""

    def read_hits(self, prepared: PreparedSearch, response: Mapping[str, Any]) -> list[Hit]:
        """The hits of a `_search` answer: stored fields and metadata, scores divided by `scale`, kNN
        scores turned back into the similarity."""
        layout = self._layout()
        hits: list[Hit] = []
        for rank, hit in enumerate(response.get("hits", {}).get("hits", [])[: prepared.k], start=1):
            doc = document_from_source(hit.get("_id"), hit.get("_source"), layout, vectors=False)
            fields = {**doc.metadata, **doc.fields}
            score = float(hit.get("_score") or 0.0) / prepared.scale
            if prepared.similarity is not None:
                score = knn_score_to_similarity(score, prepared.similarity)
            hits.append(Hit(id=doc.id, score=score, rank=rank, fields=fields))
        return hits

    def dense_scale_problem(self, fusion: ServerFusion) -> str | None:
        """Why a server-side weighted sum would not add the dense similarity the client-side one adds, or
        None. Lucene scores dense matches with a positive transform of the similarity ((1 + cos) / 2, ...):
        min-max and z-score normalisation undo it, `none` and `l2` do not."""
        if fusion.method != "linear" or fusion.normalizer in ("minmax", "zscore"):
            return None
        has_dense = "dense" in fusion.signals if fusion.signals else self._has_dense_field()
        if not has_dense:
            return None
        return (
            f"{self.cluster.engine_label} scores dense matches as a positive transform of the similarity "
            f"((1 + cos) / 2 for cosine), so a weighted sum with normalizer {fusion.normalizer!r} would not add "
            "the cosine the client-side fusion adds; use minmax or zscore, or rrf"
        )

    def _has_dense_field(self) -> bool:
        spec = self.spec or self._pending_spec
        return spec is None or spec.dense_field is not None

    def _indexed_values(self, values: NDArray[np.float32]) -> NDArray[np.float32]:
        """Weights as Lucene indexes them: times the dialect's `sparse_scale`, 9 significant bits."""
        scale = self.layout.sparse_scale if self.layout is not None else 1.0
        return truncate_9bit(values * np.float32(scale) if scale != 1.0 else values)

    def stored_sparse(self, vector: SparseVector) -> SparseVector:
        """Lucene scores stored weights with 9 significant bits (after the dialect's `sparse_scale`)."""
        scale = self.layout.sparse_scale if self.layout is not None else 1.0
        stored = self._indexed_values(vector.values)
        if scale != 1.0:
            stored = (stored / np.float32(scale)).astype(np.float32)
        return SparseVector(vector.indices, stored, sort=False)

    def search_text(self, text: str, k: int, filter: FilterLike = None) -> list[Hit]:
        return self.execute(self.prepare_text(text, k, filter))

    def search_hybrid(self, request: HybridRequest) -> list[Hit]:
        """Fuse server-side; UnsupportedOperation (with the reason) when the engine cannot fuse with exactly
        the hybrid module's semantics: the same on every engine, so the searcher falls back client-side."""
        return self.execute(self.prepare_hybrid_search(request))

    def check_hybrid(self, request: HybridRequest) -> tuple[Signal, ...]:
        """The request's signals, after checking it; UnsupportedOperation with the reason when the engine
        cannot fuse it with exactly the hybrid module's semantics."""
        check_k(request.k)
        check_k(request.candidates, "candidates")
        if request.candidates < request.k:
            raise ValueError(f"candidates ({request.candidates}) must be >= k ({request.k})")
        signals = request.signals()
        if not signals:
            raise ValueError("a hybrid request needs at least one of sparse, dense or text")
        if request.fusion.weights is not None and len(request.fusion.weights) != len(signals):
            raise ValueError(
                f"fusion has {len(request.fusion.weights)} weights for {len(signals)} signals {signals}"
            )
        try:
            self.refuse_unfusable(request.fusion, len(signals))
        except UnsupportedOperation as exc:
            self.log_once(str(exc))
            raise
        return signals

    def run_search(
        self, body: Mapping[str, Any], k: int, scale: float = 1.0, *, what: str = "search", **params: Any
    ) -> list[Hit]:
        """Run a `_search` and read its hits (scores divided by `scale`)."""
        return self.execute(PreparedSearch(dict(body), k, what, scale, params))

    def explain_sparse(self, vector: SparseVector, doc_id: DocId) -> list[tuple[int, str, float]]:
        """Per-token terms of the sparse score the engine gives `doc_id` for `vector`: `(token id, token
        (from the vocabulary, else the id), query weight x 9-bit stored weight)`, largest first. They add up
        to the hit's score: the query as sent (capped, rescaled) times the stored 9-bit weights, divided by
        the same scale as the hit's score."""
        (doc,) = self.get([doc_id])
        sent = self.sparse_query(vector, 1, [])
        if doc is None or doc.sparse is None or sent.vector is None:
            return []
        query = sent.vector
        shared, qi, di = np.intersect1d(
            query.indices, doc.sparse.indices, assume_unique=True, return_indices=True
        )
        stored = self._indexed_values(doc.sparse.values[di]).astype(np.float64)
        terms = query.values[qi].astype(np.float64) * stored / sent.scale
        order = np.lexsort((shared, -terms))
        return [(int(shared[i]), self.namer.label(int(shared[i])), float(terms[i])) for i in order]

    # -- fusion ------------------------------------------------------------------------------------------

    @abstractmethod
    def capabilities(self) -> Capabilities:
        """What this engine can do."""

    # -- plumbing ---------------------------------------------------------------------------------------

    def log_once(self, message: str, level: int = logging.INFO) -> None:
        if message not in self._logged:
            self._logged.add(message)
            log.log(level, "%s: %s", self.engine, message)

    def _check_open(self) -> None:
        if self._closed:
            raise ConnectorError(f"this {type(self).__name__} is closed")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._owns_client:
            self.cluster.close()


def filtered(query: Mapping[str, Any], filters: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """`query` scored as is, restricted by filter-context clauses (which add nothing to the score)."""
    if not filters:
        return dict(query)
    return {"bool": {"must": [dict(query)], "filter": list(filters)}}


def _one_text_analyzer(props: Mapping[str, Any], fields: Sequence[str]) -> bool:
    """Whether `fields` are all `text` with one analyzer, as `combined_fields` (BM25F) needs."""
    mappings = [props.get(name) or {} for name in fields]
    if any(m.get("type") != "text" for m in mappings):
        return False
    analyzers = {(m.get("analyzer"), m.get("search_analyzer", m.get("analyzer"))) for m in mappings}
    return len(analyzers) == 1


def _by_lucene_id(
    ids: Iterable[DocId], action: Callable[[str, DocId], BulkAction]
) -> Iterator[BulkAction | ItemOutcome]:
    """One bulk action per id (`action(lucene_id, doc_id)`); an id Lucene cannot take fails alone."""
    for pos, doc_id in enumerate(ids):
        try:
            target = lucene_id(doc_id, f"id {pos}")
        except DocumentError as exc:
            yield ItemOutcome(id=doc_id, ok=False, status="invalid", error=str(exc))
            continue
        yield action(target, doc_id)
