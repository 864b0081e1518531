"""On-disk cache of encoded vectors (numpy .npz, never pickle), keyed by data and model fingerprints.

Encoding a collection is the slow part of an evaluation on CPU; a re-run with the same data and the same
models loads the vectors instead. Files are written to a temporary name and renamed, so an interrupted
run never leaves a half-written cache entry behind.
"""

from __future__ import annotations

import hashlib
import itertools
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from spladebridge.encoder.sparse_vector import SparseVector

__all__ = ["CacheError", "VectorCache", "fingerprint_object", "fingerprint_path"]


class CacheError(RuntimeError):
    """A cache file that exists but does not match what was asked for (ids or shape differ)."""


def fingerprint_path(path: str | os.PathLike[str]) -> str:
    """A content hash of a model file or folder (every file's relative name and bytes)."""
    root = Path(path)
    digest = hashlib.sha256()
    files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
    for file in files:
        digest.update(str(file.relative_to(root) if root.is_dir() else file.name).encode())
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 22), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


#: Encoder attributes that change what it outputs (batch sizes, threads and devices do not).
_OUTPUT_SETTINGS = (
    "max_length",
    "max_seq_length",
    "normalize",
    "dim",
    "pooling",
    "max_terms",
    "doc_max_terms",
    "doc_min_weight",
    "query_max_terms",
    "query_min_weight",
    "query_mode",
    "keep_special_dims",
)


def fingerprint_object(obj: Any) -> str:
    """Identify an encoder: its own `fingerprint` if it has one, else its model folder and settings.

    Looks for a model path in the usual attribute names and hashes that folder's content, plus the
    class name and the settings that change outputs (max length, pruning, a compute dtype other than float32;
    not batch size or device).
    """
    own = getattr(obj, "fingerprint", None)
    if isinstance(own, str) and own:
        return own
    if callable(own):
        value = own()
        if isinstance(value, str) and value:
            return value
    parts = [type(obj).__module__, type(obj).__qualname__]
    for attr in ("model_path", "model_dir", "path", "name_or_path", "model_name", "model_name_or_path"):
        value = getattr(obj, attr, None)
        if isinstance(value, str | Path) and Path(value).exists():
            parts.append(fingerprint_path(value))
            break
        if isinstance(value, str) and value:
            parts.append(value)
            break
    for attr in _OUTPUT_SETTINGS:
        if hasattr(obj, attr):
            value = getattr(obj, attr)
            if value is None or isinstance(value, int | float | str | bool):
                parts.append(f"{attr}={value}")
    dtype = getattr(obj, "dtype", None)
    if dtype is not None and str(dtype) != "torch.float32":  # float32 keeps the keys caches were made with
        parts.append(f"dtype={dtype}")
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def _ids_array(ids: Sequence[str]) -> NDArray[np.str_]:
    return np.asarray(list(ids), dtype=np.str_)


class VectorCache:
    """Sparse and dense vectors per `(key, name)` under `root/key/name.npz`."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path(self, key: str, name: str) -> Path:
        return self.root / key / f"{name}.npz"

    def _save(self, path: Path, **arrays: NDArray[Any]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.stem + f".tmp{os.getpid()}.npz")
        np.savez(tmp, **arrays)  # type: ignore[arg-type]
        os.replace(tmp, path)

    def _load(self, path: Path, ids: Sequence[str]) -> dict[str, NDArray[Any]] | None:
        if not path.is_file():
            return None
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
        stored = arrays.get("ids")
        if stored is None or stored.shape[0] != len(ids) or not np.array_equal(stored, _ids_array(ids)):
            raise CacheError(f"{path}: cached ids do not match the {len(ids)} requested ids; delete the file")
        return arrays

    def sparse(
        self,
        key: str,
        name: str,
        ids: Sequence[str],
        texts: Sequence[str],
        encode: Callable[[Sequence[str]], Sequence[SparseVector]],
    ) -> tuple[list[SparseVector], bool]:
        """The sparse vectors of `texts` (cached or freshly encoded) and whether the cache was hit."""
        path = self.path(key, name)
        arrays = self._load(path, ids)
        if arrays is not None:
            indptr, indices, values = arrays["indptr"], arrays["indices"], arrays["values"]
            vectors = [
                SparseVector._trusted(indices[a:b].copy(), values[a:b].copy())
                for a, b in itertools.pairwise(indptr.tolist())
            ]
            return vectors, True
        vectors = list(encode(texts))
        if len(vectors) != len(ids):
            raise CacheError(f"encoder returned {len(vectors)} vectors for {len(ids)} texts")
        indptr = np.zeros(len(vectors) + 1, dtype=np.int64)
        np.cumsum([v.nnz for v in vectors], out=indptr[1:])
        indices = np.concatenate([v.indices for v in vectors]) if vectors else np.empty(0, np.int32)
        values = np.concatenate([v.values for v in vectors]) if vectors else np.empty(0, np.float32)
        self._save(path, ids=_ids_array(ids), indptr=indptr, indices=indices, values=values)
        return vectors, False

    def dense(
        self,
        key: str,
        name: str,
        ids: Sequence[str],
        texts: Sequence[str],
        encode: Callable[[Sequence[str]], NDArray[np.float32]],
    ) -> tuple[NDArray[np.float32], bool]:
        """The dense matrix (one row per text, float32) and whether the cache was hit."""
        path = self.path(key, name)
        arrays = self._load(path, ids)
        if arrays is not None:
            return np.ascontiguousarray(arrays["vectors"], dtype=np.float32), True
        matrix = np.ascontiguousarray(np.asarray(encode(texts), dtype=np.float32))
        if matrix.ndim != 2 or matrix.shape[0] != len(ids):
            raise CacheError(f"encoder returned shape {matrix.shape} for {len(ids)} texts")
        self._save(path, ids=_ids_array(ids), vectors=matrix)
        return matrix, False
