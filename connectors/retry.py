"""`RetryPolicy`: the one rule for how often and how long every connector re-sends a failing write.

Only the layer that sends retries: the bulk runner (Elasticsearch, OpenSearch, migration targets) and the
Qdrant connector. `ingest()` and `migrate()` never re-send; they take the connector's final outcomes. So a
document is sent at most `max_retries + 1` times. Whether a failure is transient (429, 5xx, a lost
connection) is the connector's call; the policy only decides how many attempts and how long to wait,
`min(max_backoff, initial_backoff * 2**(retry - 1))` before retry number `retry`. Built on tenacity.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    Retrying,
    retry_if_exception,
    retry_if_result,
    stop_after_attempt,
    wait_exponential,
)

__all__ = ["RetryPolicy"]

log = logging.getLogger(__name__)

T = TypeVar("T")
Item = TypeVar("Item")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How many times to re-send a transiently failing write and how long to wait in between.

    `max_retries` counts re-sends after the first attempt (so `attempts == max_retries + 1`); the wait
    doubles from `initial_backoff` up to `max_backoff` seconds. `sleep` is injectable so tests never wait.
    """

    max_retries: int = 4
    initial_backoff: float = 1.0
    max_backoff: float = 30.0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False, compare=False)

    def __post_init__(self) -> None:
        if (
            isinstance(self.max_retries, bool)
            or not isinstance(self.max_retries, int)
            or self.max_retries < 0
        ):
            raise ValueError(f"max_retries must be an integer >= 0, got {self.max_retries!r}")
        for name in ("initial_backoff", "max_backoff"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number of seconds >= 0, got {value!r}")

    @property
    def attempts(self) -> int:
        """Sends in all, the first one included."""
        return self.max_retries + 1

    def backoff(self, retry: int) -> float:
        """Seconds to wait before retry number `retry` (1 = the first re-send)."""
        return float(min(self.max_backoff, self.initial_backoff * 2 ** (retry - 1)))

    def with_sleep(self, sleep: Callable[[float], None]) -> RetryPolicy:
        """The same policy waiting with `sleep` (a test's recorder, say)."""
        return replace(self, sleep=sleep)

    def with_attempts(self, attempts: int) -> RetryPolicy:
        """The same policy allowing `attempts` sends in all (at least one): what is left of a budget."""
        return replace(self, max_retries=max(attempts, 1) - 1)

    def call(self, fn: Callable[[], T], *, retry_if: Callable[[BaseException], bool]) -> T:
        """`fn()`, called again while it raises an exception `retry_if` calls transient; the last
        exception propagates unchanged once the attempts are spent (or at once when it is not transient)."""
        retrying = self._retrying(retry=retry_if_exception(retry_if), reraise=True, what="call")
        result: T = retrying(fn)
        return result

    async def call_async(
        self, fn: Callable[[], Awaitable[T]], *, retry_if: Callable[[BaseException], bool]
    ) -> T:
        """`call` for coroutines: the same attempts and backoff, waiting with `asyncio.sleep`."""
        retrying = AsyncRetrying(
            retry=retry_if_exception(retry_if), reraise=True, **self._settings(what="call", sleep=False)
        )

        async def attempt() -> T:  # a coroutine function, so that tenacity awaits each attempt
            return await fn()

        result: T = await retrying(attempt)
        return result

    def rounds(self, items: Sequence[Item], send: Callable[[list[Item], int], Sequence[Item]]) -> int:
        """Per-item re-send rounds: `send(pending, attempt)` sends `pending` once, records each item's
        outcome, and returns the items that failed transiently; those are sent again after the backoff,
        until none is left or the attempts are spent. Returns the number of rounds run (0 for no items)."""
        pending = list(items)
        attempt = 0
        if not pending:
            return 0

        def one_round() -> list[Item]:
            nonlocal pending, attempt
            attempt += 1
            pending = list(send(pending, attempt))
            return pending

        retrying = self._retrying(
            retry=retry_if_result(bool), retry_error_callback=_last_result, what="round"
        )
        retrying(one_round)
        return attempt

    def _retrying(self, *, what: str, **kwargs: Any) -> Retrying:
        return Retrying(**self._settings(what=what), **kwargs)

    def _settings(self, *, what: str, sleep: bool = True) -> dict[str, Any]:
        """The stop, wait and logging settings of every retrying loop (sync and async alike)."""
        settings: dict[str, Any] = {
            "stop": stop_after_attempt(self.attempts),
            "wait": wait_exponential(multiplier=self.initial_backoff, exp_base=2, max=self.max_backoff),
            "before_sleep": lambda state: _log_retry(state, self.attempts, what),
        }
        if sleep:
            settings["sleep"] = self.sleep
        return settings


def _last_result(state: RetryCallState) -> Any:
    """What the last round returned (the items still failing), instead of tenacity's RetryError."""
    return state.outcome.result() if state.outcome is not None else None


def _log_retry(state: RetryCallState, attempts: int, what: str) -> None:
    """One INFO line before each wait: what failed, how long the wait is, which attempt comes next."""
    outcome = state.outcome
    delay = state.next_action.sleep if state.next_action is not None else 0.0
    if outcome is not None and outcome.failed:
        failure = outcome.exception()
        detail = f"{type(failure).__name__}: {failure}"
    else:
        result = outcome.result() if outcome is not None else None
        detail = f"{len(result) if isinstance(result, Sequence) else '?'} item(s) failed transiently"
    log.info(
        "retrying a failed %s in %.2fs (attempt %d of %d next): %s",
        what,
        delay,
        state.attempt_number + 1,
        attempts,
        detail,
    )
