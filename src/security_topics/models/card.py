"""The saved-model contract: a self-describing directory, and the `TopicModel` protocol.

Every model directory holds `security_topics.json`, its card (family, labels, thresholds, text
settings, article rule, family settings), next to the family's own files (safetensors, tokenizer).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from security_topics.errors import ModelDirError
from security_topics.text import NormalizerConfig, normalize

CARD_FILE = "security_topics.json"
FORMAT_VERSION = 3
# Version 1 had no article rule (articles use the sentence thresholds); versions 1 and 2 have no
# calibration or review band (scores are the model's own, and no decision is routed to review).
READABLE_VERSIONS = (1, 2, 3)


@dataclass
class ModelCard:
    family: str
    labels: list[str]
    thresholds: list[float]
    normalization: dict[str, bool]
    settings: dict[str, Any] = field(default_factory=dict)
    article_rule: dict[str, Any] = field(default_factory=dict)
    # {"sentence": [calibrator per topic], "article": [...]} (see calibration.Calibrator.to_dict)
    calibration: dict[str, Any] = field(default_factory=dict)
    # {"target": 0.99, "bands": {"0.99": {"reject": [...], "accept": [...]}, ...}} on calibrated article scores
    review: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    @property
    def normalizer(self) -> NormalizerConfig:
        return NormalizerConfig.from_dict(self.normalization)

    def model_inputs(self, texts: Sequence[str]) -> list[str]:
        """Texts as an encoder sees them, in training, prediction and export alike: normalised, prefixed."""
        prefix = self.settings.get("text_prefix", "")
        normalizer = self.normalizer
        return [prefix + normalize(t, normalizer) for t in texts]

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.format_version = FORMAT_VERSION
        (directory / CARD_FILE).write_text(json.dumps(asdict(self), indent=2, ensure_ascii=False) + "\n")

    @classmethod
    def load(cls, directory: Path) -> ModelCard:
        path = Path(directory) / CARD_FILE
        if not path.is_file():
            raise ModelDirError(
                f"{directory} is not a security-topics model directory (no {CARD_FILE}); "
                "train one with `python -m security_topics.train` or pass a runs:/ or models:/ URI"
            )
        try:
            values = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ModelDirError(f"{path}: not valid JSON ({err}); the model directory is damaged") from None
        if not isinstance(values, dict):
            raise ModelDirError(f"{path}: expected a JSON object")
        if values.get("format_version") not in READABLE_VERSIONS:
            raise ModelDirError(
                f"{path}: format_version {values.get('format_version')}, this code reads {READABLE_VERSIONS}"
            )
        known = {f.name for f in fields(cls)}
        missing = sorted({"family", "labels", "thresholds", "normalization"} - set(values))
        if missing:
            raise ModelDirError(f"{path}: missing field(s) {missing}")
        card = cls(**{k: v for k, v in values.items() if k in known})
        if len(card.thresholds) != len(card.labels):
            raise ModelDirError(f"{path}: {len(card.thresholds)} thresholds for {len(card.labels)} labels")
        return card


@dataclass
class Scores:
    """Probabilities per text and topic, and which texts were cut to the model's length."""

    probs: np.ndarray
    truncated: np.ndarray


class TopicModel(Protocol):
    """A trained model of any family: scores raw texts (it normalises them itself)."""

    card: ModelCard

    def score(self, texts: Sequence[str], batch_size: int = 64) -> Scores: ...

    def save(self, directory: Path) -> None: ...


def directory_digest(directory: Path) -> str:
    """SHA-256 over every file's relative path and content: which exact model scored a row, or
    which source an export came from."""
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        digest.update(path.relative_to(directory).as_posix().encode() + b"\0")
        with path.open("rb") as stream:
            while block := stream.read(1 << 20):
                digest.update(block)
    return digest.hexdigest()
