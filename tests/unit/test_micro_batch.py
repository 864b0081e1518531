"""`MicroBatcher`: requests within the window share one call on a worker thread; max_batch splits; several
workers run batches at once; cancelled requests are dropped; one bad item fails alone; close waits."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from spladebridge.hybrid.micro_batch import MicroBatcher


class Recorder:
    """A batch function that doubles numbers, records each batch and its thread, and can be slowed down."""

    def __init__(self, delay: float = 0.0) -> None:
        self.batches: list[list[int]] = []
        self.threads: set[str] = set()
        self.delay = delay
        self.running = 0
        self.most_at_once = 0
        self._lock = threading.Lock()

    def __call__(self, items: list[int]) -> list[int]:
        with self._lock:
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
            self.batches.append(list(items))
            self.threads.add(threading.current_thread().name)
        time.sleep(self.delay)
        with self._lock:
            self.running -= 1
        if -1 in items:
            raise ValueError("no negative ones")
        return [2 * i for i in items]


def test_requests_within_the_window_share_one_call_off_the_loop() -> None:
    fn = Recorder()

    async def run() -> list[int]:
        batcher = MicroBatcher(fn, window_s=0.05, thread_name="test-batch")
        try:
            return list(await asyncio.gather(*(batcher.submit(i) for i in range(10))))
        finally:
            await batcher.aclose()

    assert asyncio.run(run()) == [2 * i for i in range(10)]
    assert fn.batches == [list(range(10))]
    assert all(name.startswith("test-batch") for name in fn.threads)


def test_max_batch_splits_and_later_requests_get_their_own_batch() -> None:
    fn = Recorder()

    async def run() -> MicroBatcher[int, int]:
        batcher = MicroBatcher(fn, window_s=0.05, max_batch=4)
        await asyncio.gather(*(batcher.submit(i) for i in range(10)))
        assert await batcher.submit(99) == 198
        await batcher.aclose()
        return batcher

    batcher = asyncio.run(run())
    assert [len(b) for b in fn.batches] == [4, 4, 2, 1]
    assert batcher.stats.items == 11 and batcher.stats.batches == 4


def test_several_workers_run_batches_at_once() -> None:
    fn = Recorder(delay=0.2)

    async def run() -> None:
        batcher = MicroBatcher(fn, window_s=0.0, max_batch=2, workers=2)
        await asyncio.gather(*(batcher.submit(i) for i in range(8)))
        await batcher.aclose()

    asyncio.run(run())
    assert fn.most_at_once == 2 and sum(len(b) for b in fn.batches) == 8


def test_a_cancelled_request_is_dropped_before_its_batch_runs() -> None:
    fn = Recorder()

    async def run() -> MicroBatcher[int, int]:
        batcher = MicroBatcher(fn, window_s=0.1)
        doomed = asyncio.create_task(batcher.submit(7))
        kept = asyncio.create_task(batcher.submit(8))
        await asyncio.sleep(0.01)
        doomed.cancel()
        assert await kept == 16
        await batcher.aclose()
        return batcher

    batcher = asyncio.run(run())
    assert fn.batches == [[8]] and batcher.stats.dropped == 1


def test_one_bad_item_fails_alone() -> None:
    fn = Recorder()

    async def run() -> list[object]:
        batcher = MicroBatcher(fn, window_s=0.05)
        out = await asyncio.gather(*(batcher.submit(i) for i in (1, -1, 3)), return_exceptions=True)
        await batcher.aclose()
        return list(out)

    one, bad, three = asyncio.run(run())
    assert one == 2 and three == 6 and isinstance(bad, ValueError)
    assert fn.batches[0] == [1, -1, 3] and sorted(map(tuple, fn.batches[1:])) == [(-1,), (1,), (3,)]


def test_aclose_waits_for_the_running_batch_and_refuses_new_work() -> None:
    fn = Recorder(delay=0.2)

    async def run() -> None:
        batcher = MicroBatcher(fn, window_s=0.0)
        task = asyncio.create_task(batcher.submit(1))
        await asyncio.sleep(0.05)
        await batcher.aclose()
        assert fn.running == 0  # the batch that was running has finished
        task.cancel()
        with pytest.raises(RuntimeError, match="closed"):
            await batcher.submit(2)

    asyncio.run(run())


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="window_s"):
        MicroBatcher(Recorder(), window_s=-1)
    with pytest.raises(ValueError, match="max_batch"):
        MicroBatcher(Recorder(), max_batch=0)
    with pytest.raises(ValueError, match="workers"):
        MicroBatcher(Recorder(), workers=0)
