"""Security: TLS verification on by default (the opt-out warns), a planted secret never shows in logs, reprs,
errors or reports, index and field names are validated before they reach a URL path or a query body, and no
loaded file is unpickled or executed.
"""

from __future__ import annotations

import ast
import contextlib
import io
import json
import logging
import os
import pickle
import sys
import warnings
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spladebridge import cli
from spladebridge.checkpoint import Checkpoint, CheckpointError
from spladebridge.config import ConfigError, resolve
from spladebridge.connectors.base import IndexSpec
from spladebridge.connectors.filters import Range, Term, Terms
from spladebridge.connectors.http_settings import HttpSettings, InsecureTLSWarning
from spladebridge.connectors.lucene_connector import check_index_name
from spladebridge.connectors.lucene_queries import bm25_query, filter_clauses
from spladebridge.engines import EngineConfigError, parse_engine_url

sys.path.insert(0, str(Path(__file__).resolve().parent))

from os_fake import FakeOpenSearch

SECRET = "pl4nted-S3CRET-value"
ROOT = Path(__file__).resolve().parents[2]

# -- TLS ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("flavor", ["elasticsearch", "opensearch"])
def test_tls_verification_is_on_by_default_without_a_warning(flavor: Any) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", InsecureTLSWarning)
        settings = HttpSettings.resolve("https://search.example:9200", environ={})
    assert settings.verify_certs is True
    kwargs = settings.to_client_kwargs(flavor)
    assert kwargs["verify_certs"] is True and "ssl_show_warn" not in kwargs


@pytest.mark.parametrize(
    ("kwargs", "environ"),
    [
        ({"verify_certs": False}, {}),
        ({}, {"SPLADEBRIDGE_ES_VERIFY_CERTS": "false"}),
    ],
)
def test_turning_tls_verification_off_is_explicit_and_warns(
    kwargs: dict[str, Any], environ: dict[str, str]
) -> None:
    with pytest.warns(InsecureTLSWarning, match="verification is turned off"):
        settings = HttpSettings.resolve("https://search.example:9200", environ=environ, **kwargs)
    assert settings.to_client_kwargs()["verify_certs"] is False
    assert "NO-VERIFY" in settings.describe()


def test_cli_insecure_flag_warns(tmp_path: Path) -> None:
    with pytest.warns(InsecureTLSWarning):
        code, _, err = run_cli(
            [
                "engines",
                "--url",
                "https://127.0.0.1:9",
                "--engine",
                "elasticsearch",
                "--insecure",
                "--timeout",
                "0.5",
            ],
            tmp_path,
        )
    assert code in (1, 2) and "Traceback" not in err


def test_credentials_over_plain_http_to_a_remote_host_warn() -> None:
    with pytest.warns(InsecureTLSWarning, match="unencrypted"):
        HttpSettings.resolve("http://search.example:9200", username="u", password=SECRET, environ={})


# -- secrets never shown ---------------------------------------------------------------------------------


def run_cli(argv: list[str], folder: Path, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SPLADEBRIDGE_")}
    with (
        contextlib.chdir(folder),
        mock.patch.dict(os.environ, {**clean, **(env or {})}, clear=True),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        try:
            code = cli.main(argv, out=out)
        except SystemExit as exc:
            code = int(exc.code or 0)
    return code, out.getvalue(), err.getvalue()


def test_settings_objects_never_show_secrets() -> None:
    variants = [
        HttpSettings.resolve("https://es.example:9200", api_key=SECRET, environ={}),
        HttpSettings.resolve("https://es.example:9200", username="elastic", password=SECRET, environ={}),
        HttpSettings.resolve(f"https://elastic:{SECRET}@es.example:9200", environ={}),
        HttpSettings.resolve(
            "https://es.example:9200",
            environ={"SPLADEBRIDGE_ES_API_KEY": SECRET},
            headers={"X-Token": SECRET},
        ),
    ]
    for settings in variants:
        for shown in (
            repr(settings),
            str(settings),
            settings.describe(),
            repr(settings.api_key),
            str(settings.password),
        ):
            assert SECRET not in shown, shown


@pytest.mark.parametrize(
    ("argv", "env"),
    [
        (["--username", "elastic", "--password", SECRET], {}),
        (["--api-key", SECRET], {}),
        ([], {"SPLADEBRIDGE_API_KEY": SECRET}),
        ([], {"SPLADEBRIDGE_PASSWORD": SECRET, "SPLADEBRIDGE_USERNAME": "elastic"}),
        ([], {"SPLADEBRIDGE_URL": f"https://elastic:{SECRET}@127.0.0.1:9"}),
        (["--url", f"htps://elastic:{SECRET}@127.0.0.1:9"], {}),  # a typo in the scheme
        (["--url", f"qdrant://elastic:{SECRET}@127.0.0.1:99999"], {}),
        (["--url", f"https://elastic:{SECRET}@127.0.0.1:9", "--engine", "qdrant"], {}),
    ],
)
@pytest.mark.parametrize("command", [["engines"], ["search", "query"], ["stats"]])
def test_a_planted_secret_is_never_logged_or_printed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, argv: list[str], env: dict[str, str], command: list[str]
) -> None:
    base = ["--url", "https://127.0.0.1:9", "--engine", "elasticsearch"] if "--url" not in argv else []
    if "SPLADEBRIDGE_URL" in env:
        base = ["--engine", "elasticsearch"]
    with caplog.at_level(logging.DEBUG), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code, out, err = run_cli([*command, *base, *argv, "-vv", "--timeout", "0.5"], tmp_path, env)
    assert code in (1, 2), err
    everything = "\n".join([out, err, caplog.text, *(str(w.message) for w in caught)])
    assert "spladebridge: error:" in err or "unreachable" in out  # `engines` reports, the others fail
    assert SECRET not in everything


def test_config_file_secrets_are_redacted_in_errors_and_descriptions(tmp_path: Path) -> None:
    bad_type = tmp_path / "bad.toml"
    bad_type.write_text(f"password = {SECRET!r}\napi_key = [{SECRET!r}]\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        resolve({}, config_file=str(bad_type), environ={}, cwd=tmp_path)
    assert SECRET not in str(info.value) and "api_key" in str(info.value)

    good = tmp_path / "good.toml"
    good.write_text(
        f"url = 'https://elastic:{SECRET}@es.example:9200'\nusername = 'elastic'\npassword = {SECRET!r}\n",
        encoding="utf-8",
    )
    settings = resolve({}, config_file=str(good), environ={}, cwd=tmp_path)
    assert settings["password"] == SECRET  # read from the file...
    assert SECRET not in "\n".join(settings.describe())  # ...but never shown


def test_engine_url_errors_redact_credentials() -> None:
    for url in (f"htps://u:{SECRET}@h:9200", f"qdrant://u:{SECRET}@h:99999", f"qdrant-edge://u:{SECRET}@x"):
        with contextlib.suppress(EngineConfigError):
            target = parse_engine_url(url, engine="elasticsearch")
            assert SECRET not in repr(target)
            continue
    for url in (f"htps://u:{SECRET}@h:9200", f"qdrant://u:{SECRET}@h:99999"):
        with pytest.raises(EngineConfigError) as info:
            parse_engine_url(url)
        assert SECRET not in str(info.value)


# -- names validated before they reach a URL path or a body -----------------------------------------------

BAD_INDEX_NAMES = [
    "",
    ".",
    "..",
    "../x",
    "a/b",
    "a\\b",
    "*",
    "a*",
    "a,b",
    "_all",
    "-x",
    "+x",
    "A",
    "a b",
    "a#b",
    "a?b",
    'a"b',
    "a|b",
    "a:b",
    "a<b",
]


@pytest.mark.parametrize("name", BAD_INDEX_NAMES)
def test_bad_index_names_are_refused_by_the_shared_check(name: str) -> None:
    with pytest.raises(ValueError, match="index name"):
        check_index_name(name)


@given(st.text(max_size=30))
def test_every_accepted_index_name_is_one_plain_url_path_segment(name: str) -> None:
    try:
        check_index_name(name)
    except ValueError:
        return
    quoted = quote(name, safe=",*")  # how elasticsearch-py and opensearch-py put it into the path
    assert "/" not in quoted and "," not in quoted and "*" not in quoted
    assert name not in (".", "..") and not name.startswith("_")


@pytest.mark.parametrize("name", ["*", "a,b", "_all", "../x", "Logs"])
def test_opensearch_connector_refuses_bad_index_names_before_any_request(name: str) -> None:
    from spladebridge.connectors.opensearch import OpenSearchConnector

    fake = FakeOpenSearch()
    with pytest.raises(ValueError, match="index name"):
        OpenSearchConnector(client=fake.client(), index=name)
    conn = OpenSearchConnector(client=fake.client())
    with pytest.raises(ValueError, match="index name"):
        conn.ensure_index(IndexSpec(name=name, dense_field=None))
    assert not [r for r in fake.requests if name in r.path or quote(name, safe=",*") in r.path]


def test_filter_and_query_text_stay_literal_values_in_the_body() -> None:
    hostile = 'x"}},{"match_all":{}},{"term":{"y'
    clauses = filter_clauses(Term(hostile, hostile))
    assert json.loads(json.dumps(clauses)) == [{"term": {hostile: {"value": hostile}}}]
    assert filter_clauses(Terms("tags", ["*", "a OR b"])) == [{"terms": {"tags": ["*", "a OR b"]}}]
    assert filter_clauses(Range("year", gte=1)) == [{"range": {"year": {"gte": 1.0}}}]
    lucene = "title:secret OR * AND _exists_:x"
    assert bm25_query(lucene, ["title"]) == {"match": {"title": {"query": lucene}}}  # never query_string


def test_no_connector_builds_query_string_queries() -> None:
    for folder in ("connectors", "spladebridge", "hybrid"):
        for path in (ROOT / folder).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            assert "query_string" not in text, f"{path}: query_string parses user text as Lucene syntax"


# -- no pickle, no code execution on loaded files ----------------------------------------------------------

_UNSAFE_MODULES = {"pickle", "cPickle", "dill", "cloudpickle", "marshal", "shelve", "joblib"}


def _unsafe_calls(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            found += [f"import {n}" for n in names if n.split(".")[0] in _UNSAFE_MODULES]
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
        owner = func.value.id if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) else ""
        keywords = {k.arg: k.value for k in node.keywords}

        def is_true(key: str, kw: dict[str, ast.expr] = keywords) -> bool:
            value = kw.get(key)
            return isinstance(value, ast.Constant) and value.value is True

        if name in ("eval", "exec", "__import__") and isinstance(func, ast.Name):
            found.append(name)
        if owner == "torch" and name == "load" and not is_true("weights_only"):
            found.append("torch.load without weights_only=True")
        if owner == "yaml" and name in ("load", "unsafe_load", "full_load"):
            found.append(f"yaml.{name}")
        if name == "load" and owner in ("np", "numpy") and is_true("allow_pickle"):
            found.append("np.load(allow_pickle=True)")
        if is_true("trust_remote_code"):
            found.append("trust_remote_code=True")
    return found


def test_the_package_never_unpickles_or_executes_loaded_content() -> None:
    problems = {}
    for folder in ("spladebridge", "encoder", "connectors", "hybrid"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            calls = _unsafe_calls(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
            if calls:
                problems[str(path.relative_to(ROOT))] = calls
    assert problems == {}


class _Trap:
    """Unpickling this creates a marker file: proof that a loader ran code from a file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))


def test_loaders_refuse_pickles_without_running_them(tmp_path: Path) -> None:
    from spladebridge.encoder.idf import IdfTable
    from spladebridge.migrate import MigrationState, StateError

    marker = tmp_path / "pwned"
    payload = pickle.dumps(_Trap(marker))
    loaders: list[tuple[str, Any, type[Exception]]] = [
        ("ckpt.json", lambda p: Checkpoint.open(p, {"kind": "iterable"}, {}), CheckpointError),
        ("state.json", lambda p: MigrationState.open(p, {}), StateError),
        ("idf.json", IdfTable.load, ValueError),
        ("config.toml", lambda p: resolve({}, config_file=str(p), environ={}, cwd=tmp_path), ConfigError),
    ]
    for name, load, error in loaders:
        path = tmp_path / name
        path.write_bytes(payload)
        with pytest.raises(error):
            load(path)
    assert not marker.exists()
