"""Model families: score, save and load. `load_model` reads any saved model directory."""

from __future__ import annotations

import importlib
from pathlib import Path

from security_topics.models.card import ModelCard, ModelDirError, TopicModel

# family (as written in the card) -> "module:Class"; imported on use, so a TF-IDF model never
# pays for torch. A new family is one line here and one file in this package.
FAMILIES = {
    "tfidf": "security_topics.models.tfidf:TfidfModel",
    "transformer": "security_topics.models.transformer:TransformerModel",
    "ensemble": "security_topics.models.ensemble:EnsembleModel",
    "onnx": "security_topics.models.onnx:OnnxModel",  # `security-topics export`; serves without torch
}


def load_model(
    directory: str | Path, device: str = "auto", precision: str | None = None, num_threads: int | None = None
) -> TopicModel:
    """Load a saved model directory of any family; its card says which.

    `precision` (auto, fp32, bf16; None: the one the card's decisions were tuned in) applies to torch
    families; `num_threads` to ONNX Runtime sessions
    (torch threads are per process: `Predictor.load` sets them).
    """
    directory = Path(directory)
    card = ModelCard.load(directory)
    if card.family not in FAMILIES:
        raise ModelDirError(f"{directory}: unknown model family {card.family!r}; known: {sorted(FAMILIES)}")
    module, name = FAMILIES[card.family].split(":")
    family = getattr(importlib.import_module(module), name)
    return family.load(directory, card, device=device, precision=precision, num_threads=num_threads)
