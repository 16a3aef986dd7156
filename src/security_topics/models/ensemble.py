"""An ensemble of saved models: their probabilities averaged with fixed weights.

Saved as a directory whose card lists the members and weights, with each member a complete model
directory under `members/`, so every member loads (and can be served) on its own too.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from security_topics.errors import ModelDirError
from security_topics.models.card import ModelCard, Scores, TopicModel

MEMBERS = "members"


class EnsembleModel:
    """Weighted average of member models' probabilities; a text is truncated if any member cut it."""

    def __init__(self, card: ModelCard, members: Sequence[TopicModel]) -> None:
        weights = np.asarray(card.settings["weights"], dtype=np.float64)
        if len(weights) != len(members) or np.any(weights < 0) or not np.isclose(weights.sum(), 1.0):
            raise ModelDirError(f"ensemble weights {weights.tolist()} must be ≥ 0, sum to 1, one per member")
        for member in members:
            if list(member.card.labels) != list(card.labels):
                raise ModelDirError(f"ensemble member labels {member.card.labels} differ from {card.labels}")
        self.card = card
        self.members = list(members)
        self.weights = weights

    def score(self, texts: Sequence[str], batch_size: int = 64) -> Scores:
        probs = np.zeros((len(texts), len(self.card.labels)))
        truncated = np.zeros(len(texts), dtype=bool)
        for weight, member in zip(self.weights, self.members):
            scores = member.score(texts, batch_size=batch_size)
            probs += weight * scores.probs
            truncated |= scores.truncated
        return Scores(probs, truncated)

    def embed(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """The first member's sentence vectors that has them (an encoder's, ahead of TF-IDF's)."""
        members = sorted(self.members, key=lambda m: getattr(m.card, "family", "") != "transformer")
        for member in members:
            if hasattr(member, "embed"):
                return member.embed(texts, batch_size=batch_size)
        raise AttributeError("no ensemble member gives sentence vectors")

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        for name, member in zip(self.card.settings["members"], self.members):
            member.save(directory / MEMBERS / name)
        self.card.save(directory)

    @classmethod
    def load(
        cls,
        directory: Path,
        card: ModelCard,
        device: str = "auto",
        precision: str | None = None,
        num_threads: int | None = None,
    ) -> EnsembleModel:
        from security_topics.models import load_model

        names = card.settings.get("members")
        if not names or not isinstance(names, list):
            raise ModelDirError(f"{directory}: the ensemble card lists no members")
        for name in names:
            member = directory / MEMBERS / str(name)
            plain = isinstance(name, str) and name not in ("", ".", "..") and "/" not in name and "\\" not in name
            if not plain or member.is_symlink() or not member.resolve().is_relative_to(directory.resolve()):
                raise ModelDirError(
                    f"{directory}: field 'settings.members': member {name!r} is not a folder inside {MEMBERS}/"
                )
        return cls(
            card,
            [
                load_model(directory / MEMBERS / name, device=device, precision=precision, num_threads=num_threads)
                for name in names
            ],
        )
