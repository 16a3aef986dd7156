"""The predictor's rules, pinned with a fake model of fixed scores (no training, milliseconds)."""

import json

import numpy as np
import pytest
from helpers import FakeModel

from security_topics.aggregation import FEATURES
from security_topics.errors import ConfigError, ModelDirError
from security_topics.predictor import BOILERPLATE, EMPTY, NO_ARABIC, TRUNCATED, Predictor

TITLE = "عنوان الخبر"
S1, S2, S3, S4 = "جملة أولى عن الموضوع.", "جملة ثانية عنه.", "جملة ثالثة عابرة.", "جملة رابعة."
ARTICLE = " ".join([S1, S2, S3, S4])
SCORES = {
    TITLE: [0.2, 0.1],
    S1.rstrip("."): [0.9, 0.1],
    S1: [0.9, 0.1],
    S2: [0.7, 0.1],
    S3: [0.6, 0.55],
    S4: [0.1, 0.3],
}


def predictor(**kwargs):
    card = {k: kwargs.pop(k) for k in ("article_rule", "thresholds") if k in kwargs}
    return Predictor(FakeModel(SCORES, **card), **kwargs)


def test_an_article_takes_a_topic_when_its_best_sentence_passes_by_default():
    result = predictor().predict_article(ARTICLE, title=TITLE)
    assert result.labels == ("a", "b")
    assert result.scores == {"a": 0.9, "b": 0.55}  # the best sentence's score, per topic
    a = result.topics[0]
    assert [e.text for e in a.evidence] == [S1, S2, S3]  # best first, capped at 3
    assert all(ARTICLE[e.start : e.end] == e.text for e in a.evidence)
    assert [s.source for s in result.sentences] == ["title", "text", "text", "text", "text"]


def test_the_evidence_cap_is_an_argument_and_zero_keeps_every_carrier():
    assert [len(t.evidence) for t in predictor(max_evidence=1).predict_article(ARTICLE).topics] == [1, 1]
    assert len(predictor(max_evidence=0).predict_article(ARTICLE).topics[0].evidence) == 3
    with pytest.raises(ConfigError, match="max_evidence"):
        predictor(max_evidence=-1)
    with pytest.raises(ModelDirError, match="article_rule or calibration is not usable"):
        predictor(article_rule={"kind": "median", "thresholds": [0.5, 0.5]})


def test_a_score_equal_to_the_threshold_passes():
    result = predictor(thresholds=(0.5, 0.55)).predict_article(ARTICLE)
    assert "b" in result.labels and [e.text for e in result.topics[1].evidence] == [S3]
    assert "b" not in predictor(thresholds=(0.5, 0.5501)).predict_article(ARTICLE).labels


def test_article_thresholds_from_the_card_override_the_sentence_thresholds():
    rule = {"kind": "max", "thresholds": [0.95, 0.5]}
    result = predictor(article_rule=rule).predict_article(ARTICLE)
    assert result.labels == ("b",)  # 0.9 < 0.95: a single background sentence no longer labels it
    rule = {"kind": "max", "thresholds": [0.3, 0.6]}
    topic = predictor(article_rule=rule).predict_article(ARTICLE).topics[0]
    assert [e.text for e in topic.evidence] == [S1, S2, S3]  # evidence: the sentence-threshold carriers


def test_a_logistic_rule_counts_sentences_and_its_evidence_falls_back_to_the_best_one():
    coef = np.zeros((2, len(FEATURES)))
    coef[:, FEATURES.index("log_count_over")] = 10.0  # needs two sentences over threshold
    rule = {
        "kind": "logistic",
        "features": list(FEATURES),
        "coef": coef.tolist(),
        "intercept": [-8.0, -8.0],
        "thresholds": [0.5, 0.5],
    }
    result = predictor(article_rule=rule).predict_article(ARTICLE)
    assert result.labels == ("a",)  # a: 3 carriers; b: 1
    assert result.scores["a"] == pytest.approx(1 / (1 + np.exp(8 - 10 * np.log1p(3))))
    lowered = {**rule, "intercept": [-8.0, 0.0]}  # b now passes without any sentence over its threshold...
    b = next(
        t
        for t in predictor(article_rule=lowered, thresholds=(0.5, 0.99)).predict_article(ARTICLE).topics
        if t.topic == "b"
    )
    assert [e.text for e in b.evidence] == [S3]  # ...so its evidence is its best sentence


@pytest.mark.parametrize("text", ["", "   \n\t ", None])
def test_an_empty_article_gives_an_empty_flagged_result(text):
    result = predictor().predict_article(text)
    assert (result.topics, result.sentences, result.flags, result.scores) == ([], [], [EMPTY], {})


def test_flags_for_text_without_arabic_and_truncated_sentences():
    model = FakeModel({"Police seized cocaine.": [0.9, 0.0], S1: [0.1, 0.1]}, truncated=[S1])
    result = Predictor(model).predict_article("Police seized cocaine. " + S1)
    assert TRUNCATED in result.flags and NO_ARABIC not in result.flags
    assert Predictor(model).predict_article("Police seized cocaine.").flags == [NO_ARABIC]
    sentences = Predictor(model).predict_sentences(["Police seized cocaine.", ""])
    assert sentences[0].flags == [NO_ARABIC] and sentences[1].flags == [EMPTY] and sentences[1].topics == []


def test_all_articles_are_scored_in_one_batch_and_equal_one_by_one():
    p = predictor()
    batch = p.predict_articles([ARTICLE, "", S4], titles=[TITLE, None, None])
    assert len(p.model.calls) == 1
    single = [p.predict_article(ARTICLE, TITLE), p.predict_article(""), p.predict_article(S4)]
    assert [r.to_dict() for r in batch] == [r.to_dict() for r in single]
    assert json.loads(json.dumps(batch[0].to_dict(), ensure_ascii=False))["labels"] == ["a", "b"]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda p: p.predict_sentences("نص"), "sentences must be a list of strings, got str"),
        (lambda p: p.predict_sentences(["نص", None]), r"sentences\[1\] must be a string, got NoneType"),
        (lambda p: p.predict_article(123), r"texts\[0\] must be a string or None, got int"),
        (lambda p: p.predict_articles([ARTICLE], titles=[5]), r"titles\[0\] must be a string or None, got int"),
    ],
)
def test_bad_arguments_raise_type_errors_naming_them(call, message):
    with pytest.raises(TypeError, match=message):
        call(predictor())


def test_titles_must_match_the_articles():
    with pytest.raises(ValueError, match="2 titles for 1 articles"):
        predictor().predict_articles([ARTICLE], titles=["a", "b"])


def test_a_read_also_line_is_scored_but_never_labels_the_article():
    read_also = "اقرأ أيضا: ضبط شحنة في الميناء"
    model = FakeModel({**SCORES, read_also: [0.1, 0.99]})
    result = Predictor(model).predict_article(S4 + "\n" + read_also)
    assert result.labels == ()
    line = next(s for s in result.sentences if s.text == read_also)
    assert line.flags == [BOILERPLATE] and line.topics == ["b"]  # the sentence itself still says b
    assert Predictor(model).predict_article(read_also).flags == [EMPTY]  # nothing left to decide on


# --- calibration and the review band --------------------------------------------------------

HALF = {"kind": "temperature", "a": 1.0, "b": -np.log(3.0)}  # odds divided by 3: 0.75 -> 0.5, 0.9 -> 0.75
BAND_RULE = {"kind": "max", "thresholds": [0.5, 0.5]}


def calibrated(**review):
    model = FakeModel(SCORES, article_rule=BAND_RULE)
    model.card.calibration = {"sentence": [HALF, {"kind": "none"}], "article": [HALF, {"kind": "none"}]}
    model.card.review = review
    return model


def test_calibrated_scores_keep_the_labels_and_move_the_thresholds_with_them():
    plain = Predictor(FakeModel(SCORES, article_rule=BAND_RULE)).predict_article(ARTICLE, title=TITLE)
    p = Predictor(calibrated())
    result = p.predict_article(ARTICLE, title=TITLE)
    assert result.labels == plain.labels == ("a", "b")
    assert result.scores["a"] == pytest.approx(0.75) and plain.scores["a"] == pytest.approx(0.9)
    assert result.scores["b"] == plain.scores["b"]  # b has no calibrator
    assert [s.topics for s in result.sentences] == [s.topics for s in plain.sentences]
    assert p.thresholds[0] == pytest.approx(0.25) and p.article_thresholds[0] == pytest.approx(0.25)
    texts = [S1, S2, S3, S4]
    assert np.array_equal(p.score_sentences(texts) >= p.thresholds, p.raw_scores(texts) >= p.raw_thresholds)
    assert result.topics[0].evidence[0].score == pytest.approx(0.75)  # evidence shows calibrated scores


def test_needs_review_marks_topics_inside_the_band_in_every_output():
    bands = {
        "0.99": {"reject": [0.2, 0.2], "accept": [0.8, 0.6]},  # a: 0.75 inside; b: 0.55 inside
        "0.9": {"reject": [0.2, 0.2], "accept": [0.7, 0.5]},  # a: 0.75 above accept; b: 0.55 above
    }
    p = Predictor(calibrated(target=0.99, bands=bands))
    result = p.predict_article(ARTICLE, title=TITLE)
    assert result.needs_review == ["a", "b"] and result.labels == ("a", "b")  # flagged, still decided
    assert result.to_row()["needs_review"] == ["a", "b"] and result.to_dict()["needs_review"] == ["a", "b"]
    assert p.predict_article(ARTICLE, review_target=0.9).needs_review == []  # per call
    assert p.review_target == 0.99  # ...which leaves the predictor as it was
    assert (
        Predictor(calibrated(target=0.99, bands=bands), review_target=0.9).predict_article(ARTICLE).needs_review == []
    )
    assert p.predict_article("").needs_review == []
    with pytest.raises(ConfigError, match=r"review_target must be one of the model's \[0.9, 0.99\]"):
        p.predict_article(ARTICLE, review_target=0.95)


def test_a_label_the_calibration_scores_under_a_half_is_flagged_even_outside_the_band():
    model = calibrated(target=0.9, bands={"0.9": {"reject": [0.1, 0.1], "accept": [0.1, 0.1]}})  # an empty band
    third = {"kind": "temperature", "a": 1.0, "b": -np.log(19.0)}  # odds / 19: 0.9 -> 0.32, 0.55 -> 0.06
    model.card.calibration["article"] = [third, {"kind": "none"}]
    result = Predictor(model).predict_article(ARTICLE, title=TITLE)
    assert set(result.labels) == {"a", "b"}  # calibration never changes labels...
    assert result.scores["a"] < 0.5 <= result.scores["b"]
    assert result.needs_review == ["a"]  # ...but a label it scores under a half is worth a look
    model.card.calibration["article"] = [HALF, {"kind": "none"}]
    assert Predictor(model).predict_article(ARTICLE, title=TITLE).needs_review == []


def test_a_model_without_a_band_flags_nothing_and_refuses_a_target():
    p = predictor()
    assert p.predict_article(ARTICLE).needs_review == [] and p.review_target is None
    with pytest.raises(ConfigError, match="this model has no review band"):
        predictor(review_target=0.99)


def test_per_call_evidence_caps_never_change_the_shared_predictor():
    p = predictor(max_evidence=3)
    assert [len(t.evidence) for t in p.predict_articles([ARTICLE], max_evidence=1)[0].topics] == [1, 1]
    assert len(p.predict_article(ARTICLE).topics[0].evidence) == 3 and p.max_evidence == 3
    with pytest.raises(ConfigError, match="max_evidence"):
        p.predict_article(ARTICLE, max_evidence=-1)


def test_a_card_without_calibration_scores_as_before():
    result = predictor().predict_article(ARTICLE, title=TITLE)
    assert result.scores == {"a": 0.9, "b": 0.55} and result.raw_scores == result.scores
    assert "raw" not in result.to_dict()["sentences"][0] and "raw_scores" not in result.to_dict()
