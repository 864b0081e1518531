"""Engine URL -> connector: `qdrant-edge://PATH`, `qdrant://HOST:PORT`, `http(s)://...` (ES / OpenSearch).

`connect()` picks and builds the connector for a URL. Connector modules and engine client libraries are
imported only when that engine is used, so a missing optional client gives a one-line "pip install" hint
instead of an ImportError. For `http(s)://` the flavour comes from `engine=` or from the engine's own
`GET /` answer.
"""

from __future__ import annotations

import base64
import importlib
import json
import os
import re
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Literal, TypeAlias, cast
from urllib.parse import urlsplit

from spladebridge.connectors.base import Connector, IndexSpec
from spladebridge.connectors.http_settings import (
    ES_ENV_PREFIX,
    OS_ENV_PREFIX,
    HttpSettings,
    HttpSettingsError,
    Secret,
)
from spladebridge.connectors.names import check_index_name

__all__ = [
    "DEFAULT_URL",
    "ENGINES",
    "Connection",
    "EngineConfigError",
    "EngineKind",
    "EngineTarget",
    "HttpEngine",
    "HttpFlavour",
    "client_libraries",
    "connect",
    "detect_http_engine",
    "install_hint",
    "parse_engine_url",
    "probe_http_engine",
    "resolve_connection",
]

EngineKind: TypeAlias = Literal["qdrant-edge", "qdrant", "elasticsearch", "opensearch"]
ENGINES: tuple[EngineKind, ...] = ("qdrant-edge", "qdrant", "elasticsearch", "opensearch")
DEFAULT_URL = "qdrant-edge://.spladebridge"
QDRANT_API_KEY_ENV = "SPLADEBRIDGE_QDRANT_API_KEY"

# engine -> (connector module, class name, client distribution, pip extra)
_CONNECTORS: dict[EngineKind, tuple[str, str, str, str]] = {
    "qdrant-edge": ("spladebridge.connectors.qdrant_edge", "QdrantEdgeConnector", "qdrant-edge-py", ""),
    "qdrant": ("spladebridge.connectors.qdrant", "QdrantConnector", "qdrant-client", "qdrant"),
    "elasticsearch": (
        "spladebridge.connectors.elasticsearch",
        "ElasticsearchConnector",
        "elasticsearch",
        "elasticsearch",
    ),
    "opensearch": (
        "spladebridge.connectors.opensearch",
        "OpenSearchConnector",
        "opensearch-py",
        "opensearch",
    ),
}
# import names of the client libraries, to tell "client missing" from other ImportErrors
_CLIENT_MODULES: dict[EngineKind, str] = {
    "qdrant-edge": "qdrant_edge",
    "qdrant": "qdrant_client",
    "elasticsearch": "elasticsearch",
    "opensearch": "opensearchpy",
}


class EngineConfigError(ValueError):
    """The engine URL or settings cannot work (bad URL, unknown engine, missing client library)."""


@dataclass(frozen=True, slots=True)
class EngineTarget:
    """A parsed engine URL: the kind (None for http(s) until detected) and where it is."""

    kind: EngineKind | None
    url: str
    path: Path | None = None
    host: str | None = None
    port: int | None = None
    https: bool = False

    def describe(self) -> str:
        """The URL without credentials."""
        if self.path is not None:
            return f"qdrant-edge://{self.path}"
        parts = urlsplit(self.url)
        if parts.password is not None or parts.username is not None:
            netloc = f"***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
            return parts._replace(netloc=netloc).geturl()
        return self.url


_USERINFO = re.compile(r"://[^/@\s]*@")


def redact_url(text: str) -> str:
    """`text` with any `user:password@` part of a URL replaced by `***@`, for messages and logs."""
    if "://" in text:
        return _USERINFO.sub("://***@", text)
    return re.sub(r"^[^/@\s]*@", "***@", text)  # user:password@host without a scheme


def parse_engine_url(url: str | None, engine: str | None = None) -> EngineTarget:
    """Parse an engine URL; `engine` names the flavour for http(s) URLs (or must agree with the scheme)."""
    text = (url or DEFAULT_URL).strip()
    shown = redact_url(text)
    if engine is not None and engine not in ENGINES:
        raise EngineConfigError(f"unknown engine {engine!r}; expected one of {', '.join(ENGINES)}")
    scheme, sep, rest = text.partition("://")
    if not sep:
        raise EngineConfigError(
            f"engine URL {shown!r} has no scheme; use qdrant-edge://PATH, qdrant://HOST:PORT or http(s)://HOST:PORT"
        )
    scheme = scheme.lower()
    if scheme == "qdrant-edge":
        _agree(engine, "qdrant-edge", shown)
        if not rest:
            raise EngineConfigError(
                f"engine URL {shown!r} names no folder (e.g. qdrant-edge://.spladebridge)"
            )
        return EngineTarget("qdrant-edge", text, path=Path(rest).expanduser())
    if scheme in ("qdrant", "qdrants"):
        _agree(engine, "qdrant", shown)
        parts = urlsplit(text)
        try:
            port = parts.port or 6333
        except ValueError:
            raise EngineConfigError(f"engine URL {shown!r} has an invalid port") from None
        if not parts.hostname:
            raise EngineConfigError(f"engine URL {shown!r} names no host (e.g. qdrant://localhost:6333)")
        return EngineTarget("qdrant", text, host=parts.hostname, port=port, https=scheme == "qdrants")
    if scheme in ("http", "https"):
        parts = urlsplit(text)
        if not parts.hostname:
            raise EngineConfigError(f"engine URL {shown!r} names no host (e.g. http://localhost:9200)")
        if engine in ("qdrant-edge", "qdrant"):
            raise EngineConfigError(f"--engine {engine} does not take an http(s) URL; use {engine}://...")
        return EngineTarget(engine, text, host=parts.hostname, port=parts.port, https=scheme == "https")
    raise EngineConfigError(
        f"unknown engine URL scheme {scheme!r} in {shown!r}; use qdrant-edge://, qdrant://, http:// or https://"
    )


def _agree(engine: str | None, kind: EngineKind, url: str) -> None:
    if engine is not None and engine != kind:
        raise EngineConfigError(f"--engine {engine} contradicts the URL {url!r}, which is {kind}")


def http_settings(
    target: EngineTarget,
    flavour: Literal["elasticsearch", "opensearch"],
    *,
    api_key: str | None = None,
    username: str | None = None,
    password: str | None = None,
    ca_certs: str | None = None,
    verify_certs: bool | None = None,
    timeout: float | None = None,
) -> HttpSettings:
    """HTTP settings for an ES/OS target: arguments first, then SPLADEBRIDGE_ES_* / SPLADEBRIDGE_OS_* env."""
    try:
        return HttpSettings.resolve(
            target.url,
            api_key=api_key,
            username=username,
            password=password,
            ca_certs=ca_certs,
            verify_certs=verify_certs,
            request_timeout=timeout,
            env_prefix=ES_ENV_PREFIX if flavour == "elasticsearch" else OS_ENV_PREFIX,
        )
    except HttpSettingsError as exc:
        raise EngineConfigError(str(exc)) from None


HttpFlavour: TypeAlias = Literal["elasticsearch", "opensearch"]
_ES_PRODUCT_HEADER = "x-elastic-product"


@dataclass(frozen=True, slots=True)
class HttpEngine:
    """What an http(s) engine said it is: the flavour and, where it told, its version number."""

    kind: HttpFlavour
    version: str | None = None


def _http_get(settings: HttpSettings, path: str, timeout: float | None) -> tuple[int, Mapping[str, str], Any]:
    """GET `path` from the first URL: (status, headers with lower-case names, parsed JSON body or None),
    also for HTTP errors.
    EngineConfigError when the server cannot be reached."""
    url = settings.urls[0].rstrip("/") + path
    request = urllib.request.Request(url, headers={"Accept": "application/json", **dict(settings.headers)})
    if settings.api_key is not None:
        request.add_header("Authorization", f"ApiKey {settings.api_key.reveal()}")
    elif settings.username is not None and settings.password is not None:
        token = base64.b64encode(f"{settings.username}:{settings.password.reveal()}".encode()).decode("ascii")
        request.add_header("Authorization", f"Basic {token}")
    context: ssl.SSLContext | None = None
    if url.startswith("https://"):
        context = ssl.create_default_context(cafile=settings.ca_certs)
        if settings.client_cert is not None:
            context.load_cert_chain(settings.client_cert, settings.client_key)
        if not settings.verify_certs:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(
            request, timeout=timeout or settings.request_timeout, context=context
        ) as r:
            return r.status, _lower_keys(r.headers.items()), _json_or_none(r.read())
    except urllib.error.HTTPError as exc:
        with exc:
            headers = _lower_keys(exc.headers.items() if exc.headers is not None else ())
            return exc.code, headers, _json_or_none(exc.read())
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise EngineConfigError(f"cannot reach {_where(settings)} ({reason})") from None


def _lower_keys(items: Iterable[tuple[str, str]]) -> dict[str, str]:
    return {name.lower(): value for name, value in items}


def _json_or_none(raw: bytes) -> Any:
    try:
        return json.loads(raw.decode("utf-8"))
    except ValueError:
        return None


def _where(settings: HttpSettings) -> str:
    return settings.describe().split(" ")[0]


def probe_http_engine(settings: HttpSettings, *, timeout: float | None = None) -> HttpEngine:
    """Which engine answers at `settings`, from its `GET /`.

    OpenSearch says `version.distribution: "opensearch"`; Elasticsearch has no distribution and sends the
    `X-Elastic-Product: Elasticsearch` header, also on errors: a minimal Elasticsearch distribution answers
    `GET /` with HTTP 405, and its version then comes from `GET /_nodes/_local` (None if unreadable).
    """
    where = _where(settings)
    status, headers, body = _http_get(settings, "/", timeout)
    product = headers.get(_ES_PRODUCT_HEADER)
    if status in (401, 403):
        raise EngineConfigError(
            f"GET {where}/ answered HTTP {status}; check the credentials, or pass --engine "
            "elasticsearch|opensearch"
        )
    version = body.get("version") if isinstance(body, dict) else None
    version = version if isinstance(version, dict) else {}
    number = version.get("number")
    number = str(number) if number is not None else None
    if 200 <= status < 300:
        if str(version.get("distribution", "")).lower() == "opensearch":
            return HttpEngine("opensearch", number)
        looks_like_es = isinstance(body, dict) and "tagline" in body and "distribution" not in version
        if product == "Elasticsearch" or (looks_like_es and number is not None):
            return HttpEngine("elasticsearch", number)
        raise EngineConfigError(
            f"{where} does not look like Elasticsearch or OpenSearch; pass --engine elasticsearch|opensearch"
        )
    if product == "Elasticsearch":  # e.g. 405: an Elasticsearch distribution without a GET / handler
        return HttpEngine("elasticsearch", _nodes_version(settings, timeout))
    raise EngineConfigError(
        f"GET {where}/ answered HTTP {status}; check the URL, or pass --engine elasticsearch|opensearch"
    )


def _nodes_version(settings: HttpSettings, timeout: float | None) -> str | None:
    """The local node's version from `GET /_nodes/_local?filter_path=nodes.*.version`, None if unreadable."""
    try:
        status, _, body = _http_get(settings, "/_nodes/_local?filter_path=nodes.*.version", timeout)
    except EngineConfigError:
        return None
    nodes = body.get("nodes") if isinstance(body, dict) and status == 200 else None
    if isinstance(nodes, dict):
        for node in nodes.values():
            if isinstance(node, dict) and node.get("version") is not None:
                return str(node["version"])
    return None


def detect_http_engine(settings: HttpSettings, *, timeout: float | None = None) -> HttpFlavour:
    """Ask the cluster's `GET /` which engine it is (see `probe_http_engine`)."""
    return probe_http_engine(settings, timeout=timeout).kind


def install_hint(kind: EngineKind) -> str:
    """The pip command that installs `kind`'s client library."""
    _, _, distribution, extra = _CONNECTORS[kind]
    return f"pip install 'spladebridge[{extra}]'" if extra else f"pip install {distribution}"


def _connector_class(kind: EngineKind) -> Any:
    module_name, class_name, distribution, _ = _CONNECTORS[kind]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        client = _CLIENT_MODULES[kind]
        if exc.name is not None and (exc.name == client or exc.name.startswith(client + ".")):
            raise EngineConfigError(
                f"the {kind} engine needs the {distribution} package: {install_hint(kind)}"
            ) from None
        raise
    return getattr(module, class_name)


@dataclass(frozen=True, slots=True)
class Connection:
    """Everything needed to open a connector, resolved once: the engine kind (an http(s) engine already
    detected), the index, where it is and its credentials (arguments first, then this process's environment).

    It pickles, so a Spark task or any worker process can `open()` its own connector with the settings the
    driver resolved; `repr` never shows a credential.
    """

    kind: EngineKind
    index: str
    path: Path | None = None
    host: str | None = None
    port: int | None = None
    https: bool = False
    api_key: Secret | None = None
    settings: HttpSettings | None = None
    timeout: float | None = None

    def describe(self) -> str:
        """Engine, place and index, without credentials."""
        if self.path is not None:
            return f"qdrant-edge://{self.path.parent} index {self.index}"
        if self.settings is not None:
            return f"{self.kind} {self.settings.describe()} index {self.index}"
        return f"{self.kind} {self.host}:{self.port} index {self.index}"

    def open(self, spec: IndexSpec | None = None) -> Connector:
        """A new connector to this index; `spec` is created (or checked) on first use, else it is read from
        the index's stored spec."""
        if spec is not None and spec.name != self.index:
            raise EngineConfigError(f"index {self.index!r} differs from the spec's name {spec.name!r}")
        cls = _connector_class(self.kind)
        if self.kind == "qdrant-edge":
            assert self.path is not None
            return cast(Connector, cls(self.path, spec))
        if self.kind == "qdrant":
            from qdrant_client import QdrantClient

            client = QdrantClient(
                host=self.host,
                port=self.port,
                https=self.https,
                api_key=self.api_key.reveal() if self.api_key is not None else None,
                timeout=int(self.timeout) if self.timeout is not None else None,
            )
            return cast(Connector, cls(client, spec, collection=self.index))
        # both Lucene connectors take the same arguments: `index` opens an existing index from the spec stored
        # in its mapping, `spec` is created (or checked) on first use
        return cast(Connector, cls(settings=self.settings, index=self.index, spec=spec))


def resolve_connection(
    url: str | None = None,
    *,
    index: str | None = None,
    engine: str | None = None,
    api_key: str | None = None,
    username: str | None = None,
    password: str | None = None,
    ca_certs: str | None = None,
    verify_certs: bool | None = None,
    timeout: float | None = None,
) -> Connection:
    """Parse `url`, detect an http(s) engine's flavour, read credentials: a `Connection` ready to open.

    Credentials come from the arguments or the environment (SPLADEBRIDGE_ES_* / SPLADEBRIDGE_OS_* for HTTP
    engines, SPLADEBRIDGE_QDRANT_API_KEY).
    """
    target = parse_engine_url(url, engine)
    name = index or "spladebridge"
    try:  # the engine's own rule, before anything is opened: Lucene engines want lowercase names
        check_index_name(name, lucene=target.kind not in ("qdrant", "qdrant-edge"))
    except ValueError as exc:
        raise EngineConfigError(str(exc)) from None
    if target.kind == "qdrant-edge":
        assert target.path is not None
        _connector_class("qdrant-edge")  # a missing client library is reported now, not on open()
        return Connection("qdrant-edge", name, path=target.path / name, timeout=timeout)
    if target.kind == "qdrant":
        _connector_class("qdrant")
        key = api_key if api_key is not None else os.environ.get(QDRANT_API_KEY_ENV) or None
        return Connection(
            "qdrant",
            name,
            host=target.host,
            port=target.port,
            https=target.https,
            api_key=Secret(key) if key else None,
            timeout=timeout,
        )

    def settings_for(flavour: Literal["elasticsearch", "opensearch"]) -> HttpSettings:
        return http_settings(
            target,
            flavour,
            api_key=api_key,
            username=username,
            password=password,
            ca_certs=ca_certs,
            verify_certs=verify_certs,
            timeout=timeout,
        )

    flavour = target.kind
    if flavour is None:
        es_settings = settings_for("elasticsearch")
        probe = es_settings
        if not es_settings.has_credentials:  # credentials may be given as SPLADEBRIDGE_OS_* only
            os_settings = settings_for("opensearch")
            probe = os_settings if os_settings.has_credentials else es_settings
        flavour = detect_http_engine(probe, timeout=timeout)
    assert flavour in ("elasticsearch", "opensearch")
    _connector_class(flavour)
    return Connection(flavour, name, settings=settings_for(flavour), timeout=timeout)


def connect(
    url: str | None = None,
    *,
    index: str | None = None,
    spec: IndexSpec | None = None,
    engine: str | None = None,
    api_key: str | None = None,
    username: str | None = None,
    password: str | None = None,
    ca_certs: str | None = None,
    verify_certs: bool | None = None,
    timeout: float | None = None,
) -> Connector:
    """A connector for the engine at `url` (default `qdrant-edge://.spladebridge`) and index `index`.

    Qdrant Edge keeps each index in its own folder, `PATH/INDEX`. Credentials come from the arguments or
    the environment (SPLADEBRIDGE_ES_* / SPLADEBRIDGE_OS_* for HTTP engines, SPLADEBRIDGE_QDRANT_API_KEY).
    """
    name = index or (spec.name if spec is not None else "spladebridge")
    if spec is not None and spec.name != name:
        raise EngineConfigError(f"index {name!r} differs from the spec's name {spec.name!r}")
    connection = resolve_connection(
        url,
        index=name,
        engine=engine,
        api_key=api_key,
        username=username,
        password=password,
        ca_certs=ca_certs,
        verify_certs=verify_certs,
        timeout=timeout,
    )
    return connection.open(spec)


def client_libraries() -> dict[EngineKind, str | None]:
    """Installed version of each engine's client library (None when missing), for `spladebridge engines`."""
    out: dict[EngineKind, str | None] = {}
    for kind, (_, _, distribution, _) in _CONNECTORS.items():
        try:
            out[kind] = metadata.version(distribution)
        except metadata.PackageNotFoundError:
            out[kind] = None
    return out
