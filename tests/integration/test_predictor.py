"""The predictor with trained models: evidence spans, scores equal the model's, truncation, saved features."""

import json

import numpy as np
import pytest

from security_topics import Predictor
from security_topics.models import load_model
from security_topics.predictor import TRUNCATED

pytestmark = pytest.mark.slow

ARTICLE = (
    "الرياض - واس: أعلنت المديرية العامة لمكافحة المخدرات ضبط 3.5 مليون قرص كبتاجون مخبأة في شحنة فواكه.\n"
    "وقال المتحدث باسم المديرية إن المهربين حاولوا إدخال الشحنة عبر منفذ الحديثة. "
    "وفي سياق منفصل، ارتفعت أسعار النفط في الأسواق العالمية."
)


@pytest.fixture(scope="module")
def predictor(tfidf_run):
    run = tfidf_run
    return Predictor.load(run.model_dir)


def test_article_topics_come_with_evidence_spans(predictor):
    result = predictor.predict_article(ARTICLE, title="ضبط شحنة كبتاجون")
    assert "narcotics" in result.labels
    topic = next(t for t in result.topics if t.topic == "narcotics")
    assert (
        topic.score == result.scores["narcotics"] >= predictor.article_thresholds[predictor.labels.index("narcotics")]
    )
    best = max(s.scores["narcotics"] for s in result.sentences)
    assert topic.evidence and topic.evidence[0].score == best
    for evidence in topic.evidence:
        if evidence.source == "text":
            assert ARTICLE[evidence.start : evidence.end] == evidence.text
    assert [s.text for s in result.sentences if s.source == "text"] == [
        "الرياض - واس: أعلنت المديرية العامة لمكافحة المخدرات ضبط 3.5 مليون قرص كبتاجون مخبأة في شحنة فواكه.",
        "وقال المتحدث باسم المديرية إن المهربين حاولوا إدخال الشحنة عبر منفذ الحديثة.",
        "وفي سياق منفصل، ارتفعت أسعار النفط في الأسواق العالمية.",
    ]
    assert json.loads(json.dumps(result.to_dict(), ensure_ascii=False))["labels"] == list(result.labels)


def test_sentence_scores_match_the_model(predictor):
    texts = ["تفكيك خلية إرهابية في بغداد", "هجوم فدية على شبكة المستشفى"]
    results = predictor.predict_sentences(texts)
    probs = predictor.model.score(texts).probs  # the model's own scores; results show them calibrated
    assert np.allclose([[r.scores[n] for n in predictor.labels] for r in results], predictor.score_sentences(texts))
    assert np.allclose([r.raw for r in results], probs, atol=1e-6)
    for r, row in zip(results, probs):
        assert r.topics == [n for n, p, t in zip(predictor.labels, row, predictor.raw_thresholds) if p >= t]


def test_over_long_sentences_are_truncated_with_a_flag(tiny_run):
    run = tiny_run
    model = load_model(run.model_dir, device="cpu")
    model.card.settings["max_length"] = 16
    predictor = Predictor(model)
    long = " ".join(["أعلنت السلطات تشديد إجراءات التفتيش في المطار"] * 10)
    results = predictor.predict_sentences([long, "تفتيش الركاب"])
    assert TRUNCATED in results[0].flags and TRUNCATED not in results[1].flags
    assert TRUNCATED in predictor.predict_article(long + ".").flags


def test_tfidf_saved_features_equal_sklearn(tfidf_run):
    from sklearn.feature_extraction.text import TfidfVectorizer

    from security_topics.models.tfidf import TfidfModel
    from security_topics.text import normalize

    run = tfidf_run
    model = load_model(run.model_dir)
    assert isinstance(model, TfidfModel)
    texts = ["ضبط شحنة حشيش في ميناء طنجة", "اختراق خوادم شركة الطيران"]
    word = TfidfVectorizer(
        vocabulary=model.vocab["word"],
        ngram_range=tuple(model.card.settings["ngram_ranges"]["word"]),
        sublinear_tf=True,
    )
    word.fit([normalize(t, model.card.normalizer) for t in texts])  # fit only sets the vocabulary...
    word.idf_ = model.arrays["idf_word"]  # ...the saved idf makes it the trained transform
    expected = word.transform([normalize(t, model.card.normalizer) for t in texts]).toarray()
    assert np.allclose(model.features(texts)[:, : len(model.vocab["word"])].toarray(), expected)
