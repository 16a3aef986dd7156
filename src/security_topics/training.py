"""Fine-tuning loop around the Hugging Face Trainer: early stopping, checkpoints, resume."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from datasets import Dataset
from transformers import (
    DataCollatorWithPadding,
    EarlyStoppingCallback,
    EvalPrediction,
    Trainer,
    TrainerCallback,
    TrainingArguments,
    set_seed,
)
from transformers.trainer_utils import get_last_checkpoint

from security_topics.data import Example
from security_topics.evaluation import compute_metrics
from security_topics.labels import LabelSet

if TYPE_CHECKING:
    from security_topics.models.transformer import TransformerModel, TransformerRecipe

log = logging.getLogger(__name__)


class _MetricsToTracker(TrainerCallback):
    """Forward the Trainer's loss and validation metrics to the run tracker, per step."""

    def __init__(self, log_metrics: Callable[[dict[str, float], int], None]) -> None:
        self.log_metrics = log_metrics

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        values = {k: float(v) for k, v in (logs or {}).items() if isinstance(v, (int, float)) and k != "total_flos"}
        if values:
            self.log_metrics(values, state.global_step)


def to_dataset(model: TransformerModel, examples: Sequence[Example], labels: LabelSet) -> Dataset:
    """Tokenised examples as a `datasets.Dataset`, normalised exactly as at prediction time."""
    dataset = Dataset.from_dict(
        {
            "text": model.model_inputs([e.text for e in examples]),
            "labels": labels.encode_many([e.labels for e in examples]).tolist(),
        }
    )
    return dataset.map(
        lambda batch: model.tokenizer(batch["text"], truncation=True, max_length=model.max_length),
        batched=True,
        remove_columns=["text"],
        desc="tokenising",
    )


def resolve_resume(resume: str | None) -> str | None:
    """`resume` is a checkpoint directory or a directory holding checkpoint-N folders."""
    if not resume:
        return None
    path = Path(resume)
    if not path.is_dir():
        raise FileNotFoundError(f"trainer.resume={resume}: no such directory")
    if (path / "trainer_state.json").is_file():
        return str(path)
    last = get_last_checkpoint(str(path))
    if last is None:
        raise FileNotFoundError(f"trainer.resume={resume}: no checkpoint-N folder in it")
    return last


def train_classifier(
    model: TransformerModel,
    train: Sequence[Example],
    validation: Sequence[Example],
    labels: LabelSet,
    recipe: TransformerRecipe,
    trainer_cfg: Any,
    workdir: Path,
    log_metrics: Callable[[dict[str, float], int], None],
    resume: str | None = None,
) -> None:
    """Fine-tune `model.classifier` in place; the best epoch by validation macro-F1 is kept.

    `resume` is a checkpoint directory (see `resolve_resume`) to continue from.
    """
    if not 0 <= float(trainer_cfg.warmup_ratio) < 1:
        raise ValueError(f"trainer.warmup_ratio must be in [0, 1), got {trainer_cfg.warmup_ratio}")
    set_seed(int(trainer_cfg.seed))
    if trainer_cfg.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    output_dir = Path(resume).parent if resume else workdir / "checkpoints"
    args = TrainingArguments(
        output_dir=str(output_dir),
        num_train_epochs=float(trainer_cfg.epochs),
        max_steps=int(trainer_cfg.max_steps),
        per_device_train_batch_size=int(trainer_cfg.batch_size),
        per_device_eval_batch_size=int(trainer_cfg.eval_batch_size),
        gradient_accumulation_steps=int(trainer_cfg.grad_accum),
        learning_rate=float(recipe.lr),
        weight_decay=float(trainer_cfg.weight_decay),
        warmup_steps=float(trainer_cfg.warmup_ratio),
        lr_scheduler_type="linear",
        eval_strategy="epoch",
        save_strategy="epoch",
        save_total_limit=2,
        load_best_model_at_end=True,
        metric_for_best_model="macro_f1",
        greater_is_better=True,
        logging_steps=int(trainer_cfg.log_every_steps),
        report_to="none",
        seed=int(trainer_cfg.seed),
        use_cpu=model.device.type == "cpu",
        bf16=trainer_cfg.precision == "bf16",
        dataloader_num_workers=int(trainer_cfg.num_workers),
        train_sampling_strategy="group_by_length",
    )
    trainer = Trainer(
        model=model.classifier,
        args=args,
        train_dataset=to_dataset(model, train, labels),
        eval_dataset=to_dataset(model, validation, labels),
        data_collator=DataCollatorWithPadding(model.tokenizer),
        processing_class=model.tokenizer,  # saved in every checkpoint, for resuming
        compute_metrics=lambda p: _validation_metrics(p, labels),
        callbacks=[
            EarlyStoppingCallback(early_stopping_patience=int(trainer_cfg.early_stopping_patience)),
            _MetricsToTracker(log_metrics),
        ],
        optimizers=(_optimizer(model, recipe, float(trainer_cfg.weight_decay)), None),
    )
    trainer.train(resume_from_checkpoint=resume)
    model.classifier.to(model.device).eval()


def _optimizer(model: TransformerModel, recipe: TransformerRecipe, weight_decay: float) -> torch.optim.Optimizer:
    """AdamW with the head on its own learning rate (a fresh head learns faster than the encoder);
    biases and LayerNorm weights get no weight decay, as in the Hugging Face default."""
    groups = []
    for module, lr in ((model.classifier.encoder, recipe.lr), (model.classifier.head, recipe.head_lr or recipe.lr)):
        named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
        decay = [p for n, p in named if p.ndim > 1]
        no_decay = [p for n, p in named if p.ndim <= 1]
        groups += [
            {"params": decay, "lr": lr, "weight_decay": weight_decay},
            {"params": no_decay, "lr": lr, "weight_decay": 0.0},
        ]
    return torch.optim.AdamW([g for g in groups if g["params"]])


def _validation_metrics(prediction: EvalPrediction, labels: LabelSet) -> dict[str, float]:
    logits = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
    y_pred = (1.0 / (1.0 + np.exp(-logits))) >= 0.5
    metrics = compute_metrics(prediction.label_ids, y_pred, labels.names)
    return {k: metrics[k] for k in ("macro_f1", "micro_f1", "exact_match")}
