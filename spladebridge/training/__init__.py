"""Fine-tune a SPLADE model on your own (query, relevant document) pairs: `spladebridge.train(...)`.

Built on sentence-transformers' sparse training stack (`SparseEncoderTrainer`, `SpladeLoss` over
`SparseMultipleNegativesRankingLoss`: in-batch plus mined hard negatives, FLOPS regularisation on queries and
documents). Needs the `train` extra: `pip install 'spladebridge[train]'`.
"""

from __future__ import annotations

from spladebridge.training.data import PairsError, TrainingPair, beir_pairs, jsonl_pairs
from spladebridge.training.negatives import mine_hard_negatives
from spladebridge.training.trainer import TrainConfig, TrainResult, train

__all__ = [
    "PairsError",
    "TrainConfig",
    "TrainResult",
    "TrainingPair",
    "beir_pairs",
    "jsonl_pairs",
    "mine_hard_negatives",
    "train",
]
