"""A BERT-family encoder with a multi-label head: scoring, parameter groups, saving and loading.

Where the encoder comes from (hub, local, the e5-small import, `tiny`) is `encoders.py`'s job;
fitting it is `recipes/transformer.py`'s.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import AutoConfig, AutoModel, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from security_topics.errors import JSON_ERRORS, ConfigError
from security_topics.models.card import CARD_FILE, ModelCard, ModelDirError, Scores
from security_topics.models.runtime import length_batches

log = logging.getLogger(__name__)

WEIGHTS = "model.safetensors"
PRECISIONS = ("auto", "fp32", "bf16")


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def native_bf16(device: torch.device) -> bool:
    """Whether `device` computes bf16 natively. Emulated bf16 on an older CPU is slower than fp32."""
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    checks = (getattr(torch.cpu, "_is_avx512_bf16_supported", None), getattr(torch.cpu, "_is_amx_tile_supported", None))
    return any(check is not None and bool(check()) for check in checks)


def resolve_precision(precision: str | None, device: torch.device, card: ModelCard | None = None) -> str:
    """`auto` is bf16 where the device has it natively, else fp32. None is the precision the model's
    decisions were tuned in (`settings.precision` in its card; auto for bf16, fp32 for older cards)."""
    if precision is None:
        precision = "auto" if card is not None and card.settings.get("precision") == "bf16" else "fp32"
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    return precision


@contextmanager
def parameters_on_meta() -> Iterator[None]:
    """Create parameters on the meta device: no memory and no random initialisation for weights that
    the saved state replaces (`load_state_dict(..., assign=True)`). Buffers stay real: the non-persistent
    ones (position ids) are not in the saved state."""
    register = nn.Module.register_parameter

    def register_on_meta(module: nn.Module, name: str, param: nn.Parameter | None) -> None:
        register(module, name, param)
        if param is not None:
            module._parameters[name] = nn.Parameter(param.to("meta"), requires_grad=param.requires_grad)

    nn.Module.register_parameter = register_on_meta  # type: ignore[method-assign]
    try:
        yield
    finally:
        nn.Module.register_parameter = register  # type: ignore[method-assign]


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

    def pool(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The encoder's sentence vector (what the head reads): the first token, or the masked mean."""
        hidden = self.encoder(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        ).last_hidden_state
        if self.pooling == "cls":
            return hidden[:, 0]
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        pooled = self.pool(input_ids, attention_mask, token_type_ids)
        logits = self.head(self.dropout(pooled))
        out = {"logits": logits}
        if labels is not None:
            out["loss"] = nn.functional.binary_cross_entropy_with_logits(
                logits, labels.to(logits.dtype), pos_weight=self.pos_weight.to(logits.dtype)
            )
        return out

    def parameter_groups(self, lr: float, head_lr: float | None, weight_decay: float) -> list[dict]:
        """AdamW groups: the fresh head on its own learning rate (it learns faster than the
        pretrained encoder); biases and LayerNorm weights (1-d parameters) get no weight decay.
        Frozen parameters are left out."""
        groups = []
        for module, rate in ((self.encoder, lr), (self.head, head_lr or lr)):
            trainable = [p for p in module.parameters() if p.requires_grad]
            groups += [
                {"params": [p for p in trainable if p.ndim > 1], "lr": rate, "weight_decay": weight_decay},
                {"params": [p for p in trainable if p.ndim <= 1], "lr": rate, "weight_decay": 0.0},
            ]
        return [g for g in groups if g["params"]]

    def configure_optimizers(self, lr: float, head_lr: float | None, weight_decay: float) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.parameter_groups(lr, head_lr, weight_decay))


class TransformerModel:
    """A trained classifier with its tokenizer; scores raw texts in length-sorted batches capped by
    padded tokens (`runtime.length_batches`).

    `precision="bf16"` scores under bf16 autocast: several times faster on a CPU with native bf16,
    label sets nearly unchanged (README: Fast CPU scoring).
    """

    def __init__(
        self,
        card: ModelCard,
        classifier: TopicClassifier,
        tokenizer: PreTrainedTokenizerBase,
        device: str = "auto",
        precision: str | None = "fp32",
    ) -> None:
        self.card = card
        self.classifier = classifier
        self.tokenizer = tokenizer
        self.device = resolve_device(device)
        self.precision = resolve_precision(precision, self.device, card)
        self.classifier.to(self.device).eval()

    @property
    def max_length(self) -> int:
        return int(self.card.settings["max_length"])

    def model_inputs(self, texts: Sequence[str]) -> list[str]:
        return self.card.model_inputs(texts)

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

    def score(self, texts: Sequence[str], batch_size: int = 64) -> Scores:
        probs = np.zeros((len(texts), len(self.card.labels)), dtype=np.float32)
        if not texts:
            return Scores(probs, np.zeros(0, dtype=bool))
        truncated = self._run(texts, batch_size, probs, self._score_batch)
        return Scores(probs, truncated)

    def embed(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """The encoder's sentence vectors (texts × hidden size, unit length): where texts stand for the
        model, for choosing diverse texts to label."""
        vectors = np.zeros((len(texts), int(self.classifier.head.in_features)), dtype=np.float32)
        if texts:
            self._run(texts, batch_size, vectors, self._embed_batch)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True).clip(min=1e-12)

    def _run(self, texts: Sequence[str], batch_size: int, out: np.ndarray, step: Any) -> np.ndarray:
        """Run `step(encoded, index, out)` over length batches; return which texts were truncated."""
        encoded, truncated = self.encode(texts)
        batches = length_batches([len(ids) for ids in encoded["input_ids"]], batch_size)
        threads = torch.get_num_threads()
        if self.device.type == "cpu" and threads > 1 and len(batches) > 1:
            # Whole batches side by side, one core each: bf16 scored 2x one core's rate on two
            # threads this way, against 1.4x with both cores on each batch (README: Fast CPU scoring).
            # A pool per call: no threads outlive it (forked Spark workers, servers).
            workers = min(threads, len(batches))
            try:
                with ThreadPoolExecutor(workers, initializer=torch.set_num_threads, initargs=(1,)) as pool:
                    list(pool.map(lambda index: step(encoded, index, out), batches))
            finally:
                torch.set_num_threads(threads)  # the workers' setting also becomes the default of new threads
        else:
            for index in batches:
                step(encoded, index, out)
        return truncated

    @contextmanager
    def _inference(self) -> Iterator[None]:
        """Inference mode, and bf16 autocast where the model runs in bf16 (both are per thread)."""
        bf16 = self.precision == "bf16"
        autocast = torch.autocast(self.device.type, dtype=torch.bfloat16) if bf16 else nullcontext()
        with torch.inference_mode(), autocast:
            yield

    def _batch(self, encoded: dict[str, list[list[int]]], index: np.ndarray) -> dict[str, torch.Tensor]:
        batch = self.tokenizer.pad({k: [v[i] for i in index] for k, v in encoded.items()}, return_tensors="pt")
        return {k: t.to(self.device) for k, t in batch.items()}

    def _score_batch(self, encoded: dict[str, list[list[int]]], index: np.ndarray, probs: np.ndarray) -> None:
        """Score the texts at `index` into those rows of `probs`."""
        with self._inference():
            logits = self.classifier(**self._batch(encoded, index))["logits"]
        probs[index] = torch.sigmoid(logits.float()).cpu().numpy()

    def _embed_batch(self, encoded: dict[str, list[list[int]]], index: np.ndarray, vectors: np.ndarray) -> None:
        with self._inference():
            pooled = self.classifier.pool(**self._batch(encoded, index))
        vectors[index] = pooled.float().cpu().numpy()

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.classifier.state_dict().items()}
        save_file(state, str(directory / WEIGHTS), metadata={"format": "pt"})
        self.classifier.encoder.config.save_pretrained(directory)
        self.tokenizer.save_pretrained(directory)
        self.card.save(directory)

    @classmethod
    def load(
        cls,
        directory: Path,
        card: ModelCard,
        device: str = "auto",
        precision: str | None = None,
        num_threads: int | None = None,
        attn_implementation: str | None = None,
    ) -> TransformerModel:
        """Build the classifier without initialising weights (meta device), then take the saved ones.

        `num_threads` is handled by the caller (torch threads are per process); `attn_implementation`
        ("eager" for ONNX export) overrides the transformers default.
        """
        for name in (WEIGHTS, "config.json", "tokenizer.json"):
            if not (directory / name).is_file():
                raise ModelDirError(f"{directory / name}: missing; the model directory is incomplete")
        _check_config(directory / "config.json")
        try:
            config = AutoConfig.from_pretrained(directory, local_files_only=True)
            state = load_file(str(directory / WEIGHTS))
        except (OSError, ValueError, SafetensorError) as err:
            raise ModelDirError(f"{directory}: config.json or {WEIGHTS} is damaged ({err})") from None
        head = state.get("head.weight")
        if head is not None and head.shape[0] != len(card.labels):
            raise ModelDirError(
                f"{directory / WEIGHTS}: the head scores {head.shape[0]} topics but the card "
                f"({CARD_FILE}) lists {len(card.labels)}: the two come from different models"
            )
        _check_settings(card, config, directory / CARD_FILE)
        options = {"attn_implementation": attn_implementation} if attn_implementation else {}
        with parameters_on_meta():
            encoder = AutoModel.from_config(config, **options)
            classifier = TopicClassifier(encoder, len(card.labels), pooling=card.settings["pooling"])
        try:
            classifier.load_state_dict(state, strict=True, assign=True)
        except RuntimeError as err:
            first = str(err).strip().splitlines()[-1].strip()  # torch lists every mismatch on its own line
            raise ModelDirError(f"{directory / WEIGHTS}: does not match config.json and the card ({first})") from None
        tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
        model = cls(card, classifier, tokenizer, device=device, precision=precision)
        if model.precision == "bf16":
            # Autocast casts every Linear's weights to bf16 on each forward pass; storing them in bf16
            # once gives the same scores faster (1.2x on a 20-sentence article) in half the memory.
            # Embeddings and LayerNorms stay fp32, as autocast leaves them.
            for module in classifier.modules():
                if isinstance(module, nn.Linear):
                    module.to(torch.bfloat16)
        return model


# Upper bounds on config.json's sizes, far above any BERT-family encoder: a damaged or hostile
# config asking for more would build tables (position ids, a billion-row vocabulary) that exhaust memory.
CONFIG_LIMITS = {
    "vocab_size": 2_000_000,
    "hidden_size": 16_384,
    "num_hidden_layers": 256,
    "num_attention_heads": 1_024,
    "intermediate_size": 131_072,
    "max_position_embeddings": 131_072,
    "type_vocab_size": 1_024,
}


def _check_config(config_path: Path) -> None:
    """config.json is a JSON object whose sizes are whole numbers within CONFIG_LIMITS; one line
    names the field. Checked before transformers reads it, which fails with a traceback instead."""
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, *JSON_ERRORS) as err:
        raise ModelDirError(f"{config_path}: not valid JSON ({type(err).__name__})") from None
    if not isinstance(config, dict):
        raise ModelDirError(f"{config_path}: expected a JSON object, got {type(config).__name__}")
    for name, limit in CONFIG_LIMITS.items():
        value = config.get(name)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= limit:
            raise ModelDirError(
                f"{config_path}: field '{name}': expected a whole number from 1 to {limit:,}, got {value!r}"[:300]
            )


def _check_settings(card: ModelCard, config: Any, card_path: Path) -> None:
    """The card's `pooling` and `max_length` fit the classifier and the encoder's position table."""
    pooling = card.settings.get("pooling")
    if pooling not in ("cls", "mean"):
        raise ModelDirError(f"{card_path}: field 'settings.pooling': expected 'cls' or 'mean', got {pooling!r}"[:300])
    limit = int(getattr(config, "max_position_embeddings", 512) or 512)
    length = card.settings.get("max_length")
    if not isinstance(length, int) or isinstance(length, bool) or not 8 <= length <= limit:
        raise ModelDirError(
            f"{card_path}: field 'settings.max_length': expected a whole number from 8 to {limit} "
            f"(config.json's max_position_embeddings), got {length!r}"[:300]
        )
