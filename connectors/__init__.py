"""Engine connectors: one small interface (`Connector`), implemented per engine. Know engines, not models."""

from spladebridge.connectors.base import (
    Capabilities,
    Connector,
    ConnectorError,
    DocId,
    Document,
    Hit,
    HybridRequest,
    IndexSpec,
    ItemOutcome,
    ServerFusion,
    UnsupportedOperation,
    WriteReport,
)
from spladebridge.connectors.filters import Filter, FilterError, FilterLike, Range, Term, Terms

__all__ = [
    "Capabilities",
    "Connector",
    "ConnectorError",
    "DocId",
    "Document",
    "Filter",
    "FilterError",
    "FilterLike",
    "Hit",
    "HybridRequest",
    "IndexSpec",
    "ItemOutcome",
    "Range",
    "ServerFusion",
    "Term",
    "Terms",
    "UnsupportedOperation",
    "WriteReport",
]
