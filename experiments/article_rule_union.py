"""Would the guide's own article rule travel? By the guide an article carries a topic when one of its
sentences does, so the simplest article rule has no free parameter: the best sentence against the
*sentence* thresholds ("union"). This cross-validates it beside the learnt rule kinds on the validation
articles (time-grouped folds, as training does) and reports both the union and the learnt `shared` rule
on the written test and `test_real` articles (reported only, never used to choose).

    python experiments/article_rule_union.py models/pipeline models/clean-seed44
"""

from __future__ import annotations

import numpy as np
from each_model import run

from security_topics.aggregation import RULE_KINDS, ArticleRule, fit_rule
from security_topics.data import read_articles
from security_topics.decisions import time_groups
from security_topics.labels import LabelSet
from security_topics.metrics import compare_kinds, compute_metrics, cv_splits
from security_topics.models import load_model
from security_topics.predictor import Predictor

PROCESSED = "data/processed/security_topics"


def article_features(predictor: Predictor, labels: LabelSet, split: str):
    """The article rule's features and the gold labels of one prepared article split."""
    articles = read_articles(f"{PROCESSED}/articles_{split}.jsonl", labels)
    results = predictor.predict_articles([a.text for a in articles], titles=[a.title for a in articles])
    x = np.stack([predictor.article_features(r.sentences) for r in results])
    return articles, x, labels.encode_many([a.labels for a in articles]).astype(int)


def fit(kind: str, x: np.ndarray, y: np.ndarray, union: ArticleRule) -> ArticleRule:
    return union if kind == "union" else fit_rule(kind, x, y)


def decide(rule: ArticleRule, x: np.ndarray) -> np.ndarray:
    return np.stack([rule.scores(f) for f in x]) >= rule.thresholds


def compare(path: str) -> None:
    model = load_model(path)
    labels = LabelSet.of(model.card.labels)
    predictor = Predictor(model)
    union = ArticleRule.from_dict({}, predictor.raw_thresholds)  # the card's rule when none was learnt
    articles, x, y = article_features(predictor, labels, "validation")

    def fit_score(kind: str, train: np.ndarray, test: np.ndarray):
        rule = fit(kind, x[train], y[train], union)
        return np.stack([rule.scores(f) for f in x[test]]), rule.thresholds

    kinds = ("union", *RULE_KINDS)
    kept, cv, _ = compare_kinds(kinds, cv_splits(len(x), time_groups(articles), 5, 0), y, fit_score)
    print(f"{path}: cross-validated macro-F1 on {len(x)} validation articles")
    print("  " + ", ".join(f"{k} {v:.3f}" for k, v in cv.items()) + f"; kept by one standard error: {kept}")
    rules = {kind: fit(kind, x, y, union) for kind in ("union", "shared")}  # on all validation articles
    for split in ("test", "test_real"):
        _, xs, ys = article_features(predictor, labels, split)
        for kind, rule in rules.items():
            m = compute_metrics(ys, decide(rule, xs), labels.names)
            print(f"  {split} articles, {kind}: macro-F1 {m['macro_f1']:.3f}, micro-F1 {m['micro_f1']:.3f}")


if __name__ == "__main__":
    run(__doc__, compare)
