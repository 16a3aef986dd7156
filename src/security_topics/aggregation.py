"""From sentence scores to article topics: the article rule, its features, and learning it on articles.

An article's topic is not simply its best sentence: one background sentence that mentions a topic
in passing should not label a whole article. The rule is learnt on validation articles and saved
in the model card. Four fits compete in cross-validation on validation articles (grouped by time
and source where the articles say so), the best is kept, the one with fewer free parameters on a tie:

- `shared`: the best sentence's score against one threshold shared by all topics, each topic's
  own offset from it shrunk toward zero by how few positive articles it has (`metrics.shared_thresholds`),
  averaged over bootstrap resamples of the articles (`metrics.bagged_thresholds`): on ~240 articles
  the unbagged argmax moved a topic's threshold by up to 0.15 between two models, the bagged by 0.04;
- `max`: the best sentence's score against a per-topic *article* threshold;
- `logistic_strong`, `logistic`: a per-topic logistic regression (C = 0.05 or 1) over a few
  features of the article's sentence scores (best, second best, mean of the top 3, how many
  sentences pass, title score, where the best sentence stands, article length).

`shared` and `max` are saved as the `max` kind, the logistic fits as `logistic`; `fit` says which.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from security_topics.calibration import sigmoid
from security_topics.metrics import (
    DEFAULT_GRID,
    bagged_thresholds,
    compare_kinds,
    cv_splits,
    shared_thresholds,
    tune_thresholds,
)

RULE_KINDS = ("shared", "max", "logistic_strong", "logistic")  # fewest free parameters first
STRONG_C = 0.05
GRID = DEFAULT_GRID + (0.975, 0.99)  # article thresholds: a best sentence often scores near 1
FEATURES = ("max", "second", "top3_mean", "log_count_over", "title", "best_position", "log_sentences")


def article_features(probs: np.ndarray, is_title: np.ndarray, sentence_thresholds: np.ndarray) -> np.ndarray:
    """Features per topic (rows) of one article from its sentences' scores (title included).

    `probs` is (sentences, topics); an article without sentences gives all zeros.
    """
    probs = np.asarray(probs, dtype=np.float64).reshape(-1, len(sentence_thresholds))
    is_title = np.asarray(is_title, dtype=bool)
    n_topics = probs.shape[1]
    out = np.zeros((n_topics, len(FEATURES)))
    if len(probs) == 0:
        return out
    ordered = -np.sort(-probs, axis=0)
    body = probs[~is_title]
    out[:, 0] = ordered[0]
    out[:, 1] = ordered[1] if len(probs) > 1 else 0.0
    out[:, 2] = ordered[:3].mean(axis=0)
    out[:, 3] = np.log1p((probs >= sentence_thresholds).sum(axis=0))
    out[:, 4] = probs[is_title].max(axis=0) if is_title.any() else 0.0
    if len(body):
        out[:, 5] = np.argmax(body, axis=0) / max(len(body) - 1, 1)
    out[:, 6] = np.log1p(len(body))
    return out


@dataclass
class ArticleRule:
    """Article score per topic from the article's features, and the thresholds on that score."""

    kind: str
    thresholds: np.ndarray
    coef: np.ndarray | None = None
    intercept: np.ndarray | None = None
    fit: str = ""  # how it was learnt (a RULE_KINDS entry); the predictor needs only `kind`

    def __post_init__(self) -> None:
        if self.kind not in ("max", "logistic"):
            raise ValueError(f"article rule kind must be 'max' or 'logistic', got {self.kind!r}")
        self.thresholds = np.asarray(self.thresholds, dtype=np.float64)
        if self.kind == "logistic":
            if self.coef is None or self.intercept is None:
                raise ValueError("a logistic article rule needs coef and intercept")
            self.coef = np.asarray(self.coef, dtype=np.float64)
            self.intercept = np.asarray(self.intercept, dtype=np.float64)

    def scores(self, features: np.ndarray) -> np.ndarray:
        """Article scores per topic from `article_features` (topics × features)."""
        if self.kind == "max":
            return features[:, 0].copy()
        logits = np.einsum("tf,tf->t", features, self.coef) + self.intercept
        return sigmoid(logits)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "thresholds": self.thresholds.tolist()}
        if self.fit:
            out["fit"] = self.fit
        if self.kind == "logistic":
            out.update(features=list(FEATURES), coef=self.coef.tolist(), intercept=self.intercept.tolist())
        return out

    @classmethod
    def from_dict(cls, values: dict[str, Any], sentence_thresholds: Sequence[float]) -> ArticleRule:
        """The saved rule; an empty dict (older model cards) is the sentence-threshold max rule."""
        if not values:
            return cls("max", np.asarray(sentence_thresholds, dtype=np.float64))
        if values.get("kind") == "logistic" and list(values.get("features", [])) != list(FEATURES):
            raise ValueError(f"article rule features {values.get('features')} differ from this code's {FEATURES}")
        return cls(
            values["kind"], values["thresholds"], values.get("coef"), values.get("intercept"), values.get("fit", "")
        )


@dataclass
class RuleFit:
    """A learnt article rule, every kind's cross-validated macro-F1, and the winner's out-of-fold
    article scores (articles × topics): held-out scores to calibrate and to place the review band on."""

    rule: ArticleRule
    cv: dict[str, float]
    oof_scores: np.ndarray


def fit_article_rule(
    features: Sequence[np.ndarray],
    y: np.ndarray,
    kinds: Sequence[str] = RULE_KINDS,
    seed: int = 0,
    folds: int = 5,
    C: float = 1.0,
    groups: Sequence[str] | None = None,
) -> RuleFit:
    """Learn the rules of `kinds` on labelled articles and keep the best by cross-validated macro-F1.

    `features` holds one (topics × features) array per article, `y` the articles' topics
    (articles × topics). Thresholds are tuned inside each fold, so the comparison is fair to the
    rule with more parameters. With `groups` (a time period or a source per article) the folds keep
    each group whole, so the rule is judged on articles unlike those it was fitted on. Returns the
    winner refitted on all articles, every kind's score and the winner's out-of-fold scores.
    """
    x = np.stack(features)  # articles × topics × features
    y = np.asarray(y).astype(int)

    def fit_score(kind: str, train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rule = fit_rule(kind, x[train], y[train], C)
        return np.stack([rule.scores(f) for f in x[test]]), rule.thresholds

    best, cv, oof = compare_kinds(kinds, cv_splits(len(x), groups, folds, seed), y, fit_score)
    return RuleFit(fit_rule(best, x, y, C), {f"article_rule_cv_{k}_macro_f1": v for k, v in cv.items()}, oof[best])


def fit_rule(kind: str, x: np.ndarray, y: np.ndarray, C: float = 1.0) -> ArticleRule:
    """One rule of `kind` (a RULE_KINDS entry) fitted on all the articles given, without choosing:
    `x` is articles × topics × FEATURES, `y` articles × topics. `fit_article_rule` compares kinds."""
    from sklearn.linear_model import LogisticRegression

    n_topics = x.shape[1]
    if kind == "max":
        return ArticleRule("max", tune_thresholds(y, x[:, :, 0], grid=GRID), fit="max")
    if kind == "shared":
        thresholds = bagged_thresholds(lambda rows_y, rows_x: shared_thresholds(rows_y, rows_x, GRID), y, x[:, :, 0])
        return ArticleRule("max", thresholds, fit="shared")
    if kind not in ("logistic", "logistic_strong"):
        raise ValueError(f"unknown article rule {kind!r}; known: {RULE_KINDS}")
    strength = STRONG_C if kind == "logistic_strong" else C
    coef = np.zeros((n_topics, x.shape[2]))
    intercept = np.zeros(n_topics)
    for j in range(n_topics):
        if len(np.unique(y[:, j])) < 2:  # nothing to learn: fall back to the best sentence's score
            coef[j, 0], intercept[j] = 8.0, -4.0
            continue
        model = LogisticRegression(C=strength, class_weight="balanced", max_iter=1000).fit(x[:, j], y[:, j])
        coef[j], intercept[j] = model.coef_[0], model.intercept_[0]
    rule = ArticleRule("logistic", np.full(n_topics, 0.5), coef, intercept, fit=kind)
    scores = np.stack([rule.scores(f) for f in x])
    rule.thresholds = tune_thresholds(y, scores)
    return rule
