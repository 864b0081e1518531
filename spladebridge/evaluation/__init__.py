"""Retrieval-quality evaluation on BEIR-layout test collections: loader, metrics, runner, report, plot.

`run_evaluation(EvalConfig(dataset_dir=...))` indexes a collection, runs BM25, SPLADE, dense and their
fusions over the judged test queries and returns an `EvalReport` (nDCG@10, Recall@100, MRR@10 per system).
Names are imported on first use, so the CLI can register `eval` without loading ir-measures or the models.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_LAZY: dict[str, str] = {
    "BeirDataset": "spladebridge.evaluation.beir",
    "DatasetError": "spladebridge.evaluation.beir",
    "load_beir": "spladebridge.evaluation.beir",
    "WinLoss": "spladebridge.evaluation.compare",
    "wins_losses": "spladebridge.evaluation.compare",
    "DEFAULT_METRICS": "spladebridge.evaluation.metrics",
    "Scores": "spladebridge.evaluation.metrics",
    "evaluate": "spladebridge.evaluation.metrics",
    "EvalReport": "spladebridge.evaluation.report",
    "PruningPoint": "spladebridge.evaluation.report",
    "SystemResult": "spladebridge.evaluation.report",
    "EvalConfig": "spladebridge.evaluation.runner",
    "run_evaluation": "spladebridge.evaluation.runner",
}

if TYPE_CHECKING:
    from spladebridge.evaluation.beir import BeirDataset, DatasetError, load_beir
    from spladebridge.evaluation.compare import WinLoss, wins_losses
    from spladebridge.evaluation.metrics import DEFAULT_METRICS, Scores, evaluate
    from spladebridge.evaluation.report import EvalReport, PruningPoint, SystemResult
    from spladebridge.evaluation.runner import EvalConfig, run_evaluation


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'spladebridge.evaluation' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "DEFAULT_METRICS",
    "BeirDataset",
    "DatasetError",
    "EvalConfig",
    "EvalReport",
    "PruningPoint",
    "Scores",
    "SystemResult",
    "WinLoss",
    "evaluate",
    "load_beir",
    "run_evaluation",
    "wins_losses",
]
