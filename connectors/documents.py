"""Checks on documents to be written that every engine needs, whatever its native format."""

from __future__ import annotations

import numpy as np

from spladebridge.connectors.base import IndexSpec

__all__ = ["DocumentError", "dense_values"]


class DocumentError(ValueError):
    """One document cannot be written as it is; the message names the document (input position, id) and the
    field."""


def dense_values(dense: object, spec: IndexSpec, where: str) -> list[float]:
    """A dense vector as a list of floats, after checking it fits `spec`; `where` names the document."""
    if spec.dense_field is None:
        raise DocumentError(f"{where}: has a dense vector but index {spec.name!r} has no dense field")
    try:
        arr = np.asarray(dense, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise DocumentError(f"{where}: dense vector is not numeric: {exc}") from None
    if arr.ndim != 1 or arr.shape[0] != spec.dense_dim:
        raise DocumentError(f"{where}: dense vector has shape {arr.shape}, index wants ({spec.dense_dim},)")
    if not np.all(np.isfinite(arr)):
        bad = int(np.flatnonzero(~np.isfinite(arr))[0])
        raise DocumentError(f"{where}: dense vector value at position {bad} is not finite")
    values: list[float] = arr.tolist()
    return values
