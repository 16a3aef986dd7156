"""Every decision fitted in one place: thresholds, article rule, calibration, review band (a fake model)."""

import numpy as np
import pytest
from helpers import FakeModel

from security_topics.calibration import REVIEW_TARGETS
from security_topics.data import Article, Example
from security_topics.decisions import (
    DecisionSettings,
    compare,
    decide,
    fit_decisions,
    fit_sentence_thresholds,
    settings_from_card,
    time_groups,
)
from security_topics.errors import ConfigError
from security_topics.metrics import compute_metrics
from security_topics.predictor import Predictor


def _corpus(seed=0, n_sentences=300, n_articles=60):
    """Sentences whose score for topic a is high when they carry it (with noise; b is the mirror),
    and articles of four sentences: a topic article holds two of its sentences, others none."""
    rng = np.random.default_rng(seed)
    table, sentences = {}, []
    for i in range(n_sentences):
        a, b = i % 3 == 0, i % 3 == 1
        text = f"جملة رقم {i}."
        table[text] = [
            np.clip(rng.normal(0.8 if a else 0.2, 0.15), 0.01, 0.99),
            np.clip(rng.normal(0.75 if b else 0.25, 0.2), 0.01, 0.99),
        ]
        sentences.append(Example(text, tuple(n for n, on in (("a", a), ("b", b)) if on), id=f"s{i}"))
    articles = []
    for k in range(n_articles):
        topic = ("a", "b", None)[k % 3]
        members = [s for s in sentences if (topic in s.labels if topic else not s.labels)]
        chosen = [members[j] for j in rng.choice(len(members), 2, replace=False)]
        filler = [s for s in sentences if not s.labels][k % 50 : k % 50 + 2]
        text = " ".join(s.text for s in [*chosen, *filler])
        articles.append(Article(f"art{k}", "", text, (topic,) if topic else ()))
    return FakeModel(table), sentences, articles


def test_fit_decisions_writes_every_decision_into_the_card():
    model, sentences, articles = _corpus()
    fitted = fit_decisions(model, sentences[:200], articles, DecisionSettings(seed=0))
    card = model.card
    assert card.thresholds != [0.5, 0.5] and fitted["metrics"]["val_macro_f1"] > 0.8
    assert card.article_rule["kind"] in ("max", "logistic")
    assert "article_rule_cv_max_macro_f1" in fitted["metrics"]
    assert [len(card.calibration[level]) for level in ("sentence", "article")] == [2, 2]
    assert {c["kind"] for c in card.calibration["sentence"]} <= {"none", "temperature", "isotonic"}
    assert card.review["target"] == 0.95
    assert set(card.review["bands"]) == set(card.review["sentence_bands"]) == {str(t) for t in REVIEW_TARGETS}
    predictor = Predictor(model)
    for key, band in card.review["bands"].items():  # every band brackets its threshold
        assert np.all(np.asarray(band["reject"]) <= predictor.article_thresholds + 1e-12), key
        assert np.all(np.asarray(band["accept"]) >= predictor.article_thresholds - 1e-12), key
    decided = decide(predictor, sentences[200:], articles)
    assert decided.sentence_labels.shape == (100, 2) and decided.article_labels.shape == (60, 2)
    assert np.array_equal(decided.sentence_scores >= predictor.thresholds, decided.sentence_labels)


def test_fixed_thresholds_and_the_sentence_rule_learn_no_article_decisions():
    model, sentences, articles = _corpus(1)
    settings = DecisionSettings(thresholds="fixed", threshold_value=0.4, article_rule="sentence")
    fit_decisions(model, sentences, articles, settings)
    assert model.card.thresholds == [0.4, 0.4] and model.card.article_rule == {}
    assert "article" not in model.card.calibration and "bands" not in model.card.review


def test_an_export_refits_the_same_kind_of_rule():
    model, sentences, articles = _corpus(2)
    fit_decisions(model, sentences, articles, DecisionSettings(article_rule="logistic"))
    assert settings_from_card(model.card).article_rule == "logistic"
    assert settings_from_card(FakeModel({}).card).article_rule == "sentence"


def test_compare_measures_how_far_two_models_decide_apart():
    model, sentences, articles = _corpus(3)
    fit_decisions(model, sentences, articles, DecisionSettings())
    same = decide(Predictor(model), sentences, articles)
    assert compare(same, same, sentences, articles) == {
        "macro_f1_points": 0.0,
        "sentence_label_sets": 0.0,
        "article_macro_f1_points": 0.0,
        "article_label_sets": 0.0,
    }
    other = FakeModel(model.table, thresholds=(0.95, 0.95), article_rule=model.card.article_rule)
    figures = compare(same, decide(Predictor(other), sentences, articles), sentences, articles)
    assert figures["macro_f1_points"] < -10 and figures["sentence_label_sets"] > 0.3


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"thresholds": "learn"}, "thresholds.mode must be 'tune' or 'fixed'"),
        ({"threshold_value": 7.5}, "thresholds.value must be a number between 0 and 1"),
        ({"threshold_kinds": ("per_topic", "quantile")}, "thresholds.choose must list some of"),
        ({"threshold_kinds": ()}, "thresholds.choose must list some of"),
        ({"article_rule": "median"}, "article_rule must be one of"),
        ({"calibration": ("platt",)}, "calibration.choose must list some of"),
        ({"review_target": 0.42}, "review.target must be one of"),
    ],
)
def test_bad_decision_settings_name_the_key(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        DecisionSettings(**kwargs)


def test_validation_reports_the_real_news_among_its_sentences_apart():
    model, sentences, articles = _corpus(2)
    real = [Example(e.text, e.labels, id=f"ant-{e.id}", meta={"source": "ant"}) for e in sentences[:100]]
    metrics = fit_decisions(model, [*real, *sentences[100:200]], articles, DecisionSettings(seed=0))["metrics"]
    y = np.array([[t in e.labels for t in ("a", "b")] for e in real])
    on_real = compute_metrics(y, model.score([e.text for e in real]).probs >= model.card.thresholds, ["a", "b"])
    assert metrics["val_real_macro_f1"] == on_real["macro_f1"] > 0.5
    assert metrics["val_real_micro_f1"] == on_real["micro_f1"]
    all_real = fit_decisions(model, real, articles, DecisionSettings(seed=0))["metrics"]
    assert "val_real_macro_f1" not in all_real  # all real: the validation figure is that one


def _two_topics(rng, n, cut_a, cut_b):
    """Scores that separate topic a at `cut_a` and topic b at `cut_b`, a third of rows positive each."""
    y = np.stack([rng.random(n) < 1 / 3, rng.random(n) < 1 / 3], axis=1)
    scores = np.empty((n, 2))
    for j, cut in enumerate((cut_a, cut_b)):
        scores[:, j] = np.where(y[:, j], rng.uniform(cut, 1.0, n), rng.uniform(0.0, cut - 0.02, n))
    return y, scores


def test_sentence_thresholds_are_per_topic_only_where_held_out_groups_show_it_pays():
    rng = np.random.default_rng(0)
    groups = [f"2016-H{i % 6}" for i in range(600)]
    y, scores = _two_topics(rng, 600, 0.5, 0.5)  # both topics cut at the same place: one threshold does
    thresholds, kind, cv = fit_sentence_thresholds(y, scores, groups)
    assert kind == "shared" and set(cv) == {"shared", "per_topic"}
    assert np.allclose(thresholds, 0.5, atol=0.03)
    y, scores = _two_topics(rng, 600, 0.2, 0.85)  # far apart: a shared one costs F1 on every held-out group
    thresholds, kind, cv = fit_sentence_thresholds(y, scores, groups)
    assert kind == "per_topic" and cv["per_topic"] > cv["shared"]
    assert thresholds[0] < 0.25 and thresholds[1] > 0.8
    assert fit_sentence_thresholds(y, scores, groups, kinds=("shared",))[1:] == ("shared", {})
    _, kind, cv = fit_sentence_thresholds(y, scores, ["one period"] * 600)  # no groups: shuffled folds
    assert kind == "per_topic" and cv["per_topic"] > cv["shared"]
    assert fit_sentence_thresholds(y[:1], scores[:1], ["2016-H1"])[1:] == ("shared", {})  # one row: no folds


def test_fitting_decisions_records_the_threshold_kind_and_its_cross_validation():
    model, sentences, articles = _corpus(4)
    fitted = fit_decisions(model, sentences, articles, DecisionSettings(seed=0))
    assert fitted["info"]["sentence_thresholds"] in ("shared", "per_topic")
    assert {"sentence_thresholds_cv_shared_macro_f1", "sentence_thresholds_cv_per_topic_macro_f1"} <= set(
        fitted["metrics"]
    )


def test_time_groups_keep_a_real_articles_sentences_together_and_spread_written_rows():
    real = [Example(f"s{i}", (), id=f"ant-x#{i}", meta={"source": "ant", "date": "2016-08-03"}) for i in range(3)]
    written = [Example(f"w{i}", (), id=f"w{i}") for i in range(200)]
    groups = time_groups([*real, *written])
    assert groups[:3] == ["ant-2016-H2"] * 3
    assert set(groups[3:]) == {f"written-{k}" for k in range(5)}
