"""Training pairs: from a BEIR folder's qrels split, or from a JSONL file of (query, positive[, negative])."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from spladebridge.evaluation.beir import BeirDataset

__all__ = ["PairsError", "TrainingPair", "beir_pairs", "jsonl_pairs"]


class PairsError(ValueError):
    """A pairs file or split that cannot be trained on; the message names the file and line."""


@dataclass(slots=True)
class TrainingPair:
    """One query and a relevant document (texts); `negatives` are texts known or mined not to be relevant.

    `query_id` / `positive_id` are set for pairs from a BEIR split (mining uses them to skip every judged
    positive of the query, not only this one)."""

    query: str
    positive: str
    negatives: list[str] = field(default_factory=list)
    query_id: str | None = None
    positive_id: str | None = None
    relevance: int = 1


def beir_pairs(dataset: BeirDataset, split: str = "train") -> list[TrainingPair]:
    """One pair per relevant (query, document) judgement of `split` (relevance > 0), in qrels order."""
    pairs: list[TrainingPair] = []
    for qid, judged in dataset.split(split).items():
        if qid not in dataset.queries:
            raise PairsError(
                f"{dataset.path}: qrels/{split}.tsv names query {qid!r}, which queries.jsonl lacks"
            )
        for doc_id, relevance in judged.items():
            if relevance <= 0:
                continue
            if doc_id not in dataset.corpus:
                raise PairsError(
                    f"{dataset.path}: qrels/{split}.tsv names document {doc_id!r}, not in the corpus"
                )
            pairs.append(
                TrainingPair(dataset.queries[qid], dataset.doc_text(doc_id), [], qid, doc_id, relevance)
            )
    if not pairs:
        raise PairsError(f"{dataset.path}: qrels/{split}.tsv has no relevant judgement to train on")
    return pairs


def jsonl_pairs(path: str | Path) -> list[TrainingPair]:
    """`{"query": ..., "positive": ..., "negative": ... (optional, a text or a list)}` per line."""
    source = Path(path)
    pairs: list[TrainingPair] = []
    with source.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            where = f"{source}:{number}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise PairsError(f"{where}: not valid JSON ({exc.msg})") from None
            if not isinstance(obj, dict):
                raise PairsError(f"{where}: expected an object with query and positive")
            texts = {}
            for key in ("query", "positive"):
                value = obj.get(key)
                if not isinstance(value, str) or not value.strip():
                    raise PairsError(f"{where}: field {key!r} must be a non-empty string")
                texts[key] = value
            negative = obj.get("negative", [])
            negatives = [negative] if isinstance(negative, str) else negative
            if not isinstance(negatives, list) or not all(
                isinstance(n, str) and n.strip() for n in negatives
            ):
                raise PairsError(f"{where}: field 'negative' must be a non-empty string or a list of them")
            pairs.append(TrainingPair(texts["query"], texts["positive"], list(negatives)))
    if not pairs:
        raise PairsError(f"{source}: no pairs")
    return pairs
