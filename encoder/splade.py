"""`SpladeEncoder`: texts -> SPLADE `SparseVector`s, fast and with bounded memory, plus explanations.

Weights: w_j = pool over a text's non-padding positions i of log(1 + ReLU(z_ij)), z the masked-LM logits;
max pooling (SPLADE v2 and later) by default, sum (SPLADE v1) optional. The batch x length x vocabulary
logits are never materialised (see `mlm_head`). Texts are length-sorted and batched by a token budget;
padding rows are dropped before the vocabulary projection.

Special tokens: the [CLS]/[SEP] *positions* take part in pooling, exactly as in training (naver/splade and
sentence-transformers pool over the whole attention mask), so outputs match the reference. The special-token
*dimensions* ([CLS], [SEP], [PAD], [MASK], [UNK] as output terms) are zeroed unless `keep_special_dims=True`:
they name no word, would occur in nearly every document (no discriminative power) and engines would index
them as ordinary terms. (The default model gives them zero weight anyway.)

Empty or whitespace-only text (nothing but special tokens after tokenization) encodes to the empty vector
without a model call; this deliberately differs from sentence-transformers, which encodes "[CLS] [SEP]".
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal, TypeAlias

import numpy as np
import torch
from numpy.typing import NDArray

from spladebridge.encoder.batching import pad_batch, plan_batches, windows
from spladebridge.encoder.idf import IdfTable
from spladebridge.encoder.inputs import check_texts
from spladebridge.encoder.mlm_head import Pooling, VocabPooler, split_mlm_head
from spladebridge.encoder.models import ResolvedModel, quiet_loading, resolve_model
from spladebridge.encoder.onednn_linear import use_onednn_linears
from spladebridge.encoder.runtime import (
    BatchRunner,
    TextTokenizer,
    configure_threads,
    resolve_device,
    resolve_dtype,
)
from spladebridge.encoder.sparse_vector import SparseVector
from spladebridge.encoder.stats import EncodeStats, SparsityStats, sparsity_stats

__all__ = ["QueryMode", "SpladeEncoder"]

QueryMode: TypeAlias = Literal["model", "inference_free"]


class _MlmSide:
    """One masked-LM encoder (the document side, or a separate query model): tokenizer now, weights on use."""

    def __init__(
        self,
        resolved: ResolvedModel,
        *,
        device: torch.device,
        dtype: torch.dtype,
        max_length: int,
        pooling: Pooling,
        vocab_chunk: int,
    ) -> None:
        from transformers import AutoConfig

        self.resolved = resolved
        self.device = device
        self.dtype = dtype
        self.pooling = pooling
        self.vocab_chunk = vocab_chunk
        self.tokenizer = TextTokenizer(resolved, max_length)
        config: Any = AutoConfig.from_pretrained(resolved.name_or_path, **resolved.load_kwargs)
        self.vocab_size = int(config.vocab_size)
        self._model: torch.nn.Module | None = None
        self._pooler: VocabPooler | None = None
        self._load_lock = threading.Lock()  # the first encode may come from several threads at once

    def load(self) -> tuple[torch.nn.Module, VocabPooler]:
        """Load the model on first use (queries in inference-free mode never need it), once even when several
        threads ask at the same moment."""
        if self._model is not None and self._pooler is not None:
            return self._model, self._pooler
        with self._load_lock:
            return self._load_once()

    def _load_once(self) -> tuple[torch.nn.Module, VocabPooler]:
        if self._model is None or self._pooler is None:
            from transformers import AutoModelForMaskedLM

            with quiet_loading():
                model: Any = AutoModelForMaskedLM.from_pretrained(
                    self.resolved.name_or_path, dtype=self.dtype, **self.resolved.load_kwargs
                )
            model = model.to(self.device).eval()
            probe = self.tokenizer.encode(["spladebridge checks the vocabulary head"]).ids[0]
            weight, bias = split_mlm_head(model, torch.tensor([probe], device=self.device))
            if int(weight.shape[0]) != self.vocab_size:
                raise ValueError(
                    f"model {self.resolved.name_or_path!r} projects onto {weight.shape[0]} tokens, "
                    f"but its config says vocab_size={self.vocab_size}"
                )
            if self.device.type == "cpu":
                use_onednn_linears(model)  # the transformer's layers; the vocabulary head is the pooler's
            self._model = model
            self._pooler = VocabPooler(weight, bias, pooling=self.pooling, vocab_chunk=self.vocab_chunk)
        return self._model, self._pooler

    def pool(self, sequences: Sequence[Sequence[int]]) -> np.ndarray:
        """SPLADE weights for one batch of token id lists: float32 array (len(sequences), vocab)."""
        model, pooler = self.load()
        input_ids, mask = pad_batch(sequences, self.tokenizer.pad_id, self.device)
        with torch.inference_mode():
            hidden = model(input_ids=input_ids, attention_mask=mask).logits
            rows = hidden[mask.bool()]
            pooled = pooler.pool(rows, [len(seq) for seq in sequences])
        result: np.ndarray = pooled.cpu().numpy()
        return result


class SpladeEncoder:
    """Encodes documents and queries into SPLADE `SparseVector`s over the model's vocabulary.

    `model`: None (the offline SPLADE-tiny default), a hub name or a local folder. `max_length` truncates
    (counted in `stats.truncated`). `max_batch_tokens` (default `batch_size * max_length`) is the padded-token
    budget shared by all batches in flight; on CPU whole batches run in parallel on one worker thread per
    torch thread (see `runtime.BatchRunner`), so memory does not grow with cores. Documents can be pruned to
    `doc_max_terms` top terms and `doc_min_weight`; queries to `query_max_terms` (engines cap clauses). `query_mode="model"` encodes queries with the
    same model (or `query_model=`); `"inference_free"` weights each query token by `idf` (an `IdfTable`
    or a path to its JSON) with no model call.
    """

    def __init__(
        self,
        model: str | Path | None = None,
        *,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        max_length: int = 256,
        pooling: Pooling = "max",
        batch_size: int = 32,
        doc_max_terms: int | None = None,
        doc_min_weight: float = 0.0,
        query_max_terms: int | None = None,
        query_min_weight: float = 0.0,
        query_mode: QueryMode = "model",
        query_model: str | Path | None = None,
        idf: IdfTable | str | Path | None = None,
        max_batch_tokens: int | None = None,
        stream_window: int = 1024,
        keep_special_dims: bool = False,
        num_threads: int | None = None,
        vocab_chunk: int = 4096,
    ) -> None:
        if pooling not in ("max", "sum"):
            raise ValueError(f"pooling must be 'max' or 'sum', got {pooling!r}")
        if query_mode not in ("model", "inference_free"):
            raise ValueError(f"query_mode must be 'model' or 'inference_free', got {query_mode!r}")
        if batch_size < 1 or stream_window < 1:
            raise ValueError("batch_size and stream_window must be >= 1")
        for name, value in (("doc_max_terms", doc_max_terms), ("query_max_terms", query_max_terms)):
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1 or None, got {value}")
        for name, weight in (("doc_min_weight", doc_min_weight), ("query_min_weight", query_min_weight)):
            if not weight >= 0:
                raise ValueError(f"{name} must be >= 0, got {weight}")
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        if self.device.type == "cpu":
            configure_threads(num_threads)
        self.pooling: Pooling = pooling
        self.max_length = max_length
        self.batch_size = batch_size
        self.max_batch_tokens = max_batch_tokens if max_batch_tokens is not None else batch_size * max_length
        self.stream_window = stream_window
        self.doc_max_terms = doc_max_terms
        self.doc_min_weight = float(doc_min_weight)
        self.query_max_terms = query_max_terms
        self.query_min_weight = float(query_min_weight)
        self.query_mode: QueryMode = query_mode
        self.keep_special_dims = keep_special_dims
        side_kwargs: dict[str, Any] = {
            "device": self.device,
            "dtype": self.dtype,
            "max_length": max_length,
            "pooling": pooling,
            "vocab_chunk": vocab_chunk,
        }
        resolved = resolve_model(model, "splade")
        self.model_name: str = resolved.name_or_path
        self._doc = _MlmSide(resolved, **side_kwargs)
        self.vocab_size: int = self._doc.vocab_size
        self.vocab: list[str] = self._doc.tokenizer.vocab(self.vocab_size)
        self._token_ids: dict[str, int] | None = None
        self._query = self._doc
        if query_mode == "model" and query_model is not None:
            self._query = _MlmSide(resolve_model(query_model, "splade"), **side_kwargs)
            if self._query.tokenizer.vocab(self._query.vocab_size) != self.vocab:
                raise ValueError(
                    f"query_model {query_model!r} has a different vocabulary from {self.model_name!r}: "
                    "their vectors could not be compared"
                )
        if query_mode == "model" and idf is not None:
            raise ValueError("idf= is only used with query_mode='inference_free'")
        self.idf: IdfTable | None = None
        self._idf_weights: np.ndarray | None = None
        if query_mode == "inference_free":
            if query_model is not None:
                raise ValueError("query_model= is not used with query_mode='inference_free'")
            if idf is None:
                raise ValueError(
                    "query_mode='inference_free' needs idf=: an IdfTable (IdfTable.fit(corpus, encoder=...)) "
                    "or the path of its JSON"
                )
            self.set_idf(idf)
        self._special_ids = np.asarray(sorted(self._doc.tokenizer.special_ids), dtype=np.int64)
        self._special_ids = self._special_ids[self._special_ids < self.vocab_size]
        self.stats = EncodeStats()
        self.last_stats = EncodeStats()
        self._runner = BatchRunner(self.device)

    # -- configuration --------------------------------------------------------------------------------

    @property
    def tokenizer(self) -> Any:
        """The transformers tokenizer of the document model."""
        return self._doc.tokenizer.hf_tokenizer

    @property
    def token_ids(self) -> dict[str, int]:
        """Token -> id (the inverse of `vocab`)."""
        if self._token_ids is None:
            self._token_ids = {token: token_id for token_id, token in enumerate(self.vocab)}
        return self._token_ids

    def set_idf(self, idf: IdfTable | str | Path) -> None:
        """Use `idf` (a table or the path of its JSON) for inference-free queries."""
        table = idf if isinstance(idf, IdfTable) else IdfTable.load(idf)
        weights = table.to_array(self.vocab)
        if not self.keep_special_dims:
            special = [i for i in self._doc.tokenizer.special_ids if i < self.vocab_size]
            weights[special] = 0.0
        self.idf = table
        self._idf_weights = weights

    def fit_idf(self, corpus: Iterable[str] | Iterable[SparseVector]) -> IdfTable:
        """Fit an `IdfTable` on texts or encoded documents with this encoder's tokenizer and vocabulary."""
        return IdfTable.fit(corpus, encoder=self)

    def reset_stats(self) -> None:
        """Zero the cumulative counters in `stats`."""
        self.stats = EncodeStats()

    # -- encoding -------------------------------------------------------------------------------------

    def tokenize_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each text without special tokens (truncated to `max_length`)."""
        encoded = self._doc.tokenizer.encode(list(check_texts(texts)), add_special_tokens=False)
        return encoded.ids

    def encode_documents(self, texts: Iterable[str]) -> list[SparseVector]:
        """Encode documents, pruned to `doc_max_terms` / `doc_min_weight`; output in input order."""
        return list(self.iter_encode_documents(texts))

    def iter_encode_documents(self, texts: Iterable[str]) -> Iterator[SparseVector]:
        """Stream documents: `stream_window` texts are read, sorted, encoded and yielded in input order."""
        return self._iter_model(texts, self._doc, self.doc_max_terms, self.doc_min_weight)

    def encode_queries(self, texts: Iterable[str]) -> list[SparseVector]:
        """Encode queries with the query model, or from the tokenizer and IDF table (inference-free)."""
        return list(self.iter_encode_queries(texts))

    def iter_encode_queries(self, texts: Iterable[str]) -> Iterator[SparseVector]:
        """Streaming form of `encode_queries`."""
        if self.query_mode == "inference_free":
            return self._iter_inference_free(texts)
        return self._iter_model(texts, self._query, self.query_max_terms, self.query_min_weight)

    def _prune(self, vec: SparseVector, max_terms: int | None, min_weight: float) -> SparseVector:
        if min_weight > 0:
            vec = vec.prune(min_weight)
        if max_terms is not None:
            vec = vec.top_k(max_terms)
        return vec

    def _iter_model(
        self, texts: Iterable[str], side: _MlmSide, max_terms: int | None, min_weight: float
    ) -> Iterator[SparseVector]:
        self.last_stats = call_stats = EncodeStats()
        for window in windows(check_texts(texts), self.stream_window):
            encoded = side.tokenizer.encode(window)
            window_stats = EncodeStats(
                texts=len(window),
                empty=sum(encoded.empty),
                truncated=sum(encoded.truncated),
                tokens=sum(
                    len(ids) for ids, empty in zip(encoded.ids, encoded.empty, strict=True) if not empty
                ),
            )
            results: list[SparseVector] = [SparseVector.empty()] * len(window)
            live = [pos for pos, empty in enumerate(encoded.empty) if not empty]
            batches = plan_batches(
                [len(encoded.ids[pos]) for pos in live],
                max_tokens=max(self.max_batch_tokens // self._runner.in_flight, self.max_length),
                max_items=self.batch_size * 8,
            )
            if batches:
                side.load()
            position_lists = [[live[i] for i in batch] for batch in batches]
            pooled_batches = self._runner.map(
                side.pool, [[encoded.ids[pos] for pos in positions] for positions in position_lists]
            )
            for positions, pooled in zip(position_lists, pooled_batches, strict=True):
                if not self.keep_special_dims and self._special_ids.size:
                    pooled[:, self._special_ids] = 0.0
                for row, pos in enumerate(positions):
                    values = pooled[row]
                    indices = np.flatnonzero(values).astype(np.int32)
                    vec = SparseVector._trusted(indices, values[indices].astype(np.float32))
                    results[pos] = self._prune(vec, max_terms, min_weight)
                window_stats.batches += 1
            call_stats.add(window_stats)
            self.stats.add(window_stats)
            yield from results

    def _iter_inference_free(self, texts: Iterable[str]) -> Iterator[SparseVector]:
        weights = self._idf_weights
        assert weights is not None
        self.last_stats = call_stats = EncodeStats()
        tokenizer = self._doc.tokenizer
        for window in windows(check_texts(texts), self.stream_window):
            encoded = tokenizer.encode(window, add_special_tokens=False)
            window_stats = EncodeStats(
                texts=len(window), truncated=sum(encoded.truncated), tokens=sum(map(len, encoded.ids))
            )
            for ids in encoded.ids:
                unique = np.unique(np.asarray(ids, dtype=np.int64))
                unique = unique[unique < self.vocab_size]
                values = weights[unique]
                keep = values > 0
                vec = SparseVector._trusted(unique[keep].astype(np.int32), values[keep].astype(np.float32))
                if not vec:
                    window_stats.empty += 1
                yield self._prune(vec, self.query_max_terms, self.query_min_weight)
            call_stats.add(window_stats)
            self.stats.add(window_stats)

    # -- reading vectors ------------------------------------------------------------------------------

    def decode(self, vec: SparseVector, top_k: int | None = None) -> list[tuple[str, float]]:
        """(token, weight) pairs, heaviest first (ties: smaller id first), at most `top_k`."""
        if top_k is not None and top_k < 0:
            raise ValueError(f"top_k must be >= 0, got {top_k}")
        order = np.lexsort((vec.indices, -vec.values))
        if top_k is not None:
            order = order[:top_k]
        self._check_in_vocab(vec, "vector")
        return [(self.vocab[int(vec.indices[i])], float(vec.values[i])) for i in order]

    def explain(
        self, query_vec: SparseVector, doc_vec: SparseVector, top_k: int | None = None
    ) -> list[tuple[str, float]]:
        """Per-token contributions q_j * d_j to the dot product, largest first; they sum to `q.dot(d)`."""
        if top_k is not None and top_k < 0:
            raise ValueError(f"top_k must be >= 0, got {top_k}")
        self._check_in_vocab(query_vec, "query vector")
        self._check_in_vocab(doc_vec, "document vector")
        parts = query_vec.contributions(doc_vec)
        if top_k is not None:
            parts = parts[:top_k]
        return [(self.vocab[token_id], value) for token_id, value in parts]

    def similarity(self, a: Sequence[SparseVector], b: Sequence[SparseVector]) -> NDArray[np.float32]:
        """Dot-product matrix, shape (len(a), len(b)), float32 (like sentence-transformers' `similarity`)."""
        left = SparseVector.to_csr(list(a), self.vocab_size).astype(np.float64)
        right = SparseVector.to_csr(list(b), self.vocab_size).astype(np.float64)
        product: NDArray[np.float32] = (left @ right.T).toarray().astype(np.float32)
        return product

    def sparsity_stats(
        self, vectors: Sequence[SparseVector], queries: Sequence[SparseVector] | None = None
    ) -> SparsityStats:
        """Active dims and FLOPS of `vectors` (documents), optionally against `queries` (`SparsityStats`)."""
        return sparsity_stats(vectors, self.vocab_size, queries=queries)

    def _check_in_vocab(self, vec: SparseVector, what: str) -> None:
        if not isinstance(vec, SparseVector):
            raise TypeError(f"{what} is a {type(vec).__name__}, not a SparseVector")
        if vec.nnz and int(vec.indices[-1]) >= self.vocab_size:
            raise ValueError(
                f"{what} has token id {int(vec.indices[-1])} outside the vocabulary (size {self.vocab_size})"
            )

    def __repr__(self) -> str:
        return (
            f"SpladeEncoder(model={self.model_name!r}, device={self.device}, dtype={self.dtype}, "
            f"pooling={self.pooling!r}, query_mode={self.query_mode!r}, max_length={self.max_length})"
        )
