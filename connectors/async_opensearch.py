"""`AsyncOpenSearchConnector`: OpenSearch searches on `opensearchpy.AsyncOpenSearch` (needs aiohttp:
`pip install 'spladebridge[async]'`). The requests, answers and errors are `OpenSearchConnector`'s own
(`async_lucene.AsyncLuceneConnector` explains how)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from spladebridge.connectors.async_lucene import AsyncLuceneConnector
from spladebridge.connectors.base import IndexSpec
from spladebridge.connectors.http_settings import OS_ENV_PREFIX, HttpSettings
from spladebridge.connectors.lucene_client import NO_TRANSPORT_RETRIES, LuceneClient, OpenSearchClient
from spladebridge.connectors.opensearch import OpenSearchConnector, OpenSearchOptions

__all__ = ["AsyncOpenSearchConnector"]


class AsyncOpenSearchConnector(AsyncLuceneConnector[OpenSearchConnector]):
    """One existing OpenSearch index, searched from asyncio.

    Connection as `OpenSearchConnector`: `url` plus credentials (or `SPLADEBRIDGE_OS_*`), ready `settings`,
    or an `opensearchpy.AsyncOpenSearch` as `client` (the caller then closes it). `index` names the index
    (or `spec`, which is checked against it); `options` as the sync connector's (the same `vocab`,
    `sparse_scale` and k-NN settings the index was written with)."""

    def __init__(
        self,
        url: str | Sequence[str] | None = None,
        *,
        client: Any = None,
        index: str | None = None,
        spec: IndexSpec | None = None,
        api_key: str | tuple[str, str] | None = None,
        username: str | None = None,
        password: str | None = None,
        ca_certs: str | None = None,
        verify_certs: bool | None = None,
        settings: HttpSettings | None = None,
        env_prefix: str = OS_ENV_PREFIX,
        options: OpenSearchOptions | None = None,
    ) -> None:
        cluster = OpenSearchClient.open(
            client,
            _build_async_client,
            url=url,
            api_key=api_key,
            username=username,
            password=password,
            ca_certs=ca_certs,
            verify_certs=verify_certs,
            settings=settings,
            env_prefix=env_prefix,
        )

        def planner(bridged: LuceneClient) -> OpenSearchConnector:
            return OpenSearchConnector(client=bridged, index=index, spec=spec, options=options)

        super().__init__(cluster, planner, owns_client=client is None)


def _build_async_client(settings: HttpSettings) -> Any:
    """An AsyncOpenSearch client for `settings`, with no transport retries (the `RetryPolicy` is the only one)."""
    try:
        from opensearchpy import AsyncOpenSearch
    except ImportError as exc:  # pragma: no cover - exercised only without the optional dependency
        raise ImportError(
            "AsyncOpenSearchConnector needs opensearch-py with aiohttp: pip install 'spladebridge[async]'"
        ) from exc
    return AsyncOpenSearch(**settings.to_client_kwargs("opensearch"), **NO_TRANSPORT_RETRIES)
