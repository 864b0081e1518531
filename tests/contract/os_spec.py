"""Load the official OpenSearch API spec (OpenAPI 3.1 split over YAML files) and validate request bodies.

The spec lives in /work/shared/specs/opensearch/spec/ (override with SPLADEBRIDGE_OS_SPEC). Every YAML file
becomes one `referencing` resource keyed by its file URI, so cross-file `$ref`s such as
`../schemas/_common.query_dsl.yaml#/components/schemas/NeuralSparseQuery` resolve exactly as the spec's own
tooling resolves them. Bodies are checked with jsonschema's Draft 2020-12 validator (OpenAPI 3.1's dialect).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

__all__ = ["OpenSearchSpec", "SpecError", "load_spec", "spec_root"]

_DEFAULT_ROOT = Path("/work/shared/specs/opensearch/spec")
_METHODS = ("get", "put", "post", "delete", "head", "patch")


class SpecError(LookupError):
    """The spec has no such operation, request body or schema."""


def spec_root() -> Path:
    """Where the spec's YAML files are (the folder holding `namespaces/` and `schemas/`)."""
    return Path(os.environ.get("SPLADEBRIDGE_OS_SPEC", str(_DEFAULT_ROOT)))


_BaseLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _StrKeyLoader(_BaseLoader):  # type: ignore[valid-type,misc]
    """A YAML loader that keeps every mapping key a string (`200:` stays "200"), as JSON Schema needs."""


def _str_key_mapping(loader: Any, node: yaml.MappingNode) -> dict[str, Any]:
    pairs = loader.construct_pairs(node, deep=True)
    return {str(key): value for key, value in pairs}


_StrKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _str_key_mapping)


def _pointer_escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


class OpenSearchSpec:
    """The loaded spec: operations by id, and validators for request bodies and component schemas."""

    def __init__(self, root: Path) -> None:
        if not (root / "namespaces").is_dir():
            raise SpecError(f"no OpenSearch spec at {root} (expected namespaces/ and schemas/ folders)")
        self.root = root
        self.documents: dict[str, dict[str, Any]] = {}
        resources: list[tuple[str, Resource[Any]]] = []
        for path in sorted(root.rglob("*.yaml")):
            with path.open(encoding="utf-8") as fh:
                doc = yaml.load(fh, Loader=_StrKeyLoader)
            uri = path.resolve().as_uri()
            self.documents[uri] = doc
            resources.append((uri, DRAFT202012.create_resource(doc)))
        self.registry: Registry[Any] = Registry().with_resources(resources)
        self.operations: dict[str, tuple[str, str, str, dict[str, Any]]] = {}
        for uri, doc in self.documents.items():
            for url, item in (doc.get("paths") or {}).items():
                for method in _METHODS:
                    op = item.get(method)
                    if isinstance(op, dict) and "operationId" in op:
                        self.operations[op["operationId"]] = (uri, url, method, op)

    def _uri(self, relative: str) -> str:
        return (self.root / relative).resolve().as_uri()

    def request_body_ref(self, operation_id: str, content_type: str = "application/json") -> str:
        """The absolute `$ref` of an operation's request-body schema."""
        if operation_id not in self.operations:
            raise SpecError(f"the spec has no operation {operation_id!r}")
        uri, url, method, op = self.operations[operation_id]
        body = op.get("requestBody")
        if body is None:
            raise SpecError(f"{method.upper()} {url} ({operation_id}) takes no request body")
        ref = body.get("$ref")
        if ref is None:
            raise SpecError(f"{operation_id}: inline request bodies are not supported by this loader")
        resolved = self.registry.resolver(base_uri=uri).lookup(ref)
        content = resolved.contents.get("content", {})
        if content_type not in content:
            raise SpecError(f"{operation_id} has no {content_type} body (has {sorted(content)})")
        doc_uri, _, pointer = ref.partition("#")
        base = doc_uri if doc_uri else uri
        return f"{base}#{pointer}/content/{_pointer_escape(content_type)}/schema"

    def schema_ref(self, schema_file: str, name: str) -> str:
        """The absolute `$ref` of a component schema, e.g. ("_common.query_dsl.yaml", "NeuralSparseQuery")."""
        uri = self._uri(f"schemas/{schema_file}")
        if uri not in self.documents:
            raise SpecError(f"the spec has no schema file {schema_file!r}")
        if name not in self.documents[uri].get("components", {}).get("schemas", {}):
            raise SpecError(f"{schema_file} has no schema {name!r}")
        return f"{uri}#/components/schemas/{_pointer_escape(name)}"

    @functools.cache  # noqa: B019 - one spec per process; validators are reused
    def _validator(self, ref: str) -> Draft202012Validator:
        return Draft202012Validator({"$ref": ref}, registry=self.registry)

    def errors(self, ref: str, instance: Any) -> list[ValidationError]:
        """Every validation error of `instance` against the schema at `ref` (empty when valid)."""
        return sorted(self._validator(ref).iter_errors(instance), key=lambda e: list(e.absolute_path))

    def check_request(self, operation_id: str, body: Any, content_type: str = "application/json") -> None:
        """Raise AssertionError listing each error with its path when `body` breaks the operation's schema."""
        _raise_errors(operation_id, self.errors(self.request_body_ref(operation_id, content_type), body))

    def check_schema(self, schema_file: str, name: str, instance: Any) -> None:
        """Raise AssertionError when `instance` breaks the named component schema."""
        _raise_errors(f"{schema_file}#{name}", self.errors(self.schema_ref(schema_file, name), instance))


def _describe(errors: list[ValidationError]) -> Iterator[str]:
    for err in errors:
        path = "/".join(str(p) for p in err.absolute_path) or "<root>"
        yield f"  at {path}: {err.message[:300]}"
        for sub in (err.context or [])[:6]:
            sub_path = "/".join(str(p) for p in sub.absolute_path) or "<root>"
            yield f"    - {sub_path}: {sub.message[:200]}"


def _raise_errors(what: str, errors: list[ValidationError]) -> None:
    if errors:
        raise AssertionError(
            f"body does not match the OpenSearch spec for {what}:\n" + "\n".join(_describe(errors))
        )


@functools.cache
def load_spec(root: str | None = None) -> OpenSearchSpec:
    """The spec at `root` (default: `spec_root()`), loaded once per process."""
    return OpenSearchSpec(Path(root) if root is not None else spec_root())


def as_mapping(value: Any) -> Mapping[str, Any]:
    """Narrow a JSON value to a mapping (for typed test helpers)."""
    assert isinstance(value, Mapping), f"expected an object, got {type(value).__name__}"
    return value
