"""`DenseEncoder`: texts -> L2-normalised float32 embeddings by mean pooling (all-MiniLM-L6-v2 by default).

Same input rules and batching as the SPLADE encoder: length-sorted batches under a token budget, streaming
windows, truncation counted in `stats`. Empty or whitespace-only text encodes to the zero vector (it has no
direction; its cosine with anything is 0) without a model call.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from spladebridge.encoder.batching import pad_batch, plan_batches, windows
from spladebridge.encoder.inputs import check_texts
from spladebridge.encoder.models import quiet_loading, resolve_model
from spladebridge.encoder.onednn_linear import use_onednn_linears
from spladebridge.encoder.runtime import (
    BatchRunner,
    Precision,
    TextTokenizer,
    configure_threads,
    resolve_device,
    resolve_dtype,
)
from spladebridge.encoder.stats import EncodeStats

__all__ = ["DenseEncoder"]


class DenseEncoder:
    """Mean-pooled, L2-normalised sentence embeddings from a transformers encoder.

    `model`: None (the offline all-MiniLM-L6-v2 default), a hub name or a local folder. `precision="exact"`
    (the default on CPU) computes in float32; `"fast"` (the default on CUDA) in bfloat16, on CPUs only where the
    hardware has bf16 instructions (AVX512-BF16 or AMX), else it stays float32 with a warning. `dtype`
    overrides both. Results are always float32. On CPU whole batches run in parallel, one per core
    (`runtime.BatchRunner`).
    """

    def __init__(
        self,
        model: str | Path | None = None,
        *,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        precision: Precision | None = None,
        max_length: int = 256,
        batch_size: int = 32,
        max_batch_tokens: int | None = None,
        stream_window: int = 1024,
        num_threads: int | None = None,
    ) -> None:
        from transformers import AutoConfig

        if batch_size < 1 or stream_window < 1:
            raise ValueError("batch_size and stream_window must be >= 1")
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device, precision)
        if self.device.type == "cpu":
            configure_threads(num_threads)
        resolved = resolve_model(model, "dense")
        self._resolved = resolved
        self.model_name: str = resolved.name_or_path
        self.max_length = max_length
        self.batch_size = batch_size
        self.max_batch_tokens = max_batch_tokens if max_batch_tokens is not None else batch_size * max_length
        self.stream_window = stream_window
        self._tokenizer = TextTokenizer(resolved, max_length)
        config: Any = AutoConfig.from_pretrained(resolved.name_or_path, **resolved.load_kwargs)
        self.dim: int = int(config.hidden_size)
        self._model: torch.nn.Module | None = None
        self._load_lock = threading.Lock()  # the first encode may come from several threads at once
        self.stats = EncodeStats()
        self.last_stats = EncodeStats()
        self._runner = BatchRunner(self.device)

    def _load(self) -> torch.nn.Module:
        if self._model is not None:
            return self._model
        with self._load_lock:
            return self._load_once()

    def _load_once(self) -> torch.nn.Module:
        if self._model is None:
            from transformers import AutoModel

            with quiet_loading():
                model: Any = AutoModel.from_pretrained(
                    self._resolved.name_or_path, dtype=self.dtype, **self._resolved.load_kwargs
                )
            model = model.to(self.device).eval()
            if self.device.type == "cpu":
                use_onednn_linears(model)
            self._model = model
        return self._model

    def reset_stats(self) -> None:
        """Zero the cumulative counters in `stats`."""
        self.stats = EncodeStats()

    def encode(self, texts: Iterable[str]) -> NDArray[np.float32]:
        """Embeddings, float32 of shape (n, dim), in input order."""
        rows = list(self.iter_encode(texts))
        if not rows:
            return np.empty((0, self.dim), dtype=np.float32)
        return np.stack(rows)

    def iter_encode(self, texts: Iterable[str]) -> Iterator[NDArray[np.float32]]:
        """Stream embeddings (one float32 vector per text) in input order, `stream_window` texts at a time."""
        self.last_stats = call_stats = EncodeStats()
        for window in windows(check_texts(texts), self.stream_window):
            encoded = self._tokenizer.encode(window)
            window_stats = EncodeStats(
                texts=len(window), empty=sum(encoded.empty), truncated=sum(encoded.truncated)
            )
            out = np.zeros((len(window), self.dim), dtype=np.float32)
            live = [pos for pos, empty in enumerate(encoded.empty) if not empty]
            batches = plan_batches(
                [len(encoded.ids[pos]) for pos in live],
                max_tokens=max(self.max_batch_tokens // self._runner.in_flight, self.max_length),
                max_items=self.batch_size * 8,
            )
            if batches:
                self._load()
            position_lists = [[live[i] for i in batch] for batch in batches]
            sequence_lists = [[encoded.ids[pos] for pos in positions] for positions in position_lists]
            for positions, sequences, embedded in zip(
                position_lists, sequence_lists, self._runner.map(self._embed, sequence_lists), strict=True
            ):
                out[positions] = embedded
                window_stats.tokens += sum(map(len, sequences))
                window_stats.batches += 1
            call_stats.add(window_stats)
            self.stats.add(window_stats)
            yield from out

    def _embed(self, sequences: list[list[int]]) -> NDArray[np.float32]:
        model = self._load()
        input_ids, mask = pad_batch(sequences, self._tokenizer.pad_id, self.device)
        with torch.inference_mode():
            hidden = model(input_ids=input_ids, attention_mask=mask).last_hidden_state.float()
            weights = mask.unsqueeze(-1).to(hidden.dtype)
            summed = (hidden * weights).sum(dim=1)
            mean = summed / weights.sum(dim=1).clamp(min=1e-9)
            normed = torch.nn.functional.normalize(mean, p=2.0, dim=1)
        result: NDArray[np.float32] = normed.cpu().numpy().astype(np.float32, copy=False)
        return result

    def __repr__(self) -> str:
        return f"DenseEncoder(model={self.model_name!r}, device={self.device}, dtype={self.dtype}, dim={self.dim})"
