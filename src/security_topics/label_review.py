"""Find label errors: out-of-fold scores for every labelled sentence, ranked by cleanlab.

Every labelled sentence is scored by a model that never saw it (K folds by iterative multi-label
stratification; TF-IDF, or frozen e5 sentence vectors with a logistic regression per topic), and
cleanlab's multi-label label-quality score ranks the rows whose given labels disagree most with
those scores. Articles too: an article whose given labels differ from a trained model's article
decision is listed, ranked by how far its scores are from its labels. `corrupt` and
`detection_figures` measure how well the ranking finds errors put there on purpose.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from iterstrat.ml_stratifiers import MultilabelStratifiedKFold

from security_topics.data import Article, Example
from security_topics.labels import LabelSet
from security_topics.metrics import tune_thresholds
from security_topics.models.card import TopicModel
from security_topics.predictor import Predictor

log = logging.getLogger(__name__)

FEATURES = ("tfidf", "e5")


def out_of_fold(
    examples: Sequence[Example],
    labels: LabelSet,
    fit: Callable[[Sequence[Example]], TopicModel] | None = None,
    vectors: np.ndarray | None = None,
    folds: int = 5,
    seed: int = 0,
) -> np.ndarray:
    """Scores (rows × topics) of each row by a model fitted on the other folds: `fit(examples)` (a
    recipe, e.g. TF-IDF) or, with `vectors` (frozen sentence vectors), a logistic regression per topic."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier

    if (fit is None) == (vectors is None):
        raise ValueError("give either fit or vectors")
    y = labels.encode_many([e.labels for e in examples])
    strata = np.hstack([y, (y.sum(axis=1) == 0)[:, None]])
    oof = np.zeros(y.shape, dtype=np.float64)
    splitter = MultilabelStratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for k, (train, test) in enumerate(splitter.split(np.zeros((len(y), 1)), strata), 1):
        log.info("label review: fold %d of %d", k, folds)
        if fit is not None:
            model = fit([examples[i] for i in train])
            oof[test] = model.score([examples[i].text for i in test]).probs
        else:
            classifier = LogisticRegression(C=4.0, class_weight="balanced", max_iter=2000)
            oof[test] = OneVsRestClassifier(classifier).fit(vectors[train], y[train]).predict_proba(vectors[test])
    return oof


@dataclass
class Issue:
    """A labelled row and what the out-of-fold model says of it."""

    index: int
    example: Example
    given: tuple[str, ...]
    suggested: tuple[str, ...]
    scores: dict[str, float]
    issue_score: float
    flagged: bool


def rank_issues(examples: Sequence[Example], labels: LabelSet, oof: np.ndarray) -> list[Issue]:
    """Every row with cleanlab's label-quality score (issue score = 1 − quality) and whether
    cleanlab's filter flags it, worst first. Suggested labels: the out-of-fold scores at thresholds
    tuned on them (per topic, for F1)."""
    from cleanlab.multilabel_classification import filter as cl_filter
    from cleanlab.multilabel_classification import rank as cl_rank

    y = labels.encode_many([e.labels for e in examples])
    given = [[int(j) for j in np.flatnonzero(row)] for row in y]
    quality = cl_rank.get_label_quality_scores(given, oof)
    flagged = cl_filter.find_label_issues(given, oof)
    thresholds = tune_thresholds(y, oof)
    issues = [
        Issue(
            index=i,
            example=e,
            given=tuple(e.labels),
            suggested=labels.decode(oof[i] >= thresholds),
            scores={n: float(p) for n, p in zip(labels.names, oof[i])},
            issue_score=float(1.0 - quality[i]),
            flagged=bool(flagged[i]),
        )
        for i, e in enumerate(examples)
    ]
    return sorted(issues, key=lambda issue: (-issue.issue_score, issue.index))


def summary(issues: Sequence[Issue], labels: LabelSet) -> dict[str, Any]:
    """Per topic, the flagged rows that carry it (suspected false labels) and that lack a suggested
    one (suspected missing), and which (given → suggested) topic pairs the flagged rows confuse."""
    flagged = [i for i in issues if i.flagged]
    per_topic = {
        name: {
            "flagged_given": sum(name in i.given for i in flagged),
            "flagged_suggested_missing": sum(name in i.suggested and name not in i.given for i in flagged),
            "flagged_given_not_suggested": sum(name in i.given and name not in i.suggested for i in flagged),
        }
        for name in labels.names
    }
    pairs: Counter[str] = Counter()
    for issue in flagged:
        for a in issue.given or ("none",):
            for b in issue.suggested or ("none",):
                if a != b and (a not in issue.suggested or b not in issue.given):
                    pairs[f"{a} -> {b}"] += 1
    return {
        "rows": len(issues),
        "flagged": len(flagged),
        "per_topic": per_topic,
        "confused_pairs": dict(pairs.most_common(15)),
    }


@dataclass
class ArticleIssue:
    article: Article
    given: tuple[str, ...]
    decided: tuple[str, ...]
    scores: dict[str, float]
    issue_score: float


def review_articles(predictor: Predictor, articles: Sequence[Article]) -> list[ArticleIssue]:
    """Articles whose given labels differ from the model's article decision, ranked by the largest
    gap between a topic's label (0/1) and its calibrated article score."""
    results = predictor.predict_articles([a.text for a in articles], titles=[a.title for a in articles])
    out = []
    for article, result in zip(articles, results):
        if set(result.labels) == set(article.labels):
            continue
        gaps = [abs((name in article.labels) - result.scores.get(name, 0.0)) for name in predictor.labels]
        out.append(ArticleIssue(article, article.labels, result.labels, dict(result.scores), float(max(gaps))))
    return sorted(out, key=lambda a: (-a.issue_score, a.article.id))


def issue_rows(issues: Sequence[Issue], labels: LabelSet) -> list[dict[str, Any]]:
    """`issues.csv`'s rows, worst first."""
    return [
        {
            "rank": rank,
            "id": i.example.id,
            "text": i.example.text,
            "given": "|".join(i.given),
            "suggested": "|".join(i.suggested),
            "issue_score": f"{i.issue_score:.4f}",
            "flagged": int(i.flagged),
            **{f"score_{n}": f"{i.scores[n]:.4f}" for n in labels.names},
        }
        for rank, i in enumerate(issues, 1)
    ]


def article_rows(issues: Sequence[ArticleIssue], labels: LabelSet) -> list[dict[str, Any]]:
    """`articles.csv`'s rows, worst first."""
    return [
        {
            "rank": rank,
            "id": a.article.id,
            "title": a.article.title,
            "given": "|".join(a.given),
            "decided": "|".join(a.decided),
            "issue_score": f"{a.issue_score:.4f}",
            **{f"score_{n}": f"{a.scores.get(n, 0.0):.4f}" for n in labels.names},
        }
        for rank, a in enumerate(issues, 1)
    ]


def write_rows(path: Any, rows: Sequence[dict[str, Any]], header: Sequence[str]) -> None:
    """Rows as CSV (the header even when there are none)."""
    import csv

    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(header))
        writer.writeheader()
        writer.writerows(rows)


# --- measuring it: errors put there on purpose -------------------------------------------------


def corrupt(
    examples: Sequence[Example], labels: LabelSet, share: float = 0.05, seed: int = 0
) -> tuple[list[Example], list[int]]:
    """A copy with `share` of the rows given wrong labels (seeded): a topic added, one removed, or
    one swapped for another, chosen at random among those that apply to the row; and which rows."""
    rng = random.Random(seed)
    out = list(examples)
    chosen = sorted(rng.sample(range(len(examples)), int(round(share * len(examples)))))
    for i in chosen:
        current = list(examples[i].labels)
        absent = [n for n in labels.names if n not in current]
        moves = ["add"] + (["remove", "swap"] if current else [])
        move = rng.choice(moves if absent else ["remove"])
        if move == "add":
            new = current + [rng.choice(absent)]
        elif move == "remove":
            gone = rng.choice(current)
            new = [n for n in current if n != gone]
        else:
            old, replacement = rng.choice(current), rng.choice(absent)
            new = [replacement if n == old else n for n in current]
        out[i] = replace(examples[i], labels=tuple(n for n in labels.names if n in new))
    return out, chosen


def detection_figures(issues: Sequence[Issue], corrupted: Sequence[int]) -> dict[str, float]:
    """Precision at k (k = rows corrupted) and recall in the top 10 % of the ranking."""
    wrong = set(corrupted)
    ranked = [i.index for i in issues]
    k = len(wrong)
    top10 = ranked[: max(1, int(round(0.1 * len(ranked))))]
    return {
        "corrupted": k,
        "precision_at_k": sum(i in wrong for i in ranked[:k]) / max(k, 1),
        "recall_top10": sum(i in wrong for i in top10) / max(k, 1),
    }
