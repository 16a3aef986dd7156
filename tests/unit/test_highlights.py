"""Word highlights by occlusion: spans lie on real words inside their sentence, in the article's own
offsets, and weigh what the model's score loses without each word."""

import numpy as np
import pytest
from helpers import KeywordModel

from security_topics.errors import ConfigError
from security_topics.highlights import (
    candidate_spans,
    occlusion_variants,
    occlusion_weights,
    top_spans,
    without,
    without_words,
    word_spans,
)
from security_topics.predictor import Predictor


def test_words_are_letters_and_marks_without_the_punctuation_around_them():
    text = "«ضبطت» الشرطةُ 3.5 مليون قرص، في جدة."
    assert [text[s:e] for s, e in word_spans(text)] == ["ضبطت", "الشرطةُ", "3", "5", "مليون", "قرص", "في", "جدة"]


def test_function_words_numbers_and_single_letters_are_not_occluded():
    text = "وقال إن الشرطة في 2019 ضبطت و كبتاجون"
    assert [text[s:e] for s, e in candidate_spans(text)] == ["الشرطة", "ضبطت", "كبتاجون"]


def test_a_dropped_word_leaves_one_space_and_no_edge_space():
    assert without("أ ب ج", 2, 3) == "أ ج"
    assert without("أ ب ج", 0, 1) == "ب ج"
    assert without("أ ب ج", 4, 5) == "أ ب"
    assert without_words("أ ب ج د", [(0, 1), (4, 5)]) == "ب د"  # later spans first: earlier offsets hold
    spans, variants = occlusion_variants("ضبط كبتاجون")
    assert spans == [(0, 3), (4, 11)] and variants == ["كبتاجون", "ضبط"]


def test_weights_are_the_fall_in_score_and_never_negative():
    weights = occlusion_weights(np.array([0.8, 0.2]), np.array([[0.1, 0.3], [0.8, 0.1]]))
    assert np.allclose(weights, [[0.7, 0.0], [0.0, 0.1]])


def test_top_spans_keep_the_heaviest_in_reading_order_and_shift_to_the_article():
    spans = [(0, 2), (3, 5), (6, 8), (9, 11)]
    weights = np.array([0.2, 0.0, 0.9, 0.5])
    assert top_spans(spans, weights, top_k=2, offset=100) == [(106, 108, 0.9), (109, 111, 0.5)]
    assert top_spans(spans, weights, top_k=9) == [(0, 2, 0.2), (6, 8, 0.9), (9, 11, 0.5)]  # weight 0 is no highlight


ARTICLE = (
    "عمان - قال مسؤول أمني اليوم إن الأجهزة ضبطت شحنة المخدرات في ميناء العقبة. "
    "وأضاف أن الشحنة ضمت أقراص كبتاجون مخبأة. "
    "كما أحبطت القوات خلية إرهابية قرب الحدود."
)


def test_article_highlights_lie_on_the_words_that_carry_each_topic():
    model = KeywordModel()
    result = Predictor(model).predict_article(ARTICLE, highlights=2)
    assert set(result.labels) == {"a", "b"}
    for topic in result.topics:
        for e in topic.evidence:
            assert e.highlights, (topic.topic, e.text)
            for start, end, weight in e.highlights:
                assert e.start <= start < end <= e.end and weight > 0
                assert word_spans(ARTICLE[start:end]) == [(0, end - start)]  # a whole word of the article
    narcotics = next(t for t in result.topics if t.topic == "b")
    assert [ARTICLE[s:e] for s, e, _ in narcotics.evidence[0].highlights] == ["المخدرات"]
    terrorism = next(t for t in result.topics if t.topic == "a")
    assert [(ARTICLE[s:e], w) for s, e, w in terrorism.evidence[0].highlights] == [("إرهابية", 0.7)]
    assert len(model.calls) == 2  # the sentences, then every variant of every evidence sentence in one batch


def test_highlights_are_off_unless_asked_and_travel_in_dicts_and_rows():
    model = KeywordModel()
    plain = Predictor(model).predict_article(ARTICLE)
    assert len(model.calls) == 1 and all(e.highlights is None for t in plain.topics for e in t.evidence)
    assert "highlights" not in plain.to_row()["evidence"][0]
    assert "highlights" not in plain.to_dict()["topics"][0]["evidence"][0]
    shown = Predictor(model).predict_article(ARTICLE, highlights=True)
    assert all(e["highlights"] for e in shown.to_row()["evidence"])
    assert shown.to_dict()["topics"][0]["evidence"][0]["highlights"] == shown.topics[0].evidence[0].highlights


def test_a_title_and_an_empty_article_are_handled():
    model = KeywordModel()
    empty = Predictor(model).predict_article("", highlights=True)
    assert empty.flags == ["empty"] and empty.topics == [] and len(model.calls) == 1  # nothing to occlude
    titled = Predictor(model).predict_article("نص عادي هنا.", title="خلية إرهابية", highlights=True)
    assert titled.labels == ("a",)
    evidence = titled.topics[0].evidence[0]
    assert evidence.source == "title" and [(s, e) for s, e, _ in evidence.highlights] == [(5, 12)]  # title offsets
    with pytest.raises(ConfigError, match="highlights must be"):
        Predictor(model).predict_article(ARTICLE, highlights=-1)
