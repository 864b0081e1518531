"""spladebridge: learned sparse retrieval (SPLADE) and hybrid search for the engines you already run."""

from spladebridge.connectors import Document, Filter, Hit, IndexSpec, Range, Term, Terms
from spladebridge.encoder import SparseVector

__version__ = "0.1.0"

__all__ = [
    "Document",
    "Filter",
    "Hit",
    "IndexSpec",
    "Range",
    "SparseVector",
    "Term",
    "Terms",
    "__version__",
]
