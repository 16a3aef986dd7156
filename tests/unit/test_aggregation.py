"""The article rule: features of sentence scores, the two rule kinds, and learning them on articles."""

import numpy as np
import pytest

from security_topics.aggregation import FEATURES, ArticleRule, article_features, fit_article_rule


def test_features_summarise_an_articles_sentence_scores():
    probs = np.array([[0.9, 0.1], [0.2, 0.7], [0.95, 0.6], [0.3, 0.65]])  # title first
    is_title = np.array([True, False, False, False])
    f = article_features(probs, is_title, sentence_thresholds=np.array([0.5, 0.62]))
    row = dict(zip(FEATURES, f[0]))
    assert row["max"] == 0.95 and row["second"] == 0.9
    assert row["top3_mean"] == pytest.approx((0.95 + 0.9 + 0.3) / 3)
    assert row["log_count_over"] == pytest.approx(np.log1p(2)) and row["title"] == 0.9
    assert row["best_position"] == pytest.approx(0.5)  # the 2nd of 3 body sentences
    assert row["log_sentences"] == pytest.approx(np.log1p(3))
    assert dict(zip(FEATURES, f[1]))["log_count_over"] == pytest.approx(np.log1p(2))  # 0.7 and 0.65 pass 0.62


def test_an_article_without_sentences_has_zero_features():
    assert not article_features(np.zeros((0, 3)), np.zeros(0, dtype=bool), np.full(3, 0.5)).any()


def test_an_empty_saved_rule_is_the_sentence_threshold_on_the_best_sentence():
    rule = ArticleRule.from_dict({}, [0.4, 0.8])
    features = article_features(np.array([[0.5, 0.7]]), np.array([False]), np.array([0.4, 0.8]))
    assert rule.kind == "max" and (rule.scores(features) >= rule.thresholds).tolist() == [True, False]


def test_rules_round_trip_through_their_dict():
    rule = ArticleRule("logistic", [0.5, 0.6], np.ones((2, len(FEATURES))), np.zeros(2))
    back = ArticleRule.from_dict(rule.to_dict(), [0.5, 0.5])
    features = np.random.default_rng(0).random((2, len(FEATURES)))
    assert np.allclose(back.scores(features), rule.scores(features)) and back.thresholds.tolist() == [0.5, 0.6]
    with pytest.raises(ValueError, match="features"):
        ArticleRule.from_dict({**rule.to_dict(), "features": ["max"]}, [0.5, 0.5])
    with pytest.raises(ValueError, match="kind"):
        ArticleRule("mean", [0.5])


def _articles(rng, n, passing_mentions):
    """Articles of 10 sentences; a topic article has several strong sentences, a passing mention one."""
    features, y = [], []
    for i in range(n):
        probs = rng.uniform(0.0, 0.2, (10, 1))
        label = i % 2 == 0
        if label:
            probs[rng.choice(10, 3, replace=False), 0] = rng.uniform(0.7, 0.99, 3)
        elif passing_mentions:
            probs[rng.integers(10), 0] = rng.uniform(0.7, 0.99)  # one background sentence fires
        features.append(article_features(probs, np.zeros(10, dtype=bool), np.array([0.5])))
        y.append([int(label)])
    return features, np.array(y)


def test_learning_picks_the_logistic_rule_where_one_sentence_is_not_enough():
    features, y = _articles(np.random.default_rng(1), 80, passing_mentions=True)
    fit = fit_article_rule(features, y, seed=0)
    rule, scores = fit.rule, fit.cv
    assert rule.kind == "logistic"
    assert scores["article_rule_cv_logistic_macro_f1"] > scores["article_rule_cv_max_macro_f1"]
    held_out, y_out = _articles(np.random.default_rng(2), 40, passing_mentions=True)
    predicted = np.array([rule.scores(f) >= rule.thresholds for f in held_out])
    assert (predicted == y_out).mean() >= 0.95


def test_learning_keeps_the_simple_rule_when_it_is_as_good():
    features, y = _articles(np.random.default_rng(3), 60, passing_mentions=False)
    fit = fit_article_rule(features, y, seed=0)
    rule, scores = fit.rule, fit.cv
    assert scores["article_rule_cv_max_macro_f1"] == 1.0 and rule.kind == "max"
    assert fit_article_rule(features, y, kinds=("logistic",), seed=0).rule.kind == "logistic"
