"""Connection settings for HTTP engines (Elasticsearch, OpenSearch): URLs, credentials, TLS.

Credentials come from arguments or from environment variables (`<prefix>URL`, `<prefix>API_KEY`,
`<prefix>USERNAME`, `<prefix>PASSWORD`, `<prefix>CA_CERTS`, `<prefix>VERIFY_CERTS`, with prefix e.g.
`SPLADEBRIDGE_ES_`); an argument always wins over the environment. Secrets never appear in `repr`, `str` or
`describe()`, so settings objects are safe to log. TLS certificates are verified unless the caller opts out
explicitly, which warns (`InsecureTLSWarning`).

Stable API (shared by the Elasticsearch and OpenSearch connectors): `HttpSettings`, `HttpSettings.resolve`,
`HttpSettings.to_client_kwargs`, `HttpSettings.describe`, `Secret`, `InsecureTLSWarning`,
`HttpSettingsError`, `ES_ENV_PREFIX`, `OS_ENV_PREFIX`.
"""

from __future__ import annotations

import base64
import os
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

__all__ = [
    "ES_ENV_PREFIX",
    "OS_ENV_PREFIX",
    "HttpSettings",
    "HttpSettingsError",
    "InsecureTLSWarning",
    "Secret",
    "redact_userinfo",
]

ES_ENV_PREFIX = "SPLADEBRIDGE_ES_"
OS_ENV_PREFIX = "SPLADEBRIDGE_OS_"
_REDACTED = "***"
_FALSE_WORDS = frozenset({"0", "false", "no", "off"})
_TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


class HttpSettingsError(ValueError):
    """Settings that cannot work (bad URL, half a credential, two kinds of auth); names the field."""


class InsecureTLSWarning(UserWarning):
    """TLS certificate verification was turned off, or credentials travel over plain http to a remote host."""


class Secret:
    """A string that never shows itself in `repr`/`str`; `reveal()` gives the value to the client library."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise HttpSettingsError(f"a secret must be a string, got {type(value).__name__}")
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({_REDACTED!r})"

    def __str__(self) -> str:
        return _REDACTED

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __bool__(self) -> bool:
        return bool(self._value)


def _redact_url(url: str) -> str:
    """`url` with any `user:password@` part replaced, for logs."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{_REDACTED}@{host}" + (f":{parts.port}" if parts.port is not None else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


_USERINFO = re.compile(r"://[^/@\s]*@")


def redact_userinfo(text: str) -> str:
    """`text` with the `user:password@` part of every URL in it replaced by `***@`."""
    return _USERINFO.sub(f"://{_REDACTED}@", text)


def _with_default_port(url: str) -> str:
    parts = urlsplit(url)
    if parts.port is not None:
        return url
    port = 443 if parts.scheme == "https" else 80
    netloc = parts.netloc + f":{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _check_url(url: str, where: str) -> str:
    if not isinstance(url, str) or not url.strip():
        raise HttpSettingsError(f"{where}: URL must be a non-empty string, got {url!r}")
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise HttpSettingsError(
            f"{where}: {_redact_url(url)!r} is not an http(s) URL with a host (e.g. https://localhost:9200)"
        )
    try:
        _ = parts.port
    except ValueError:
        raise HttpSettingsError(f"{where}: {_redact_url(url)!r} has an invalid port") from None
    return url


def _parse_bool(text: str, where: str) -> bool:
    word = text.strip().lower()
    if word in _TRUE_WORDS:
        return True
    if word in _FALSE_WORDS:
        return False
    raise HttpSettingsError(f"{where}: expected true/false, got {text!r}")


def _as_secret(value: str | Secret | None) -> Secret | None:
    if value is None or isinstance(value, Secret):
        return value
    return Secret(value)


@dataclass(frozen=True, slots=True, repr=False)
class HttpSettings:
    """How to reach one HTTP engine cluster. Build with `resolve()` to read the environment, or directly.

    `api_key` is the encoded API key (base64 of `id:key`, what Elasticsearch returns as `encoded`); give it or
    `username`/`password`, not both. `verify_certs=False` is the explicit opt-out of TLS verification.
    """

    urls: tuple[str, ...] = ("http://localhost:9200",)
    api_key: Secret | None = None
    username: str | None = None
    password: Secret | None = None
    ca_certs: str | None = None
    verify_certs: bool = True
    client_cert: str | None = None
    client_key: str | None = None
    request_timeout: float = 30.0
    headers: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        urls = (self.urls,) if isinstance(self.urls, str) else tuple(self.urls)
        if not urls:
            raise HttpSettingsError("urls: give at least one URL")
        object.__setattr__(self, "urls", tuple(_check_url(u, f"urls[{i}]") for i, u in enumerate(urls)))
        object.__setattr__(self, "api_key", _as_secret(self.api_key))
        object.__setattr__(self, "password", _as_secret(self.password))
        object.__setattr__(self, "headers", dict(self.headers))
        if (self.username is None) != (self.password is None):
            missing = "password" if self.password is None else "username"
            raise HttpSettingsError(f"basic auth needs both username and password; {missing} is missing")
        if self.api_key is not None and self.username is not None:
            raise HttpSettingsError("give an api_key or a username/password, not both")
        if self.api_key is not None and not self.api_key:
            raise HttpSettingsError("api_key is empty")
        if not (self.request_timeout > 0):
            raise HttpSettingsError(f"request_timeout must be > 0 seconds, got {self.request_timeout!r}")
        if self.client_key is not None and self.client_cert is None:
            raise HttpSettingsError("client_key given without client_cert")
        for path_field in ("ca_certs", "client_cert", "client_key"):
            path = getattr(self, path_field)
            if path is not None and not os.path.isfile(path):
                raise HttpSettingsError(f"{path_field}: no such file {path!r}")
        if not self.verify_certs:
            warnings.warn(
                "TLS certificate verification is turned off (verify_certs=False): the connection can be "
                "intercepted; use ca_certs with the cluster's CA instead",
                InsecureTLSWarning,
                stacklevel=3,
            )
        if self.has_credentials:
            for url in self.urls:
                parts = urlsplit(url)
                if parts.scheme == "http" and parts.hostname not in _LOCAL_HOSTS:
                    warnings.warn(
                        f"credentials will be sent unencrypted over plain http to {parts.hostname!r}",
                        InsecureTLSWarning,
                        stacklevel=3,
                    )

    # -- construction ---------------------------------------------------------------------------------

    @classmethod
    def resolve(
        cls,
        url: str | Sequence[str] | None = None,
        *,
        api_key: str | tuple[str, str] | Secret | None = None,
        username: str | None = None,
        password: str | Secret | None = None,
        ca_certs: str | None = None,
        verify_certs: bool | None = None,
        client_cert: str | None = None,
        client_key: str | None = None,
        request_timeout: float | None = None,
        headers: Mapping[str, str] | None = None,
        env_prefix: str = ES_ENV_PREFIX,
        environ: Mapping[str, str] | None = None,
        default_url: str = "http://localhost:9200",
    ) -> HttpSettings:
        """Settings from arguments, falling back to `<env_prefix>*` environment variables, then defaults.

        `url` is one URL, a comma-separated list, or a sequence. An `api_key` tuple `(id, key)` is encoded.
        Auth is taken as a unit: arguments that carry any credential override all credential variables.
        """
        env = os.environ if environ is None else environ

        def var(name: str) -> str | None:
            value = env.get(env_prefix + name)
            return value if value not in (None, "") else None

        raw_urls: Sequence[str]
        if url is None:
            raw_urls = (var("URL") or default_url).split(",")
        elif isinstance(url, str):
            raw_urls = url.split(",")
        else:
            raw_urls = list(url)
        urls = tuple(u.strip() for u in raw_urls if u.strip())

        if isinstance(api_key, tuple):
            if len(api_key) != 2 or not all(isinstance(p, str) and p for p in api_key):
                raise HttpSettingsError("api_key as a tuple must be (id, key), two non-empty strings")
            api_key = base64.b64encode(f"{api_key[0]}:{api_key[1]}".encode()).decode("ascii")
        args_have_auth = api_key is not None or username is not None or password is not None
        if not args_have_auth:
            api_key = var("API_KEY")
            username = var("USERNAME")
            password = var("PASSWORD")
            if api_key is not None and username is not None:
                raise HttpSettingsError(
                    f"both {env_prefix}API_KEY and {env_prefix}USERNAME are set; unset one of them"
                )
        if verify_certs is None:
            env_verify = var("VERIFY_CERTS")
            verify_certs = (
                True if env_verify is None else _parse_bool(env_verify, f"{env_prefix}VERIFY_CERTS")
            )
        timeout = request_timeout
        if timeout is None:
            env_timeout = var("REQUEST_TIMEOUT")
            try:
                timeout = 30.0 if env_timeout is None else float(env_timeout)
            except ValueError:
                raise HttpSettingsError(
                    f"{env_prefix}REQUEST_TIMEOUT: not a number: {env_timeout!r}"
                ) from None
        return cls(
            urls=urls,
            api_key=_as_secret(api_key),
            username=username,
            password=_as_secret(password),
            ca_certs=ca_certs if ca_certs is not None else var("CA_CERTS"),
            verify_certs=verify_certs,
            client_cert=client_cert if client_cert is not None else var("CLIENT_CERT"),
            client_key=client_key if client_key is not None else var("CLIENT_KEY"),
            request_timeout=timeout,
            headers=dict(headers or {}),
        )

    # -- use --------------------------------------------------------------------------------------------

    @property
    def has_credentials(self) -> bool:
        return self.api_key is not None or self.username is not None

    @property
    def uses_tls(self) -> bool:
        return any(urlsplit(u).scheme == "https" for u in self.urls)

    def to_client_kwargs(
        self, flavor: Literal["elasticsearch", "opensearch"] = "elasticsearch"
    ) -> dict[str, Any]:
        """Keyword arguments for `elasticsearch.Elasticsearch(**kw)` or `opensearchpy.OpenSearch(**kw)`.

        The result holds the secrets in clear text: pass it to the client, never log it.
        """
        kwargs: dict[str, Any] = {"hosts": list(self.urls)}
        headers = dict(self.headers)
        if flavor == "elasticsearch":
            # elasticsearch-py insists on an explicit port; a URL without one means the scheme's default
            kwargs["hosts"] = [_with_default_port(u) for u in self.urls]
            kwargs["request_timeout"] = self.request_timeout
            if self.api_key is not None:
                kwargs["api_key"] = self.api_key.reveal()
            if self.username is not None and self.password is not None:
                kwargs["basic_auth"] = (self.username, self.password.reveal())
        elif flavor == "opensearch":
            kwargs["timeout"] = self.request_timeout
            if self.api_key is not None:
                headers["Authorization"] = f"ApiKey {self.api_key.reveal()}"
            if self.username is not None and self.password is not None:
                kwargs["http_auth"] = (self.username, self.password.reveal())
            if self.uses_tls:
                kwargs["use_ssl"] = True
        else:
            raise HttpSettingsError(f"flavor must be 'elasticsearch' or 'opensearch', got {flavor!r}")
        if headers:
            kwargs["headers"] = headers
        if self.uses_tls:
            kwargs["verify_certs"] = self.verify_certs
            if not self.verify_certs:
                kwargs["ssl_show_warn"] = False  # warned once, explicitly, when the settings were made
            if self.ca_certs is not None:
                kwargs["ca_certs"] = self.ca_certs
            if self.client_cert is not None:
                kwargs["client_cert"] = self.client_cert
            if self.client_key is not None:
                kwargs["client_key"] = self.client_key
        return kwargs

    def describe(self) -> str:
        """A one-line, secret-free description for logs."""
        auth = (
            "api_key" if self.api_key is not None else f"basic({self.username})" if self.username else "none"
        )
        urls = ",".join(_redact_url(u) for u in self.urls)
        tls = "verify" if self.verify_certs else "NO-VERIFY"
        ca = f", ca_certs={self.ca_certs}" if self.ca_certs else ""
        return f"{urls} auth={auth} tls={tls}{ca}"

    def redact(self, text: str) -> str:
        """`text` (an error message, say) without these settings' secrets: the password, the API key,
        the basic-auth token built from them, any password in the URLs, and every URL's userinfo."""
        secrets: list[str] = []
        if self.api_key is not None:
            secrets.append(self.api_key.reveal())
        if self.password is not None:
            secrets.append(self.password.reveal())
            if self.username is not None:
                pair = f"{self.username}:{self.password.reveal()}".encode()
                secrets.append(base64.b64encode(pair).decode("ascii"))
        secrets.extend(p for p in (urlsplit(u).password for u in self.urls) if p)
        out = redact_userinfo(text)
        for secret in sorted(set(secrets), key=len, reverse=True):
            if secret:
                out = out.replace(secret, _REDACTED)
        return out

    def __repr__(self) -> str:
        header_names = sorted(self.headers)
        return (
            f"HttpSettings(urls={tuple(_redact_url(u) for u in self.urls)!r}, "
            f"api_key={_REDACTED if self.api_key is not None else None!r}, username={self.username!r}, "
            f"password={_REDACTED if self.password is not None else None!r}, ca_certs={self.ca_certs!r}, "
            f"verify_certs={self.verify_certs!r}, request_timeout={self.request_timeout!r}, "
            f"headers={header_names!r})"
        )

    __str__ = __repr__
