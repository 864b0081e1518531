"""SPLADE pooling without the batch x length x vocabulary logits tensor.

A masked LM computes logits = decoder(transform(hidden)); the decoder (the vocabulary projection, tied to
the input embeddings) is by far the biggest tensor. `split_mlm_head` detaches that one Linear layer from the
model, so the model returns the transformed hidden states; `VocabPooler` then projects only the real
(non-padding) token rows, one vocabulary chunk at a time, and pools each text's rows right away:

- max pooling takes the max of the raw logits and applies log1p(ReLU(.)) once per text afterwards; this is
  exact because log1p(ReLU(x)) is monotone non-decreasing, so it commutes with max;
- sum pooling applies log1p(ReLU(.)) to each chunk before summing (no shortcut exists).

Peak extra memory is one `rows x chunk` block instead of `batch x length x vocabulary`.

Int8 screening (max pooling on CPU): most of a text's pooled logits are negative and end up 0, so the full
projection is first run in int8 (VNNI integer matrix products, several times faster than float32), with a
rigorous bound on the quantisation error. Only the vocabulary entries whose bound allows a positive maximum
(typically a few percent) are then recomputed in float32, so the output equals the float32 computation:
entries that are skipped are provably <= 0, which log1p(ReLU(.)) maps to 0 anyway.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Literal, TypeAlias

import torch
from torch import nn

__all__ = ["MlmHeadError", "Pooling", "VocabPooler", "split_mlm_head"]

Pooling: TypeAlias = Literal["max", "sum"]
_ROW_MULTIPLE = 64


class MlmHeadError(ValueError):
    """The model's output layer is not a plain vocabulary projection this encoder can split off."""


def _parent_of(model: nn.Module, target: nn.Module) -> tuple[nn.Module, str]:
    for name, module in model.named_modules():
        for child_name, child in module.named_children():
            if child is target:
                return module, child_name
        del name
    raise MlmHeadError("the output embedding layer is not a submodule of the model")


def split_mlm_head(model: nn.Module, probe_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Replace the model's vocabulary projection by the identity; return its `(weight, bias)`.

    Afterwards `model(...).logits` are the transformed hidden states, shape (batch, length, hidden), and
    `hidden @ weight.T + bias` are the original logits. `probe_ids` (shape (1, n)) is run before and after,
    and the split is refused unless both give the same logits, so a head with extra steps after the
    projection (scaling, soft-capping) is caught instead of silently producing wrong weights.
    """
    get_output = getattr(model, "get_output_embeddings", None)
    decoder = get_output() if callable(get_output) else None
    if not isinstance(decoder, nn.Linear):
        raise MlmHeadError(
            f"expected the masked LM's output layer to be torch.nn.Linear, got {type(decoder).__name__}"
        )
    mask = torch.ones_like(probe_ids)
    with torch.inference_mode():
        reference = model(input_ids=probe_ids, attention_mask=mask).logits[0].float()
    weight = decoder.weight.detach()
    bias = decoder.bias.detach() if decoder.bias is not None else None
    parent, attr = _parent_of(model, decoder)
    setattr(parent, attr, nn.Identity())
    with torch.inference_mode():
        hidden = model(input_ids=probe_ids, attention_mask=mask).logits[0]
        if hidden.shape[-1] != weight.shape[1]:
            setattr(parent, attr, decoder)
            raise MlmHeadError("the model does not feed its output layer directly; cannot split the head")
        rebuilt = (hidden @ weight.T + (bias if bias is not None else 0)).float()
    scale = float(reference.abs().max()) + 1.0
    tolerance = 1e-4 if weight.dtype == torch.float32 else 5e-2
    if rebuilt.shape != reference.shape or float((rebuilt - reference).abs().max()) > tolerance * scale:
        setattr(parent, attr, decoder)
        raise MlmHeadError("the model's logits are not decoder(hidden): its head has extra steps")
    return weight, bias


class VocabPooler:
    """Projects token rows onto the vocabulary chunk by chunk and pools them per text (max or sum)."""

    def __init__(
        self,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        *,
        pooling: Pooling = "max",
        vocab_chunk: int = 4096,
        group_rows: int = 512,
        screen: bool | None = None,
    ) -> None:
        if pooling not in ("max", "sum"):
            raise ValueError(f"pooling must be 'max' or 'sum', got {pooling!r}")
        if vocab_chunk < 1 or group_rows < 1:
            raise ValueError("vocab_chunk and group_rows must be >= 1")
        self.weight = weight
        self.bias = bias if bias is not None else torch.zeros(weight.shape[0], dtype=weight.dtype)
        self.bias = self.bias.to(weight.device)
        self.pooling: Pooling = pooling
        self.vocab_chunk = vocab_chunk
        self.group_rows = group_rows
        self.vocab_size = int(weight.shape[0])
        if screen is None:
            screen = pooling == "max" and weight.device.type == "cpu" and weight.dtype == torch.float32
        if screen and pooling != "max":
            raise ValueError("int8 screening is exact only for max pooling")
        self.screen = bool(screen)
        if self.screen:
            self._prepare_screen()

    def _prepare_screen(self) -> None:
        """Quantise the projection to int8, one scale per vocabulary row, and keep what the bound needs."""
        weight = self.weight.float()
        scale = torch.maximum(weight.amax(dim=1), -weight.amin(dim=1)).clamp_min(1e-12) / 127.0
        quantised = (
            torch.div(weight, scale[:, None]).round_().clamp_(-127, 127)
        )  # the only full-size temporary
        self._w_int8 = quantised.to(torch.int8)
        self._w_scale = scale
        self._w_l1 = quantised.abs_().sum(dim=1) * scale  # ||w_hat||_1 per vocabulary row
        del quantised
        self._bias32 = self.bias.float()

    def pool(self, rows: torch.Tensor, lengths: Sequence[int]) -> torch.Tensor:
        """SPLADE weights, float32 (len(lengths), vocab); `rows` holds each text's token rows in turn.

        Texts are grouped so each matrix product covers about `group_rows` rows (large enough to run at full
        speed, small enough for one `rows x chunk` block to stay in cache).
        """
        if rows.shape[0] != sum(lengths):
            raise ValueError(f"{rows.shape[0]} rows given for texts of total length {sum(lengths)}")
        out = torch.empty((len(lengths), self.vocab_size), dtype=torch.float32, device=rows.device)
        start_text = 0
        start_row = 0
        while start_text < len(lengths):
            stop_text = start_text
            group = 0
            while stop_text < len(lengths) and (
                group == 0 or (group + lengths[stop_text] <= self.group_rows and stop_text - start_text < 64)
            ):
                group += lengths[stop_text]
                stop_text += 1
            pool_group = self._pool_group_screened if self.screen else self._pool_group
            pool_group(
                rows[start_row : start_row + group], lengths[start_text:stop_text], out[start_text:stop_text]
            )
            start_row += group
            start_text = stop_text
        if self.pooling == "max":
            torch.relu_(out)
            torch.log1p_(out)
        return out

    def _pool_group(self, rows: torch.Tensor, lengths: Sequence[int], out: torch.Tensor) -> None:
        chunk = self.vocab_chunk
        n_rows = rows.shape[0]
        buffer = torch.empty(n_rows * min(chunk, self.vocab_size), dtype=rows.dtype, device=rows.device)
        bounds = [0]
        for length in lengths:
            bounds.append(bounds[-1] + length)
        weight = self.weight
        bias = self.bias
        for c0 in range(0, self.vocab_size, chunk):
            c1 = min(c0 + chunk, self.vocab_size)
            logits = buffer[: n_rows * (c1 - c0)].view(n_rows, c1 - c0)
            torch.addmm(bias[c0:c1], rows, weight[c0:c1].T, out=logits)
            if self.pooling == "sum":
                torch.relu_(logits)
                torch.log1p_(logits)
            for text, (r0, r1) in enumerate(itertools.pairwise(bounds)):
                block = logits[r0:r1]
                if self.pooling == "max":
                    out[text, c0:c1] = block.amax(dim=0)
                else:
                    out[text, c0:c1] = block.sum(dim=0, dtype=torch.float32)

    def _pool_group_screened(self, rows: torch.Tensor, lengths: Sequence[int], out: torch.Tensor) -> None:
        """Max-pooled logits, exact where positive: int8 screen with an error bound, float32 recompute.

        With h_hat, w_hat the quantised row and weight (errors <= s_h/2 and s_w/2 per element),
        |h.w - h_hat.w_hat| <= ||h||_1 * s_w / 2 + ||w_hat||_1 * s_h / 2, so a column whose screened max plus
        this bound is <= 0 has a true max <= 0 and pools to 0. The rest is recomputed exactly.
        """
        rows = rows.float()
        bounds = [0]
        for length in lengths:
            bounds.append(bounds[-1] + length)
        row_scale = rows.abs().max().clamp_min(1e-12) / 127.0
        # pad to a multiple of 64 rows: oneDNN caches one kernel per shape, and a cache of every row count
        # seen would grow for the whole run; padding rows are never read back
        padded = -(-rows.shape[0] // _ROW_MULTIPLE) * _ROW_MULTIPLE
        rows_int8 = torch.zeros((padded, rows.shape[1]), dtype=torch.int8, device=rows.device)
        rows_int8[: rows.shape[0]] = torch.round(rows / row_scale).clamp_(-127, 127)
        row_l1 = rows.abs().sum(dim=1)
        screened = torch.empty((len(lengths), self.vocab_size), dtype=torch.float32, device=rows.device)
        chunk = self.vocab_chunk
        # one products buffer per call, reused across chunks (fewer large allocations, less heap fragmentation)
        buffer = torch.empty(padded * min(chunk, self.vocab_size), dtype=torch.int32, device=rows.device)
        for c0 in range(0, self.vocab_size, chunk):
            c1 = min(c0 + chunk, self.vocab_size)
            products = torch._int_mm(
                rows_int8, self._w_int8[c0:c1].T, out=buffer[: padded * (c1 - c0)].view(padded, c1 - c0)
            )
            for text, (r0, r1) in enumerate(itertools.pairwise(bounds)):
                screened[text, c0:c1] = products[r0:r1].amax(dim=0)
        screened.mul_(self._w_scale * row_scale).add_(self._bias32)
        max_l1 = torch.stack([row_l1[r0:r1].max() for r0, r1 in itertools.pairwise(bounds)])
        error = max_l1[:, None] * (self._w_scale / 2) + self._w_l1 * (row_scale / 2)
        candidates = screened + error * 1.001 + 1e-4 > 0
        out.zero_()
        for text, (r0, r1) in enumerate(itertools.pairwise(bounds)):
            columns = torch.nonzero(candidates[text]).squeeze(1)
            if columns.numel():
                exact = torch.addmm(self._bias32[columns], rows[r0:r1], self.weight[columns].float().T)
                out[text, columns] = exact.amax(dim=0)
