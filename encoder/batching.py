"""Length-sorted batching by a token budget, and windowed streaming that keeps memory bounded.

Sorting by length keeps padding low; a token budget (rather than a fixed count) keeps the work and memory of
each forward pass about constant, so short texts (queries) go through in large batches and long ones in small.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from itertools import islice
from typing import TypeVar

import numpy as np
import torch

__all__ = ["pad_batch", "plan_batches", "windows"]

T = TypeVar("T")


def plan_batches(lengths: Sequence[int], *, max_tokens: int, max_items: int) -> list[list[int]]:
    """Group positions, longest first, so that `count * longest <= max_tokens` and `count <= max_items`.

    Every batch holds at least one item, so a text longer than the budget still goes through (alone).
    """
    if max_tokens < 1 or max_items < 1:
        raise ValueError(f"max_tokens and max_items must be >= 1, got {max_tokens} and {max_items}")
    order = np.argsort(-np.asarray(lengths, dtype=np.int64), kind="stable").tolist()
    batches: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for pos in order:
        length = max(int(lengths[pos]), 1)
        if current and (
            len(current) + 1 > max_items or (len(current) + 1) * max(longest, length) > max_tokens
        ):
            batches.append(current)
            current, longest = [], 0
        current.append(pos)
        longest = max(longest, length)
    if current:
        batches.append(current)
    return batches


def pad_batch(
    sequences: Sequence[Sequence[int]], pad_id: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad token id lists into `(input_ids, attention_mask)` int64 tensors on `device`."""
    width = max(len(seq) for seq in sequences)
    ids = np.full((len(sequences), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(sequences), width), dtype=np.int64)
    for row, seq in enumerate(sequences):
        ids[row, : len(seq)] = seq
        mask[row, : len(seq)] = 1
    return torch.from_numpy(ids).to(device), torch.from_numpy(mask).to(device)


def windows(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of at most `size` items: the unit of sorting when encoding from a stream."""
    if size < 1:
        raise ValueError(f"window size must be >= 1, got {size}")
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk
