"""`BlockingBridge`: an official async client seen as a blocking one from a worker thread.

The synchronous Lucene connectors read an engine's facts (version, plugins, licence, the index mapping) and
create search pipelines through blocking client calls. The async connectors reuse that code unchanged by
running it on a worker thread with a bridge as its client: each call is sent to the event loop, where the
async client makes it, and the worker waits for the answer. Called on the event loop's own thread, a bridge
raises `WouldBlock` instead of deadlocking, so a caller can fall back to a thread.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["BlockingBridge", "WouldBlock"]

#: Attributes handed out as they are (the sync connector configures the transport's media types).
_PASSTHROUGH = frozenset({"transport"})


class WouldBlock(RuntimeError):
    """A blocking call was made on the event loop's thread, where waiting for the loop would deadlock."""


class BlockingBridge:
    """`target` (an async client, or one of its namespaces) as a blocking object for worker threads."""

    def __init__(self, target: Any, loop: asyncio.AbstractEventLoop, loop_thread: int | None = None) -> None:
        self._target = target
        self._loop = loop
        self._loop_thread = threading.get_ident() if loop_thread is None else loop_thread

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._target, name)
        if name in _PASSTHROUGH:
            return value
        return BlockingBridge(value, self._loop, self._loop_thread)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if threading.get_ident() == self._loop_thread:
            raise WouldBlock(
                f"a blocking call ({getattr(self._target, '__qualname__', self._target)!r}) on the event loop"
            )
        return asyncio.run_coroutine_threadsafe(_call(self._target, args, kwargs), self._loop).result()


async def _call(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    result = fn(*args, **kwargs)
    return await result if inspect.isawaitable(result) else result
