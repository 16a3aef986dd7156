"""Every decision a model makes, fitted in one place from its own validation scores, and compared.

A model scores; these choices turn its scores into labels an analyst acts on, and all of them are
learnt here, on held-out (validation) data, and written into the model's card:

1. sentence thresholds (per topic, or one shared threshold with shrunk per-topic offsets, chosen by
   cross-validation grouped by time; or fixed);
2. the article rule (which kind, its weights and article thresholds; `aggregation.py`);
3. calibration of sentence scores and of article scores (`calibration.py`), thresholds re-expressed;
4. the review band per topic on calibrated article scores, for several targets.

Training, export, evaluation and the benchmarks call `fit_decisions` and `decide`; the Predictor
only applies what the card holds. `compare` measures two models' decisions on the same data.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from security_topics.aggregation import RULE_KINDS, fit_article_rule
from security_topics.calibration import (
    CALIBRATORS,
    DEFAULT_REVIEW_TARGET,
    REVIEW_TARGETS,
    Calibrator,
    fit_bands,
    fit_calibrator,
)
from security_topics.data import Article, Example
from security_topics.errors import ConfigError
from security_topics.labels import LabelSet
from security_topics.metrics import compare_kinds, compute_metrics, cv_splits, shared_thresholds, tune_thresholds
from security_topics.models.card import TopicModel
from security_topics.predictor import ArticleResult, Predictor

log = logging.getLogger(__name__)

THRESHOLD_MODES = ("tune", "fixed")
THRESHOLD_KINDS = ("shared", "per_topic")  # fewest free parameters first
ARTICLE_RULES = ("auto", *RULE_KINDS, "sentence")


@dataclass(frozen=True)
class DecisionSettings:
    """How decisions are fitted (the `thresholds`, `article_rule`, `calibration` and `review` config keys)."""

    thresholds: str = "tune"
    threshold_value: float = 0.5
    threshold_kinds: Sequence[str] = THRESHOLD_KINDS
    article_rule: str = "auto"
    calibration: Sequence[str] = CALIBRATORS
    review_target: float = DEFAULT_REVIEW_TARGET
    seed: int = 0

    def __post_init__(self) -> None:
        if self.thresholds not in THRESHOLD_MODES:
            raise ConfigError(f"thresholds.mode must be 'tune' or 'fixed', got {self.thresholds!r}")
        value = self.threshold_value
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
            raise ConfigError(f"thresholds.value must be a number between 0 and 1, got {value!r}")
        unknown = [k for k in self.threshold_kinds if k not in THRESHOLD_KINDS]
        if unknown or not self.threshold_kinds:
            kinds = list(self.threshold_kinds)
            raise ConfigError(f"thresholds.choose must list some of {THRESHOLD_KINDS}, got {kinds}")
        if self.article_rule not in ARTICLE_RULES:
            raise ConfigError(f"article_rule must be one of {ARTICLE_RULES}, got {self.article_rule!r}")
        unknown = [k for k in self.calibration if k not in CALIBRATORS]
        if unknown or not self.calibration:
            raise ConfigError(f"calibration.choose must list some of {CALIBRATORS}, got {list(self.calibration)}")
        if self.review_target not in REVIEW_TARGETS:
            raise ConfigError(f"review.target must be one of {REVIEW_TARGETS}, got {self.review_target!r}")

    @property
    def rule_kinds(self) -> tuple[str, ...]:
        return RULE_KINDS if self.article_rule == "auto" else (self.article_rule,)


@dataclass
class Decisions:
    """What a model decides on labelled sentences and articles, under its own card."""

    labels: LabelSet
    sentence_raw: np.ndarray  # sentences × topics, the model's own scores
    sentence_scores: np.ndarray  # calibrated (equal to raw without calibration)
    sentence_labels: np.ndarray  # bool
    articles: list[ArticleResult] = field(default_factory=list)
    article_raw: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    article_scores: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    article_labels: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=bool))
    needs_review: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=bool))


def decide(predictor: Predictor, sentences: Sequence[Example], articles: Sequence[Article]) -> Decisions:
    """Score labelled sentences and articles once and keep every view of the result."""
    labels = LabelSet.of(predictor.labels)
    raw = predictor.raw_scores([e.text for e in sentences]) if sentences else np.zeros((0, len(labels)))
    results = predictor.predict_articles([a.text for a in articles], titles=[a.title for a in articles])
    names = labels.names

    def matrix(values: list[dict[str, float]]) -> np.ndarray:
        return np.array([[v.get(n, 0.0) for n in names] for v in values], dtype=np.float64).reshape(-1, len(names))

    return Decisions(
        labels=labels,
        sentence_raw=raw,
        sentence_scores=predictor.score_sentences([e.text for e in sentences]) if sentences else raw.copy(),
        sentence_labels=raw >= predictor.raw_thresholds,
        articles=results,
        article_raw=matrix([r.raw_scores for r in results]),
        article_scores=matrix([r.scores for r in results]),
        article_labels=np.array([[n in r.labels for n in names] for r in results], dtype=bool).reshape(-1, len(names)),
        needs_review=np.array([[n in r.needs_review for n in names] for r in results], dtype=bool).reshape(
            -1, len(names)
        ),
    )


def learn_article_rule(
    model: TopicModel,
    articles: Sequence[Article],
    kinds: Sequence[str] = RULE_KINDS,
    seed: int = 0,
    groups: Sequence[str] | None = None,
) -> tuple[dict[str, float], np.ndarray, np.ndarray]:
    """Learn the article rule on labelled articles from `model`'s own sentence scores at its card's
    thresholds and write it into the card. Returns each kind's cross-validated macro-F1, the
    winner's out-of-fold article scores and the articles' gold labels (articles × topics)."""
    predictor = Predictor(model)
    results = predictor.predict_articles([a.text for a in articles], titles=[a.title for a in articles])
    features = [predictor.article_features(r.sentences) for r in results]
    y = LabelSet.of(model.card.labels).encode_many([a.labels for a in articles])
    fit = fit_article_rule(features, y, kinds=kinds, seed=seed, groups=groups)
    model.card.article_rule = fit.rule.to_dict()
    return fit.cv, fit.oof_scores, y


def time_groups(items: Sequence[Article | Example], folds: int = 5) -> list[str]:
    """Cross-validation groups that keep time periods and sources apart: a dated article or sentence
    (real news) falls in its source's half-year, so an article's sentences stay together; an undated
    one (written for the project) in one of `folds` groups by a hash of its id, so written rows
    spread over every fold."""
    groups = []
    for item in items:
        date = str(item.meta.get("date") or "")
        if len(date) >= 7 and date[:4].isdigit():
            half = 1 if int(date[5:7]) <= 6 else 2
            groups.append(f"{item.meta.get('source', 'dated')}-{date[:4]}-H{half}")
        else:
            groups.append(f"written-{int(hashlib.sha256(item.id.encode()).hexdigest(), 16) % folds}")
    return groups


def fit_sentence_thresholds(
    y: np.ndarray, scores: np.ndarray, groups: Sequence[str], kinds: Sequence[str] = THRESHOLD_KINDS, folds: int = 5
) -> tuple[np.ndarray, str, dict[str, float]]:
    """Sentence thresholds of the kind that travels best: each kind of `kinds` is tuned inside the
    folds of a cross-validation that keeps `groups` whole (`cv_splits`) and judged on the held-out
    fold; the kind with fewest free parameters within one standard error of the best is refitted on
    all rows. Returns the thresholds, the kind and each kind's cross-validated macro-F1 (none where
    there is one kind or one row: the first kind)."""
    fits = {"shared": shared_thresholds, "per_topic": tune_thresholds}
    y, scores = np.asarray(y).astype(bool), np.asarray(scores, dtype=np.float64)
    if len(kinds) == 1 or len(y) < 2:
        return fits[kinds[0]](y, scores), kinds[0], {}
    best, cv, _ = compare_kinds(
        kinds,
        cv_splits(len(y), groups, folds),
        y,
        lambda kind, train, test: (scores[test], fits[kind](y[train], scores[train])),
    )
    return fits[best](y, scores), best, cv


def fit_decisions(
    model: TopicModel,
    sentences: Sequence[Example],
    articles: Sequence[Article],
    settings: DecisionSettings,
    groups: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Fit every decision on validation data and write it into `model.card`; return what was fitted
    (metrics under `metrics`, the choices and their scores under `info`). The article rule is chosen
    by cross-validation over `groups` (default: `time_groups`), the sentence thresholds likewise over
    the sentences' own time groups."""
    card = model.card
    labels = LabelSet.of(card.labels)
    y = labels.encode_many([e.labels for e in sentences])
    raw = model.score([e.text for e in sentences]).probs
    info: dict[str, Any] = {}
    if settings.thresholds == "tune":
        fitted, info["sentence_thresholds"], threshold_cv = fit_sentence_thresholds(
            y, raw, time_groups(sentences), settings.threshold_kinds
        )
        card.thresholds = [round(float(t), 6) for t in fitted]
        log.info("sentence thresholds: %s (cross-validated macro-F1 %s)", info["sentence_thresholds"], threshold_cv)
    else:
        card.thresholds, threshold_cv = [float(settings.threshold_value)] * len(labels), {}
    thresholds = np.asarray(card.thresholds)
    metrics = {f"val_{k}": v for k, v in compute_metrics(y, raw >= thresholds, labels.names).items()}
    metrics.update({f"sentence_thresholds_cv_{k}_macro_f1": v for k, v in threshold_cv.items()})
    real = np.array([e.is_real for e in sentences], dtype=bool)
    if real.any() and not real.all():  # the real news among them: the register we are judged on
        on_real = compute_metrics(y[real], raw[real] >= thresholds, labels.names)
        metrics.update(val_real_macro_f1=on_real["macro_f1"], val_real_micro_f1=on_real["micro_f1"])

    sentence_cal, info["sentence_calibration"] = _fit_calibrators(y, raw, labels, settings)
    card.calibration = {"sentence": [c.to_dict() for c in sentence_cal]}
    calibrated = np.stack([c(raw[:, j]) for j, c in enumerate(sentence_cal)], axis=1)
    sentence_thresholds = np.array([c(t) for c, t in zip(sentence_cal, thresholds)])
    # Sentence bands are reported (the coverage curve of sentences), not applied by the predictor.
    card.review = {"target": settings.review_target, "sentence_bands": fit_bands(y, calibrated, sentence_thresholds)}
    if settings.article_rule == "sentence" or not articles:
        if settings.article_rule != "sentence":
            log.warning("no validation articles: articles use the sentence thresholds on their best sentence")
        card.article_rule = {}
        return {"metrics": metrics, "info": info}

    groups = time_groups(articles) if groups is None else groups
    cv, oof_raw, y_articles = learn_article_rule(model, articles, settings.rule_kinds, settings.seed, groups)
    metrics.update(cv)
    log.info("article rule: %s (cross-validated on validation articles: %s)", card.article_rule["kind"], cv)
    article_cal, info["article_calibration"] = _fit_calibrators(y_articles, oof_raw, labels, settings)
    card.calibration["article"] = [c.to_dict() for c in article_cal]
    oof = np.stack([c(oof_raw[:, j]) for j, c in enumerate(article_cal)], axis=1)
    article_thresholds = np.array([c(t) for c, t in zip(article_cal, card.article_rule["thresholds"])])
    card.review["bands"] = fit_bands(y_articles, oof, article_thresholds)
    return {"metrics": metrics, "info": info}


def _fit_calibrators(
    y: np.ndarray, scores: np.ndarray, labels: LabelSet, settings: DecisionSettings
) -> tuple[list[Calibrator], dict[str, Any]]:
    calibrators, info = [], {}
    for j, name in enumerate(labels.names):
        calibrator, losses = fit_calibrator(
            y[:, j], scores[:, j], kinds=tuple(settings.calibration), seed=settings.seed
        )
        calibrators.append(calibrator)
        info[name] = {"kind": calibrator.kind, "cv_log_loss": losses}
    log.info("calibrators: %s", {name: v["kind"] for name, v in info.items()})
    return calibrators, info


def settings_from_card(card: Any) -> DecisionSettings:
    """The decisions a model already has, as settings to fit them again (an export re-learns its
    own): the same article rule kind; fixed thresholds stay fixed only when they were all equal."""
    kind = (card.article_rule.get("fit") or card.article_rule.get("kind")) if card.article_rule else "sentence"
    review = card.review or {}
    return DecisionSettings(
        article_rule=kind, review_target=float(review.get("target", DEFAULT_REVIEW_TARGET)) or DEFAULT_REVIEW_TARGET
    )


# --- comparing two models ----------------------------------------------------------------------


def compare(
    source: Decisions, other: Decisions, sentences: Sequence[Example], articles: Sequence[Article]
) -> dict[str, float]:
    """How far `other`'s decisions are from `source`'s on the same labelled data, each under its own
    card: macro-F1 (points) and the share of label sets that change, on sentences and on articles."""
    labels = source.labels
    y = labels.encode_many([e.labels for e in sentences])
    figures = {
        "macro_f1_points": _f1_points(y, other.sentence_labels, source.sentence_labels, labels),
        "sentence_label_sets": float(np.any(other.sentence_labels != source.sentence_labels, axis=1).mean()),
    }
    if articles:
        y_articles = labels.encode_many([a.labels for a in articles])
        figures["article_macro_f1_points"] = _f1_points(y_articles, other.article_labels, source.article_labels, labels)
        figures["article_label_sets"] = float(np.any(other.article_labels != source.article_labels, axis=1).mean())
    return figures


def _f1_points(y: np.ndarray, other: np.ndarray, source: np.ndarray, labels: LabelSet) -> float:
    f1 = [compute_metrics(y, decided, labels.names)["macro_f1"] for decided in (other, source)]
    return 100 * (f1[0] - f1[1])
