"""What Lucene's `FeatureField` does to sparse weights, shared by the Elasticsearch and OpenSearch connectors.

* Stored feature values keep 9 significant bits: `Float.floatToIntBits(v) >>> 15` is indexed as a term
  frequency and shifted back at search time. It truncates (never rounds up); relative error < 2^-8.
* Stored values must be positive, finite, normal floats (>= 2^-126); anything else is rejected.
* Linear feature queries take a weight in (0, 64] (OpenSearch `neural_sparse` passes query weights there
  as-is; Elasticsearch applies `boost` outside, so its boosts are not capped).
* Every query token is one boolean clause; engines cap clauses (1024 by default in OpenSearch).

`lucene_dot` models the score an engine computes, so tests can assert the rankings it will return.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from spladebridge.encoder.sparse_vector import SparseVector

__all__ = [
    "DEFAULT_MAX_CLAUSES",
    "FLOAT_MIN_NORMAL",
    "MAX_LINEAR_WEIGHT",
    "CleanVector",
    "clean_document_vector",
    "clean_query_vector",
    "knn_score_to_similarity",
    "lucene_dot",
    "truncate_9bit",
]

FLOAT_MIN_NORMAL = float(np.finfo(np.float32).tiny)  # 2**-126
MAX_LINEAR_WEIGHT = 64.0
DEFAULT_MAX_CLAUSES = 1024


def truncate_9bit(values: NDArray[np.float32] | float) -> NDArray[np.float32]:
    """The value Lucene gives back for stored feature values: top 9 significant bits, truncated."""
    arr = np.asarray(values, dtype=np.float32)
    bits = arr.view(np.uint32) >> np.uint32(15) << np.uint32(15)
    return bits.view(np.float32)


@dataclass(frozen=True, slots=True)
class CleanVector:
    """A vector made acceptable to Lucene, with what had to change."""

    vector: SparseVector
    dropped: int = 0
    truncated_terms: int = 0
    scale: float = 1.0


def clean_document_vector(vector: SparseVector) -> CleanVector:
    """Drop weights Lucene rejects (below the smallest normal float). SparseVector already has no <= 0/NaN/inf."""
    keep = vector.values >= FLOAT_MIN_NORMAL
    dropped = int(vector.nnz - int(keep.sum()))
    if dropped == 0:
        return CleanVector(vector)
    return CleanVector(SparseVector(vector.indices[keep], vector.values[keep], sort=False), dropped=dropped)


def clean_query_vector(
    vector: SparseVector,
    *,
    max_terms: int | None = DEFAULT_MAX_CLAUSES,
    max_weight: float | None = None,
) -> CleanVector:
    """Cap a query to `max_terms` clauses (largest weights kept) and, with `max_weight`, rescale so that the
    largest weight fits (a uniform scale keeps the ranking of a dot product unchanged)."""
    capped = vector.top_k(max_terms) if max_terms is not None else vector
    truncated = vector.nnz - capped.nnz
    scale = 1.0
    if max_weight is not None and capped.nnz and capped.max_weight() > max_weight:
        scale = max_weight / capped.max_weight()
        capped = capped.scale(scale)
        # float32 rounding can overshoot by one ulp; clip exactly to the bound.
        if capped.max_weight() > max_weight:
            bound = np.float32(max_weight)
            if float(bound) > max_weight:  # the nearest float32 can lie above the bound: step below it
                bound = np.nextafter(bound, np.float32(0.0))
            values = np.minimum(capped.values, bound)
            capped = SparseVector(capped.indices, values, sort=False)
    cleaned = clean_document_vector(capped)
    return CleanVector(cleaned.vector, dropped=cleaned.dropped, truncated_terms=truncated, scale=scale)


def lucene_dot(query: SparseVector, document: SparseVector) -> float:
    """The score a Lucene linear feature query computes: sum of query weight x 9-bit stored value."""
    shared, qi, di = np.intersect1d(query.indices, document.indices, assume_unique=True, return_indices=True)
    if shared.size == 0:
        return 0.0
    stored = truncate_9bit(document.values[di]).astype(np.float64)
    return float(np.dot(query.values[qi].astype(np.float64), stored))


def knn_score_to_similarity(score: float, similarity: str) -> float:
    """The similarity behind a Lucene kNN `_score`, so that dense scores mean the same on every engine.

    Lucene turns a similarity into a positive score: cosine (`cosine`, OpenSearch `cosinesimil`) and
    Elasticsearch `dot_product` as (1 + s) / 2; maximum inner product (`max_inner_product`, OpenSearch
    `innerproduct`) as s + 1 for s >= 0 and 1 / (1 - s) below; `l2_norm` / `l2` as 1 / (1 + d^2), returned as
    -d^2 (larger is closer)."""
    if similarity in ("cosine", "cosinesimil", "dot_product"):
        return 2.0 * score - 1.0
    if similarity in ("max_inner_product", "innerproduct"):
        return score - 1.0 if score >= 1.0 else 1.0 - 1.0 / score
    if similarity in ("l2_norm", "l2"):
        return -(1.0 / score - 1.0)
    raise ValueError(f"unknown dense similarity {similarity!r}")
