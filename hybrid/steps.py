"""Search steps as named calls: the search logic is written once and run by a sync or an async driver.

A step function is a generator that yields the engine (or encoder) calls it needs next, as `Call`s, and is
sent back their results in the same order; its return value is the answer. `run_steps` makes the calls in
turn (`HybridSearcher`); `run_steps_async` awaits them concurrently (`AsyncHybridSearcher`), cancelling the
siblings of a call that failed and every call of a cancelled search.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias, TypeVar

__all__ = ["Call", "CallTarget", "Steps", "gather_or_cancel", "run_steps", "run_steps_async"]

T = TypeVar("T")
CallTarget: TypeAlias = Literal["connector", "sparse_encoder", "dense_encoder"]


@dataclass(frozen=True, slots=True)
class Call:
    """One call a search needs: a method of the connector (or an encoder) and its arguments, named, not made."""

    method: str
    args: tuple[Any, ...] = ()
    target: CallTarget = "connector"


#: A search written as steps: yields the calls it needs next, is sent their results, returns its answer.
Steps: TypeAlias = Generator[list[Call], list[Any], T]


def run_steps(steps: Steps[T], targets: Mapping[CallTarget, Any]) -> T:
    """Run `steps` to the end, making each call in turn on its target (the synchronous driver)."""
    try:
        calls = next(steps)
        while True:
            calls = steps.send([getattr(targets[c.target], c.method)(*c.args) for c in calls])
    except StopIteration as done:
        result: T = done.value
        return result
    finally:
        steps.close()


async def run_steps_async(steps: Steps[T], call: Callable[[Call], Awaitable[Any]]) -> T:
    """Run `steps` to the end, awaiting the calls of each step concurrently (the asynchronous driver)."""
    try:
        calls = next(steps)
        while True:
            calls = steps.send(await gather_or_cancel([call(c) for c in calls]))
    except StopIteration as done:
        result: T = done.value
        return result
    finally:
        steps.close()


async def gather_or_cancel(awaitables: Sequence[Awaitable[T]]) -> list[T]:
    """Await all, in order; when one fails (or this is cancelled), cancel and await the rest, then raise.

    Unlike `asyncio.gather`, nothing is left running after it returns or raises, and the first error comes
    out as itself (not wrapped in an ExceptionGroup, as `asyncio.TaskGroup` would)."""
    if len(awaitables) == 1:
        return [await awaitables[0]]
    tasks = [asyncio.ensure_future(a) for a in awaitables]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    except BaseException:
        await _cancel_all(tasks)
        raise
    failed = [t for t in tasks if t.done() and not t.cancelled() and t.exception() is not None]
    if failed:
        await _cancel_all(tasks)
        error = failed[0].exception()
        assert error is not None
        raise error
    return [t.result() for t in tasks]


async def _cancel_all(tasks: Sequence[asyncio.Future[Any]]) -> None:
    """Cancel the unfinished tasks and wait until every one has really finished."""
    for task in tasks:
        task.cancel()
    await asyncio.wait(tasks)
    for task in tasks:  # mark their errors as seen: the caller raises the one that matters
        if not task.cancelled():
            task.exception()
