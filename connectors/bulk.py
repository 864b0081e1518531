"""A client-agnostic bulk runner: per-item outcomes, retries with backoff, nothing dropped silently.

Works with the `streaming_bulk` helper of `elasticsearch` and of `opensearch-py` (passed in, so this module
imports neither). The helper is always called with `raise_on_error=False`, `raise_on_exception=False` and
`max_retries=0`: it then yields exactly one `(ok, {op: item})` per action, in order, and this module does the
retrying itself, the same way for both clients:

* items that fail with a status in `BulkConfig.retry_statuses` (429 by default, plus 502/503/504), and items
  hit by a connection error (an exception in `retryable_exceptions`, raised by the call or carried in the
  item) are re-sent in rounds under `BulkConfig.retry` (a `RetryPolicy`: at most `max_retries + 1` sends of
  an item, exponential backoff between rounds); nothing above this layer re-sends;
* every action carries an explicit `_id`, so re-sending is idempotent (no duplicates);
* chunks are cut by count (`chunk_size`) and by bytes (`max_chunk_bytes`) by the helper;
* input is consumed in windows of `window` actions, so memory stays bounded for long streams;
* each item ends with exactly one `ItemOutcome` (ok or failed, why, whether retrying could help, attempts),
  in input order. A response that lacks an item, or an exception that ends a round early, marks the
  unanswered items failed rather than losing them.

Stable API (shared by the Elasticsearch and OpenSearch connectors): `BulkAction`, `BulkConfig`, `run_bulk`,
`StreamingBulk`, `format_bulk_error`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from itertools import islice
from typing import Any, Literal, TypeAlias

from spladebridge.connectors.base import DocId, ItemOutcome, WriteReport
from spladebridge.connectors.retry import RetryPolicy

__all__ = ["BulkAction", "BulkConfig", "StreamingBulk", "format_bulk_error", "item_version", "run_bulk"]

log = logging.getLogger(__name__)

#: `elasticsearch.helpers.streaming_bulk` or `opensearchpy.helpers.streaming_bulk`.
StreamingBulk: TypeAlias = Callable[..., Iterable[tuple[bool, dict[str, Any]]]]

BulkOp: TypeAlias = Literal["index", "create", "delete", "update"]
_OPS: frozenset[str] = frozenset({"index", "create", "delete", "update"})
_MAX_ERROR_CHARS = 1000


@dataclass(frozen=True, slots=True)
class BulkAction:
    """One bulk operation with an explicit `_id`.

    `source` is the document (index/create) or the update body (update: `{"doc": ...}`); deletes have none.
    `item_id` is the id shown in the report (the caller's own id, e.g. an int); it defaults to `id`.
    `missing_ok=True` counts a 404 as success (deleting an absent document). `if_seq_no` and
    `if_primary_term` (both or neither) make the operation conditional: the engine answers 409 when the
    document changed since that version (optimistic concurrency), so a newer write is never overwritten.
    """

    op: BulkOp
    index: str
    id: str
    source: Mapping[str, Any] | None = None
    item_id: DocId | None = None
    missing_ok: bool = False
    if_seq_no: int | None = None
    if_primary_term: int | None = None

    def __post_init__(self) -> None:
        if self.op not in _OPS:
            raise ValueError(f"bulk op must be one of {sorted(_OPS)}, got {self.op!r}")
        if not isinstance(self.id, str) or not self.id:
            raise ValueError(f"bulk action needs a non-empty string _id, got {self.id!r}")
        if not self.index:
            raise ValueError("bulk action needs an index name")
        if self.op == "delete" and self.source is not None:
            raise ValueError(f"delete of {self.id!r} must not carry a source")
        if self.op != "delete" and self.source is None:
            raise ValueError(f"{self.op} of {self.id!r} needs a source")
        if (self.if_seq_no is None) != (self.if_primary_term is None):
            raise ValueError(f"{self.op} of {self.id!r}: give if_seq_no and if_primary_term together")

    @property
    def report_id(self) -> DocId:
        return self.id if self.item_id is None else self.item_id

    def to_action(self) -> dict[str, Any]:
        """The action dict the client helpers' `expand_action` understands."""
        action: dict[str, Any] = {"_op_type": self.op, "_index": self.index, "_id": self.id}
        if self.source is not None:
            action["_source"] = self.source
        if self.if_seq_no is not None:
            action["if_seq_no"] = self.if_seq_no
            action["if_primary_term"] = self.if_primary_term
        return action


@dataclass(frozen=True, slots=True)
class BulkConfig:
    """How to chunk and retry. `retry` is the write retry policy; `request_kwargs` go to `client.bulk`
    (e.g. `{"refresh": "wait_for"}`).

    `max_attempts` (sends in all, the first included), `initial_backoff` and `max_backoff` are the older
    spelling of `retry`: when given they are folded into `retry` (`max_retries = max_attempts - 1`) and read
    back as None afterwards, so `dataclasses.replace` never applies them twice.
    """

    chunk_size: int = 500
    max_chunk_bytes: int = 10 * 1024 * 1024
    max_attempts: int | None = None
    initial_backoff: float | None = None
    max_backoff: float | None = None
    retry_statuses: frozenset[int] = frozenset({429, 502, 503, 504})
    window: int = 10_000
    request_kwargs: Mapping[str, Any] = field(default_factory=dict)
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    def __post_init__(self) -> None:
        if self.chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {self.chunk_size}")
        if self.max_chunk_bytes < 1024:
            raise ValueError(f"max_chunk_bytes must be >= 1024, got {self.max_chunk_bytes}")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {self.max_attempts}")
        if self.window < 1:
            raise ValueError(f"window must be >= 1, got {self.window}")
        if not isinstance(self.retry, RetryPolicy):
            raise TypeError(f"retry must be a RetryPolicy, got {type(self.retry).__name__}")
        legacy: dict[str, Any] = {}
        if self.max_attempts is not None:
            legacy["max_retries"] = self.max_attempts - 1
        if self.initial_backoff is not None:
            legacy["initial_backoff"] = self.initial_backoff
        if self.max_backoff is not None:
            legacy["max_backoff"] = self.max_backoff
        if legacy:
            object.__setattr__(self, "retry", replace(self.retry, **legacy))  # validates the values
            for name in ("max_attempts", "initial_backoff", "max_backoff"):
                object.__setattr__(self, name, None)
        object.__setattr__(self, "retry_statuses", frozenset(self.retry_statuses))

    def backoff(self, retry_round: int) -> float:
        """Seconds to sleep before retry round `retry_round` (1 = the first retry)."""
        return self.retry.backoff(retry_round)


def format_bulk_error(error: Any) -> str:
    """A one-line message from a bulk item's `error` (a dict with type/reason/caused_by, or a string)."""
    if error is None:
        return "unknown error"
    if isinstance(error, Mapping):
        kind = error.get("type")
        reason = error.get("reason")
        text = f"{kind}: {reason}" if kind and reason else str(reason or kind or dict(error))
        cause = error.get("caused_by")
        if isinstance(cause, Mapping):
            text += f" (caused by {format_bulk_error(cause)})"
    else:
        text = str(error)
    return text if len(text) <= _MAX_ERROR_CHARS else text[: _MAX_ERROR_CHARS - 3] + "..."


def _describe_exception(exc: BaseException) -> str:
    """`Type: message`, keeping a transport error's own message when its `str` hides it."""
    text = str(exc)
    message = getattr(exc, "message", None)
    if isinstance(message, str) and message and message not in text:
        text = f"{text} ({message})"
    return f"{type(exc).__name__}: {text}"


@dataclass(slots=True)
class _Result:
    ok: bool
    status: str
    error: str | None = None
    retryable: bool = False
    version: tuple[int, int] | None = None


def item_version(item: Mapping[str, Any]) -> tuple[int, int] | None:
    """`(_seq_no, _primary_term)` of a bulk item's answer, a search hit or an mget entry (None when it
    carries none)."""
    seq_no, term = item.get("_seq_no"), item.get("_primary_term")
    if isinstance(seq_no, int) and isinstance(term, int) and seq_no >= 0:
        return seq_no, term
    return None


def _classify(
    ok: bool,
    item: Mapping[str, Any],
    action: BulkAction,
    config: BulkConfig,
    retryable_exceptions: tuple[type[BaseException], ...],
) -> _Result:
    status = item.get("status")
    if not ok and action.missing_ok and status == 404:
        return _Result(True, str(item.get("result") or "not_found"))
    if ok:
        return _Result(True, str(item.get("result") or status), version=item_version(item))
    exc = item.get("exception")
    connection_failure = isinstance(exc, BaseException) and isinstance(exc, retryable_exceptions)
    retryable = connection_failure or (isinstance(status, int) and status in config.retry_statuses)
    status_text = "connection_error" if connection_failure else str(status)
    return _Result(False, status_text, format_bulk_error(item.get("error")), retryable)


def _run_round(
    streaming_bulk: StreamingBulk,
    client: Any,
    pending: list[tuple[int, BulkAction]],
    config: BulkConfig,
    retryable_exceptions: tuple[type[BaseException], ...],
) -> dict[int, _Result]:
    """Send `pending` once; a result for every position, answered or not."""
    results: dict[int, _Result] = {}
    answered = 0
    try:
        stream = streaming_bulk(
            client,
            (action.to_action() for _, action in pending),
            chunk_size=config.chunk_size,
            max_chunk_bytes=config.max_chunk_bytes,
            raise_on_error=False,
            raise_on_exception=False,
            max_retries=0,
            yield_ok=True,
            **dict(config.request_kwargs),
        )
        for ok, info in stream:
            if answered >= len(pending):
                log.error(
                    "bulk helper yielded more results than actions sent (%d); ignoring the rest", answered
                )
                break
            pos, action = pending[answered]
            answered += 1
            if not isinstance(info, Mapping) or len(info) != 1:
                results[pos] = _Result(False, "bad_response", f"unexpected bulk result shape: {info!r:.200}")
                continue
            ((_, item),) = info.items()
            item_id = item.get("_id") if isinstance(item, Mapping) else None
            if not isinstance(item, Mapping) or (item_id is not None and str(item_id) != action.id):
                results[pos] = _Result(
                    False,
                    "bad_response",
                    f"bulk result for _id {item_id!r} arrived where {action.id!r} was expected",
                )
                continue
            results[pos] = _classify(ok, item, action, config, retryable_exceptions)
    except retryable_exceptions as exc:
        error = _describe_exception(exc)
        log.warning("bulk: connection failure after %d of %d items: %s", answered, len(pending), error)
        for pos, _ in pending[answered:]:
            results[pos] = _Result(False, "connection_error", format_bulk_error(error), retryable=True)
    except Exception as exc:  # anything else ends the round: report it on every unanswered item
        error = _describe_exception(exc)
        log.error("bulk: request failed after %d of %d items: %s", answered, len(pending), error)
        for pos, _ in pending[answered:]:
            results[pos] = _Result(False, "request_error", format_bulk_error(error), retryable=False)
    for pos, _ in pending:
        if pos not in results:
            results[pos] = _Result(
                False, "no_response", "the bulk response had no item for this action", True
            )
    return results


def _run_window(
    streaming_bulk: StreamingBulk,
    client: Any,
    window: list[BulkAction | ItemOutcome],
    config: BulkConfig,
    retryable_exceptions: tuple[type[BaseException], ...],
    policy: RetryPolicy,
) -> list[ItemOutcome]:
    outcomes: list[ItemOutcome | None] = [None] * len(window)
    pending: list[tuple[int, BulkAction]] = []
    for pos, entry in enumerate(window):
        if isinstance(entry, ItemOutcome):
            outcomes[pos] = entry
        elif isinstance(entry, BulkAction):
            pending.append((pos, entry))
        else:
            raise TypeError(
                f"bulk input item {pos}: expected BulkAction or ItemOutcome, got {type(entry).__name__}"
            )

    def send(items: list[tuple[int, BulkAction]], attempt: int) -> list[tuple[int, BulkAction]]:
        """One round: every item's outcome so far; the items worth sending again."""
        results = _run_round(streaming_bulk, client, items, config, retryable_exceptions)
        again: list[tuple[int, BulkAction]] = []
        for pos, action in items:
            result = results[pos]
            outcomes[pos] = ItemOutcome(
                id=action.report_id,
                ok=result.ok,
                status=result.status,
                error=result.error,
                retryable=result.retryable,
                attempts=attempt,
                version=result.version,
            )
            if not result.ok and result.retryable:
                again.append((pos, action))
        return again

    policy.rounds(pending, send)
    final = [o for o in outcomes if o is not None]
    if len(final) != len(window):  # pragma: no cover - every position is filled above
        raise AssertionError("bulk runner lost an outcome")
    return final


def _windows(
    items: Iterable[BulkAction | ItemOutcome], size: int
) -> Iterator[list[BulkAction | ItemOutcome]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def run_bulk(
    streaming_bulk: StreamingBulk,
    client: Any,
    actions: Iterable[BulkAction | ItemOutcome],
    config: BulkConfig | None = None,
    *,
    retryable_exceptions: tuple[type[BaseException], ...] = (),
    sleep: Callable[[float], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> WriteReport:
    """Run `actions` through the client's `streaming_bulk`; one outcome per input item, in input order.

    An `ItemOutcome` in `actions` (an item the caller already rejected, e.g. an invalid vector) is passed
    through to the report untouched, so the report lines up with the caller's input. `retryable_exceptions`
    are the client's connection errors (e.g. `elastic_transport.ConnectionError`); `on_progress` gets the
    number of items finished after each window (e.g. `tqdm.update`). Retries follow `config.retry`; `sleep`,
    when given, replaces its sleep (tests).
    """
    config = config or BulkConfig()
    policy = config.retry if sleep is None else config.retry.with_sleep(sleep)
    report = WriteReport()
    for window in _windows(actions, config.window):
        outcomes = _run_window(streaming_bulk, client, window, config, retryable_exceptions, policy)
        report.outcomes.extend(outcomes)
        failed = [o for o in outcomes if not o.ok]
        if failed:
            first = failed[0]
            log.warning(
                "bulk: %d of %d item(s) failed; first: id=%r status=%s error=%s",
                len(failed),
                len(outcomes),
                first.id,
                first.status,
                first.error,
            )
        if on_progress is not None:
            on_progress(len(outcomes))
    return report
