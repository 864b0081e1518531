"""`connectors.http_settings`: precedence of arguments over environment, TLS opt-out, redaction."""

from __future__ import annotations

import base64
import logging
import warnings
from pathlib import Path

import pytest
from elasticsearch import Elasticsearch

from spladebridge.connectors.http_settings import (
    HttpSettings,
    HttpSettingsError,
    InsecureTLSWarning,
    Secret,
)

ENV = {
    "SPLADEBRIDGE_ES_URL": "https://es1:9200, https://es2:9200",
    "SPLADEBRIDGE_ES_API_KEY": "ZW52LWtleQ==",
    "SPLADEBRIDGE_ES_REQUEST_TIMEOUT": "12.5",
}


def test_environment_fills_in_what_arguments_leave_out() -> None:
    settings = HttpSettings.resolve(environ=ENV)
    assert settings.urls == ("https://es1:9200", "https://es2:9200")
    assert settings.api_key is not None and settings.api_key.reveal() == "ZW52LWtleQ=="
    assert settings.request_timeout == 12.5
    assert settings.verify_certs is True


def test_arguments_win_over_environment_and_auth_is_taken_as_a_unit() -> None:
    settings = HttpSettings.resolve("https://arg:9200", username="elastic", password="pw", environ=ENV)
    assert settings.urls == ("https://arg:9200",)
    assert settings.api_key is None  # the env API key must not leak into a basic-auth configuration
    kwargs = settings.to_client_kwargs()
    assert kwargs["basic_auth"] == ("elastic", "pw") and "api_key" not in kwargs


def test_prefix_selects_the_engine_variables() -> None:
    env = {
        "SPLADEBRIDGE_OS_URL": "https://os:9200",
        "SPLADEBRIDGE_OS_USERNAME": "admin",
        "SPLADEBRIDGE_OS_PASSWORD": "p",
    }
    settings = HttpSettings.resolve(env_prefix="SPLADEBRIDGE_OS_", environ=env)
    kwargs = settings.to_client_kwargs("opensearch")
    assert kwargs["hosts"] == ["https://os:9200"] and kwargs["http_auth"] == ("admin", "p")
    assert kwargs["use_ssl"] is True and kwargs["verify_certs"] is True and kwargs["timeout"] == 30.0


def test_api_key_tuple_is_encoded_as_elasticsearch_expects() -> None:
    settings = HttpSettings.resolve("https://h:9200", api_key=("id1", "secret1"), environ={})
    assert settings.api_key is not None
    assert base64.b64decode(settings.api_key.reveal()) == b"id1:secret1"


def test_secrets_never_show_in_repr_str_describe_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    settings = HttpSettings.resolve(
        "https://user:urlpass@h:9200", username="elastic", password="hunter2-pass", environ={}
    )
    keyed = HttpSettings.resolve("https://h:9200", api_key="c2VjcmV0LWtleQ==", environ={})
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("test").info("settings %s %r %s", settings, keyed, settings.describe())
    for text in (
        repr(settings),
        str(settings),
        settings.describe(),
        repr(keyed),
        keyed.describe(),
        caplog.text,
    ):
        assert "hunter2-pass" not in text and "c2VjcmV0LWtleQ==" not in text and "urlpass" not in text
    assert "***" in repr(keyed) and "elastic" in repr(settings)
    assert str(Secret("abc")) == "***" and "abc" not in repr(Secret("abc"))


def test_tls_verification_is_on_by_default_and_the_opt_out_warns() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        default = HttpSettings.resolve("https://h:9200", environ={})
    assert default.to_client_kwargs()["verify_certs"] is True
    with pytest.warns(InsecureTLSWarning, match="verification is turned off"):
        insecure = HttpSettings.resolve("https://h:9200", verify_certs=False, environ={})
    kwargs = insecure.to_client_kwargs()
    assert kwargs["verify_certs"] is False and kwargs["ssl_show_warn"] is False


def test_verify_opt_out_from_environment_warns_too() -> None:
    with pytest.warns(InsecureTLSWarning):
        settings = HttpSettings.resolve(
            environ={"SPLADEBRIDGE_ES_URL": "https://h", "SPLADEBRIDGE_ES_VERIFY_CERTS": "false"}
        )
    assert settings.verify_certs is False
    with pytest.raises(HttpSettingsError, match="VERIFY_CERTS"):
        HttpSettings.resolve(environ={"SPLADEBRIDGE_ES_VERIFY_CERTS": "maybe"})


def test_credentials_over_plain_http_to_a_remote_host_warn() -> None:
    with pytest.warns(InsecureTLSWarning, match="unencrypted"):
        HttpSettings.resolve("http://remote.example:9200", api_key="k", environ={})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        HttpSettings.resolve("http://localhost:9200", api_key="k", environ={})


def test_ca_certs_are_passed_for_https(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    kwargs = HttpSettings.resolve("https://h:9200", ca_certs=str(ca), environ={}).to_client_kwargs()
    assert kwargs["ca_certs"] == str(ca)
    with pytest.raises(HttpSettingsError, match="ca_certs: no such file"):
        HttpSettings.resolve("https://h:9200", ca_certs=str(tmp_path / "missing.pem"), environ={})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"url": "ftp://h"}, r"urls\[0\].*not an http"),
        ({"url": "https://ok:9200,nohost"}, r"urls\[1\]"),
        ({"url": "https://h:99999"}, "invalid port"),
        ({"username": "u"}, "password is missing"),
        ({"password": "p"}, "username is missing"),
        ({"api_key": "k", "username": "u", "password": "p"}, "not both"),
        ({"request_timeout": 0}, "request_timeout"),
    ],
)
def test_bad_settings_name_the_field(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(HttpSettingsError, match=message):
        HttpSettings.resolve(environ={}, **kwargs)  # type: ignore[arg-type]


def test_both_auth_kinds_in_the_environment_is_an_error() -> None:
    env = {"SPLADEBRIDGE_ES_API_KEY": "k", "SPLADEBRIDGE_ES_USERNAME": "u", "SPLADEBRIDGE_ES_PASSWORD": "p"}
    with pytest.raises(HttpSettingsError, match="unset one"):
        HttpSettings.resolve(environ=env)


def test_kwargs_build_a_real_elasticsearch_client() -> None:
    settings = HttpSettings.resolve("https://h:9200", api_key="a2V5", environ={})
    client = Elasticsearch(**settings.to_client_kwargs())
    try:
        assert client._headers["authorization"] == "ApiKey a2V5"
    finally:
        client.close()


def test_urls_without_a_port_get_the_scheme_default_for_elasticsearch() -> None:
    settings = HttpSettings.resolve("https://cloud.example.io, http://h/prefix", environ={})
    assert settings.to_client_kwargs()["hosts"] == ["https://cloud.example.io:443", "http://h:80/prefix"]
    assert settings.to_client_kwargs("opensearch")["hosts"] == ["https://cloud.example.io", "http://h/prefix"]
    Elasticsearch(**settings.to_client_kwargs()).close()  # the client accepts them
