"""Fusion of ranked lists (pure functions) and the `HybridSearcher` that runs sparse, dense and BM25 signals."""
