"""Evaluation reports agree with the predictor's decisions, and slice tables name the false alarms."""

import csv
import json

import numpy as np
import pytest
from helpers import FakeModel

from security_topics.data import Article, Example
from security_topics.metrics import compute_metrics, slice_rates
from security_topics.predictor import Predictor
from security_topics.reporting import evaluate_predictor

SCORES = {"خبر أمني واضح.": [0.9, 0.1], "إشارة عابرة.": [0.7, 0.1], "خبر رياضي.": [0.1, 0.2]}


def test_slice_rates_count_false_alarms_per_topic_among_rows_without_it():
    y_true = np.array([[0, 0], [0, 0], [1, 0], [0, 1]])
    y_pred = np.array([[1, 0], [0, 0], [1, 1], [0, 1]])
    rows = {r["slice"]: r for r in slice_rates(y_true, y_pred, ["neg", "neg", "pos", "pos"], ["a", "b"])}
    assert rows["neg"]["rows"] == 2 and rows["neg"]["fp_rate_a"] == 0.5 and rows["neg"]["fp_rate_b"] == 0.0
    assert rows["pos"]["fp_rate_a"] == 0.0 and rows["pos"]["fp_rate_b"] == 1.0  # row 3 lacks b, predicted b
    assert rows["pos"]["exact_match"] == 0.5


def test_article_metrics_use_the_article_rule_and_slices_are_written(tmp_path):
    rule = {"kind": "max", "thresholds": [0.8, 0.5]}  # stricter than the sentence threshold for a
    predictor = Predictor(FakeModel(SCORES, article_rule=rule))
    articles = [
        Article("1", "", "خبر أمني واضح. خبر رياضي.", ("a",), meta={"kind": "plain"}),
        Article("2", "", "خبر رياضي. إشارة عابرة.", (), meta={"kind": "passing_mention"}),
    ]
    examples = [Example("إشارة عابرة.", (), meta={"subtheme": "neg_x"}), Example("خبر أمني واضح.", ("a",))]
    metrics = evaluate_predictor(predictor, examples, articles, tmp_path)
    labels = [r.labels for r in predictor.predict_articles([a.text for a in articles])]
    assert labels == [("a",), ()]
    assert (
        metrics["article_macro_f1"]
        == compute_metrics(np.array([[1, 0], [0, 0]]), np.array([[1, 0], [0, 0]]), ["a", "b"])["macro_f1"]
    )
    assert metrics["test_none_accuracy"] == 0.0  # the passing mention is a false alarm for a sentence
    with (tmp_path / "article_slices.csv").open() as f:
        slices = {r["slice"]: r for r in csv.DictReader(f)}
    assert float(slices["passing_mention"]["fp_rate_a"]) == 0.0
    with (tmp_path / "test_slices.csv").open() as f:
        assert float({r["slice"]: r for r in csv.DictReader(f)}["neg_x"]["fp_rate_a"]) == 1.0
    saved = json.loads((tmp_path / "article_metrics.json").read_text())
    assert saved["support"] == {"a": 1, "b": 0, "none": 1}
    assert metrics["article_macro_f1"] == pytest.approx(saved["macro_f1"])
