"""Runtime set-up shared by the encoders: device, compute dtype, CPU threads and the truncating tokenizer."""

from __future__ import annotations

import logging
import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias, TypeVar

import torch

from spladebridge.encoder.models import ResolvedModel

__all__ = [
    "BatchRunner",
    "EncodedTexts",
    "Precision",
    "TextTokenizer",
    "configure_threads",
    "cpu_has_bf16",
    "resolve_device",
    "resolve_dtype",
]

_DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}
_THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
_TOKENIZE_BATCH = 64
#: "exact": float32 compute; "fast": bfloat16 where the hardware runs it natively (results stay float32).
Precision: TypeAlias = Literal["exact", "fast"]
logger = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")


def resolve_device(device: str | torch.device | None) -> torch.device:
    """The requested device, or CUDA when available, else CPU."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def cpu_has_bf16() -> bool:
    """Whether this CPU has native bf16 matrix instructions (AVX512-BF16 or AMX) that oneDNN uses."""
    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    return bool(check()) if check is not None else False


def resolve_dtype(
    dtype: str | torch.dtype | None, device: torch.device, precision: Precision | None = None
) -> torch.dtype:
    """Compute dtype: `dtype` when given; else by `precision`, which defaults to "fast" on CUDA (bf16, or fp16
    where bf16 is unsupported) and "exact" (fp32) on CPU. "fast" on a CPU without native bf16 stays fp32:
    emulated bf16 is slower than fp32, not faster.

    Only the model runs in this dtype; pooled results are always returned as float32.
    """
    if precision not in (None, "exact", "fast"):
        raise ValueError(f"precision must be 'exact' or 'fast', got {precision!r}")
    if dtype is None:
        precision = precision or ("fast" if device.type == "cuda" else "exact")
        if precision == "exact":
            return torch.float32
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if device.type == "cpu" and not cpu_has_bf16():
            logger.warning("precision='fast' needs a CPU with AVX512-BF16 or AMX; computing in float32")
            return torch.float32
        return torch.bfloat16
    if isinstance(dtype, torch.dtype):
        resolved = dtype
    elif isinstance(dtype, str) and dtype.lower() in _DTYPES:
        resolved = _DTYPES[dtype.lower()]
    else:
        raise ValueError(f"unsupported dtype {dtype!r}; use one of float32, bfloat16, float16")
    if resolved not in (torch.float32, torch.bfloat16, torch.float16):
        raise ValueError(f"unsupported dtype {resolved}; use one of float32, bfloat16, float16")
    return resolved


def configure_threads(num_threads: int | None) -> None:
    """Set torch's intra-op threads: as given, else to the CPUs this process may use, unless the user chose.

    A user choice is an explicit `num_threads`, or OMP_NUM_THREADS / MKL_NUM_THREADS in the environment, which
    torch already honours; in those cases nothing is overridden.
    """
    if num_threads is not None:
        if num_threads < 1:
            raise ValueError(f"num_threads must be >= 1, got {num_threads}")
        torch.set_num_threads(num_threads)
        return
    if any(os.environ.get(name) for name in _THREAD_ENV):
        return
    try:
        available = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        available = os.cpu_count() or 1
    if torch.get_num_threads() > available:
        torch.set_num_threads(available)


class BatchRunner:
    """Runs whole batches in parallel on CPU: one worker thread per core, one intra-op thread per worker.

    Encoding a batch is many small operations; spreading each over all cores (torch's default) costs a
    thread barrier per operation, which is cheap on an idle machine but very slow on a busy or shared one
    (a barrier waits for every thread to be scheduled). Coarse batch-level parallelism avoids that.
    Torch releases the GIL inside its operators, so plain threads run batches truly in parallel.
    On CUDA, or with one core, batches simply run in turn.
    """

    def __init__(self, device: torch.device) -> None:
        self.workers = torch.get_num_threads() if device.type == "cpu" else 1
        self.in_flight = 2 * self.workers if self.workers > 1 else 1  # batches alive at once, at most
        self._executor: ThreadPoolExecutor | None = None
        self._busy = 0  # batches running now, from every caller
        self._busy_lock = threading.Lock()

    def _pool(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                max_workers=self.workers, thread_name_prefix="spladebridge-encode", initializer=_one_thread
            )
        return self._executor

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        """`fn` over `items`, results in input order, at most two batches per worker in flight (bounded memory).

        A lone batch (one query, say) on an idle runner runs in the caller's thread on all of torch's threads:
        handing it to a one-thread worker would only add a thread switch and leave the other cores idle. While
        other batches run (many callers at once), it queues for the one-thread workers like any batch, so
        concurrent callers never oversubscribe the cores.
        """
        if self.workers <= 1:
            yield from map(fn, items)
            return
        if isinstance(items, Sequence) and len(items) == 1 and self._claim_idle():
            try:
                result = fn(items[0])
            finally:
                self._release()
            yield result
            return
        pool = self._pool()
        pending: deque[Future[R]] = deque()
        for item in items:
            pending.append(pool.submit(self._counted, fn, item))
            if len(pending) >= self.in_flight:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()

    def _claim_idle(self) -> bool:
        with self._busy_lock:
            if self._busy:
                return False
            self._busy = 1
            return True

    def _release(self) -> None:
        with self._busy_lock:
            self._busy -= 1

    def _counted(self, fn: Callable[[T], R], item: T) -> R:
        with self._busy_lock:
            self._busy += 1
        try:
            return fn(item)
        finally:
            self._release()

    def close(self) -> None:
        """Stop the worker threads (they are also stopped when the process exits)."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None


def _one_thread() -> None:
    torch.set_num_threads(1)


@dataclass(frozen=True)
class EncodedTexts:
    """Token ids per text (special tokens included), whether each was truncated, and whether it is empty."""

    ids: list[list[int]]
    truncated: list[bool]
    empty: list[bool]


class TextTokenizer:
    """A truncating fast tokenizer that also reports which texts were cut to `max_length`.

    Wraps a private copy of the model's `tokenizers.Tokenizer` (so the transformers tokenizer is not mutated)
    with truncation on and padding off; batches are padded later, after length sorting.
    """

    def __init__(self, resolved: ResolvedModel, max_length: int) -> None:
        from tokenizers import Tokenizer
        from transformers import AutoTokenizer

        if max_length < 3:
            raise ValueError(f"max_length must be >= 3 (room for special tokens), got {max_length}")
        hf: Any = AutoTokenizer.from_pretrained(resolved.name_or_path, **resolved.load_kwargs)
        backend = getattr(hf, "backend_tokenizer", None)
        if backend is None:
            raise ValueError(
                f"model {resolved.name_or_path!r} has no fast tokenizer (tokenizer.json) to load"
            )
        model_max = getattr(hf, "model_max_length", None)
        if isinstance(model_max, int) and 0 < model_max < max_length:
            max_length = model_max
        self.hf_tokenizer: Any = hf
        self.max_length = max_length
        self._backend = Tokenizer.from_str(backend.to_str())
        self._backend.enable_truncation(max_length)
        self._backend.no_padding()
        self.special_ids: frozenset[int] = frozenset(int(i) for i in hf.all_special_ids)
        pad_id = hf.pad_token_id
        self.pad_id: int = int(pad_id) if pad_id is not None else 0

    def vocab(self, size: int) -> list[str]:
        """Id -> token for ids `0..size-1`; ids without a token get a readable placeholder."""
        tokens = [f"[id:{i}]" for i in range(size)]
        for token, token_id in self._backend.get_vocab(with_added_tokens=True).items():
            if 0 <= token_id < size:
                tokens[token_id] = token
        return tokens

    def encode(self, texts: Sequence[str], *, add_special_tokens: bool = True) -> EncodedTexts:
        """Tokenize a batch; a text with no token other than special ones is marked empty."""
        ids: list[list[int]] = []
        truncated: list[bool] = []
        # small sub-batches: each Encoding also holds token strings, offsets and the overflowing rest
        for start in range(0, len(texts), _TOKENIZE_BATCH):
            encodings = self._backend.encode_batch(
                list(texts[start : start + _TOKENIZE_BATCH]), add_special_tokens=add_special_tokens
            )
            ids.extend(enc.ids for enc in encodings)
            truncated.extend(bool(enc.overflowing) for enc in encodings)
            del encodings
        special = self.special_ids
        empty = [all(token_id in special for token_id in seq) for seq in ids]
        return EncodedTexts(ids=ids, truncated=truncated, empty=empty)
