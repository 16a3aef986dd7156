"""The saved-model contract: a self-describing directory that the predictor needs alone.

Every model directory holds `security_topics.json` (family, labels, thresholds, text
settings, family settings) next to the family's own files (safetensors weights, tokenizer).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from security_topics.text import NormalizerConfig

MODEL_CARD = "security_topics.json"
FORMAT_VERSION = 1


@dataclass
class ModelMeta:
    family: str
    labels: list[str]
    thresholds: list[float]
    normalization: dict[str, bool]
    settings: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    @property
    def normalizer(self) -> NormalizerConfig:
        return NormalizerConfig.from_dict(self.normalization)

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / MODEL_CARD).write_text(json.dumps(asdict(self), indent=2, ensure_ascii=False) + "\n")

    @classmethod
    def load(cls, directory: Path) -> ModelMeta:
        path = directory / MODEL_CARD
        if not path.is_file():
            raise FileNotFoundError(
                f"{directory} is not a security-topics model directory (no {MODEL_CARD}); "
                "train one with `python -m security_topics.train` or pass a runs:/ or models:/ URI"
            )
        values = json.loads(path.read_text())
        if values.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{path}: format_version {values.get('format_version')}, this code reads {FORMAT_VERSION}")
        meta = cls(**values)
        if len(meta.thresholds) != len(meta.labels):
            raise ValueError(f"{path}: {len(meta.thresholds)} thresholds for {len(meta.labels)} labels")
        return meta


@dataclass
class Scores:
    """Probabilities per text and topic, and which texts were cut to the model's length."""

    probs: np.ndarray
    truncated: np.ndarray


class TopicModel(Protocol):
    """A trained model of any family: scores raw texts (it normalises them itself)."""

    meta: ModelMeta

    def score(self, texts: Sequence[str], batch_size: int = 64) -> Scores: ...

    def save(self, directory: Path) -> None: ...
