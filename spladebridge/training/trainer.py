"""`train()`: fine-tune a SPLADE model with sentence-transformers' sparse training stack, resumably.

The loss is `SpladeLoss` over `SparseMultipleNegativesRankingLoss` (each query against its positive, the
other positives of the batch and its mined hard negatives) plus FLOPS regularisation of query and document
vectors, which keeps them short. Checkpoints are saved under `OUTPUT/checkpoints` and a re-run resumes from
the last one; with a dev split (the dataset's, or a held-out share of the training queries) training is
evaluated, stops early when nDCG@10 stops improving, and keeps the best checkpoint. The output folder loads
with `SpladeEncoder(OUTPUT)` and carries a model card (base model, data, hyper-parameters, before / after).
"""

from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from spladebridge.evaluation.beir import BeirDataset, Qrels, load_beir
from spladebridge.training.data import PairsError, TrainingPair, beir_pairs, jsonl_pairs
from spladebridge.training.negatives import MiningMethod, mine_hard_negatives, rank_corpus

__all__ = ["REGRESSED_ADVICE", "TrainConfig", "TrainResult", "train"]

logger = logging.getLogger(__name__)

CARD_FILE = "spladebridge_training.json"


@dataclass(frozen=True, slots=True)
class TrainConfig:
    """Hyper-parameters; the defaults are sentence-transformers' SPLADE recipe scaled to small CPU runs."""

    base_model: str | None = None
    epochs: float = 3.0
    batch_size: int = 32
    learning_rate: float = 2e-4
    warmup_ratio: float = 0.1
    hard_negatives: int = 1
    mine_with: MiningMethod = "bm25"
    max_ratio: float = 0.95
    query_regularizer: float = 5e-5
    document_regularizer: float = 3e-5
    max_length: int = 256
    seed: int = 7
    max_steps: int | None = None
    #: Train on at most this many pairs: the most relevant first, ties broken by a seeded shuffle.
    max_pairs: int | None = None
    dev_fraction: float = 0.1
    #: The dev corpus: each dev query's judged documents plus its top `dev_candidates` BM25 documents (None:
    #: the whole corpus). Every evaluation re-encodes this corpus, so its size bounds the cost of early stopping.
    dev_candidates: int | None = 20
    eval_steps: int | None = None
    patience: int = 2
    logging_steps: int = 10

    def __post_init__(self) -> None:
        if self.epochs <= 0 or self.batch_size < 2 or self.learning_rate <= 0:
            raise ValueError("epochs and learning_rate must be > 0 and batch_size >= 2 (in-batch negatives)")
        if self.hard_negatives < 0 or not 0 <= self.dev_fraction < 1 or self.patience < 1:
            raise ValueError("hard_negatives must be >= 0, 0 <= dev_fraction < 1 and patience >= 1")
        for name in ("max_steps", "max_pairs", "dev_candidates"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")


#: What to do when training made the model worse on the dev split (the FLOPS term can drive every weight to 0).
REGRESSED_ADVICE = (
    "warning: the trained model is WORSE than the base model on the dev split; do not deploy it. Lower "
    "learning_rate or query_regularizer / document_regularizer, or add pairs (see dev_after's active dims: "
    "near 0 means the vectors collapsed)"
)


@dataclass(slots=True)
class TrainResult:
    """What one `train()` run did: the model folder, steps, logged losses, dev metrics before and after."""

    output: Path
    steps: int
    losses: list[float]
    dev_before: dict[str, float] = field(default_factory=dict)
    dev_after: dict[str, float] = field(default_factory=dict)
    duration_s: float = 0.0
    resumed_from: str | None = None
    pairs: int = 0
    mining: dict[str, int] = field(default_factory=dict)
    config: TrainConfig = field(default_factory=TrainConfig)
    data: str = ""

    def to_json_obj(self) -> dict[str, Any]:
        out = asdict(self)
        out["output"] = str(self.output)
        return out

    @property
    def regressed(self) -> bool:
        """True when the trained model is worse than the base model on the dev split."""
        before, after = self.dev_before.get("ndcg@10"), self.dev_after.get("ndcg@10")
        return before is not None and after is not None and after < before

    def summary(self) -> str:
        before = self.dev_before.get("ndcg@10")
        after = self.dev_after.get("ndcg@10")
        dev = f"; dev nDCG@10 {before:.4f} -> {after:.4f}" if before is not None and after is not None else ""
        text = f"trained {self.steps} steps on {self.pairs} pairs in {self.duration_s:.0f}s{dev}; model in {self.output}"
        return text + (f"\n{REGRESSED_ADVICE}" if self.regressed else "")


def train(
    dataset: str | Path | None = None,
    output: str | Path = "spladebridge-model",
    *,
    pairs: str | Path | None = None,
    split: str = "train",
    dev_split: str | None = None,
    config: TrainConfig | None = None,
    resume: bool = True,
    progress: bool = True,
) -> TrainResult:
    """Fine-tune `config.base_model` (default: the offline SPLADE-tiny) on `dataset`'s `split` qrels, or on
    `pairs` (JSONL of query / positive[ / negative]); hard negatives are mined from `dataset`'s corpus."""
    started = time.perf_counter()
    cfg = config or TrainConfig()
    out = Path(output)
    beir = load_beir(dataset) if dataset is not None else None
    if beir is None and pairs is None:
        raise PairsError("give a BEIR dataset folder, a pairs file, or both")
    train_pairs = jsonl_pairs(pairs) if pairs is not None else beir_pairs(beir, split)  # type: ignore[arg-type]
    dev_qrels: Qrels = {}
    if beir is not None:
        train_pairs, dev_qrels = _dev_split(beir, train_pairs, split, dev_split, cfg)
    if cfg.max_pairs is not None and len(train_pairs) > cfg.max_pairs:
        random.Random(cfg.seed).shuffle(train_pairs)
        train_pairs = sorted(train_pairs, key=lambda p: -p.relevance)[: cfg.max_pairs]
    mining: dict[str, int] = {}
    if beir is not None and cfg.hard_negatives > 0:
        mining = mine_hard_negatives(
            train_pairs,
            beir,
            per_pair=cfg.hard_negatives,
            max_ratio=cfg.max_ratio,
            method=cfg.mine_with,
            splade_model=cfg.base_model,
            seed=cfg.seed,
        )
    model = _model(cfg)
    evaluator = _evaluator(beir, dev_qrels, cfg.dev_candidates) if beir is not None and dev_qrels else None
    dev_before = _metrics(evaluator(model)) if evaluator is not None else {}
    trainer = _trainer(model, train_pairs, cfg, out, evaluator, progress)
    checkpoint = _last_checkpoint(out) if resume else None
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    dev_after = _metrics(evaluator(model)) if evaluator is not None else {}
    model.save(str(out))
    losses = [float(h["loss"]) for h in trainer.state.log_history if "loss" in h]
    data = f"{beir.path} qrels/{split}" if beir is not None and pairs is None else str(pairs)
    result = TrainResult(
        out,
        int(trainer.state.global_step),
        losses,
        dev_before,
        dev_after,
        time.perf_counter() - started,
        str(checkpoint) if checkpoint else None,
        len(train_pairs),
        mining,
        cfg,
        data,
    )
    _write_card(result, model)
    if result.regressed:
        logger.warning("%s: %s", out, REGRESSED_ADVICE)
    return result


def _dev_split(
    beir: BeirDataset, pairs: list[TrainingPair], split: str, dev_split: str | None, cfg: TrainConfig
) -> tuple[list[TrainingPair], Qrels]:
    """The dev qrels: `dev_split`, else the dataset's "dev" split, else a held-out share of the training
    queries (removed from training)."""
    name = dev_split or ("dev" if "dev" in beir.qrels and split != "dev" else None)
    if name is not None:
        return pairs, beir.split(name)
    if cfg.dev_fraction == 0:
        return pairs, {}
    qids = sorted({p.query_id for p in pairs if p.query_id is not None})
    held = set(random.Random(cfg.seed).sample(qids, max(1, int(len(qids) * cfg.dev_fraction))))
    if len(held) >= len(qids):
        return pairs, {}
    qrels = {q: r for q, r in beir.split(split).items() if q in held}
    return [p for p in pairs if p.query_id not in held], qrels


def _model(cfg: TrainConfig) -> Any:
    from sentence_transformers.sparse_encoder import SparseEncoder
    from sentence_transformers.sparse_encoder.modules import SpladePooling, Transformer

    from spladebridge.encoder.models import resolve_model

    resolved = resolve_model(cfg.base_model, "splade")
    if resolved.local and (Path(resolved.name_or_path) / "modules.json").is_file():
        return SparseEncoder(resolved.name_or_path, device="cpu" if not _cuda() else None)
    mlm = Transformer(resolved.name_or_path, transformer_task="fill-mask", max_seq_length=cfg.max_length)
    modules: list[Any] = [mlm, SpladePooling("max")]
    return SparseEncoder(modules=modules, device="cpu" if not _cuda() else None)


def _cuda() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def _evaluator(beir: BeirDataset, qrels: Qrels, candidates: int | None) -> Any:
    from sentence_transformers.sparse_encoder.evaluation import SparseInformationRetrievalEvaluator

    queries = {q: beir.queries[q] for q in qrels}
    kept: set[str] | None = None
    if candidates is not None:
        kept = {d for judged in qrels.values() for d in judged if d in beir.corpus}
        for ranked in rank_corpus(queries, beir, candidates, "bm25", None).values():
            kept.update(ranked)
    corpus = {d: beir.doc_text(d) for d in beir.corpus if kept is None or d in kept}
    relevant = {q: {d for d, rel in judged.items() if rel > 0} for q, judged in qrels.items()}
    return SparseInformationRetrievalEvaluator(
        queries,
        corpus,
        relevant,
        name="dev",
        ndcg_at_k=[10],
        mrr_at_k=[10],
        accuracy_at_k=[1],
        precision_recall_at_k=[100],
        map_at_k=[100],
        show_progress_bar=False,
        batch_size=64,
    )


def _metrics(raw: dict[str, float]) -> dict[str, float]:
    """The evaluator's numbers under short names: ndcg@10, mrr@10, recall@100, active dims."""
    wanted = {
        "dev_dot_ndcg@10": "ndcg@10",
        "dev_dot_mrr@10": "mrr@10",
        "dev_dot_recall@100": "recall@100",
        "dev_query_active_dims": "query_active_dims",
        "dev_corpus_active_dims": "corpus_active_dims",
    }
    return {short: round(float(raw[key]), 4) for key, short in wanted.items() if key in raw}


def _trainer(
    model: Any, pairs: list[TrainingPair], cfg: TrainConfig, out: Path, evaluator: Any, progress: bool
) -> Any:
    from datasets import Dataset
    from sentence_transformers.sentence_transformer.training_args import BatchSamplers
    from sentence_transformers.sparse_encoder import SparseEncoderTrainer, SparseEncoderTrainingArguments
    from sentence_transformers.sparse_encoder.losses import SparseMultipleNegativesRankingLoss, SpladeLoss
    from transformers import EarlyStoppingCallback
    from transformers.trainer_callback import PrinterCallback

    columns: dict[str, list[str]] = {
        "query": [p.query for p in pairs],
        "positive": [p.positive for p in pairs],
    }
    negatives = min((len(p.negatives) for p in pairs), default=0)
    for i in range(negatives):
        columns[f"negative_{i + 1}"] = [p.negatives[i] for p in pairs]
    train_data = Dataset.from_dict(columns)
    loss = SpladeLoss(
        model,
        SparseMultipleNegativesRankingLoss(model),
        document_regularizer_weight=cfg.document_regularizer,
        query_regularizer_weight=cfg.query_regularizer,
    )
    steps_per_epoch = max(1, len(pairs) // cfg.batch_size)
    eval_steps = cfg.eval_steps or max(1, steps_per_epoch // 2)  # twice an epoch: a collapse keeps a good one
    evaluating = evaluator is not None
    args = SparseEncoderTrainingArguments(
        output_dir=str(out / "checkpoints"),
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps if cfg.max_steps is not None else -1,
        per_device_train_batch_size=cfg.batch_size,
        learning_rate=cfg.learning_rate,
        **_warmup(cfg.warmup_ratio),
        seed=cfg.seed,
        data_seed=cfg.seed,
        batch_sampler=BatchSamplers.NO_DUPLICATES,
        eval_strategy="steps" if evaluating else "no",
        eval_steps=eval_steps,
        save_strategy="steps",
        save_steps=eval_steps,
        save_total_limit=2,
        load_best_model_at_end=evaluating,
        metric_for_best_model="eval_dev_dot_ndcg@10" if evaluating else None,
        greater_is_better=True,
        logging_steps=cfg.logging_steps,
        report_to=[],
        disable_tqdm=not progress,
        use_cpu=not _cuda(),
    )
    trainer = SparseEncoderTrainer(
        model=model,
        args=args,
        train_dataset=train_data,
        loss=loss,
        evaluator=evaluator,
        callbacks=[EarlyStoppingCallback(early_stopping_patience=cfg.patience)] if evaluating else [],
    )
    if not progress:  # without a bar, transformers prints every log line to stdout; keep stdout the caller's
        trainer.remove_callback(PrinterCallback)
    return trainer


def _warmup(ratio: float) -> dict[str, Any]:
    """Warm-up as a share of the steps: `warmup_steps` takes a float from transformers 5 on (and
    `warmup_ratio` is deprecated there), earlier versions take `warmup_ratio`."""
    import transformers

    major = int(transformers.__version__.split(".", 1)[0])
    return {"warmup_steps": ratio} if major >= 5 else {"warmup_ratio": ratio}


def _last_checkpoint(out: Path) -> Path | None:
    from transformers.trainer_utils import get_last_checkpoint

    folder = out / "checkpoints"
    found = get_last_checkpoint(str(folder)) if folder.is_dir() else None  # type: ignore[no-untyped-call]
    return Path(found) if found else None


def _write_card(result: TrainResult, model: Any) -> None:
    """The model card: spladebridge's section first in README.md, and the same facts as JSON."""
    cfg = result.config
    (result.output / CARD_FILE).write_text(
        json.dumps(result.to_json_obj(), indent=2) + "\n", encoding="utf-8"
    )
    rows = [f"| {k} | {v} |" for k, v in asdict(cfg).items()]
    metrics = sorted(set(result.dev_before) | set(result.dev_after))
    table = [f"| {m} | {result.dev_before.get(m, '')} | {result.dev_after.get(m, '')} |" for m in metrics]
    section = "\n".join(
        [
            "# SPLADE model fine-tuned with spladebridge",
            "",
            f"- Base model: `{cfg.base_model or 'SPLADE-tiny MS MARCO (spladebridge offline default)'}`",
            f"- Data: {result.data}, {result.pairs} training pairs; hard negatives: {result.mining or 'none'}",
            f"- Steps: {result.steps}, {result.duration_s:.0f} s; resumed from: {result.resumed_from or 'no'}",
            "- Load it with `spladebridge.SpladeEncoder(PATH)`.",
            "",
            "| hyper-parameter | value |",
            "|---|---|",
            *rows,
            "",
            "| dev metric | before | after |",
            "|---|---|---|",
            *table,
            "",
        ]
    )
    readme = result.output / "README.md"
    card = readme.read_text(encoding="utf-8") if readme.is_file() else ""
    front = ""
    if card.startswith("---\n") and "\n---\n" in card[4:]:  # keep the hub's YAML metadata first
        end = card.index("\n---\n", 4) + 5
        front, card = card[:end], card[end:]
    readme.write_text(front + "\n" + section + "\n" + card, encoding="utf-8")
