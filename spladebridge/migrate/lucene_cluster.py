"""The Elasticsearch / OpenSearch side of a migration: read the old index (PIT + `search_after`), create the
new index with its mapping and settings plus the vector fields, write, and swap the alias in one `_aliases`
call (`reindex`); or add the vector mappings in place and update each document's vectors (`in-place`).

Everything goes through the connectors' Lucene layer: `LuceneClient` for the calls (one error type, one bulk
path with one retry policy), the dialect connector for the vector mappings, the stored spec, writes, reads
and searches, and the one document layout for reading the source. So a migrated index is an ordinary index:
`spladebridge.connect(url, index=alias)` and every CLI command open it with no spec given. Only the bodies
that belong to a migration (the copied index, the mapping update, the alias swap) live in `lucene_bodies`.

Resuming a scan: with a stable sort (`_id`, the OpenSearch default, or a unique field given as `sort_field`) a
new PIT continues after the saved sort values; with Elasticsearch's default `_shard_doc` order (bound to one
PIT) the saved PIT is reused while it lives (`keep_alive`, renewed by every page), and once it expired the
scan starts over -- writes are by id, so that re-writes documents but never duplicates them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from spladebridge.connectors.base import ConnectorError, DocId, Document, Hit, ItemOutcome, WriteReport
from spladebridge.connectors.bulk import BulkConfig, item_version
from spladebridge.connectors.lucene_client import DocVersion, LuceneClient
from spladebridge.connectors.lucene_connector import LuceneConnector, lucene_connector, pit_page_body
from spladebridge.connectors.lucene_documents import Layout, document_from_source
from spladebridge.connectors.lucene_queries import FeatureNamer, bm25_query

from .lucene_bodies import (
    MIGRATION_META_KEY,
    AddedFields,
    alias_add_body,
    alias_swap_body,
    bm25_fields,
    in_place_mapping_body,
    migrated_meta,
    reindex_index_body,
)
from .sources import SourceBatch

__all__ = [
    "InPlaceTarget",
    "LuceneIndexSource",
    "MigrationSetupError",
    "ReindexTarget",
    "default_new_index",
    "resolve_reindex",
]

log = logging.getLogger("spladebridge.migrate")


class MigrationSetupError(ValueError):
    """The cluster is not in a state the migration can start from (alias on several indices, field clash)."""


class LuceneIndexSource:
    """An Elasticsearch / OpenSearch index read with a point in time and `search_after`, its documents read
    with the connectors' layout (text fields as text, the rest as metadata; the vector fields left out).

    `sort_field`: a unique, sortable field for a resumable order across PITs; default `_id` on OpenSearch,
    `_shard_doc` (PIT-bound) on Elasticsearch, where sorting on `_id` is disabled by default.
    """

    def __init__(
        self,
        api: LuceneClient,
        index: str,
        text_fields: Sequence[str],
        *,
        added: AddedFields | None = None,
        sort_field: str | None = None,
        keep_alive: str = "10m",
        track_versions: bool = False,
    ) -> None:
        self.api = api
        self.index = index
        self.text_fields = tuple(text_fields)
        self.added = added or AddedFields()
        self.keep_alive = keep_alive
        #: with `track_versions`, every page read carries each document's `(seq_no, primary_term)`
        self.track_versions = track_versions
        #: the versions of the documents handed out last (a scan page or a `fetch`), by Lucene id
        self.read_versions: dict[str, DocVersion] = {}
        if sort_field is None:
            sort_field = "_id" if api.dialect == "opensearch" else "_shard_doc"
        self.sort_field = sort_field
        self.restarts = 0
        self._open_pit: str | None = None
        self._layout = Layout(
            self.added.spec(index, self.text_fields), FeatureNamer(), stamp=False, trust_meta=False
        )

    @property
    def stable_sort(self) -> bool:
        return self.sort_field != "_shard_doc"

    def describe(self) -> dict[str, Any]:
        return {"kind": self.api.dialect, "index": self.index, "sort": self.sort_field}

    def count(self) -> int:
        return self.api.count(self.index)

    def _page(self, pit_id: str, size: int, search_after: list[Any] | None) -> dict[str, Any]:
        body = pit_page_body(
            pit_id,
            size,
            self.keep_alive,
            [self.sort_field],
            search_after,
            self.added.names(),
            versions=self.track_versions,
        )
        return self.api.search(body, what="scan the source index")

    def _document(self, hit: Mapping[str, Any]) -> Document:
        return document_from_source(str(hit["_id"]), hit.get("_source"), self._layout, vectors=False)

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
            docs = [self._document(h) for h in hits]
            self.read_versions = self._versions(hits)
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

    def _versions(self, entries: Sequence[Mapping[str, Any]]) -> dict[str, DocVersion]:
        if not self.track_versions:
            return {}
        out: dict[str, DocVersion] = {}
        for entry in entries:
            version = item_version(entry)
            if version is None:
                raise ConnectorError(
                    f"{self.api.dialect}: {entry.get('_id')!r} of {self.index!r} came back without _seq_no",
                    index=self.index,
                )
            out[str(entry["_id"])] = version
        return out

    # -- change capture (a live migration) ---------------------------------------------------------------

    def scan_versions(self, batch_size: int = 10_000) -> dict[str, DocVersion]:
        """Every document's id and version, read without `_source` (after a refresh, so every acknowledged
        write is seen)."""
        self.api.refresh(self.index)
        return dict(lucene_connector(self.api).scan_versions(self.index, batch_size))

    def fetch(self, ids: Sequence[str]) -> list[Document | None]:
        """The documents `ids` as they are now (None: deleted), their versions kept in `read_versions`."""
        entries = self.api.mget(self.index, list(ids)) if ids else []
        found = [e for e in entries if e.get("found")]
        self.read_versions = self._versions(found)
        return [self._document(e) if e.get("found") else None for e in entries]

    def exists(self) -> bool:
        return self.api.exists(self.index)

    def block_writes(self) -> None:
        """The start of the freeze: the engine refuses writes to the source from now on."""
        self.api.add_write_block(self.index)

    def lift_write_block(self) -> None:
        self.api.remove_write_block(self.index)

    def write_blocked(self) -> bool:
        return self.api.write_blocked(self.index)

    def write_operations(self) -> int:
        """The source's index + delete operation counter (its growth over time is the write rate)."""
        return self.api.write_operations(self.index)

    def release(self) -> None:
        """Close the point in time of an unfinished scan now, instead of letting it expire."""
        if self._open_pit is not None:
            pit, self._open_pit = self._open_pit, None
            self.api.close_pit(pit)

    def search_text(self, text: str, k: int) -> list[Hit] | None:
        """BM25 hits of the source index (the before side of the verification)."""
        body = {
            "size": k,
            "query": bm25_query(text, self.text_fields),
            "_source": {"excludes": list(self.added.names())},
        }
        hits = self.api.search(body, self.index, what="search the source index")["hits"]["hits"]
        return [
            Hit(
                id=str(h["_id"]),
                score=float(h.get("_score") or 0.0),
                rank=rank,
                fields=dict(h.get("_source") or {}),
            )
            for rank, h in enumerate(hits, start=1)
        ]

    def close(self) -> None:
        """Leaves an unfinished scan's PIT to expire (a resumed run may still use it); see `release()`."""
        return None


def _pit_gone(exc: Exception) -> bool:
    """True for the error of a search in an expired or closed point in time (HTTP 404, search context missing)."""
    status = exc.status if isinstance(exc, ConnectorError) else getattr(exc, "status_code", None)
    text = f"{exc} {getattr(exc, 'error_type', '')}"
    return status == 404 or "search_context_missing" in text or "No search context found" in text


class _LuceneTarget:
    """What both Lucene targets share: a dialect connector on the migrated index, which writes, reads back
    and searches it (for the verification) exactly as any connector would."""

    def __init__(
        self,
        api: LuceneClient,
        index: str,
        text_fields: Sequence[str],
        added: AddedFields,
        *,
        namer: FeatureNamer | None = None,
        bulk: BulkConfig | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> None:
        if api.dialect == "opensearch" and added.sparse_type != "rank_features":
            raise ValueError("OpenSearch migrations write rank_features")
        self.api = api
        self.index = index
        self.text_fields = tuple(text_fields)
        self.added = added
        self.namer = namer or FeatureNamer()
        self.bulk_config = bulk or BulkConfig()
        #: the spec written into the index's `_meta`; `stored_meta` settles `lexical` from the mappings
        self.spec = added.spec(index, self.text_fields)
        self.meta = {
            "sparse_field": added.sparse_field,
            "sparse_type": added.sparse_type,
            "dense_field": added.dense_field,
            "dense_dim": added.dense_dim,
            "feature_names": self.namer.mode,
            "text_fields": list(self.text_fields),
            **dict(meta or {}),
        }
        self._connector: LuceneConnector | None = None
        self._dialect: LuceneConnector | None = None

    @property
    def connector(self) -> LuceneConnector:
        """The connector on the migrated index (opened from the spec stored in its `_meta`)."""
        if self._connector is None:
            self._connector = self._new_connector(index=self.index)
        return self._connector

    @property
    def dialect_connector(self) -> LuceneConnector:
        """A connector on no index: the dialect's mappings, settings and stored spec for new indices (read
        once, so the server's version and modules are asked for once)."""
        if self._dialect is None:
            self._dialect = self._new_connector()
        return self._dialect

    def _new_connector(self, **kwargs: Any) -> LuceneConnector:
        return lucene_connector(self.api, vocab=self.namer.vocab, bulk=self.bulk_config, **kwargs)

    def vector_mappings(self) -> dict[str, Any]:
        """Mappings of the vector fields, from the dialect connector (as a new index of it would get)."""
        return self.dialect_connector.field_mappings(self.spec, self.added.sparse_type)

    def stored_meta(self, mappings: Mapping[str, Any]) -> dict[str, Any]:
        """The `_meta` entries: the migration's record and the stored spec the connectors read. `mappings`
        (of the documents' index) decide whether the spec promises BM25 searches (`bm25_fields`)."""
        lexical = bm25_fields(mappings, self.text_fields)
        if not lexical:
            log.warning(
                "text fields %s of %r are not all text fields: the migrated index is stored with "
                "lexical=False (no BM25 searches through spladebridge)",
                ", ".join(self.text_fields),
                self.index,
            )
        self.spec = self.added.spec(self.index, self.text_fields, lexical=lexical)
        stored = self.dialect_connector.spec_meta(self.spec, self.added.sparse_type)
        return migrated_meta(stored, self.meta)

    def flush(self) -> None:
        self.connector.flush()

    def count(self) -> int:
        self.connector.flush()
        return self.connector.count()

    def get(self, ids: Sequence[DocId]) -> list[Document | None]:
        return self.connector.get([str(i) for i in ids])

    def search_connector(self) -> LuceneConnector:
        return self.connector

    def delete(self, ids: Sequence[DocId]) -> WriteReport:
        """Delete documents by id (absent ones count as deleted): a live migration's deletions."""
        return self.connector.delete(list(ids))

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
        api: LuceneClient,
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
            "kind": f"{self.api.dialect}-reindex",
            "old_index": self.old_index,
            "new_index": self.index,
            "alias": self.alias,
            "fields": list(self.added.names()),
        }

    def index_body(self) -> dict[str, Any]:
        """The new index's body: the old index's mappings and settings plus the vector fields'."""
        mappings = self.api.mappings(self.old_index)
        return reindex_index_body(
            mappings,
            self.api.index_settings(self.old_index),
            self.vector_mappings(),
            self.dialect_connector.index_settings(self.spec),
            self.stored_meta(mappings),
        )

    def prepare(self) -> list[str]:
        if self.api.exists(self.index):
            existing = self.api.mappings(self.index).get("_meta", {}).get(MIGRATION_META_KEY)
            if not existing or existing.get("source_index") != self.old_index:
                raise MigrationSetupError(
                    f"index {self.index!r} already exists and was not created by a migration of "
                    f"{self.old_index!r}; choose another new index name"
                )
            return [f"reuse {self.index!r} (created by an earlier run of this migration)"]
        try:
            body = self.index_body()
        except ValueError as exc:
            raise MigrationSetupError(str(exc)) from None
        self.api.create_index(self.index, body)
        return [
            f"create index {self.index!r} with the mappings and settings of {self.old_index!r} "
            f"+ {', '.join(self.added.names())}"
        ]

    def write(self, documents: Sequence[Document]) -> WriteReport:
        """Each document's source (text fields and metadata as read) plus its vectors, indexed by id."""
        return self.connector.upsert(documents)

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
        current = self.api.aliases(self.alias)
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
    """The existing index: the vector mappings are added, each document gets its vectors by a partial update."""

    def describe(self) -> dict[str, Any]:
        return {
            "kind": f"{self.api.dialect}-in-place",
            "index": self.index,
            "fields": list(self.added.names()),
        }

    def mapping_body(self, existing: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The `PUT /<index>/_mapping` body (from `existing`, the index's mappings, read when not given)."""
        mappings = self.api.mappings(self.index) if existing is None else existing
        try:
            return in_place_mapping_body(mappings, self.vector_mappings(), self.stored_meta(mappings))
        except ValueError as exc:
            raise MigrationSetupError(str(exc)) from None

    def prepare(self) -> list[str]:
        if self.api.dialect == "opensearch" and self.added.dense_field is not None:
            knn = str(self.api.index_settings(self.index).get("knn", "false")).lower()
            if knn != "true":
                raise MigrationSetupError(
                    f"index {self.index!r} was created without index.knn (a static setting), so a knn_vector "
                    "field cannot be added in place; migrate with reindex, or without a dense field"
                )
        existing = self.api.mappings(self.index)
        props = existing.get("properties") or {}
        body = self.mapping_body(existing)
        names = ", ".join(self.added.names())
        mapped = all(name in props for name in self.added.names())
        if mapped and (existing.get("_meta") or {}) == body["_meta"]:
            return [f"mappings of {names} already in {self.index!r}"]
        # fields mapped by hand (or by an older run) still need the stored spec: without it neither this
        # migration's writes nor any later connector can open the index
        self.api.put_mapping(self.index, body)
        if mapped:
            return [f"mappings of {names} already in {self.index!r}; stored the spec in its _meta"]
        return [f"add mappings {names} to {self.index!r}"]

    def write(self, documents: Sequence[Document]) -> WriteReport:
        """Only the vector fields of each document (the rest of its source is left as it is)."""
        return self.connector.update_vectors(documents)

    def write_versioned(
        self, documents: Sequence[Document], versions: Mapping[str, DocVersion]
    ) -> WriteReport:
        """As `write`, each update conditional on the version its text was read at (409: changed since)."""
        return self.connector.update_vectors(documents, versions)

    def clear_vectors(self, ids: Sequence[DocId], versions: Mapping[str, DocVersion]) -> WriteReport:
        """Null the vector fields (conditional on `versions`) before new ones are written over old ones."""
        return self.connector.clear_vectors(ids, versions)

    def delete(self, ids: Sequence[DocId]) -> WriteReport:
        """In place the source is the target: a document deleted there is gone already."""
        return WriteReport([ItemOutcome(i, ok=True, status="deleted in the source") for i in ids])

    def finalize(self) -> list[str]:
        self.api.refresh(self.index)
        return [f"refreshed {self.index!r}; its documents now carry {', '.join(self.added.names())}"]


def resolve_reindex(
    api: LuceneClient, name: str, alias: str | None = None
) -> tuple[str, str, dict[str, Any]]:
    """(old index, alias clients use, alias options) for `name`, an alias of one index or an index.

    An alias pointing at several indices cannot be swapped to one new index: MigrationSetupError.
    """
    found = api.aliases(name)
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
    existing = api.aliases(alias)
    if existing is not None and set(existing) != {name}:
        raise MigrationSetupError(
            f"alias {alias!r} already points at {', '.join(sorted(existing))}, not at {name!r}"
        )
    if existing is None:
        # the alias does not exist yet: the swap's remove action would fail, so it is added to the old index
        # first (clients can move to it before the migration ends)
        api.update_aliases(alias_add_body(alias, name))
        return name, alias, {}
    return name, alias, existing[name]


def default_new_index(old_index: str) -> str:
    """`<old>-splade`, or `<old>-splade-<n+1>` when the old index is itself a migration result."""
    stem, _, suffix = old_index.rpartition("-splade")
    if stem and (suffix == "" or (suffix.startswith("-") and suffix[1:].isdigit())):
        n = int(suffix[1:]) if suffix else 1
        return f"{stem}-splade-{n + 1}"
    return f"{old_index}-splade"
