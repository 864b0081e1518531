"""`MicroBatcher`: requests that arrive within a few milliseconds share one call of a blocking batch function,
which runs on its own worker thread, off the event loop.

The first request of a batch opens a window of `window_s` seconds; the batch closes when the window ends or
`max_batch` requests are in. At most `workers` batches run at once (one thread each); while they all run,
further requests gather for the next batch (so batches grow with load). A request cancelled before its batch starts is dropped from it (nothing runs for
it); once a batch runs, it runs to completion for the requests that still wait (a forward pass cannot be
interrupted) and the cancelled request's result is discarded. When a batch fails, each of its requests is run
once on its own, so one bad request fails alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from spladebridge.connectors.async_threads import run_in_thread

__all__ = ["BatchStats", "MicroBatcher"]

In = TypeVar("In")
Out = TypeVar("Out")


@dataclass(slots=True)
class BatchStats:
    """Counters of a batcher: batches run, requests in them, requests dropped when cancelled, and the sizes
    of the last 1,024 batches (bounded: a service runs for months)."""

    batches: int = 0
    items: int = 0
    dropped: int = 0
    sizes: deque[int] = field(default_factory=lambda: deque(maxlen=1024))


@dataclass(slots=True)
class _Pending(Generic[In, Out]):
    item: In
    future: asyncio.Future[Out]
    since: float


class MicroBatcher(Generic[In, Out]):
    """Groups items submitted within `window_s` into one `fn(items)` call on a worker thread (see module doc);
    `thread_init` runs once on that thread when it starts."""

    def __init__(
        self,
        fn: Callable[[list[In]], Sequence[Out]],
        *,
        window_s: float = 0.002,
        max_batch: int = 64,
        thread_name: str = "spladebridge-batch",
        thread_init: Callable[[], None] | None = None,
        workers: int = 1,
    ) -> None:
        if not window_s >= 0:
            raise ValueError(f"window_s must be >= 0, got {window_s!r}")
        if isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 1:
            raise ValueError(f"max_batch must be a positive integer, got {max_batch!r}")
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers must be a positive integer, got {workers!r}")
        self.workers = workers
        self.fn = fn
        self.window_s = float(window_s)
        self.max_batch = max_batch
        self.stats = BatchStats()
        self._thread_name = thread_name
        self._thread_init = thread_init
        self._pending: list[_Pending[In, Out]] = []
        self._wake: asyncio.Event | None = None
        self._worker: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[None]] = set()
        self._slots: asyncio.Semaphore | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._closed = False

    async def submit(self, item: In) -> Out:
        """The result of `fn` for `item`, computed in a batch with the items submitted around the same time."""
        if self._closed:
            raise RuntimeError("this MicroBatcher is closed")
        loop = asyncio.get_running_loop()
        self._start(loop)
        assert self._wake is not None
        entry: _Pending[In, Out] = _Pending(item, loop.create_future(), time.monotonic())
        self._pending.append(entry)
        self._wake.set()
        return await entry.future

    async def aclose(self) -> None:
        """Stop the worker: requests still waiting are cancelled, a running batch is awaited, the thread ends."""
        self._closed = True
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.cancel()
            await asyncio.wait([worker])
        if self._running:
            await asyncio.wait(self._running)  # batches already encoding: their thread cannot be stopped
        for entry in self._pending:
            entry.future.cancel()
        self._pending.clear()
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)

    # -- the worker ---------------------------------------------------------------------------------------

    def executor(self) -> ThreadPoolExecutor:
        """The batcher's worker threads (other blocking work of the same kind may queue on them)."""
        if self._closed:
            raise RuntimeError("this MicroBatcher is closed")
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                max_workers=self.workers, thread_name_prefix=self._thread_name, initializer=self._thread_init
            )
        return self._executor

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._worker is None:
            self._wake = asyncio.Event()
            self._slots = asyncio.Semaphore(self.workers)
            self.executor()
            self._worker = loop.create_task(self._run(), name=self._thread_name)

    async def _run(self) -> None:
        assert self._wake is not None and self._slots is not None
        while True:
            await self._wake.wait()
            await self._slots.acquire()  # a free worker: requests gather meanwhile
            try:
                await self._next_batch()
            except BaseException:
                self._slots.release()
                raise

    async def _next_batch(self) -> None:
        """Wait out the window of the oldest request, then start its batch on a free worker."""
        assert self._wake is not None
        while True:
            self._drop_cancelled()
            if not self._pending:
                self._wake.clear()
                await self._wake.wait()
                continue
            wait = self._pending[0].since + self.window_s - time.monotonic()
            if wait > 0 and len(self._pending) < self.max_batch:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._full(), timeout=wait)
                self._drop_cancelled()
            batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
            if not self._pending:
                self._wake.clear()
            if batch:
                task = asyncio.get_running_loop().create_task(self._run_batch(batch), name=self._thread_name)
                self._running.add(task)
                task.add_done_callback(self._finished)
                return

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        assert self._slots is not None
        self._slots.release()

    async def _full(self) -> None:
        """Returns once `max_batch` live items wait."""
        assert self._wake is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            self._drop_cancelled()
            if len(self._pending) >= self.max_batch:
                return

    def _drop_cancelled(self) -> None:
        live = [p for p in self._pending if not p.future.done()]
        self.stats.dropped += len(self._pending) - len(live)
        self._pending = live

    async def _run_batch(self, batch: list[_Pending[In, Out]]) -> None:
        assert self._executor is not None
        items = [p.item for p in batch]
        self.stats.batches += 1
        self.stats.items += len(items)
        self.stats.sizes.append(len(items))
        try:
            results = await run_in_thread(self._executor, lambda: list(self.fn(items)))
            if len(results) != len(items):
                raise RuntimeError(f"batch function returned {len(results)} results for {len(items)} items")
        except asyncio.CancelledError:
            for p in batch:
                p.future.cancel()
            raise
        except Exception as exc:
            if len(batch) == 1:
                _settle_error(batch[0].future, exc)
                return
            for p in batch:  # one bad item must not fail the others
                await self._run_batch([p])
            return
        for p, result in zip(batch, results, strict=True):
            if not p.future.done():
                p.future.set_result(result)


def _settle_error(future: asyncio.Future[Out], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
