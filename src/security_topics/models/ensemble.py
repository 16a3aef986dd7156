"""An ensemble of saved models: their probabilities, or their logits, averaged with fixed weights.

Saved as a directory whose card lists the members, weights and combination, with each member a complete model
directory under `members/`, so every member loads (and can be served) on its own too.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from security_topics.calibration import logit, sigmoid
from security_topics.errors import ModelDirError
from security_topics.models.card import ModelCard, Scores, TopicModel

MEMBERS = "members"
COMBINATIONS = ("probabilities", "logits")  # a card without `combination` averages probabilities


def combine(probs: Sequence[np.ndarray], weights: Sequence[float], how: str = "probabilities") -> np.ndarray:
    """The members' scores averaged with `weights`: as probabilities, or as logits mapped back.

    Averaging probabilities lets an unsure member cap a sure one: at weights 0.5 / 0.5 an e5 score
    of 0.999 and a TF-IDF score of 0.60 average to 0.80. Their logits (6.9 and 0.4) average to 3.65,
    a score of 0.97, so a member far from 0.5 counts for more."""
    if how not in COMBINATIONS:
        raise ValueError(f"ensemble combination must be one of {COMBINATIONS}, got {how!r}")
    if how == "probabilities":
        return sum(w * np.asarray(p) for w, p in zip(weights, probs))
    return sigmoid(sum(w * logit(p) for w, p in zip(weights, probs)))


class EnsembleModel:
    """Weighted average of member models' scores (`combine`); a text is truncated if any member cut it."""

    def __init__(self, card: ModelCard, members: Sequence[TopicModel]) -> None:
        weights = np.asarray(card.settings["weights"], dtype=np.float64)
        if len(weights) != len(members) or np.any(weights < 0) or not np.isclose(weights.sum(), 1.0):
            raise ModelDirError(f"ensemble weights {weights.tolist()} must be ≥ 0, sum to 1, one per member")
        self.combination = card.settings.get("combination", "probabilities")
        if self.combination not in COMBINATIONS:
            raise ModelDirError(f"field 'settings.combination': {self.combination!r} is not one of {COMBINATIONS}")
        for member in members:
            if list(member.card.labels) != list(card.labels):
                raise ModelDirError(f"ensemble member labels {member.card.labels} differ from {card.labels}")
        self.card = card
        self.members = list(members)
        self.weights = weights

    def score(self, texts: Sequence[str], batch_size: int = 64) -> Scores:
        scores = [member.score(texts, batch_size=batch_size) for member in self.members]
        probs = combine([s.probs for s in scores], self.weights, self.combination)
        truncated = np.zeros(len(texts), dtype=bool)
        for s in scores:
            truncated |= s.truncated
        return Scores(probs.reshape(len(texts), len(self.card.labels)), truncated)

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
