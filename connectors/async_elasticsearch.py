"""`AsyncElasticsearchConnector`: Elasticsearch searches on `elasticsearch.AsyncElasticsearch` (needs aiohttp:
`pip install 'spladebridge[async]'`). The requests, answers and errors are `ElasticsearchConnector`'s own
(`async_lucene.AsyncLuceneConnector` explains how); `AsyncCompatTransport` speaks `compatible-with=<server
major>` to an older server, as the sync client does."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from elastic_transport import AsyncTransport, TransportApiResponse

from spladebridge.connectors.async_lucene import AsyncLuceneConnector
from spladebridge.connectors.base import IndexSpec
from spladebridge.connectors.elasticsearch import CompatHeaders, ElasticsearchConnector
from spladebridge.connectors.http_settings import ES_ENV_PREFIX, HttpSettings
from spladebridge.connectors.lucene import DEFAULT_MAX_CLAUSES
from spladebridge.connectors.lucene_client import NO_TRANSPORT_RETRIES, ElasticsearchClient, LuceneClient

__all__ = ["AsyncCompatTransport", "AsyncElasticsearchConnector"]


class AsyncCompatTransport(CompatHeaders, AsyncTransport):
    """elasticsearch-py's async transport with `CompatHeaders`."""

    async def perform_request(  # type: ignore[override]
        self, method: str, target: str, *, headers: Any = None, **kwargs: Any
    ) -> TransportApiResponse:
        headers = self.rewrite_headers(headers)
        if headers is None:
            return await super().perform_request(method, target, **kwargs)
        return await super().perform_request(method, target, headers=headers, **kwargs)


class AsyncElasticsearchConnector(AsyncLuceneConnector[ElasticsearchConnector]):
    """One existing Elasticsearch index, searched from asyncio.

    Connection as `ElasticsearchConnector`: `url` plus credentials (or `SPLADEBRIDGE_ES_*`), ready
    `settings`, or an `elasticsearch.AsyncElasticsearch` as `client` (the caller then closes it). `index`
    names the index (or `spec`, checked against it); `vocab` and `max_query_terms` as the sync connector's."""

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
        env_prefix: str = ES_ENV_PREFIX,
        vocab: Sequence[str] | None = None,
        sparse_type: Literal["auto", "sparse_vector", "rank_features"] = "auto",
        max_query_terms: int = DEFAULT_MAX_CLAUSES,
    ) -> None:
        cluster = ElasticsearchClient.open(
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

        def planner(bridged: LuceneClient) -> ElasticsearchConnector:
            assert isinstance(bridged, ElasticsearchClient)
            return ElasticsearchConnector(
                client=bridged,
                index=index,
                spec=spec,
                vocab=vocab,
                sparse_type=sparse_type,
                max_query_terms=max_query_terms,
            )

        super().__init__(cluster, planner, owns_client=client is None)


def _build_async_client(settings: HttpSettings) -> Any:
    """An AsyncElasticsearch client for `settings`: `AsyncCompatTransport`, orjson where installed, and no
    transport retries (the `RetryPolicy` is the only one)."""
    from elasticsearch import AsyncElasticsearch

    kwargs: dict[str, Any] = {**settings.to_client_kwargs("elasticsearch"), **NO_TRANSPORT_RETRIES}
    try:
        from elasticsearch.serializer import OrjsonSerializer

        kwargs["serializer"] = OrjsonSerializer()
    except ImportError:  # orjson is optional
        pass
    return AsyncElasticsearch(**kwargs, transport_class=AsyncCompatTransport)
