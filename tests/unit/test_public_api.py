"""The package root: every public name resolves, and importing it stays light (no torch, no engine client)."""

from __future__ import annotations

import json
import subprocess
import sys

import spladebridge


def test_every_public_name_resolves() -> None:
    for name in spladebridge.__all__:
        assert getattr(spladebridge, name) is not None, name
    assert set(spladebridge.__all__) <= set(dir(spladebridge))


def test_import_does_not_load_models_or_engine_clients() -> None:
    code = (
        "import sys, json, spladebridge;"
        "print(json.dumps([m for m in ('torch', 'transformers', 'elasticsearch', 'opensearchpy', 'qdrant_client')"
        " if m in sys.modules]))"
    )
    proc = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd="/")
    assert json.loads(proc.stdout) == []


def test_ingest_and_migrate_are_callable_from_the_package_root() -> None:
    # importing the submodules must not shadow the functions of the same name
    import spladebridge.ingest
    import spladebridge.migrate

    assert callable(spladebridge.ingest) and callable(spladebridge.migrate)


def test_unknown_attribute_is_an_attribute_error() -> None:
    try:
        spladebridge.no_such_name  # noqa: B018
    except AttributeError as exc:
        assert "no_such_name" in str(exc)
    else:
        raise AssertionError("expected AttributeError")
