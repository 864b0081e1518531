"""spladebridge: learned sparse retrieval (SPLADE) and hybrid search for the engines you already run.

The public API in one place. Heavy pieces (torch models, engine clients) are imported on first use, so
`import spladebridge` stays fast and an engine's client library is only needed when that engine is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from spladebridge.connectors import (
    Capabilities,
    Connector,
    ConnectorError,
    Document,
    Filter,
    Hit,
    IndexSpec,
    Range,
    Term,
    Terms,
    WriteReport,
)
from spladebridge.encoder import SparseVector

__version__ = "0.1.0"

# name -> module that defines it; resolved lazily by __getattr__.
_LAZY: dict[str, str] = {
    "SpladeEncoder": "spladebridge.encoder.splade",
    "DenseEncoder": "spladebridge.encoder.dense",
    "IdfTable": "spladebridge.encoder.idf",
    "QdrantEdgeConnector": "spladebridge.connectors.qdrant_edge",
    "QdrantConnector": "spladebridge.connectors.qdrant",
    "ElasticsearchConnector": "spladebridge.connectors.elasticsearch",
    "OpenSearchConnector": "spladebridge.connectors.opensearch",
    "HybridSearcher": "spladebridge.hybrid",
    "AsyncHybridSearcher": "spladebridge.hybrid",
    "AsyncQdrantEdgeConnector": "spladebridge.connectors.async_qdrant_edge",
    "AsyncOpenSearchConnector": "spladebridge.connectors.async_opensearch",
    "AsyncElasticsearchConnector": "spladebridge.connectors.async_elasticsearch",
    "FusedHit": "spladebridge.hybrid",
    "RRF": "spladebridge.hybrid",
    "WeightedSum": "spladebridge.hybrid",
    "TwoStage": "spladebridge.hybrid",
    "SignalResult": "spladebridge.hybrid",
    "tune": "spladebridge.hybrid",
    "TuningResult": "spladebridge.hybrid",
    "ingest": "spladebridge.ingest",
    "IngestReport": "spladebridge.ingest",
    "IngestInterrupted": "spladebridge.ingest",
    "connect": "spladebridge.engines",
    "migrate": "spladebridge.migrate",
    "train": "spladebridge.training",
    "TrainConfig": "spladebridge.training",
}

if TYPE_CHECKING:
    from spladebridge.connectors.async_elasticsearch import AsyncElasticsearchConnector
    from spladebridge.connectors.async_opensearch import AsyncOpenSearchConnector
    from spladebridge.connectors.async_qdrant_edge import AsyncQdrantEdgeConnector
    from spladebridge.connectors.elasticsearch import ElasticsearchConnector
    from spladebridge.connectors.opensearch import OpenSearchConnector
    from spladebridge.connectors.qdrant import QdrantConnector
    from spladebridge.connectors.qdrant_edge import QdrantEdgeConnector
    from spladebridge.encoder.dense import DenseEncoder
    from spladebridge.encoder.idf import IdfTable
    from spladebridge.encoder.splade import SpladeEncoder
    from spladebridge.engines import connect
    from spladebridge.hybrid import (
        RRF,
        AsyncHybridSearcher,
        FusedHit,
        HybridSearcher,
        SignalResult,
        TuningResult,
        TwoStage,
        WeightedSum,
        tune,
    )
    from spladebridge.ingest import IngestInterrupted, IngestReport, ingest
    from spladebridge.migrate import migrate
    from spladebridge.training import TrainConfig, train


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'spladebridge' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "RRF",
    "AsyncElasticsearchConnector",
    "AsyncHybridSearcher",
    "AsyncOpenSearchConnector",
    "AsyncQdrantEdgeConnector",
    "Capabilities",
    "Connector",
    "ConnectorError",
    "DenseEncoder",
    "Document",
    "ElasticsearchConnector",
    "Filter",
    "FusedHit",
    "Hit",
    "HybridSearcher",
    "IdfTable",
    "IndexSpec",
    "IngestInterrupted",
    "IngestReport",
    "OpenSearchConnector",
    "QdrantConnector",
    "QdrantEdgeConnector",
    "Range",
    "SignalResult",
    "SparseVector",
    "SpladeEncoder",
    "Term",
    "Terms",
    "TrainConfig",
    "TuningResult",
    "TwoStage",
    "WeightedSum",
    "WriteReport",
    "__version__",
    "connect",
    "ingest",
    "migrate",
    "train",
    "tune",
]
