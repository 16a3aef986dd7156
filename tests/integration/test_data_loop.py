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


def test_labelling_what_suggest_chooses_beats_labelling_at_random(tmp_path):
    """The simulation of benchmarks/active_learning.py, smaller: the prepared training split, 20 % to
    start, six rounds of 150, TF-IDF (5,000 features a kind), three seeds. Measured on the corpus of
    real-news round 7: over the six rounds active labelling scores validation macro-F1 0.0027, 0.0069
    and 0.0146 above random with seeds 0, 1 and 2 (mean 0.008); one seed alone is too noisy to test on
    (seed 0 gave 0.015 on the corpus before round 7)."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from security_topics.corpus import CorpusSpec, load_splits
    from security_topics.suggest import dense_vectors, simulate

    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        cfg = compose("train", overrides=[f"paths.root_dir={ROOT}", "output_dir=."])
    data = {**OmegaConf.to_container(cfg.data, resolve=True), "processed_dir": str(tmp_path)}
    splits = load_splits(CorpusSpec.from_mapping(data))
    train, validation = splits.sentences["train"], splits.sentences["validation"]
    labels = LabelSet.of(TOPICS)
    recipe = TfidfRecipe(max_features=5000)

    def fit(rows):
        return recipe.fit(rows, [], labels)

    vectors = dense_vectors(fit(train).embed([e.text for e in train]))
    gaps = []
    for seed in (0, 1, 2):
        active = simulate(train, validation, labels, fit, vectors, "active", seed, batch=150, rounds=6)
        random = simulate(train, validation, labels, fit, vectors, "random", seed, batch=150, rounds=6)
        assert active.labels == random.labels == [round(0.2 * len(train)) + 150 * k for k in range(7)]
        gaps.append(sum(active.macro_f1[1:]) / 6 - sum(random.macro_f1[1:]) / 6)
    print(f"active minus random, mean validation macro-F1 over the rounds, seeds 0-2: {gaps}")
    assert sum(gaps) / len(gaps) >= 0.005, gaps
