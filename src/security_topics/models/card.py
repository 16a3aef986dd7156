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
MAX_CARD_BYTES = 5 * 2**20  # a card is numbers and names: a few kB (an ensemble's rule, calibrators)


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
        if path.is_symlink() or path.stat().st_size > MAX_CARD_BYTES:
            raise ModelDirError(f"{path}: not a regular card file of at most {MAX_CARD_BYTES // 2**20} MB")
        try:
            values = json.loads(path.read_text(encoding="utf-8"), parse_constant=_no_constant)
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError, ValueError) as err:
            raise ModelDirError(f"{path}: not valid JSON ({err}); the model directory is damaged") from None
        check_card(values, path)
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number a card may hold")


def _fail(path: Path, field_name: str, what: str) -> None:
    raise ModelDirError(f"{path}: field '{field_name}': {what}")


def _probabilities(values: Any, n: int, path: Path, field_name: str) -> None:
    if not isinstance(values, list) or len(values) != n:
        _fail(path, field_name, f"expected {n} numbers (one per topic), got {values!r:.80}")
    for value in values:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
            _fail(path, field_name, f"expected numbers between 0 and 1, got {value!r}")


def check_card(values: Any, path: Path) -> None:
    """The card's schema: types, lengths and ranges, a known family and format version; a damaged
    card stops loading with one line naming the file and the field."""
    if not isinstance(values, dict):
        raise ModelDirError(f"{path}: expected a JSON object")
    if values.get("format_version") not in READABLE_VERSIONS:
        raise ModelDirError(
            f"{path}: format_version {values.get('format_version')}, this code reads {READABLE_VERSIONS}"
        )
    missing = sorted({"family", "labels", "thresholds", "normalization"} - set(values))
    if missing:
        raise ModelDirError(f"{path}: missing field(s) {missing}")
    if not isinstance(values["family"], str):
        _fail(path, "family", f"expected a name, got {values['family']!r:.80}")  # load_model names unknown ones
    labels = values["labels"]
    if not isinstance(labels, list) or not labels or not all(isinstance(x, str) and x for x in labels):
        _fail(path, "labels", f"expected a list of topic names, got {labels!r:.80}")
    if len(set(labels)) != len(labels):
        _fail(path, "labels", f"a topic is listed twice: {labels}")
    _probabilities(values["thresholds"], len(labels), path, "thresholds")
    for name in ("normalization", "settings", "article_rule", "calibration", "review"):
        if name in values and not isinstance(values[name], dict):
            _fail(path, name, f"expected an object, got {type(values[name]).__name__}")
    rule = values.get("article_rule") or {}
    if rule:
        if rule.get("kind") not in ("max", "logistic"):
            _fail(path, "article_rule.kind", f"expected max or logistic, got {rule.get('kind')!r}")
        _probabilities(rule.get("thresholds"), len(labels), path, "article_rule.thresholds")
    for level in ("sentence", "article"):
        calibrators = (values.get("calibration") or {}).get(level)
        if calibrators is not None and (not isinstance(calibrators, list) or len(calibrators) != len(labels)):
            _fail(path, f"calibration.{level}", f"expected one calibrator per topic ({len(labels)})")
    for key, band in ((values.get("review") or {}).get("bands") or {}).items():
        for edge in ("reject", "accept"):
            _probabilities((band or {}).get(edge), len(labels), path, f"review.bands.{key}.{edge}")


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
