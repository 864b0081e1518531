"""`QdrantLikeConnector`: what `QdrantConnector` (qdrant-client) and `QdrantEdgeConnector` (Qdrant Edge) do
the same way, written once over a few engine primitives.

The base class holds the public reads, searches and writes (id checks, batching, invalid-document
isolation, paging, record-to-`Document` and point-to-`Hit` conversion) and the BM25 signal (`Bm25Encoder`
and the corpus statistics it is written with). A subclass supplies the engine calls: retrieve records by
point id, scroll a page, count, run a nearest query, convert sparse vectors, build a point, write a batch of
points and delete points, store the BM25 statistics, plus its own spec checks and error messages.

BM25 on Qdrant is a sparse vector per document, written with Qdrant's BM25 embedder (its token ids,
tokenizer, stop words and Snowball stemmer) as tf * (k1 + 1) / (tf + k1 * (1 - b + b * dl / avg_len)),
searched with the IDF modifier, which Qdrant computes as Lucene does: ln(1 + (N - n + 0.5) / (n + 0.5)).
`avg_len` is the corpus's real average (kept in `Bm25Stats`), and a query term weighs its count in the
query, as in Lucene's query parser (Qdrant's `embed_query` weighs every distinct term 1).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import qdrant_edge as qe
from numpy.typing import NDArray

from spladebridge.connectors.base import (
    Connector,
    DocId,
    Document,
    Hit,
    HybridRequest,
    IndexSpec,
    ItemOutcome,
    Signal,
    UnsupportedOperation,
    WriteReport,
)
from spladebridge.connectors.filters import FilterLike
from spladebridge.connectors.ids import IdError, PointId, doc_id_from_payload, point_key, to_point_id
from spladebridge.connectors.qdrant_common import (
    Bm25Settings,
    Bm25Stats,
    DocumentError,
    PreparedDocument,
    bm25_settings,
    bm25_vector_name,
    check_k,
    check_query_dense,
    document_from_payload,
    hit_fields,
    prepare_document,
)
from spladebridge.encoder.sparse_vector import SparseVector

__all__ = [
    "Bm25Encoder",
    "QdrantLikeConnector",
    "ReadyPoint",
    "bm25_encoder",
    "hits_from_points",
    "raw_id",
    "sparse_from_engine",
    "vector_name",
]

#: A document that passed the checks: its place in the batch, the checked document and the engine point.
ReadyPoint = tuple[int, PreparedDocument, Any]


#: Qdrant's BM25 weight tf * (k + 1) / (tf + k * (1 - b + b * dl / avg_len)) is the term count itself when
#: b = 0 and k is this large (within float32 rounding, undone by `round`): a term counter with Qdrant's
#: analysis.
_COUNTING_K = 1e12


@dataclass(frozen=True, slots=True)
class TermCounts:
    """A text after Qdrant's BM25 analysis: its token ids and how often each occurs (`length`: in all)."""

    indices: list[int]
    counts: list[float]

    @property
    def length(self) -> int:
        return int(sum(self.counts))


class Bm25Encoder:
    """Qdrant's BM25 embedder (`qdrant_edge.Bm25`) configured by `Bm25Settings` for Lucene-style scoring.

    Documents: `document(text, avg_len)` is Qdrant's own BM25 document vector for that average length.
    Queries: `query(text)` weighs each term by its count in the query, as Lucene's query parser and bm25s do
    (a repeated term counts again); Qdrant's `embed_query` weighs every distinct term 1, which on long
    queries (cisi) costs 0.07 nDCG@10. `counts(text)` gives the terms and the document length `dl`
    exactly as the embedder sees them, from a second embedder with the same analysis that counts terms.
    """

    def __init__(self, settings: Bm25Settings) -> None:
        self.settings = settings
        self._counter: Any = qe.Bm25(self._config(k=_COUNTING_K, b=0.0, avg_len=1.0))
        self._model: Any = None
        self._model_avg_len: float | None = None

    def counts(self, text: str) -> TermCounts:
        """The token ids of `text` and how often each occurs, after tokenising, stop words and stemming."""
        embedding = self._counter.embed_document(text)
        return TermCounts(list(embedding.indices), [float(round(v)) for v in embedding.values])

    def length(self, text: str) -> int:
        """The BM25 document length of `text`: its tokens after analysis."""
        return self.counts(text).length

    def document(self, text: str, avg_len: float) -> Any:
        """Qdrant's BM25 document vector of `text` (a `qdrant_edge.SparseVector`), normalised by `avg_len`
        (the settings' fixed `avg_len` wins)."""
        avg = self.settings.avg_len if self.settings.avg_len is not None else avg_len
        if self._model is None or self._model_avg_len != avg:
            self._model = qe.Bm25(self._config(k=self.settings.k, b=self.settings.b, avg_len=avg))
            self._model_avg_len = avg
        return self._model.embed_document(text)

    def query(self, text: str) -> Any:
        """The query vector of `text`: each term weighted by its count (None when no term is left)."""
        terms = self.counts(text)
        return qe.SparseVector(terms.indices, terms.counts) if terms.indices else None

    def _config(self, *, k: float, b: float, avg_len: float) -> Any:
        s = self.settings
        return qe.Bm25Config(
            k=k,
            b=b,
            avg_len=avg_len,
            language=s.language,
            lowercase=s.lowercase,
            stopwords=_stopwords(s),
            stemmer=_stemmer(s),
            min_token_len=s.min_token_len,
            max_token_len=s.max_token_len,
        )


def _stopwords(settings: Bm25Settings) -> Any:
    words = settings.stop_words
    if words is None:
        return qe.StopwordsSet()
    if isinstance(words, str):
        return qe.StopwordsSet(languages={_enum(qe.Language, words, "stop word language")})
    return qe.StopwordsSet(custom=set(words))


def _stemmer(settings: Bm25Settings) -> Any:
    language = settings.stemmer_language
    if language is None:
        return qe.DisabledStemmer()
    return qe.SnowballParams(_enum(qe.SnowballLanguage, language, "Snowball stemmer language"))


def _enum(kind: Any, name: str, what: str) -> Any:
    member = getattr(kind, name.strip().capitalize(), None) if name.strip().isalpha() else None
    if member is None:
        known = sorted(n.lower() for n in dir(kind) if n[:1].isupper())
        raise ValueError(f"options['bm25']: {name!r} is not a {what} Qdrant knows; known: {known}")
    return member


def bm25_encoder(spec: IndexSpec) -> Bm25Encoder | None:
    """The BM25 encoder of `spec` (None when it is not lexical); ValueError for bad `options["bm25"]`, so
    `ensure_index` can refuse them before it creates anything."""
    if not spec.lexical:
        return None
    bm25_vector_name(spec)
    return Bm25Encoder(bm25_settings(spec))


@dataclass(frozen=True, slots=True)
class _LexicalBatch:
    """A batch's BM25 bookkeeping: each new document's length (by batch offset), the stored lengths of the
    documents it replaces (by point key), and the average length its vectors are written with."""

    lengths: dict[int, int]
    replaced: dict[PointId, int]
    avg_len: float


class QdrantLikeConnector(Connector):
    """The shared part of the Qdrant connectors; subclasses implement the engine primitives below."""

    batch_size: int
    _bm25: Bm25Encoder | None = None
    _bm25_stats: Bm25Stats | None = None
    _closed: bool = False

    # -- engine primitives ----------------------------------------------------------------------------

    @abstractmethod
    def _require_spec(self) -> IndexSpec:
        """The spec, after checking the connector is open and the index exists (ConnectorError if not)."""

    @abstractmethod
    def _retrieve(self, point_ids: list[PointId]) -> Iterable[Any]:
        """The stored records (with payload and vectors) of these point ids; absent ids are left out."""

    @abstractmethod
    def _retrieve_payloads(self, point_ids: list[PointId]) -> Iterable[Any]:
        """The stored records of these point ids with their payload only (no vectors); absent ids left out."""

    @abstractmethod
    def _save_bm25_stats(self, stats: Bm25Stats) -> None:
        """Keep the BM25 statistics in the stored spec, so a reopened index goes on from them."""

    @abstractmethod
    def _scroll(self, offset: Any, limit: int) -> tuple[list[Any], Any]:
        """One page of records (with payload and vectors) from `offset`, and the next offset (None at the end)."""

    @abstractmethod
    def _count(self) -> int:
        """Number of stored points (exact), after the engine's own readiness check."""

    @abstractmethod
    def _nearest(self, query: Any, using: str, k: int, filter: FilterLike) -> list[Hit]:
        """Top-k of the engine query `query` against the vector `using`, under `filter`."""

    @abstractmethod
    def _record_vectors(self, record: Any) -> Mapping[str, Any]:
        """The named vectors of a stored record (empty when it has none)."""

    @abstractmethod
    def _to_engine_sparse(self, vector: SparseVector) -> Any:
        """`vector` as the engine's sparse vector type."""

    @abstractmethod
    def _bm25_to_engine(self, embedding: Any) -> Any:
        """A `qdrant_edge.SparseVector` (BM25 document or query vector) as the engine's sparse vector type."""

    @abstractmethod
    def _make_point(self, point_id: PointId, vectors: dict[str, Any], payload: dict[str, Any]) -> Any:
        """The engine's point object."""

    @abstractmethod
    def _store_points(self, ready: list[ReadyPoint], outcomes: list[ItemOutcome | None]) -> None:
        """Write the checked points of a batch, filling `outcomes[offset]` for each of them."""

    @abstractmethod
    def _delete_points(self, point_ids: list[PointId], outcomes: list[ItemOutcome]) -> list[ItemOutcome]:
        """Delete these point ids; `outcomes` as they should be reported afterwards."""

    # -- writes ---------------------------------------------------------------------------------------

    def upsert(self, documents: Iterable[Document]) -> WriteReport:
        """Insert or replace documents in batches; invalid documents fail alone (non-retryable)."""
        spec = self._require_spec()
        report = WriteReport()
        batch: list[object] = []
        start = 0
        for doc in documents:
            batch.append(doc)
            if len(batch) >= self.batch_size:
                report.extend(self._upsert_batch(batch, start, spec))
                start += len(batch)
                batch = []
        if batch:
            report.extend(self._upsert_batch(batch, start, spec))
        return report

    def _upsert_batch(self, batch: Sequence[object], start: int, spec: IndexSpec) -> WriteReport:
        outcomes: list[ItemOutcome | None] = [None] * len(batch)
        checked: list[tuple[int, PreparedDocument]] = []
        for offset, doc in enumerate(batch):
            try:
                checked.append((offset, prepare_document(doc, start + offset, spec)))
            except DocumentError as exc:
                outcomes[offset] = ItemOutcome(raw_id(doc), ok=False, status="invalid", error=str(exc))
        if checked:
            lexical = self._lexical_batch(checked, spec) if spec.lexical else None
            ready = [(offset, doc, self._point(doc, spec, offset, lexical)) for offset, doc in checked]
            self._store_points(ready, outcomes)
            if lexical is not None:
                written = [(offset, doc) for offset, doc in checked if (o := outcomes[offset]) and o.ok]
                self._record_upserts(written, lexical)
        return WriteReport([o for o in outcomes if o is not None])

    def _point(
        self, doc: PreparedDocument, spec: IndexSpec, offset: int, lexical: _LexicalBatch | None
    ) -> Any:
        vectors: dict[str, Any] = {spec.sparse_field: self._to_engine_sparse(doc.sparse)}
        if doc.dense is not None and spec.dense_field is not None:
            vectors[spec.dense_field] = doc.dense
        if lexical is not None and lexical.lengths[offset] > 0:
            embedding = self._encoder().document(doc.text, lexical.avg_len)
            vectors[bm25_vector_name(spec)] = self._bm25_to_engine(embedding)
        return self._make_point(doc.point_id, vectors, doc.payload)

    # -- BM25 statistics -------------------------------------------------------------------------------

    @property
    def bm25_stats(self) -> Bm25Stats:
        """The corpus statistics BM25 normalises document lengths by (documents with a token, tokens)."""
        spec = self._require_spec()
        if not spec.lexical:
            raise UnsupportedOperation(f"index {spec.name!r} was created with lexical=False")
        return self._current_bm25_stats(spec)

    def _current_bm25_stats(self, spec: IndexSpec) -> Bm25Stats:
        """The statistics in force: the stored ones, or (an index written before they were kept, or not
        by spladebridge) counted once from the stored text of every document, and stored."""
        if self._bm25_stats is None:
            stats = Bm25Stats()
            offset: Any = None
            while True:
                records, offset = self._scroll(offset, 500)
                stats = stats.changed(added=[self._stored_length(r, spec) for r in records])
                if offset is None or not records:
                    break
            self._save_bm25_stats(stats)
            self._bm25_stats = stats
        return self._bm25_stats

    def _lexical_batch(self, checked: list[tuple[int, PreparedDocument]], spec: IndexSpec) -> _LexicalBatch:
        """Lengths of a batch's documents and of those they replace, and the average length after the batch
        (the first batch of an empty index is normalised by its own average)."""
        encoder = self._encoder()
        lengths = {offset: encoder.length(doc.text) for offset, doc in checked}
        replaced = self._stored_lengths([doc.point_id for _, doc in checked], spec)
        last = {point_key(doc.point_id): offset for offset, doc in checked}  # a repeated id: the last wins
        after = self._current_bm25_stats(spec).changed(
            added=[lengths[offset] for offset in last.values()], removed=replaced.values()
        )
        return _LexicalBatch(lengths, replaced, after.avg_len or 1.0)

    def _record_upserts(self, written: list[tuple[int, PreparedDocument]], lexical: _LexicalBatch) -> None:
        spec = self._require_spec()
        last = {point_key(doc.point_id): offset for offset, doc in written}
        if not last:
            return
        stats = self._current_bm25_stats(spec).changed(
            added=[lexical.lengths[offset] for offset in last.values()],
            removed=[lexical.replaced[key] for key in last if key in lexical.replaced],
        )
        self._set_bm25_stats(stats)

    def _set_bm25_stats(self, stats: Bm25Stats) -> None:
        if stats != self._bm25_stats:
            self._save_bm25_stats(stats)
            self._bm25_stats = stats

    def _stored_lengths(self, point_ids: Sequence[PointId], spec: IndexSpec) -> dict[PointId, int]:
        """The BM25 lengths of the stored documents with these point ids (absent ids left out)."""
        unique = list(dict.fromkeys(point_ids))
        if not unique:
            return {}
        return {point_key(r.id): self._stored_length(r, spec) for r in self._retrieve_payloads(unique)}

    def _stored_length(self, record: Any, spec: IndexSpec) -> int:
        text = document_from_payload(record.payload, record.id, None, None).text(spec.text_fields)
        return self._encoder().length(text) if text else 0

    def _encoder(self) -> Bm25Encoder:
        if self._bm25 is None:
            raise UnsupportedOperation("this index has no BM25 signal (lexical=False)")
        return self._bm25

    def delete(self, ids: Iterable[DocId]) -> WriteReport:
        """Delete by id; absent ids succeed, invalid ids fail alone. The BM25 statistics lose the deleted
        documents' lengths."""
        spec = self._require_spec()
        outcomes: list[ItemOutcome] = []
        valid: list[PointId] = []
        for i, doc_id in enumerate(ids):
            try:
                valid.append(to_point_id(doc_id))
                outcomes.append(ItemOutcome(doc_id, ok=True, status="deleted"))
            except IdError as exc:
                outcomes.append(
                    ItemOutcome(raw_id(doc_id), ok=False, status="invalid", error=f"id {i}: {exc}")
                )
        if valid:
            stored = self._stored_lengths(valid, spec) if spec.lexical else {}
            outcomes = self._delete_points(valid, outcomes)
            if stored and all(o.ok for o in outcomes if o.status != "invalid"):
                self._set_bm25_stats(self._current_bm25_stats(spec).changed(removed=stored.values()))
        return WriteReport(outcomes)

    # -- reads ----------------------------------------------------------------------------------------

    def get(self, ids: Sequence[DocId]) -> list[Document | None]:
        """Documents by id, in the order asked, with vectors; None where absent."""
        spec = self._require_spec()
        point_ids = []
        for i, doc_id in enumerate(ids):
            try:
                point_ids.append(to_point_id(doc_id))
            except IdError as exc:
                raise IdError(f"id {i}: {exc}") from None
        if not point_ids:
            return []
        unique = list(dict.fromkeys(point_ids))
        records = self._retrieve(unique)
        found = {point_key(r.id): self._document(r, spec) for r in records}
        return [found.get(pid) for pid in point_ids]

    def scan(self, batch_size: int = 500) -> Iterator[Document]:
        """Every stored document with its payload and vectors, page by page (in point-id order)."""
        check_k(batch_size, "batch_size")
        spec = self._require_spec()
        offset: Any = None
        while True:
            records, offset = self._scroll(offset, batch_size)
            for record in records:
                yield self._document(record, spec)
            if offset is None or not records:
                return

    def count(self) -> int:
        """Number of stored documents (exact)."""
        return self._count()

    def _document(self, record: Any, spec: IndexSpec) -> Document:
        vectors = self._record_vectors(record)
        dense: NDArray[np.float32] | None = None
        if spec.dense_field is not None and vectors.get(spec.dense_field) is not None:
            dense = np.asarray(vectors[spec.dense_field], dtype=np.float32)
        sparse = sparse_from_engine(vectors.get(spec.sparse_field))
        return document_from_payload(record.payload, record.id, sparse, dense)

    # -- search ---------------------------------------------------------------------------------------

    def search_sparse(self, vector: SparseVector, k: int, filter: FilterLike = None) -> list[Hit]:
        """Top-k by sparse dot product (IDF-weighted when the index was created with `sparse_idf`)."""
        spec = self._require_spec()
        check_k(k)
        if not isinstance(vector, SparseVector):
            raise TypeError(f"search_sparse needs a SparseVector, got {type(vector).__name__}")
        if not vector:
            return []
        return self._nearest(self._to_engine_sparse(vector), spec.sparse_field, k, filter)

    def search_dense(self, vector: NDArray[np.float32], k: int, filter: FilterLike = None) -> list[Hit]:
        """Top-k by cosine similarity."""
        spec = self._require_spec()
        check_k(k)
        values = check_query_dense(vector, spec)
        assert spec.dense_field is not None
        return self._nearest(values, spec.dense_field, k, filter)

    def search_text(self, text: str, k: int, filter: FilterLike = None) -> list[Hit]:
        """Top-k by BM25 over the text fields: Qdrant's BM25 vectors (corpus-average length normalisation,
        IDF modifier) against the query's term counts, which ranks as Lucene's BM25 does."""
        spec = self._require_spec()
        check_k(k)
        query = self._bm25_query(text, spec)
        if query is None:
            return []
        return self._nearest(query, bm25_vector_name(spec), k, filter)

    def _bm25_query(self, text: str, spec: IndexSpec) -> Any:
        """The engine BM25 query for `text` (None when it has no token); raises if the index isn't lexical."""
        if not spec.lexical:
            raise UnsupportedOperation(f"index {spec.name!r} was created with lexical=False")
        query = self._encoder().query(text)
        return None if query is None else self._bm25_to_engine(query)

    def _signal_queries(self, request: HybridRequest, spec: IndexSpec) -> dict[Signal, Any]:
        """The engine query of each signal a hybrid request names (None where the query is empty)."""
        queries: dict[Signal, Any] = {}
        if request.sparse is not None:
            queries["sparse"] = self._to_engine_sparse(request.sparse) if request.sparse else None
        if request.dense is not None:
            queries["dense"] = check_query_dense(request.dense, spec)
        if request.text is not None:
            queries["bm25"] = self._bm25_query(request.text, spec)
        return queries

    # -- internals ------------------------------------------------------------------------------------

    def _set_spec(self, spec: IndexSpec, bm25_stats: Bm25Stats | None = None) -> None:
        """Use `spec` (and the BM25 statistics stored with it; None: count them when first needed)."""
        self.spec = spec
        self._bm25 = bm25_encoder(spec)
        self._bm25_stats = bm25_stats


def sparse_from_engine(vector: Any) -> SparseVector:
    """A stored sparse vector (either engine's type: `.indices`, `.values`) as a `SparseVector`."""
    if vector is None:
        return SparseVector.empty()
    return SparseVector(
        np.asarray(vector.indices, dtype=np.int64), np.asarray(vector.values, dtype=np.float32)
    )


def hits_from_points(points: Iterable[Any]) -> list[Hit]:
    """Scored points (`.id`, `.score`, `.payload`), best first, as ranked `Hit`s."""
    return [
        Hit(
            id=doc_id_from_payload(p.payload, p.id),
            score=float(p.score),
            rank=rank,
            fields=hit_fields(p.payload),
        )
        for rank, p in enumerate(points, start=1)
    ]


def vector_name(signal: Signal, spec: IndexSpec) -> str:
    """The named vector that holds `signal`."""
    if signal == "sparse":
        return spec.sparse_field
    if signal == "dense":
        assert spec.dense_field is not None
        return spec.dense_field
    return bm25_vector_name(spec)


def raw_id(value: object) -> DocId:
    """An id to report for an invalid item (its own id when readable, else its repr)."""
    doc_id = value.id if isinstance(value, Document) else value
    if isinstance(doc_id, str | int) and not isinstance(doc_id, bool):
        return doc_id
    return repr(doc_id)
