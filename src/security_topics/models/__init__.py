"""Model families. `load_model` reads any saved model directory."""

from __future__ import annotations

from pathlib import Path

from security_topics.models.base import ModelMeta, TopicModel


def load_model(directory: str | Path, device: str = "auto") -> TopicModel:
    """Load a saved model directory of any family; its card says which."""
    directory = Path(directory)
    meta = ModelMeta.load(directory)
    if meta.family == "tfidf":
        from security_topics.models.tfidf import TfidfModel

        return TfidfModel.load(directory, meta)
    if meta.family == "transformer":
        from security_topics.models.transformer import TransformerModel

        return TransformerModel.load(directory, meta, device=device)
    raise ValueError(f"{directory}: unknown model family {meta.family!r}")
