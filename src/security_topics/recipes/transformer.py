"""Fine-tune a transformer classifier with the Hugging Face Trainer: early stopping, checkpoints, resume."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from datasets import Dataset
from transformers import (
    AutoTokenizer,
    DataCollatorWithPadding,
    EarlyStoppingCallback,
    EvalPrediction,
    PreTrainedTokenizerBase,
    Trainer,
    TrainerCallback,
    TrainingArguments,
    set_seed,
)
from transformers.trainer_utils import get_last_checkpoint

from security_topics.calibration import sigmoid
from security_topics.data import Example
from security_topics.errors import ConfigError
from security_topics.labels import LabelSet
from security_topics.metrics import compute_metrics
from security_topics.models.card import ModelCard
from security_topics.models.transformer import TopicClassifier, TransformerModel, native_bf16, resolve_precision
from security_topics.recipes.settings import MetricsLogger, TrainerSettings, no_logging
from security_topics.text import NormalizerConfig, normalize

log = logging.getLogger(__name__)


class TransformerRecipe:
    """How to fine-tune an encoder; built from `configs/model/*.yaml` via `_target_`."""

    family = "transformer"

    def __init__(
        self,
        name: str,
        encoder: Any,
        pooling: str = "mean",
        max_length: int = 128,
        lr: float = 5e-5,
        head_lr: float | None = None,
        dropout: float = 0.1,
        freeze_word_embeddings: bool | str = False,
        freeze_layers: int = 0,
        positive_weights: bool = True,
        text_prefix: str = "",
        normalization: dict[str, bool] | None = None,
    ) -> None:
        for key, value in (("lr", lr), ("head_lr", head_lr or lr)):
            if not isinstance(value, (int, float)) or value <= 0:
                raise ConfigError(f"model.{key} must be a number > 0, got {value!r}")
        if not isinstance(max_length, int) or max_length < 8:
            raise ConfigError(f"model.max_length must be a whole number ≥ 8, got {max_length!r}")
        if not 0 <= float(dropout) < 1:
            raise ConfigError(f"model.dropout must be in [0, 1), got {dropout!r}")
        if isinstance(freeze_layers, bool) or not isinstance(freeze_layers, int) or freeze_layers < 0:
            raise ConfigError(f"model.freeze_layers must be a whole number ≥ 0, got {freeze_layers!r}")
        if freeze_word_embeddings not in (True, False, "auto"):
            raise ConfigError(
                f"model.freeze_word_embeddings must be true, false or auto, got {freeze_word_embeddings!r}"
            )
        self.name = name
        self.encoder = encoder
        self.pooling, self.max_length, self.dropout = pooling, max_length, float(dropout)
        self.lr, self.head_lr = float(lr), head_lr
        self.freeze_word_embeddings = freeze_word_embeddings
        self.freeze_layers = freeze_layers
        self.positive_weights = positive_weights
        self.text_prefix = text_prefix
        self.normalizer = NormalizerConfig.from_dict(normalization)

    def fit(
        self,
        train: Sequence[Example],
        validation: Sequence[Example],
        labels: LabelSet,
        settings: TrainerSettings,
        workdir: Path,
        log_metrics: MetricsLogger = no_logging,
    ) -> TransformerModel:
        """Build the classifier, fine-tune it on `train`, keep the best epoch on `validation`."""
        torch.manual_seed(settings.seed)
        train_texts = [normalize(e.text, self.normalizer) for e in train]
        checkpoint = resolve_resume(settings.resume)
        # A resumed run reuses the checkpoint's tokenizer: a vocabulary learnt again may differ.
        saved = AutoTokenizer.from_pretrained(checkpoint, local_files_only=True) if checkpoint else None
        encoder, tokenizer = self.encoder.build(train_texts, settings.seed, tokenizer=saved)
        _check_vocabulary(tokenizer, train_texts)
        classifier = TopicClassifier(encoder, len(labels), pooling=self.pooling, dropout=self.dropout)
        y_train = labels.encode_many([e.labels for e in train])
        if self.positive_weights:
            positives = y_train.sum(0).clip(min=1.0)
            classifier.pos_weight.copy_(torch.from_numpy(((len(y_train) - positives) / positives).clip(1.0, 20.0)))
        card = ModelCard(
            family=self.family,
            labels=list(labels.names),
            thresholds=[0.5] * len(labels),
            normalization=self.normalizer.to_dict(),
            settings={
                "name": self.name,
                "pooling": self.pooling,
                "max_length": self.max_length,
                "text_prefix": self.text_prefix,
                **self.encoder.describe(),
            },
        )
        model = TransformerModel(card, classifier, tokenizer, device=settings.device)
        if self.freeze_word_embeddings is True or (
            self.freeze_word_embeddings == "auto" and model.device.type == "cpu"
        ):
            encoder.get_input_embeddings().weight.requires_grad_(False)
        layers = _encoder_layers(encoder)
        if self.freeze_layers > len(layers):
            raise ConfigError(f"model.freeze_layers={self.freeze_layers}, but the encoder has {len(layers)} layers")
        for layer in layers[: self.freeze_layers]:
            layer.requires_grad_(False)
        optimizer = classifier.configure_optimizers(self.lr, self.head_lr, settings.weight_decay)
        card.settings["train_precision"] = training_precision(settings.precision, model.device)
        fine_tune(model, optimizer, train, validation, labels, settings, workdir, log_metrics, checkpoint)
        # Decisions are fitted on the scores of the precision the model is served in by default.
        model.precision = card.settings["precision"] = resolve_precision("auto", model.device)
        return model


class _MetricsToTracker(TrainerCallback):
    """Forward the Trainer's loss and validation metrics to the run tracker, per step."""

    def __init__(self, log_metrics: MetricsLogger) -> None:
        self.log_metrics = log_metrics

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        values = {k: float(v) for k, v in (logs or {}).items() if isinstance(v, (int, float)) and k != "total_flos"}
        if values and state.is_world_process_zero:  # under torchrun, rank 0 alone logs
            self.log_metrics(values, state.global_step)


class _SmallCheckpointsTrainer(Trainer):
    """Checkpoints without the frozen weights: they never change, and a resumed run builds them again
    from the same source (e5's frozen word embeddings are 384 MB of a 629 MB checkpoint). Loading the
    best epoch or resuming then finds them missing from the checkpoint, as expected: no warning."""

    def _frozen(self) -> set[str]:
        return {name for name, p in self.model.named_parameters() if not p.requires_grad}

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        frozen = self._frozen()
        if frozen:
            state = state_dict if state_dict is not None else self.model.state_dict()
            state_dict = {k: v for k, v in state.items() if k not in frozen}
        super()._save(output_dir, state_dict=state_dict)

    def _issue_warnings_after_load(self, load_result: Any) -> None:
        frozen = self._frozen()
        load_result.missing_keys[:] = [k for k in load_result.missing_keys if k not in frozen]
        super()._issue_warnings_after_load(load_result)


def _encoder_layers(encoder: Any) -> list[Any]:
    """The encoder's transformer blocks, lowest first (BERT-family: encoder.layer)."""
    blocks = getattr(getattr(encoder, "encoder", None), "layer", None)
    return list(blocks) if blocks is not None else []


def training_precision(precision: str, device: torch.device) -> str:
    """`auto` trains in bf16 where the device computes it natively (autocast; fp32 master weights and
    optimizer state), else in fp32."""
    if precision == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    return precision


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


def fine_tune(
    model: TransformerModel,
    optimizer: torch.optim.Optimizer,
    train: Sequence[Example],
    validation: Sequence[Example],
    labels: LabelSet,
    settings: TrainerSettings,
    workdir: Path,
    log_metrics: MetricsLogger,
    resume: str | None = None,
) -> None:
    """Fine-tune `model.classifier` in place; the best epoch by validation macro-F1 is kept.

    `resume` is a checkpoint directory (see `resolve_resume`) to continue from.
    """
    set_seed(settings.seed)
    if settings.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    # A resumed run writes its own checkpoints: the folder it resumed from is read, never rotated away.
    output_dir = workdir / "checkpoints"
    args = TrainingArguments(
        output_dir=str(output_dir),
        num_train_epochs=float(settings.epochs),
        max_steps=settings.max_steps,
        per_device_train_batch_size=settings.batch_size,
        per_device_eval_batch_size=settings.eval_batch_size,
        gradient_accumulation_steps=settings.grad_accum,
        weight_decay=settings.weight_decay,
        warmup_steps=settings.warmup_ratio,
        lr_scheduler_type="linear",
        eval_strategy="epoch",
        save_strategy="epoch",
        save_total_limit=2,
        save_only_model=not settings.save_optimizer,  # optimizer state only where resuming needs it
        load_best_model_at_end=True,
        metric_for_best_model="macro_f1",
        greater_is_better=True,
        logging_steps=settings.log_every_steps,
        report_to="none",
        seed=settings.seed,
        use_cpu=model.device.type == "cpu",
        bf16=model.card.settings.get("train_precision") == "bf16",
        fp16=model.card.settings.get("train_precision") == "fp16",
        dataloader_num_workers=settings.num_workers,
        ddp_backend=settings.ddp_backend,
        ddp_find_unused_parameters=False if settings.ddp_backend else None,  # every weight gets a gradient
        train_sampling_strategy=settings.sampling,
    )
    trainer = _SmallCheckpointsTrainer(
        model=model.classifier,
        args=args,
        train_dataset=to_dataset(model, train, labels),
        eval_dataset=to_dataset(model, validation, labels),
        data_collator=DataCollatorWithPadding(model.tokenizer),
        processing_class=model.tokenizer,  # saved in every checkpoint, for resuming
        compute_metrics=lambda p: _validation_metrics(p, labels),
        callbacks=[
            EarlyStoppingCallback(early_stopping_patience=settings.early_stopping_patience),
            _MetricsToTracker(log_metrics),
        ],
        optimizers=(optimizer, None),
    )
    trainer.train(resume_from_checkpoint=resume)
    model.classifier.to(model.device).eval()


def _validation_metrics(prediction: EvalPrediction, labels: LabelSet) -> dict[str, float]:
    logits = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
    y_pred = sigmoid(logits) >= 0.5
    metrics = compute_metrics(prediction.label_ids, y_pred, labels.names)
    return {k: metrics[k] for k in ("macro_f1", "micro_f1", "exact_match")}


def _check_vocabulary(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], sample: int = 500) -> None:
    """Warn where data and tokenizer disagree: many unknown tokens mean the wrong vocabulary."""
    unk = tokenizer.unk_token_id
    if unk is None or not texts:
        return
    ids = tokenizer(list(texts[:sample]), add_special_tokens=False)["input_ids"]
    total = sum(len(x) for x in ids)
    rate = sum(x.count(unk) for x in ids) / max(total, 1)
    if rate > 0.05:
        log.warning("%.1f%% of training tokens are unknown to the tokenizer: is it meant for Arabic?", 100 * rate)
