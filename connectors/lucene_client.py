"""The calls spladebridge makes to a Lucene engine (Elasticsearch or OpenSearch), on its official client.

One class per dialect, each a small difference from `LuceneClient`: which helper runs bulk writes, how a point
in time is opened and closed, how documents are read back with their vectors, and how the client's exceptions
are read. Every call goes through `call()`, which turns any client exception into one `ConnectorError` with
the same fields on both engines (operation, index, HTTP status, error type, reason; credentials redacted).
The connectors and the migration use this layer; neither talks to the client directly for these calls.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Self, TypeAlias, TypeVar
from urllib.parse import quote

from spladebridge.connectors.base import ConnectorError, IndexNotFound, ItemOutcome, WriteReport
from spladebridge.connectors.bulk import BulkAction, BulkConfig, StreamingBulk, run_bulk
from spladebridge.connectors.http_settings import HttpSettings, redact_userinfo
from spladebridge.connectors.retry import RetryPolicy

__all__ = [
    "ClientFailure",
    "Dialect",
    "DocVersion",
    "ElasticsearchClient",
    "LuceneClient",
    "OpenSearchClient",
    "lucene_client",
]

log = logging.getLogger(__name__)
T = TypeVar("T")
Dialect: TypeAlias = Literal["elasticsearch", "opensearch"]
#: A document's `(_seq_no, _primary_term)`: changes with every write of it, so equal pairs mean no change.
DocVersion: TypeAlias = tuple[int, int]
#: `GET /` answers that mean "not served here" (a trimmed Elasticsearch distribution answers 405).
INFO_FALLBACK_STATUSES = frozenset({403, 404, 405, 410, 501})
#: Answers a call may not get when sent again a moment later.
TRANSIENT_STATUSES = frozenset({429, 502, 503, 504})
#: Client arguments that turn the transport's own retries off: `RetryPolicy` is the only one.
NO_TRANSPORT_RETRIES: dict[str, Any] = {"max_retries": 0, "retry_on_status": (), "retry_on_timeout": False}


@dataclass(frozen=True, slots=True)
class ClientFailure:
    """A client exception read the same way for both engines."""

    status: int | None
    error_type: str | None
    reason: str
    unreachable: bool = False

    def text(self) -> str:
        if self.unreachable:
            return f"unreachable ({self.reason})"
        head = f"{self.status} " if self.status is not None else ""
        return f"{head}{self.error_type}: {self.reason}" if self.error_type else f"{head}{self.reason}"


def _root_error(body: object) -> tuple[str | None, str | None]:
    """`(type, reason)` of the root cause in an error response body (`{"error": {...}}` or a string)."""
    error = body.get("error") if isinstance(body, Mapping) else None
    if isinstance(error, Mapping):
        causes = error.get("root_cause")
        root = causes[0] if isinstance(causes, list) and causes and isinstance(causes[0], Mapping) else error
        kind, reason = root.get("type"), root.get("reason")
        return (str(kind) if kind else None), (str(reason) if reason is not None else None)
    if isinstance(error, str) and error:
        return None, error
    return None, None


class LuceneClient:
    """An Elasticsearch or OpenSearch client with the calls a connector or a migration needs.

    `where` names the server in messages (secret-free); `redact` removes secrets from any message."""

    dialect: ClassVar[Dialect]
    engine_label: ClassVar[str]

    def __init__(
        self, client: Any, *, where: str = "the cluster", redact: Callable[[str], str] = redact_userinfo
    ) -> None:
        self.client = client
        self.where = where
        self.redact = redact
        #: The resolved connection settings, when this object built the client (None for a given client).
        self.settings: HttpSettings | None = None
        #: The one retry policy: reads (`call(..., idempotent=True)`) are re-called under it, bulk items
        #: re-sent under it (`run_bulk`); the clients this class builds retry nothing themselves.
        self.retry: RetryPolicy = RetryPolicy()

    @classmethod
    def open(
        cls,
        client: Any,
        build: Callable[[HttpSettings], Any],
        *,
        url: str | Sequence[str] | None,
        api_key: str | tuple[str, str] | None,
        username: str | None,
        password: str | None,
        ca_certs: str | None,
        verify_certs: bool | None,
        settings: HttpSettings | None,
        env_prefix: str,
    ) -> Self:
        """The given `client`, or one `build` makes from settings (arguments win over the environment under
        `env_prefix`; TLS verification on unless turned off). Both a client and settings: ValueError."""
        connection_args = (url, api_key, username, password, ca_certs, verify_certs, settings)
        if client is not None and any(a is not None for a in connection_args):
            raise ValueError("pass either a client or connection settings (url, api_key, ...), not both")
        if isinstance(client, cls):  # this layer's own wrapper (a migration's): keep its settings
            return client
        if isinstance(client, LuceneClient):
            raise TypeError(f"a {type(client).__name__} cannot serve {cls.engine_label}")
        if client is not None:
            return cls(client)
        resolved = settings or HttpSettings.resolve(
            url,
            api_key=api_key,
            username=username,
            password=password,
            ca_certs=ca_certs,
            verify_certs=verify_certs,
            env_prefix=env_prefix,
        )
        log.info("%s: connecting to %s", cls.dialect, resolved.describe())
        try:
            built = build(resolved)
        except ValueError as exc:
            raise ConnectorError(
                f"cannot build {cls.engine_label} client for {resolved.describe()}: {exc}"
            ) from None
        opened = cls(built, where=resolved.describe().split(" ")[0], redact=resolved.redact)
        opened.settings = resolved
        return opened

    # -- errors -----------------------------------------------------------------------------------------

    def failure(self, exc: BaseException) -> ClientFailure | None:
        """The exception read as a `ClientFailure`, or None when it is not this client's."""
        raise NotImplementedError

    def error(self, what: str, exc: BaseException, index: str | None = None) -> ConnectorError:
        """The ConnectorError for `exc` raised while doing `what` (IndexNotFound for a missing index)."""
        failure = self.failure(exc) or ClientFailure(None, type(exc).__name__, str(exc))
        failure = dataclasses.replace(failure, reason=self.redact(failure.reason))
        on = f" (index {index!r})" if index is not None else ""
        detail = f"{self.where} is {failure.text()}" if failure.unreachable else failure.text()
        message = self.redact(f"{self.dialect}: cannot {what}{on}: {detail}")
        cls = IndexNotFound if failure.error_type == "index_not_found_exception" else ConnectorError
        return cls(
            message,
            operation=what,
            index=index,
            status=failure.status,
            error_type=failure.error_type,
            reason=failure.reason,
        )

    def transient(self, exc: BaseException) -> bool:
        """Whether a failed call may succeed when sent again: unreachable, 429, 502, 503, 504."""
        failure = self.failure(exc)
        return failure is not None and (failure.unreachable or failure.status in TRANSIENT_STATUSES)

    def call(
        self, what: str, fn: Callable[[], T], index: str | None = None, *, idempotent: bool = False
    ) -> T:
        """Run one client call; its exceptions become `ConnectorError` (see `error`). An `idempotent` call
        (a read) is called again under `retry` while it fails transiently."""
        try:
            if idempotent:
                return self.retry.call(fn, retry_if=self.transient)
            return fn()
        except ConnectorError:
            raise
        except Exception as exc:
            if self.failure(exc) is None:
                raise
            # the engine's answer is in the error's fields; the client exception may carry credentials
            raise self.error(what, exc, index) from None

    async def call_async(
        self,
        what: str,
        fn: Callable[[], Awaitable[T]],
        index: str | None = None,
        *,
        idempotent: bool = False,
    ) -> T:
        """`call` for the official async client's coroutines: the same errors, the same retries."""
        try:
            if idempotent:
                return await self.retry.call_async(fn, retry_if=self.transient)
            return await fn()
        except ConnectorError:
            raise
        except Exception as exc:
            if self.failure(exc) is None:
                raise
            raise self.error(what, exc, index) from None

    # -- index admin ------------------------------------------------------------------------------------

    def exists(self, index: str) -> bool:
        return bool(
            _body(
                self.call(
                    "check the index", lambda: self.client.indices.exists(index=index), index, idempotent=True
                )
            )
        )

    def mappings(self, index: str) -> dict[str, Any]:
        """The index's mappings (IndexNotFound when there is no such index)."""
        response = _body(
            self.call(
                "read the mapping",
                lambda: self.client.indices.get_mapping(index=index),
                index,
                idempotent=True,
            )
        )
        entry = _index_entry(response, index)
        if entry is None:
            raise ConnectorError(f"{self.dialect}: index {index!r} returned no mapping", index=index)
        return dict(entry.get("mappings") or {})

    def index_settings(self, index: str) -> dict[str, Any]:
        """`settings.index` of the index (flat keys as the engine returns them)."""
        response = _body(
            self.call(
                "read the index settings",
                lambda: self.client.indices.get_settings(index=index),
                index,
                idempotent=True,
            )
        )
        entry = _index_entry(response, index) or {}
        return dict((entry.get("settings") or {}).get("index") or {})

    def create_index(self, index: str, body: Mapping[str, Any]) -> bool:
        """Create the index; False when it already existed (created concurrently), True when created."""
        try:
            self.call(
                "create the index", lambda: self.client.indices.create(index=index, body=dict(body)), index
            )
        except ConnectorError as exc:
            if exc.error_type == "resource_already_exists_exception":
                return False
            raise
        return True

    def put_mapping(self, index: str, body: Mapping[str, Any]) -> None:
        self.call(
            "update the mapping", lambda: self.client.indices.put_mapping(index=index, body=dict(body)), index
        )

    def aliases(self, name: str) -> dict[str, dict[str, Any]] | None:
        """`{index: alias options}` for the alias `name`, or None when no alias has that name."""
        if not _body(
            self.call("check the alias", lambda: self.client.indices.exists_alias(name=name), idempotent=True)
        ):
            return None
        response = _body(
            self.call("read the alias", lambda: self.client.indices.get_alias(name=name), idempotent=True)
        )
        return {
            index: dict((entry.get("aliases") or {}).get(name) or {}) for index, entry in response.items()
        }

    def update_aliases(self, body: Mapping[str, Any]) -> None:
        self.call("update aliases", lambda: self.client.indices.update_aliases(body=dict(body)))

    def delete_index(self, index: str) -> None:
        self.call("delete the index", lambda: self.client.indices.delete(index=index), index)

    def refresh(self, index: str) -> None:
        self.call("refresh the index", lambda: self.client.indices.refresh(index=index), index)

    def add_write_block(self, index: str) -> None:
        """`PUT /<index>/_block/write`: refuse writes from now on; the engine waits for writes in flight, so
        every write acknowledged before the answer is in the index and no later one gets in."""
        self.call("block writes", lambda: self.client.indices.add_block(index=index, block="write"), index)

    def remove_write_block(self, index: str) -> None:
        """Lift the write block (`index.blocks.write` back to its default)."""
        self.call(
            "lift the write block",
            lambda: self.client.indices.put_settings(
                index=index, body={"index": {"blocks": {"write": None}}}
            ),
            index,
        )

    def write_blocked(self, index: str) -> bool:
        """Whether `index.blocks.write` is set on the index."""
        blocks = self.index_settings(index).get("blocks") or {}
        return str(blocks.get("write", "false")).lower() == "true"

    def write_operations(self, index: str) -> int:
        """Index and delete operations the index's primaries have taken since they started (a counter whose
        growth over a few seconds is the write rate)."""
        response = _body(
            self.call(
                "read the indexing statistics",
                lambda: self.client.indices.stats(index=index, metric="indexing"),
                index,
                idempotent=True,
            )
        )
        indexing = (((response.get("_all") or {}).get("primaries") or {}).get("indexing")) or {}
        return int(indexing.get("index_total", 0)) + int(indexing.get("delete_total", 0))

    # -- reads ------------------------------------------------------------------------------------------

    def count(self, index: str) -> int:
        return int(
            _body(
                self.call("count documents", lambda: self.client.count(index=index), index, idempotent=True)
            )["count"]
        )

    def search(
        self, body: Mapping[str, Any], index: str | None = None, *, what: str = "search", **params: Any
    ) -> dict[str, Any]:
        """`_search` (in `index`, or in the point in time the body names)."""
        kwargs = self.search_kwargs(body, index, params)
        response: dict[str, Any] = _body(
            self.call(what, lambda: self.client.search(**kwargs), index, idempotent=True)
        )
        return response

    async def search_async(
        self,
        client: Any,
        body: Mapping[str, Any],
        index: str | None = None,
        *,
        what: str = "search",
        **params: Any,
    ) -> dict[str, Any]:
        """The same `_search` through `client`, the async twin of this dialect's client."""
        kwargs = self.search_kwargs(body, index, params)
        response: dict[str, Any] = _body(
            await self.call_async(what, lambda: client.search(**kwargs), index, idempotent=True)
        )
        return response

    def search_kwargs(
        self, body: Mapping[str, Any], index: str | None, params: Mapping[str, Any]
    ) -> dict[str, Any]:
        """The client's `search(**kwargs)` arguments for a body, an index and query-string parameters."""
        kwargs: dict[str, Any] = {"body": dict(body), **self.search_params(params)}
        if index is not None:
            kwargs["index"] = index
        return kwargs

    def search_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Query-string parameters of `_search` in the client's calling convention."""
        return dict(params)

    def open_pit(self, index: str, keep_alive: str, what: str = "open a point in time") -> str:
        raise NotImplementedError

    def close_pit(self, pit_id: str) -> None:
        raise NotImplementedError

    def mget(self, index: str, ids: Sequence[str], *, with_vectors: bool = False) -> list[dict[str, Any]]:
        """Documents by `_id` with their `_source`, in the order asked (`found: false` where absent); with
        `with_vectors`, vector fields included where the engine would leave them out."""
        response = _body(
            self.call(
                "read documents", lambda: self.mget_request(index, ids, with_vectors), index, idempotent=True
            )
        )
        docs = [dict(d) for d in response.get("docs", [])]
        if len(docs) != len(ids):
            raise ConnectorError(f"{self.dialect}: mget answered {len(docs)} of {len(ids)} ids", index=index)
        return docs

    def mget_request(self, index: str, ids: Sequence[str], with_vectors: bool) -> Any:
        return self.client.mget(index=index, body={"ids": list(ids)})

    # -- writes -----------------------------------------------------------------------------------------

    def streaming_bulk(self) -> StreamingBulk:
        raise NotImplementedError

    def retryable_exceptions(self) -> tuple[type[BaseException], ...]:
        """Connection failures that bulk writes re-send under `retry` (the transport retries nothing)."""
        raise NotImplementedError

    def bulk(self, actions: Iterable[BulkAction | ItemOutcome], config: BulkConfig) -> WriteReport:
        """Bulk writes with per-item outcomes (`connectors.bulk.run_bulk`, under `config.retry`)."""
        return run_bulk(
            self.streaming_bulk(),
            self.bulk_client(),
            actions,
            config,
            retryable_exceptions=self.retryable_exceptions(),
        )

    def bulk_client(self) -> Any:
        """The client bulk requests go through: one whose transport does not retry them on its own."""
        return self.client

    def close(self) -> None:
        try:
            self.client.close()
        except Exception as exc:  # closing must not raise
            log.debug("closing the %s client failed: %s", self.dialect, exc)


class ElasticsearchClient(LuceneClient):
    """The `elasticsearch` client's dialect."""

    dialect: ClassVar[Dialect] = "elasticsearch"
    engine_label: ClassVar[str] = "Elasticsearch"
    #: whether `_source` leaves vectors out unless asked (9.2+); set by the connector once it knows the version
    exclude_source_vectors: bool = False

    def failure(self, exc: BaseException) -> ClientFailure | None:
        from elastic_transport import ConnectionError as TransportConnectionError
        from elastic_transport import ConnectionTimeout, SerializationError
        from elasticsearch import ApiError

        if isinstance(exc, ApiError):
            kind, reason = _root_error(exc.body)
            return ClientFailure(exc.status_code, kind, reason or str(exc.message))
        if isinstance(exc, TransportConnectionError | ConnectionTimeout):
            return ClientFailure(None, type(exc).__name__, str(exc), unreachable=True)
        if isinstance(exc, SerializationError):
            return ClientFailure(None, "serialization_error", str(exc))
        return None

    def error(self, what: str, exc: BaseException, index: str | None = None) -> ConnectorError:
        """As `LuceneClient.error`; a server refusing this client's `compatible-with` media types gets
        told what to do about it."""
        error = super().error(what, exc, index)
        text = f"{error.reason} {error.error_type}"
        if error.status == 400 and ("Accept version" in text or "compatible-with" in text):
            from elasticsearch import __version__

            client = ".".join(str(p) for p in __version__)
            return ConnectorError(
                f"the cluster rejects elasticsearch-py {client}'s compatibility headers ({error.detail}); pass "
                "url=... instead of a client (the connector's own client sends compatible-with=<server major>), "
                "or use an 8.x client for 8.x servers: pip install 'elasticsearch>=8.11,<9'",
                operation=what,
                index=index,
                status=error.status,
                error_type=error.error_type,
                reason=error.reason,
            )
        return error

    def search_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        if self.exclude_source_vectors and _search_has_exclude_vectors():
            return {"source_exclude_vectors": False, **params}
        return dict(params)

    def open_pit(self, index: str, keep_alive: str, what: str = "open a point in time") -> str:
        opened = self.call(
            what,
            lambda: self.client.open_point_in_time(index=index, keep_alive=keep_alive),
            index,
        )
        return str(_body(opened)["id"])

    def close_pit(self, pit_id: str) -> None:
        try:
            self.client.close_point_in_time(id=pit_id)
        except Exception as exc:  # it expires by itself after keep_alive; never hide the caller's outcome
            log.warning("elasticsearch: could not close the point in time: %s", exc)

    def mget_request(self, index: str, ids: Sequence[str], with_vectors: bool) -> Any:
        """On 9.2+ vectors are left out of `_source` unless asked for, and the client's `mget` has no such
        parameter: the request is then sent as is with `_source_exclude_vectors=false`."""
        if not (with_vectors and self.exclude_source_vectors):
            return super().mget_request(index, ids, with_vectors)
        return self.client.perform_request(
            "POST",
            f"/{quote(index, safe='')}/_mget",
            params={"_source_exclude_vectors": "false"},
            headers={"accept": "application/json", "content-type": "application/json"},
            body={"ids": list(ids)},
        )

    def streaming_bulk(self) -> StreamingBulk:
        from elasticsearch.helpers import streaming_bulk

        return streaming_bulk

    def bulk_client(self) -> Any:
        """A given client keeps its transport retries for other calls; bulk requests turn them off, so a
        document is sent at most `retry.max_retries + 1` times."""
        options = getattr(self.client, "options", None)
        return options(**NO_TRANSPORT_RETRIES) if callable(options) else self.client

    def retryable_exceptions(self) -> tuple[type[BaseException], ...]:
        from elastic_transport import ConnectionError as TransportConnectionError
        from elastic_transport import ConnectionTimeout

        return (TransportConnectionError, ConnectionTimeout)


class OpenSearchClient(LuceneClient):
    """The `opensearch-py` client's dialect. opensearch-py has no per-request retry setting: a client you
    build yourself should say `max_retries=0` (as the connector's own does), or its transport retries each
    bulk request on top of `retry`."""

    dialect: ClassVar[Dialect] = "opensearch"
    engine_label: ClassVar[str] = "OpenSearch"

    def failure(self, exc: BaseException) -> ClientFailure | None:
        from opensearchpy.exceptions import ConnectionError as OSConnectionError
        from opensearchpy.exceptions import OpenSearchException, TransportError

        if isinstance(exc, OSConnectionError):
            return ClientFailure(None, type(exc).__name__, str(exc.error), unreachable=True)
        if isinstance(exc, TransportError):
            status = exc.status_code if isinstance(exc.status_code, int) else None
            kind, reason = _root_error(exc.info)
            return ClientFailure(status, kind, reason or str(exc.error))
        if isinstance(exc, OpenSearchException):  # ImproperlyConfigured, SerializationError, ...
            return ClientFailure(None, type(exc).__name__, str(exc))
        return None

    def search_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        return {"params": dict(params)} if params else {}

    def open_pit(self, index: str, keep_alive: str, what: str = "open a point in time") -> str:
        opened = self.call(
            what,
            lambda: self.client.create_pit(index=index, params={"keep_alive": keep_alive}),
            index,
        )
        return str(opened["pit_id"])

    def close_pit(self, pit_id: str) -> None:
        try:
            self.client.delete_pit(body={"pit_id": [pit_id]})
        except Exception as exc:  # it expires by itself after keep_alive
            log.warning("opensearch: could not delete the point in time: %s", exc)

    def streaming_bulk(self) -> StreamingBulk:
        from opensearchpy.helpers import streaming_bulk

        return streaming_bulk

    def retryable_exceptions(self) -> tuple[type[BaseException], ...]:
        from opensearchpy.exceptions import ConnectionError as OSConnectionError
        from opensearchpy.exceptions import ConnectionTimeout

        return (OSConnectionError, ConnectionTimeout)


def lucene_client(client: Any, **kwargs: Any) -> LuceneClient:
    """The dialect for an official client object (`elasticsearch.Elasticsearch` or `opensearchpy.OpenSearch`)."""
    module = type(client).__module__.split(".")[0]
    if module == "opensearchpy":
        return OpenSearchClient(client, **kwargs)
    if module == "elasticsearch":
        return ElasticsearchClient(client, **kwargs)
    raise TypeError(f"expected an elasticsearch or opensearch-py client, got {type(client).__name__}")


def _index_entry(response: Mapping[str, Any], index: str) -> Mapping[str, Any] | None:
    """The per-index entry of a `GET /<index>/_mapping` or `_settings` answer (keyed by the concrete index,
    which differs from `index` when that is an alias)."""
    entry = response.get(index) or next(iter(response.values()), None)
    return entry if isinstance(entry, Mapping) else None


def _body(response: Any) -> Any:
    """The body of a client response (`ObjectApiResponse.body` for elasticsearch-py, the dict itself for
    opensearch-py)."""
    body = getattr(response, "body", response)
    return dict(body) if isinstance(body, Mapping) else body


@functools.cache
def _search_has_exclude_vectors() -> bool:
    """Whether this elasticsearch-py's `search` takes `source_exclude_vectors` (9.2+ clients)."""
    import inspect

    from elasticsearch import Elasticsearch

    return "source_exclude_vectors" in inspect.signature(Elasticsearch.search).parameters
