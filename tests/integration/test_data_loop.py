"""The data loop measured: review-labels finds errors put into the corpus on purpose; the seed article."""

import json

import pytest
from helpers import ROOT, TOPICS

from security_topics.data import read_sentences
from security_topics.label_review import corrupt, detection_figures, out_of_fold, rank_issues
from security_topics.labels import LabelSet
from security_topics.recipes.tfidf import TfidfRecipe

pytestmark = pytest.mark.slow


def test_review_labels_finds_the_rows_corrupted_on_purpose_in_our_corpus():
    """5 % of the corpus's rows get a topic added, removed or swapped (seed 0); TF-IDF out-of-fold
    scores ranked by cleanlab put them first. Measured: precision@k 0.778, recall in the top 10 %
    0.931 (`security-topics review-labels --corrupt 0.05`); asserted with a margin of 0.03."""
    labels = LabelSet.of(TOPICS)
    examples = [
        e for f in ("sentences.csv", "real_sentences.csv") for e in read_sentences(ROOT / "data/raw" / f, labels)
    ]
    corrupted, rows = corrupt(examples, labels, share=0.05, seed=0)
    recipe = TfidfRecipe()
    oof = out_of_fold(corrupted, labels, fit=lambda part: recipe.fit(part, [], labels), folds=5, seed=0)
    figures = detection_figures(rank_issues(corrupted, labels, oof), rows)
    assert figures["corrupted"] == round(0.05 * len(examples))
    assert figures["precision_at_k"] >= 0.75 and figures["recall_top10"] >= 0.90


SEED = ROOT / "data" / "examples" / "seed-article.txt"
DEFAULT = ROOT / "models" / "default"


@pytest.mark.skipif(not (DEFAULT / "security_topics.json").is_file(), reason="no trained models/default: run make run")
@pytest.mark.xfail(
    strict=True,
    reason="issue #24, open: the default model's sentences carry all five topics, but sports_security's best "
    "sentence (0.84) stays under the learnt article threshold (0.86); the article gets four",
)
def test_the_seed_article_carries_all_five_topics_and_its_boilerplate_decides_nothing():
    from security_topics import Predictor

    text = SEED.read_text(encoding="utf-8")
    result = Predictor.load(DEFAULT).predict_article(text)
    assert set(result.labels) == set(TOPICS), json.dumps(result.scores)
    first, last = result.sentences[0], result.sentences[-1]
    assert first.text == "ترك برس" and "boilerplate" in first.flags
    assert last.text.startswith("شاركه") and "boilerplate" in last.flags


@pytest.mark.skipif(not (DEFAULT / "security_topics.json").is_file(), reason="no trained models/default: run make run")
def test_every_topic_of_the_seed_article_is_carried_by_a_sentence_and_boilerplate_is_flagged():
    from security_topics import Predictor

    result = Predictor.load(DEFAULT).predict_article(SEED.read_text(encoding="utf-8"))
    assert {t for s in result.sentences for t in s.topics} == set(TOPICS)  # the evidence is there
    assert "boilerplate" in result.sentences[0].flags and "boilerplate" in result.sentences[-1].flags
    assert not result.sentences[0].topics and not result.sentences[-1].topics
