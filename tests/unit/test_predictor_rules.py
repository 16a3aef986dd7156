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
    with pytest.raises(ModelDirError, match="article_rule is not usable"):
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
