"""Load the official Elasticsearch OpenAPI spec and validate request bodies against it.

The spec is /work/shared/specs/elasticsearch/elasticsearch-serverless-openapi.json (override with
SPLADEBRIDGE_ES_SPEC); one JSON document, so the whole file is one `referencing` resource and every
`#/components/...` `$ref` resolves inside it. OpenAPI 3.0 schemas are checked with jsonschema's Draft 7
validator (3.0 is a Draft-4/7 subset; `nullable` is not used by the request bodies checked here).

Three generator artefacts are read as meant before validating: `{"nullable": true, "type": "string"}` alone
is the `null` branch of a union; `oneOf` of overlapping variants (two `number` branches for long and
double, open objects) becomes `anyOf`; and a "one of these keys" branch (`properties` + `maxProperties: 1`)
combined by `allOf` with sibling keys (e.g. `query_vector` / `inference_id` in the `sparse_vector` query)
limits only its own keys, as the server does.

The spec's schemas rarely close objects (`additionalProperties: false`), so a misspelt key would pass plain
validation. `unknown_keys()` adds that check: it walks a body alongside its schema (following `$ref`, and
taking the union of the keys declared by `allOf`/`oneOf`/`anyOf` branches) and lists every key no branch
declares. `check()` does both.

Use from a test file in another folder with
`sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "contract"))` or `importlib` on the path.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jsonschema import Draft7Validator
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

__all__ = ["STATEFUL_ONLY_KEYS", "ElasticsearchSpec", "SpecError", "load_spec", "spec_path"]

#: Keys that stateful Elasticsearch accepts but the serverless spec leaves out (serverless manages shards
#: and replicas itself and always keeps vectors out of `_source`). `check()` does not report them.
STATEFUL_ONLY_KEYS = frozenset(
    {
        "$.settings.number_of_shards",
        "$.settings.number_of_replicas",
        "$.settings.index.mapping.exclude_source_vectors",
    }
)

_DEFAULT = Path("/work/shared/specs/elasticsearch/elasticsearch-serverless-openapi.json")
_URI = "urn:elasticsearch-openapi"
_METHODS = ("get", "put", "post", "delete", "head")


class SpecError(LookupError):
    """The spec has no such operation, request body or schema."""


def spec_path() -> Path:
    return Path(os.environ.get("SPLADEBRIDGE_ES_SPEC", str(_DEFAULT)))


@dataclass
class _Shape:
    properties: dict[str, Any] = field(default_factory=dict)
    additional: list[Any] = field(default_factory=list)
    items: list[Any] = field(default_factory=list)
    closed: bool = False
    open: bool = False

    def merge(self, other: _Shape) -> None:
        for name, schema in other.properties.items():
            self.properties.setdefault(name, schema)
        self.additional += other.additional
        self.items += other.items
        self.closed = self.closed or other.closed
        self.open = self.open or other.open


class ElasticsearchSpec:
    """The loaded spec: request-body schemas by operation id, component schemas by name, validators."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        document = _normalise(document)
        self.document = document
        self.registry: Registry[Any] = Registry().with_resource(_URI, Resource(dict(document), DRAFT7))
        self.operations: dict[str, tuple[str, str, Mapping[str, Any]]] = {}
        for path, item in document["paths"].items():
            for method in _METHODS:
                op = item.get(method)
                if isinstance(op, Mapping) and "operationId" in op:
                    self.operations[op["operationId"]] = (method.upper(), path, op)

    # -- lookup ---------------------------------------------------------------------------------------

    def _resolve(self, node: Mapping[str, Any]) -> Mapping[str, Any]:
        while isinstance(node, Mapping) and "$ref" in node:
            ref = node["$ref"]
            if not ref.startswith("#/"):
                raise SpecError(f"external $ref {ref!r} is not supported")
            target: Any = self.document
            for token in ref[2:].split("/"):
                target = target[token.replace("~1", "/").replace("~0", "~")]
            node = target
        return node

    def body_schema(self, operation_id: str) -> dict[str, Any]:
        """The JSON schema of an operation's request body, with `$ref`s left to the registry."""
        if operation_id not in self.operations:
            raise SpecError(f"no operation {operation_id!r} in the spec")
        _, _, op = self.operations[operation_id]
        if "requestBody" not in op:
            raise SpecError(f"operation {operation_id!r} takes no request body")
        body = self._resolve(op["requestBody"])
        content = body.get("content", {})
        for mime in ("application/json", "application/x-ndjson"):
            if mime in content:
                return dict(_rebase(content[mime]["schema"]))
        raise SpecError(f"operation {operation_id!r} has no JSON request body")

    def component(self, name: str) -> dict[str, Any]:
        if name not in self.document["components"]["schemas"]:
            raise SpecError(f"no component schema {name!r}")
        return {"$ref": f"{_URI}#/components/schemas/{name}"}

    # -- validation -----------------------------------------------------------------------------------

    def validator(self, schema: Mapping[str, Any]) -> Draft7Validator:
        return Draft7Validator(dict(schema), registry=self.registry)

    def errors(self, schema: Mapping[str, Any], instance: Any) -> list[str]:
        return [_describe(e) for e in self.validator(schema).iter_errors(instance)]

    def unknown_keys(self, schema: Mapping[str, Any], instance: Any, path: str = "$") -> list[str]:
        """Keys in `instance` that `schema` does not declare (see the module docstring)."""
        return list(self._walk(schema, instance, path))

    def _collect(self, schema: Any, depth: int = 0) -> _Shape:
        """Properties, additional-property schemas and item schemas of `schema`, across allOf/oneOf/anyOf."""
        shape = _Shape()
        node = self._resolve(_strip_id(schema))
        if not isinstance(node, Mapping) or depth > 40:
            shape.open = True
            return shape
        if "properties" in node:
            shape.closed = True
            shape.properties.update(node["properties"])
        extra = node.get("additionalProperties")
        if isinstance(extra, Mapping):
            shape.additional.append(extra)
        elif extra is True or (node.get("type") == "object" and "properties" not in node and extra is None):
            shape.open = True
        if isinstance(node.get("items"), Mapping):
            shape.items.append(node["items"])
        for key in ("allOf", "oneOf", "anyOf"):
            for branch in node.get(key, []):
                shape.merge(self._collect(branch, depth + 1))
        return shape

    def _walk(self, schema: Any, instance: Any, path: str) -> Iterator[str]:
        shape = self._collect(schema)
        if isinstance(instance, Mapping):
            for key, value in instance.items():
                if key in shape.properties:
                    yield from self._walk(shape.properties[key], value, f"{path}.{key}")
                elif shape.additional:
                    yield from self._walk(shape.additional[0], value, f"{path}.{key}")
                elif shape.closed and not shape.open:
                    yield f"{path}.{key}"
        elif isinstance(instance, list) and shape.items:
            for i, value in enumerate(instance):
                yield from self._walk(shape.items[0], value, f"{path}[{i}]")

    def check(self, schema: Mapping[str, Any], instance: Any) -> list[str]:
        """Schema errors plus undeclared keys; empty when the body conforms."""
        problems = self.errors(schema, instance)
        unknown = [p for p in self.unknown_keys(schema, instance) if p not in STATEFUL_ONLY_KEYS]
        problems += [f"undeclared key {p}" for p in unknown]
        return problems

    def check_request(self, operation_id: str, body: Any) -> list[str]:
        return self.check(self.body_schema(operation_id), body)

    def check_bulk(self, lines: list[Any]) -> list[str]:
        """NDJSON bulk lines: action lines against `_global.bulk.OperationContainer`, sources free-form."""
        problems: list[str] = []
        action = self.component("_global.bulk.OperationContainer")
        i = 0
        while i < len(lines):
            line = lines[i]
            for p in self.check(action, line):
                problems.append(f"line {i}: {p}")
            (op,) = line
            i += 1 if op == "delete" else 2
        return problems


def _exclusive(branch: Any) -> Any:
    """A generated "one of these keys" branch (`properties` + `maxProperties: 1`) inside an `allOf` whose
    siblings add more keys: the count limit is meant for its own keys only, so say that instead."""
    if isinstance(branch, dict) and branch.get("maxProperties") == 1 and "properties" in branch:
        branch = {k: v for k, v in branch.items() if k not in ("maxProperties", "minProperties")}
        branch["oneOf"] = [{"required": [name]} for name in branch["properties"]]
    return branch


def _normalise(node: Any) -> Any:
    """Read the OpenAPI 3.0 spec as JSON Schema means it (see the module docstring)."""
    if isinstance(node, list):
        return [_normalise(v) for v in node]
    if not isinstance(node, Mapping):
        return node
    if node.get("nullable") is True and node.get("type") == "string" and set(node) <= {"nullable", "type"}:
        return {"type": "null"}  # the spec's way to write the `null` branch of a union
    out = {k: _normalise(v) for k, v in node.items()}
    if "oneOf" in out and "anyOf" not in out:
        out["anyOf"] = out.pop("oneOf")  # overlapping variants (long/double, open objects) are alternatives
    branches = out.get("allOf")
    if isinstance(branches, list):
        keyed = sum(1 for b in branches if isinstance(b, Mapping) and ("properties" in b or "$ref" in b))
        if keyed > 1:
            out["allOf"] = [_exclusive(b) for b in branches]
    return out


def _rebase(schema: Any) -> Any:
    """Rewrite `#/...` refs to absolute `urn:...#/...` ones so they resolve from any validator root."""
    if isinstance(schema, Mapping):
        out = {}
        for k, v in schema.items():
            if k == "$ref" and isinstance(v, str) and v.startswith("#/"):
                out[k] = _URI + v
            else:
                out[k] = _rebase(v)
        return out
    if isinstance(schema, list):
        return [_rebase(v) for v in schema]
    return schema


def _strip_id(schema: Any) -> Any:
    if (
        isinstance(schema, Mapping)
        and isinstance(schema.get("$ref"), str)
        and schema["$ref"].startswith(_URI)
    ):
        return {**schema, "$ref": schema["$ref"][len(_URI) :]}
    return schema


def _describe(error: ValidationError) -> str:
    where = "$" + "".join(f"[{p!r}]" for p in error.absolute_path)
    return f"{where}: {error.message[:300]}"


@functools.cache
def load_spec() -> ElasticsearchSpec:
    """The spec, parsed once per process."""
    path = spec_path()
    with path.open(encoding="utf-8") as fh:
        return ElasticsearchSpec(json.load(fh))
