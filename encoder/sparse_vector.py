"""`SparseVector`: one learned-sparse term-weight map as sorted int32 token ids and float32 weights.

The one sparse type every layer shares: the encoder produces it, connectors translate it into each engine's
native format, hybrid explanations read it back. Construction validates (sorted unique non-negative ids,
finite non-negative weights) so that nothing downstream has to.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

if TYPE_CHECKING:
    from scipy.sparse import csr_matrix

__all__ = ["SparseVector", "SparseVectorError"]

_INT32_MAX = np.iinfo(np.int32).max


class SparseVectorError(ValueError):
    """Raised for malformed sparse input; the message names the offending position or id."""


class SparseVector:
    """A sparse vector: strictly increasing int32 `indices` and matching float32 `values` (all > 0).

    Zero weights are dropped on construction (they carry no information and engines reject them);
    NaN, infinity, negative weights, negative or duplicate ids raise `SparseVectorError`.
    Instances are immutable: the arrays are read-only.
    """

    __slots__ = ("_indices", "_values")

    _indices: NDArray[np.int32]
    _values: NDArray[np.float32]

    def __init__(
        self,
        indices: ArrayLike,
        values: ArrayLike,
        *,
        vocab_size: int | None = None,
        sort: bool = True,
    ) -> None:
        idx = np.asarray(indices)
        val = np.asarray(values)
        if idx.size and idx.dtype.kind not in "biuf":
            raise SparseVectorError(
                f"indices must be integers, got {idx.dtype} values such as {idx.flat[0]!r}"
            )
        if val.size and val.dtype.kind == "c":
            raise SparseVectorError("values must be real numbers, got complex ones")
        if idx.ndim != 1 or val.ndim != 1:
            raise SparseVectorError(f"indices and values must be 1-D, got shapes {idx.shape} and {val.shape}")
        if idx.shape[0] != val.shape[0]:
            raise SparseVectorError(
                f"indices and values differ in length: {idx.shape[0]} indices, {val.shape[0]} values"
            )
        if idx.size and not np.issubdtype(idx.dtype, np.integer):
            not_integer = ~np.isfinite(idx) | (np.mod(idx, 1) != 0)
            if np.any(not_integer):
                bad = int(np.flatnonzero(not_integer)[0])
                raise SparseVectorError(f"index at position {bad} is not an integer: {idx[bad]!r}")
        if idx.size and (idx.min() < 0 or idx.max() > _INT32_MAX):
            bad = int(np.flatnonzero((idx < 0) | (idx > _INT32_MAX))[0])
            raise SparseVectorError(f"index at position {bad} is out of the int32 id range: {idx[bad]!r}")
        try:
            val64 = val.astype(np.float64, copy=False)
        except (TypeError, ValueError) as exc:
            raise SparseVectorError(f"values must be numbers: {exc}") from None
        if val64.size and not np.all(np.isfinite(val64)):
            bad = int(np.flatnonzero(~np.isfinite(val64))[0])
            raise SparseVectorError(
                f"weight at position {bad} (id {int(idx[bad])}) is not finite: {val64[bad]!r}"
            )
        if val64.size and val64.min() < 0:
            bad = int(np.flatnonzero(val64 < 0)[0])
            raise SparseVectorError(
                f"weight at position {bad} (id {int(idx[bad])}) is negative: {val64[bad]!r}; "
                "learned-sparse weights are non-negative"
            )
        if val64.size and val64.max() > np.finfo(np.float32).max:
            bad = int(np.argmax(val64))
            raise SparseVectorError(
                f"weight at position {bad} (id {int(idx[bad])}) is too large for float32: {val64[bad]!r}"
            )
        idx32 = idx.astype(np.int32, copy=True)
        val32 = val64.astype(np.float32)
        if sort and idx32.size > 1 and np.any(np.diff(idx32) <= 0):
            order = np.argsort(idx32, kind="stable")
            idx32 = idx32[order]
            val32 = val32[order]
        if idx32.size > 1:
            steps = np.diff(idx32)
            if np.any(steps == 0):
                dup = int(idx32[int(np.flatnonzero(steps == 0)[0])])
                raise SparseVectorError(f"duplicate index {dup}")
            if np.any(steps < 0):
                raise SparseVectorError("indices must be strictly increasing when sort=False")
        if vocab_size is not None and idx32.size and int(idx32[-1]) >= vocab_size:
            raise SparseVectorError(f"index {int(idx32[-1])} is outside the vocabulary (size {vocab_size})")
        keep = val32 > 0
        if not np.all(keep):
            idx32 = idx32[keep]
            val32 = val32[keep]
        idx32.setflags(write=False)
        val32.setflags(write=False)
        self._indices = idx32
        self._values = val32

    # -- construction ---------------------------------------------------------------------------------

    @classmethod
    def _trusted(cls, indices: NDArray[np.int32], values: NDArray[np.float32]) -> SparseVector:
        """Wrap arrays already known to be valid (sorted, unique, positive); used on hot paths."""
        obj = cls.__new__(cls)
        indices.setflags(write=False)
        values.setflags(write=False)
        obj._indices = indices
        obj._values = values
        return obj

    @classmethod
    def empty(cls) -> SparseVector:
        """The vector with no active dimension (what empty text encodes to)."""
        return cls._trusted(np.empty(0, np.int32), np.empty(0, np.float32))

    @classmethod
    def from_dict(cls, weights: Mapping[int, float], *, vocab_size: int | None = None) -> SparseVector:
        """Build from `{token_id: weight}`."""
        if not isinstance(weights, Mapping):
            raise SparseVectorError(f"expected a mapping of token id to weight, got {type(weights).__name__}")
        for key in weights:
            if isinstance(key, bool) or not isinstance(key, int | np.integer):
                raise SparseVectorError(f"token id {key!r} is not an integer")
        return cls(
            np.fromiter(weights.keys(), dtype=np.int64, count=len(weights)),
            np.fromiter((float(v) for v in weights.values()), dtype=np.float64, count=len(weights)),
            vocab_size=vocab_size,
        )

    @classmethod
    def from_tokens(cls, weights: Mapping[str, float], vocab: Mapping[str, int]) -> SparseVector:
        """Build from `{token: weight}` through a vocabulary `{token: id}`; unknown tokens raise."""
        ids: list[int] = []
        for token in weights:
            token_id = vocab.get(token)
            if token_id is None:
                raise SparseVectorError(f"token {token!r} is not in the vocabulary")
            ids.append(token_id)
        return cls(np.asarray(ids, dtype=np.int64), np.asarray(list(weights.values()), dtype=np.float64))

    @classmethod
    def from_json(cls, data: str | Mapping[str, Any]) -> SparseVector:
        """Parse `{"indices": [...], "values": [...]}` (a JSON string or an already decoded object)."""
        obj = json.loads(data) if isinstance(data, str) else data
        if not isinstance(obj, Mapping) or "indices" not in obj or "values" not in obj:
            raise SparseVectorError('expected an object with "indices" and "values"')
        return cls(np.asarray(obj["indices"]), np.asarray(obj["values"], dtype=np.float64))

    @staticmethod
    def from_csr(matrix: csr_matrix) -> list[SparseVector]:
        """Split a scipy CSR matrix (one row per vector) into vectors."""
        csr = matrix.tocsr()
        csr.sum_duplicates()
        csr.sort_indices()
        out: list[SparseVector] = []
        for row in range(csr.shape[0]):
            start, stop = csr.indptr[row], csr.indptr[row + 1]
            out.append(SparseVector(csr.indices[start:stop], csr.data[start:stop], sort=False))
        return out

    # -- views and conversions ------------------------------------------------------------------------

    @property
    def indices(self) -> NDArray[np.int32]:
        """Sorted, unique token ids (read-only)."""
        return self._indices

    @property
    def values(self) -> NDArray[np.float32]:
        """Weights aligned with `indices`, all > 0 (read-only)."""
        return self._values

    @property
    def nnz(self) -> int:
        """Number of active dimensions."""
        return int(self._indices.shape[0])

    def __len__(self) -> int:
        return self.nnz

    def __bool__(self) -> bool:
        return self.nnz > 0

    def to_dict(self) -> dict[int, float]:
        """`{token_id: weight}` with Python scalars."""
        return dict(zip(self._indices.tolist(), self._values.tolist(), strict=True))

    def to_tokens(self, vocab: Sequence[str]) -> dict[str, float]:
        """`{token: weight}` through an id -> token list (the model's vocabulary)."""
        size = len(vocab)
        if self.nnz and int(self._indices[-1]) >= size:
            raise SparseVectorError(f"index {int(self._indices[-1])} is outside the vocabulary (size {size})")
        return {vocab[i]: w for i, w in zip(self._indices.tolist(), self._values.tolist(), strict=True)}

    def to_json_obj(self) -> dict[str, list[Any]]:
        """`{"indices": [...], "values": [...]}` with Python scalars."""
        return {"indices": self._indices.tolist(), "values": self._values.tolist()}

    def to_json(self) -> str:
        """The JSON text of `to_json_obj()`."""
        return json.dumps(self.to_json_obj(), separators=(",", ":"))

    @staticmethod
    def to_csr(vectors: Sequence[SparseVector], vocab_size: int | None = None) -> csr_matrix:
        """Stack vectors into a scipy CSR matrix of shape (len(vectors), vocab_size)."""
        from scipy.sparse import csr_matrix

        indptr = np.zeros(len(vectors) + 1, dtype=np.int64)
        if vectors:
            np.cumsum([v.nnz for v in vectors], out=indptr[1:])
        indices = np.concatenate([v.indices for v in vectors]) if vectors else np.empty(0, np.int32)
        data = np.concatenate([v.values for v in vectors]) if vectors else np.empty(0, np.float32)
        width = vocab_size
        if width is None:
            width = int(indices.max()) + 1 if indices.size else 0
        elif indices.size and int(indices.max()) >= width:
            raise SparseVectorError(f"index {int(indices.max())} is outside vocab_size {width}")
        return csr_matrix((data, indices, indptr), shape=(len(vectors), width))

    # -- arithmetic -----------------------------------------------------------------------------------

    def dot(self, other: SparseVector) -> float:
        """Exact dot product (accumulated in float64)."""
        _, mine, theirs = np.intersect1d(
            self._indices, other._indices, assume_unique=True, return_indices=True
        )
        if mine.size == 0:
            return 0.0
        return float(np.dot(self._values[mine].astype(np.float64), other._values[theirs].astype(np.float64)))

    def contributions(self, other: SparseVector) -> list[tuple[int, float]]:
        """Per-id products of the shared dimensions, largest first: the terms of `self.dot(other)`."""
        shared, mine, theirs = np.intersect1d(
            self._indices, other._indices, assume_unique=True, return_indices=True
        )
        products = self._values[mine].astype(np.float64) * other._values[theirs].astype(np.float64)
        order = np.lexsort((shared, -products))
        return [(int(shared[i]), float(products[i])) for i in order]

    def top_k(self, k: int) -> SparseVector:
        """Keep the `k` largest weights (ties broken by the smaller id); k >= nnz returns self."""
        if k < 0:
            raise SparseVectorError(f"k must be >= 0, got {k}")
        if k >= self.nnz:
            return self
        order = np.lexsort((self._indices, -self._values))[:k]
        order.sort()
        return SparseVector._trusted(self._indices[order].copy(), self._values[order].copy())

    def prune(self, min_weight: float) -> SparseVector:
        """Drop weights below `min_weight`."""
        keep = self._values >= min_weight
        if np.all(keep):
            return self
        return SparseVector._trusted(self._indices[keep].copy(), self._values[keep].copy())

    def scale(self, factor: float) -> SparseVector:
        """Multiply every weight by a positive finite `factor` (keeps ranking by dot product)."""
        if not np.isfinite(factor) or factor <= 0:
            raise SparseVectorError(f"scale factor must be positive and finite, got {factor!r}")
        return SparseVector._trusted(
            self._indices.copy(), (self._values * np.float32(factor)).astype(np.float32)
        )

    def max_weight(self) -> float:
        """The largest weight, 0.0 for the empty vector."""
        return float(self._values.max()) if self.nnz else 0.0

    # -- protocol -------------------------------------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SparseVector):
            return NotImplemented
        return bool(
            np.array_equal(self._indices, other._indices) and np.array_equal(self._values, other._values)
        )

    def __hash__(self) -> int:
        return hash((self._indices.tobytes(), self._values.tobytes()))

    def __repr__(self) -> str:
        head = ", ".join(
            f"{i}: {w:.3g}"
            for i, w in zip(self._indices[:6].tolist(), self._values[:6].tolist(), strict=True)
        )
        more = ", ..." if self.nnz > 6 else ""
        return f"SparseVector(nnz={self.nnz}, {{{head}{more}}})"

    def __getstate__(self) -> tuple[bytes, bytes]:
        return (self._indices.tobytes(), self._values.tobytes())

    def __setstate__(self, state: tuple[bytes, bytes]) -> None:
        idx = np.frombuffer(state[0], dtype=np.int32).copy()
        val = np.frombuffer(state[1], dtype=np.float32).copy()
        idx.setflags(write=False)
        val.setflags(write=False)
        self._indices = idx
        self._values = val
