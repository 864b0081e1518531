"""The Elasticsearch / OpenSearch side of a migration: read the old index (PIT + `search_after`), create the
new index with its mapping and settings plus the new fields, bulk-write, swap the alias in one `_aliases` call
(`reindex`), or add the mappings in place and bulk-`update` each document (`in-place`).

`ClusterApi` hides the few call-shape differences of the two official clients (`elasticsearch`,
`opensearch-py`); every body comes from `lucene_bodies` (pure, contract-tested). Resuming a scan: with a
stable sort (`_id`, the OpenSearch default, or a unique field given as `sort_field`) a new PIT continues
after the saved sort values; with Elasticsearch's default `_shard_doc` order (bound to one PIT) the saved PIT
is reused while it lives (`keep_alive`, renewed by every page), and once it expired the scan starts over --
writes are by id, so that re-writes documents but never duplicates them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from spladebridge.connectors.base import (
    Capabilities,
    Connector,
    DocId,
    Document,
    Hit,
    IndexSpec,
    ItemOutcome,
    UnsupportedOperation,
    WriteReport,
)
from spladebridge.connectors.bulk import BulkAction, BulkConfig, run_bulk
from spladebridge.connectors.es_bodies import EsVersion
from spladebridge.connectors.filters import FilterLike
from spladebridge.connectors.lucene_queries import FeatureNameError, FeatureNamer
from spladebridge.encoder.sparse_vector import SparseVector

from .lucene_bodies import (
    MIGRATION_META_KEY,
    AddedFields,
    Flavor,
    alias_swap_body,
    bm25_search_body,
    dense_search_body,
    ids_search_body,
    in_place_mapping_body,
    pit_page_body,
    reindex_index_body,
    sparse_search_body,
    update_body,
    vector_fields,
)
from .sources import SourceBatch

__all__ = [
    "ClusterApi",
    "InPlaceTarget",
    "LuceneIndexSource",
    "MigrationSetupError",
    "ReindexTarget",
    "detect_flavor",
    "hit_to_document",
    "resolve_reindex",
]

log = logging.getLogger("spladebridge.migrate")


class MigrationSetupError(ValueError):
    """The cluster is not in a state the migration can start from (alias on several indices, field clash)."""


def detect_flavor(info: Mapping[str, Any]) -> Flavor:
    """`opensearch` when `GET /` says so (version.distribution), else `elasticsearch`."""
    version = info.get("version") or {}
    return "opensearch" if version.get("distribution") == "opensearch" else "elasticsearch"


def _server_info(client: Any) -> dict[str, Any]:
    """`GET /`, or the local node's version where a minimal distribution has no `GET /` handler (Elasticsearch
    moved it to the rest-root module, which its integ-test distribution leaves out)."""
    try:
        return dict(client.info())
    except Exception as exc:
        status = getattr(exc, "status_code", None) or getattr(getattr(exc, "meta", None), "status", None)
        if status not in (404, 405):
            raise
    nodes = client.nodes.info(node_id="_local", filter_path="nodes.*.version")
    versions = [str(n.get("version")) for n in dict(nodes.get("nodes") or {}).values()]
    if not versions:
        raise MigrationSetupError("the cluster answers neither GET / nor GET /_nodes/_local with a version")
    return {"version": {"number": versions[0]}}


class ClusterApi:
    """The calls a migration makes, on the `elasticsearch` or the `opensearch-py` client."""

    def __init__(self, client: Any, flavor: Flavor | None = None) -> None:
        self.client = client
        self.info: dict[str, Any] = _server_info(client)
        self.flavor: Flavor = flavor or detect_flavor(self.info)
        self.es_version: EsVersion | None = None
        if self.flavor == "elasticsearch":
            self.es_version = EsVersion.from_info(self.info)

    @property
    def version_text(self) -> str:
        return str((self.info.get("version") or {}).get("number", "?"))

    def _os(self) -> bool:
        return self.flavor == "opensearch"

    # -- index admin ------------------------------------------------------------------------------------

    def exists(self, index: str) -> bool:
        return bool(self.client.indices.exists(index=index))

    def get_mappings(self, index: str) -> dict[str, Any]:
        response = self.client.indices.get_mapping(index=index)
        entry: Mapping[str, Any] = response.get(index) or next(iter(response.values()), {})
        return dict(entry.get("mappings") or {})

    def get_index_settings(self, index: str) -> dict[str, Any]:
        response = self.client.indices.get_settings(index=index)
        entry: Mapping[str, Any] = response.get(index) or next(iter(response.values()), {})
        return dict((entry.get("settings") or {}).get("index") or {})

    def get_alias(self, name: str) -> dict[str, Any] | None:
        """`{index: alias options}` for the alias `name`, or None when no alias has that name."""
        if not self.client.indices.exists_alias(name=name):
            return None
        response = self.client.indices.get_alias(name=name)
        return {
            index: dict((entry.get("aliases") or {}).get(name) or {}) for index, entry in response.items()
        }

    def create_index(self, index: str, body: Mapping[str, Any]) -> None:
        self.client.indices.create(index=index, body=dict(body))

    def put_mapping(self, index: str, body: Mapping[str, Any]) -> None:
        self.client.indices.put_mapping(index=index, body=dict(body))

    def update_aliases(self, body: Mapping[str, Any]) -> None:
        self.client.indices.update_aliases(body=dict(body))

    def delete_index(self, index: str) -> None:
        self.client.indices.delete(index=index)

    def refresh(self, index: str) -> None:
        self.client.indices.refresh(index=index)

    # -- reads ------------------------------------------------------------------------------------------

    def count(self, index: str) -> int:
        return int(self.client.count(index=index)["count"])

    def open_pit(self, index: str, keep_alive: str) -> str:
        if self._os():
            return str(self.client.create_pit(index=index, params={"keep_alive": keep_alive})["pit_id"])
        return str(self.client.open_point_in_time(index=index, keep_alive=keep_alive)["id"])

    def close_pit(self, pit_id: str) -> None:
        try:
            if self._os():
                self.client.delete_pit(body={"pit_id": [pit_id]})
            else:
                self.client.close_point_in_time(body={"id": pit_id})
        except Exception as exc:  # it expires by itself after keep_alive
            log.warning("could not close the point in time: %s", exc)

    def search(self, body: Mapping[str, Any], index: str | None = None) -> dict[str, Any]:
        if index is None:
            return dict(self.client.search(body=dict(body)))
        return dict(self.client.search(index=index, body=dict(body)))

    def mget(self, index: str, ids: Sequence[str]) -> list[dict[str, Any]]:
        """Documents by id with their whole `_source`, vectors included, in the order asked.

        Elasticsearch 9.2+ leaves vectors out of `_source` by default and `_mget` cannot ask for them, so
        there an `ids` search with `_source_exclude_vectors=false` stands in for it.
        """
        if self.es_version is not None and self.es_version.exclude_source_vectors:
            body = ids_search_body(ids)
            response = self.client.search(index=index, body=body, source_exclude_vectors=False)
            found = {str(h["_id"]): h for h in response.get("hits", {}).get("hits", [])}
            return [
                {"_id": i, "found": True, "_source": found[i].get("_source", {})}
                if i in found
                else {"_id": i, "found": False}
                for i in ids
            ]
        response = self.client.mget(index=index, body={"ids": list(ids)})
        return [dict(d) for d in response.get("docs", [])]

    # -- writes -----------------------------------------------------------------------------------------

    def bulk(self, actions: Iterable[BulkAction | ItemOutcome], config: BulkConfig) -> WriteReport:
        if self._os():
            from opensearchpy import ConnectionError as OsConnectionError
            from opensearchpy import ConnectionTimeout as OsTimeout
            from opensearchpy.helpers import streaming_bulk as os_streaming_bulk

            return run_bulk(
                os_streaming_bulk,
                self.client,
                actions,
                config,
                retryable_exceptions=(OsConnectionError, OsTimeout),
            )
        from elastic_transport import ConnectionError as EsConnectionError
        from elastic_transport import ConnectionTimeout as EsTimeout
        from elasticsearch.helpers import streaming_bulk as es_streaming_bulk

        return run_bulk(
            es_streaming_bulk,
            self.client,
            actions,
            config,
            retryable_exceptions=(EsConnectionError, EsTimeout),
        )


def _text_value(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return "\n".join(value)
    return None


def hit_to_document(
    hit: Mapping[str, Any],
    text_fields: Sequence[str],
    added: AddedFields,
    namer: FeatureNamer | None = None,
) -> Document:
    """A hit / mget entry as a `Document`: text fields (a list of strings joined by newlines) in `fields`,
    the rest of `_source` in `metadata` (list-valued text fields keep their original value there too, so the
    source can be rebuilt exactly), the added fields parsed back into vectors when `namer` is given."""
    source = dict(hit.get("_source") or {})
    new_names = set(added.names())
    fields: dict[str, str] = {}
    metadata: dict[str, Any] = {}
    for key, value in source.items():
        if key in new_names:
            continue
        text = _text_value(value) if key in text_fields else None
        if text is not None:
            fields[key] = text
            if not isinstance(value, str):
                metadata[key] = value
        else:
            metadata[key] = value
    sparse: SparseVector | None = None
    dense: NDArray[np.float32] | None = None
    if namer is not None:
        raw = source.get(added.sparse_field)
        if isinstance(raw, Mapping):
            try:
                sparse = namer.from_features(raw)
            except FeatureNameError as exc:
                raise ValueError(f"document {hit.get('_id')!r}: {exc}") from None
        if added.dense_field is not None and isinstance(source.get(added.dense_field), list):
            dense = np.asarray(source[added.dense_field], dtype=np.float32)
    return Document(id=str(hit["_id"]), fields=fields, metadata=metadata, sparse=sparse, dense=dense)


def source_of(doc: Document) -> dict[str, Any]:
    """The `_source` a document was read from (fields, then metadata, which wins for list-valued text)."""
    return {**doc.fields, **doc.metadata}


class LuceneIndexSource:
    """An Elasticsearch / OpenSearch index read with a point in time and `search_after`.

    `sort_field`: a unique, sortable field for a resumable order across PITs; default `_id` on OpenSearch,
    `_shard_doc` (PIT-bound) on Elasticsearch, where sorting on `_id` is disabled by default.
    """

    def __init__(
        self,
        api: ClusterApi,
        index: str,
        text_fields: Sequence[str],
        *,
        added: AddedFields | None = None,
        sort_field: str | None = None,
        keep_alive: str = "10m",
    ) -> None:
        self.api = api
        self.index = index
        self.text_fields = tuple(text_fields)
        self.added = added or AddedFields()
        self.keep_alive = keep_alive
        if sort_field is None:
            sort_field = "_id" if api.flavor == "opensearch" else "_shard_doc"
        self.sort_field = sort_field
        self.restarts = 0
        self._open_pit: str | None = None

    @property
    def stable_sort(self) -> bool:
        return self.sort_field != "_shard_doc"

    def sort(self) -> list[str]:
        """The sort clause: the field name alone, which sorts ascending."""
        return [self.sort_field]

    def describe(self) -> dict[str, Any]:
        return {"kind": self.api.flavor, "index": self.index, "sort": self.sort_field}

    def count(self) -> int:
        return self.api.count(self.index)

    def _page(self, pit_id: str, size: int, search_after: list[Any] | None) -> dict[str, Any]:
        body = pit_page_body(pit_id, size, self.keep_alive, self.sort(), search_after, self.added.names())
        return self.api.search(body)

    def read(self, cursor: Mapping[str, Any] | None, batch_size: int) -> Iterator[SourceBatch]:
        position = int(cursor.get("position", 0)) if cursor else 0
        search_after: list[Any] | None = (
            list(cursor["search_after"]) if cursor and cursor.get("search_after") else None
        )
        pit_id: str | None = str(cursor["pit_id"]) if cursor and cursor.get("pit_id") else None
        if pit_id is not None and search_after is not None:
            try:
                response = self._page(pit_id, batch_size, search_after)
            except Exception as exc:
                if not _pit_gone(exc):
                    raise
                if not self.stable_sort:
                    log.warning(
                        "the saved point in time is gone (%s); _shard_doc order is bound to it, so the "
                        "scan of %s starts over (writes are by id: documents are re-written, not duplicated)",
                        exc,
                        self.index,
                    )
                    self.restarts += 1
                    position, search_after = 0, None
                pit_id = None
                response = None
        else:
            pit_id = None
            response = None
        if pit_id is None:
            pit_id = self.api.open_pit(self.index, self.keep_alive)
            response = self._page(pit_id, batch_size, search_after)
        self._open_pit = pit_id
        while response is not None:
            hits = response.get("hits", {}).get("hits", [])
            pit_id = str(response.get("pit_id") or pit_id)
            self._open_pit = pit_id
            if not hits:
                break
            docs = [hit_to_document(h, self.text_fields, self.added) for h in hits]
            search_after = list(hits[-1]["sort"])
            batch = SourceBatch(
                docs,
                {
                    "position": position + len(hits),
                    "pit_id": pit_id,
                    "search_after": search_after,
                    "last_id": hits[-1]["_id"],
                },
                first_position=position,
            )
            position += len(hits)
            yield batch
            if len(hits) < batch_size:
                break
            response = self._page(pit_id, batch_size, search_after)
        # Only a scan read to its end closes its PIT: after a crash it lives on for `keep_alive`, so that a
        # resumed run can continue in it (the only way to resume `_shard_doc` order). `close()` releases it.
        self.release()

    def release(self) -> None:
        """Close the point in time of an unfinished scan now, instead of letting it expire."""
        if self._open_pit is not None:
            pit, self._open_pit = self._open_pit, None
            self.api.close_pit(pit)

    def search_text(self, text: str, k: int) -> list[Hit] | None:
        body = bm25_search_body(text, self.text_fields, k, self.added.names())
        return _hits(self.api.search(body, index=self.index))

    def close(self) -> None:
        """Leaves an unfinished scan's PIT to expire (a resumed run may still use it); see `release()`."""
        return None


def _pit_gone(exc: Exception) -> bool:
    """True for the error of a search in an expired or closed point in time (HTTP 404, search context missing)."""
    status = getattr(exc, "status_code", None) or getattr(exc, "status", None)
    text = str(exc)
    return status == 404 or "search_context_missing" in text or "No search context found" in text


def _hits(response: Mapping[str, Any]) -> list[Hit]:
    hits = response.get("hits", {}).get("hits", [])
    return [
        Hit(
            id=str(h["_id"]),
            score=float(h.get("_score") or 0.0),
            rank=rank,
            fields=dict(h.get("_source") or {}),
        )
        for rank, h in enumerate(hits, start=1)
    ]


class _LuceneTarget:
    """What both Lucene targets share: writes through `run_bulk`, reads back, searches for verification."""

    def __init__(
        self,
        api: ClusterApi,
        index: str,
        text_fields: Sequence[str],
        added: AddedFields,
        *,
        namer: FeatureNamer | None = None,
        bulk: BulkConfig | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> None:
        if api.flavor == "opensearch" and added.sparse_type != "rank_features":
            raise ValueError("OpenSearch migrations write rank_features")
        self.api = api
        self.index = index
        self.text_fields = tuple(text_fields)
        self.added = added
        self.namer = namer or FeatureNamer()
        self.bulk_config = bulk or BulkConfig()
        self.meta = {
            "sparse_field": added.sparse_field,
            "sparse_type": added.sparse_type,
            "dense_field": added.dense_field,
            "dense_dim": added.dense_dim,
            "feature_names": self.namer.mode,
            "text_fields": list(self.text_fields),
            **dict(meta or {}),
        }

    def _actions(self, documents: Sequence[Document]) -> Iterator[BulkAction | ItemOutcome]:
        raise NotImplementedError

    def write(self, documents: Sequence[Document]) -> WriteReport:
        return self.api.bulk(self._actions(documents), self.bulk_config)

    def _vectors(self, doc: Document) -> dict[str, Any] | ItemOutcome:
        try:
            return vector_fields(self.added, self.namer, doc.sparse, doc.dense)
        except (ValueError, FeatureNameError) as exc:
            return ItemOutcome(doc.id, ok=False, status="invalid", error=str(exc))

    def flush(self) -> None:
        self.api.refresh(self.index)

    def count(self) -> int:
        self.api.refresh(self.index)
        return self.api.count(self.index)

    def get(self, ids: Sequence[DocId]) -> list[Document | None]:
        keys = [str(i) for i in ids]
        entries = self.api.mget(self.index, keys)
        out: list[Document | None] = []
        for entry in entries:
            out.append(
                hit_to_document(entry, self.text_fields, self.added, self.namer)
                if entry.get("found")
                else None
            )
        return out

    def search_connector(self) -> Connector | None:
        return LuceneSearchView(self.api, self.index, self.text_fields, self.added, self.namer)

    def close(self) -> None:
        return None


class ReindexTarget(_LuceneTarget):
    """A new index with the old one's mappings and settings plus the new fields; finalize swaps the alias.

    `alias`: the name clients use. When it is an alias of `old_index`, finalize moves it (remove + add in
    one `_aliases` call). When clients use the old index's own name (`alias == old_index`), the swap deletes
    the old index in the same call (`remove_index`), so it needs `delete_old=True`.
    """

    def __init__(
        self,
        api: ClusterApi,
        old_index: str,
        new_index: str,
        alias: str,
        text_fields: Sequence[str],
        added: AddedFields,
        *,
        alias_options: Mapping[str, Any] | None = None,
        delete_old: bool = False,
        namer: FeatureNamer | None = None,
        bulk: BulkConfig | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> None:
        if new_index == old_index:
            raise MigrationSetupError(f"the new index must differ from the old one ({old_index!r})")
        if alias == old_index and not delete_old:
            raise MigrationSetupError(
                f"clients use the index {old_index!r} by its own name, so the swap must delete it in the "
                "same "
                "call and give its name to the new index as an alias: pass delete_old (--delete-old), or "
                "name an alias for clients to switch to"
            )
        super().__init__(
            api,
            new_index,
            text_fields,
            added,
            namer=namer,
            bulk=bulk,
            meta={"source_index": old_index, **dict(meta or {})},
        )
        self.old_index = old_index
        self.alias = alias
        self.alias_options = dict(alias_options or {})
        self.delete_old = delete_old

    def describe(self) -> dict[str, Any]:
        return {
            "kind": f"{self.api.flavor}-reindex",
            "old_index": self.old_index,
            "new_index": self.index,
            "alias": self.alias,
            "fields": list(self.added.names()),
        }

    def index_body(self) -> dict[str, Any]:
        return reindex_index_body(
            self.api.flavor,
            self.api.get_mappings(self.old_index),
            self.api.get_index_settings(self.old_index),
            self.added,
            self.meta,
            self.api.es_version,
        )

    def prepare(self) -> list[str]:
        body = self.index_body()
        if self.api.exists(self.index):
            existing = self.api.get_mappings(self.index).get("_meta", {}).get(MIGRATION_META_KEY)
            if not existing or existing.get("source_index") != self.old_index:
                raise MigrationSetupError(
                    f"index {self.index!r} already exists and was not created by a migration of "
                    f"{self.old_index!r}; "
                    "choose another new index name"
                )
            return [f"reuse {self.index!r} (created by an earlier run of this migration)"]
        self.api.create_index(self.index, body)
        return [
            f"create index {self.index!r} with the mappings and settings of {self.old_index!r} "
            f"+ {', '.join(self.added.names())}"
        ]

    def _actions(self, documents: Sequence[Document]) -> Iterator[BulkAction | ItemOutcome]:
        for doc in documents:
            vectors = self._vectors(doc)
            if isinstance(vectors, ItemOutcome):
                yield vectors
                continue
            yield BulkAction("index", self.index, str(doc.id), {**source_of(doc), **vectors}, item_id=doc.id)

    def swap_body(self) -> dict[str, Any]:
        return alias_swap_body(
            self.alias,
            self.old_index,
            self.index,
            alias_options=self.alias_options,
            remove_old=self.alias == self.old_index,
        )

    def finalize(self) -> list[str]:
        self.api.refresh(self.index)
        current = self.api.get_alias(self.alias)
        if current is not None and set(current) == {self.index}:
            # killed after the swap but before the checkpoint said so: the swap is not repeated
            done = [f"alias {self.alias!r} already points at {self.index!r}"]
            if self.delete_old and self.alias != self.old_index and self.api.exists(self.old_index):
                self.api.delete_index(self.old_index)
                done.append(f"deleted the old index {self.old_index!r}")
            return done
        self.api.update_aliases(self.swap_body())
        done = [f"alias {self.alias!r}: {self.old_index!r} -> {self.index!r} (one _aliases call)"]
        if self.alias == self.old_index:
            done.append(
                f"deleted {self.old_index!r} in the same call; its name is now an alias of {self.index!r}"
            )
        elif self.delete_old:
            self.api.delete_index(self.old_index)
            done.append(f"deleted the old index {self.old_index!r}")
        else:
            done.append(f"kept the old index {self.old_index!r}")
        return done


class InPlaceTarget(_LuceneTarget):
    """The existing index: the new field mappings are added, each document gets a partial `update`."""

    def describe(self) -> dict[str, Any]:
        return {
            "kind": f"{self.api.flavor}-in-place",
            "index": self.index,
            "fields": list(self.added.names()),
        }

    def mapping_body(self) -> dict[str, Any]:
        return in_place_mapping_body(
            self.api.flavor, self.api.get_mappings(self.index), self.added, self.meta, self.api.es_version
        )

    def prepare(self) -> list[str]:
        if self.api.flavor == "opensearch" and self.added.dense_field is not None:
            knn = str(self.api.get_index_settings(self.index).get("knn", "false")).lower()
            if knn != "true":
                raise MigrationSetupError(
                    f"index {self.index!r} was created without index.knn (a static setting), so a knn_vector "
                    "field "
                    "cannot be added in place; migrate with reindex, or without a dense field"
                )
        props = self.api.get_mappings(self.index).get("properties") or {}
        body = self.mapping_body()
        if all(name in props for name in self.added.names()):
            return [f"mappings of {', '.join(self.added.names())} already in {self.index!r}"]
        self.api.put_mapping(self.index, body)
        return [f"add mappings {', '.join(self.added.names())} to {self.index!r}"]

    def _actions(self, documents: Sequence[Document]) -> Iterator[BulkAction | ItemOutcome]:
        for doc in documents:
            vectors = self._vectors(doc)
            if isinstance(vectors, ItemOutcome):
                yield vectors
            elif not vectors:
                yield ItemOutcome(doc.id, ok=True, status="noop (no text, nothing to add)")
            else:
                yield BulkAction("update", self.index, str(doc.id), update_body(vectors), item_id=doc.id)

    def finalize(self) -> list[str]:
        self.api.refresh(self.index)
        return [f"refreshed {self.index!r}; its documents now carry {', '.join(self.added.names())}"]


class LuceneSearchView(Connector):
    """A read-only connector over a migrated index, so `HybridSearcher` runs BM25, sparse and dense on it."""

    def __init__(
        self, api: ClusterApi, index: str, text_fields: Sequence[str], added: AddedFields, namer: FeatureNamer
    ) -> None:
        self.api = api
        self.index = index
        self.text_fields = tuple(text_fields)
        self.added = added
        self.namer = namer
        self.spec = IndexSpec(
            name=index,
            sparse_field=added.sparse_field,
            dense_field=added.dense_field,
            dense_dim=added.dense_dim,
            text_fields=self.text_fields,
        )

    def capabilities(self) -> Capabilities:
        return Capabilities(
            engine=self.api.flavor,
            version=self.api.version_text,
            sparse=True,
            dense=self.added.dense_field is not None,
            lexical=True,
            sparse_field_types=(self.added.sparse_type,),
        )

    def _run(self, body: Mapping[str, Any]) -> list[Hit]:
        return _hits(self.api.search(body, index=self.index))

    def search_sparse(self, vector: SparseVector, k: int, filter: FilterLike = None) -> list[Hit]:
        _no_filter(filter)
        if not vector:
            return []
        return self._run(
            sparse_search_body(self.api.flavor, self.added, self.namer, vector, k, self.added.names())
        )

    def search_dense(self, vector: NDArray[np.float32], k: int, filter: FilterLike = None) -> list[Hit]:
        _no_filter(filter)
        values = np.asarray(vector, dtype=np.float32).tolist()
        return self._run(dense_search_body(self.api.flavor, self.added, values, k, self.added.names()))

    def search_text(self, text: str, k: int, filter: FilterLike = None) -> list[Hit]:
        _no_filter(filter)
        return self._run(bm25_search_body(text, self.text_fields, k, self.added.names()))

    def count(self) -> int:
        return self.api.count(self.index)

    def ensure_index(self, spec: IndexSpec) -> None:
        raise UnsupportedOperation("LuceneSearchView is read-only")

    def upsert(self, documents: Iterable[Document]) -> WriteReport:
        raise UnsupportedOperation("LuceneSearchView is read-only")

    def delete(self, ids: Iterable[DocId]) -> WriteReport:
        raise UnsupportedOperation("LuceneSearchView is read-only")

    def get(self, ids: Sequence[DocId]) -> list[Document | None]:
        raise UnsupportedOperation("LuceneSearchView searches only")

    def scan(self, batch_size: int = 500) -> Iterator[Document]:
        raise UnsupportedOperation("LuceneSearchView searches only")

    def close(self) -> None:
        return None


def _no_filter(filter: FilterLike) -> None:
    if filter is not None:
        raise UnsupportedOperation("verification searches take no filter")


def resolve_reindex(api: ClusterApi, name: str, alias: str | None = None) -> tuple[str, str, dict[str, Any]]:
    """(old index, alias clients use, alias options) for `name`, an alias of one index or an index.

    An alias pointing at several indices cannot be swapped to one new index: MigrationSetupError.
    """
    found = api.get_alias(name)
    if found is not None:
        if len(found) != 1:
            raise MigrationSetupError(
                f"alias {name!r} points at {len(found)} indices ({', '.join(sorted(found))}); "
                "migrate one index"
            )
        ((old, options),) = found.items()
        if alias is not None and alias != name:
            raise MigrationSetupError(
                f"{name!r} is itself an alias; it is the one swapped (drop --alias {alias!r})"
            )
        return old, name, options
    if not api.exists(name):
        raise MigrationSetupError(f"no index or alias named {name!r}")
    if alias is None:
        return name, name, {}
    existing = api.get_alias(alias)
    if existing is not None and set(existing) != {name}:
        raise MigrationSetupError(
            f"alias {alias!r} already points at {', '.join(sorted(existing))}, not at {name!r}"
        )
    if existing is None:
        # the alias does not exist yet: the swap's remove action would fail, so it is added to the old index
        # first (clients can move to it before the migration ends)
        api.update_aliases({"actions": [{"add": {"index": name, "alias": alias}}]})
        return name, alias, {}
    return name, alias, existing[name]


def default_new_index(old_index: str) -> str:
    """`<old>-splade`, or `<old>-splade-<n+1>` when the old index is itself a migration result."""
    stem, _, suffix = old_index.rpartition("-splade")
    if stem and (suffix == "" or (suffix.startswith("-") and suffix[1:].isdigit())):
        n = int(suffix[1:]) if suffix else 1
        return f"{stem}-splade-{n + 1}"
    return f"{old_index}-splade"
