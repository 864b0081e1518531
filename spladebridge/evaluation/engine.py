"""Open the engine an evaluation indexes into, from an `--engine` value.

`edge` (the default) is an embedded Qdrant Edge shard under the evaluation cache folder; any engine
URL (`qdrant-edge://DIR`, `qdrant://HOST:PORT`, `http(s)://HOST:PORT`) goes through
`spladebridge.engines.connect`.
Each index is named after the data and model fingerprints, so a re-run with the same inputs finds and
reuses the index it built before.
"""

from __future__ import annotations

from pathlib import Path

from spladebridge.connectors.base import Connector, IndexSpec

__all__ = ["describe_engine", "open_engine"]

_EDGE_NAMES = {"edge", "qdrant-edge", "qdrant_edge"}


def describe_engine(engine: str | None) -> str:
    """A short label for reports: "qdrant-edge", or the URL's scheme and host (never credentials)."""
    if engine is None or engine.lower() in _EDGE_NAMES or engine.lower().startswith("qdrant-edge://"):
        return "qdrant-edge"
    scheme, sep, rest = engine.partition("://")
    host = rest.rsplit("@", 1)[-1].split("/", 1)[0]
    return f"{scheme}{sep}{host}"


def open_engine(engine: str | None, spec: IndexSpec, cache_dir: Path) -> Connector:
    """A connector for `spec` on `engine` (index created or checked); the caller closes it."""
    if engine is None or engine.lower() in _EDGE_NAMES:
        from spladebridge.connectors.qdrant_edge import QdrantEdgeConnector

        root = cache_dir / "index"
        root.mkdir(parents=True, exist_ok=True)
        return QdrantEdgeConnector(root / spec.name, spec=spec)
    from spladebridge.engines import connect

    return connect(engine, spec=spec)
