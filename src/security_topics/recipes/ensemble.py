"""Fit an ensemble: fit every member on the same data, then choose their weights on validation."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from security_topics.data import Example
from security_topics.errors import ConfigError
from security_topics.labels import LabelSet
from security_topics.metrics import compute_metrics, tune_thresholds
from security_topics.models.card import ModelCard
from security_topics.models.ensemble import COMBINATIONS, EnsembleModel, combine
from security_topics.recipes.settings import MetricsLogger, TrainerSettings, no_logging

log = logging.getLogger(__name__)


class EnsembleRecipe:
    """Members are recipes (built from their own `configs/model/*.yaml`); weights are tuned or fixed,
    and `combination` says what they average (`models.ensemble.combine`)."""

    family = "ensemble"

    def __init__(
        self,
        name: str,
        members: Mapping[str, Any],
        weights: str | Sequence[float] = "tune",
        step: float = 0.1,
        combination: str = "probabilities",
    ):
        if len(members) < 2:
            raise ConfigError(f"model.members: an ensemble needs at least two members, got {list(members)}")
        if weights != "tune" and (len(weights) != len(members) or not np.isclose(sum(weights), 1.0)):
            raise ConfigError(f"model.weights must be 'tune' or one weight per member summing to 1, got {weights}")
        if combination not in COMBINATIONS:
            raise ConfigError(f"model.combination must be one of {COMBINATIONS}, got {combination!r}")
        self.name = name
        self.members = dict(members)
        self.weights = weights
        self.step = float(step)
        self.combination = combination

    def fit(
        self,
        train: Sequence[Example],
        validation: Sequence[Example],
        labels: LabelSet,
        settings: TrainerSettings,
        workdir: Path,
        log_metrics: MetricsLogger = no_logging,
    ) -> EnsembleModel:
        fitted = {}
        for name, recipe in self.members.items():
            log.info("ensemble: fitting member %s", name)
            fitted[name] = recipe.fit(train, validation, labels, settings, workdir / name, log_metrics)
        y_val = labels.encode_many([e.labels for e in validation])
        texts = [e.text for e in validation]
        probs = [model.score(texts).probs for model in fitted.values()]
        for name, p in zip(fitted, probs):  # each member alone, as the ensemble is judged: tuned thresholds
            f1 = compute_metrics(y_val, p >= tune_thresholds(y_val, p), labels.names)["macro_f1"]
            log_metrics({f"val_member_{name}_macro_f1": f1}, None)
        weights = self.choose_weights(probs, y_val, labels) if self.weights == "tune" else list(self.weights)
        log.info("ensemble weights %s (%s averaged)", dict(zip(fitted, weights)), self.combination)
        card = ModelCard(
            family=self.family,
            labels=list(labels.names),
            thresholds=[0.5] * len(labels),
            normalization={},
            settings={
                "name": self.name,
                "members": list(fitted),
                "weights": [float(w) for w in weights],
                "combination": self.combination,
            },
        )
        return EnsembleModel(card, list(fitted.values()))

    def choose_weights(self, probs: list[np.ndarray], y: np.ndarray, labels: LabelSet) -> list[float]:
        """The weights on a grid (step `self.step`, summing to 1) whose `combination` of the members'
        validation scores `probs` has the best macro-F1 after per-topic threshold tuning; ties go to
        the most even weights."""
        steps = int(round(1 / self.step))
        best, best_key = None, None
        for combo in itertools.product(range(steps + 1), repeat=len(probs) - 1):
            if sum(combo) > steps:
                continue
            weights = [c / steps for c in combo] + [(steps - sum(combo)) / steps]
            mixed = combine(probs, weights, self.combination)
            f1 = compute_metrics(y, mixed >= tune_thresholds(y, mixed), labels.names)["macro_f1"]
            key = (round(f1, 6), -float(np.ptp(weights)))
            if best_key is None or key > best_key:
                best, best_key = weights, key
        return best
