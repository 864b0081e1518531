"""Hard negatives mined from an index of the corpus, with a guard against false negatives.

For each query, the corpus is ranked (BM25, or the current SPLADE model); the hardest candidates that are not
a judged positive of the query are taken, skipping any that score at least `max_ratio` times the query's
positive: a document nearly as good as a known answer is more likely an unjudged answer than a negative, and
training against it would teach the model to push relevant documents down.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Literal, TypeAlias

import numpy as np

from spladebridge.evaluation.beir import BeirDataset
from spladebridge.training.data import TrainingPair

__all__ = ["MiningMethod", "mine_hard_negatives", "rank_corpus"]

MiningMethod: TypeAlias = Literal["bm25", "splade"]


def mine_hard_negatives(
    pairs: Sequence[TrainingPair],
    dataset: BeirDataset,
    *,
    per_pair: int = 1,
    depth: int = 50,
    max_ratio: float = 0.95,
    method: MiningMethod = "bm25",
    splade_model: str | None = None,
    seed: int = 7,
) -> dict[str, int]:
    """Add `per_pair` negatives (texts) to each pair with a query id: the hardest safe candidates, topped up
    with random non-positive documents where too few are left (so every pair has as many). Returns counts
    (`mined`, `random`, `skipped_positive`, `skipped_too_close`)."""
    if per_pair < 1 or depth < 1 or not 0 < max_ratio <= 1:
        raise ValueError("per_pair and depth must be >= 1, and 0 < max_ratio <= 1")
    positives: dict[str, set[str]] = defaultdict(set)
    for split in dataset.qrels.values():
        for qid, judged in split.items():
            positives[qid].update(d for d, rel in judged.items() if rel > 0)
    queries = {p.query_id: p.query for p in pairs if p.query_id is not None}
    run = rank_corpus(queries, dataset, depth, method, splade_model)
    counts = {"mined": 0, "random": 0, "skipped_positive": 0, "skipped_too_close": 0}
    rng = np.random.default_rng(seed)
    all_ids = list(dataset.corpus)
    for pair in pairs:
        if pair.query_id is None or pair.positive_id is None:
            continue
        ranked = run.get(pair.query_id, {})
        ceiling = ranked.get(pair.positive_id)
        taken = 0
        for doc_id, score in sorted(ranked.items(), key=lambda item: -item[1]):
            if taken >= per_pair:
                break
            if doc_id in positives[pair.query_id]:
                counts["skipped_positive"] += 1
                continue
            if ceiling is not None and score >= max_ratio * ceiling:
                counts["skipped_too_close"] += 1
                continue
            pair.negatives.append(dataset.doc_text(doc_id))
            taken += 1
        counts["mined"] += taken
        while taken < per_pair and len(positives[pair.query_id]) < len(all_ids):
            doc_id = all_ids[int(rng.integers(len(all_ids)))]
            if doc_id not in positives[pair.query_id]:
                pair.negatives.append(dataset.doc_text(doc_id))
                taken += 1
                counts["random"] += 1
    return counts


def rank_corpus(
    queries: dict[str, str], dataset: BeirDataset, depth: int, method: MiningMethod, splade_model: str | None
) -> dict[str, dict[str, float]]:
    """The top `depth` corpus documents per query by BM25 or by the SPLADE model: `{qid: {doc_id: score}}`."""
    ids = list(dataset.corpus)
    texts = [dataset.doc_text(i) for i in ids]
    if method == "bm25":
        from spladebridge.evaluation.lexical import LexicalBM25

        bm25 = LexicalBM25()
        bm25.index(ids, texts)
        return bm25.search(queries, depth)
    if method != "splade":
        raise ValueError(f"method must be 'bm25' or 'splade', got {method!r}")
    from spladebridge.encoder.sparse_vector import SparseVector
    from spladebridge.encoder.splade import SpladeEncoder

    encoder = SpladeEncoder(splade_model)
    qids = list(queries)
    docs = SparseVector.to_csr(encoder.encode_documents(texts), encoder.vocab_size)
    asked = SparseVector.to_csr(encoder.encode_queries([queries[q] for q in qids]), encoder.vocab_size)
    scores = (asked @ docs.T).toarray()
    run: dict[str, dict[str, float]] = {}
    for row, qid in enumerate(qids):
        top = np.argsort(-scores[row])[:depth]
        run[qid] = {ids[i]: float(scores[row, i]) for i in top if scores[row, i] > 0}
    return run
