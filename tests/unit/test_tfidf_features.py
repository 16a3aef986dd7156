"""The TF-IDF model scores without scikit-learn, and exactly as scikit-learn would.

Serving cuts n-grams itself so that a process starts without importing scikit-learn; these tests
hold the cuts and the features equal to `CountVectorizer`/`TfidfVectorizer` on awkward texts and on
the test corpus, and check that loading and scoring a model really imports neither library.
"""

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
from helpers import FIXTURES
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.preprocessing import normalize as l2_normalize

from security_topics.data import Example
from security_topics.labels import LabelSet
from security_topics.models import load_model
from security_topics.models.tfidf import ANALYZERS, char_wb_ngrams, word_ngrams
from security_topics.recipes.tfidf import TfidfRecipe
from security_topics.text import normalize

AWKWARD = [
    "",
    "   ",
    "؟!",
    "و",  # one letter: no word token, one char_wb gram
    "في  تونس\t\tاليوم\nأمس",  # runs of whitespace, tabs, newlines
    "ضبط 1475 قرصا مخدّرا، و(02) رشاشين",  # digits, shadda, brackets
    "Hackers HIT the CERT-TN portal; DDoS x2",  # Latin capitals and punctuation
    "أ ب ت ث ج",  # words shorter than the smallest n-gram
    "الإرهاب الإرهاب الإرهاب مكافحة",  # repeated terms: sublinear tf
]


def _corpus_texts() -> list[str]:
    texts = []
    for name in ("sentences.csv", "real_sentences.csv"):
        with open(FIXTURES / name, encoding="utf-8") as f:
            texts += [row["text"] for row in csv.DictReader(f)]
    return texts


@pytest.mark.parametrize(
    ("kind", "ngram_range"), [("word", (1, 1)), ("word", (1, 2)), ("word", (2, 3)), ("char", (2, 5)), ("char", (1, 3))]
)
def test_ngrams_are_cut_as_scikit_learn_cuts_them(kind, ngram_range):
    analyzer = CountVectorizer(analyzer=ANALYZERS[kind], ngram_range=ngram_range, lowercase=True).build_analyzer()
    ours = {"word": word_ngrams, "char": char_wb_ngrams}[kind]
    for text in AWKWARD + _corpus_texts()[:200]:
        assert ours(text, *ngram_range) == analyzer(text), text


def _fitted(texts: list[str]):
    labels = LabelSet.of(["a", "b"])
    train = [Example(t, ("a",) if i % 3 == 0 else ("b",) if i % 3 == 1 else (), f"s{i}") for i, t in enumerate(texts)]
    return TfidfRecipe(word_ngrams=(1, 2), char_ngrams=(2, 5), min_df=1).fit(train, [], labels)


def _sklearn_features(model, texts: list[str]) -> np.ndarray:
    """What the model computed with CountVectorizer before it cut n-grams itself."""
    ranges = model.card.settings["ngram_ranges"]
    clean = [normalize(t, model.card.normalizer) for t in texts]
    blocks = []
    for kind, terms in model.vocab.items():
        counter = CountVectorizer(
            analyzer=ANALYZERS[kind], ngram_range=tuple(ranges[kind]), vocabulary={t: i for i, t in enumerate(terms)}
        )
        counts = counter.transform(clean).astype(np.float64)
        counts.data = 1.0 + np.log(counts.data)
        blocks.append(l2_normalize(counts.multiply(model.arrays[f"idf_{kind}"]).tocsr()).toarray())
    return np.hstack(blocks)


def test_features_and_scores_equal_the_scikit_learn_transform():
    texts = _corpus_texts()
    model = _fitted(texts[:300])
    unseen = texts[300:] + AWKWARD
    expected = _sklearn_features(model, unseen)
    np.testing.assert_allclose(model.features(unseen).toarray(), expected, rtol=0, atol=1e-12)
    logits = expected @ model.arrays["coef"].T + model.arrays["intercept"]
    np.testing.assert_allclose(model.score(unseen).probs, 1 / (1 + np.exp(-logits)), rtol=0, atol=1e-12)
    assert model.score([]).probs.shape == (0, 2)


def test_a_saved_model_loads_and_scores_without_importing_scikit_learn_or_scipy(tmp_path):
    texts = _corpus_texts()
    model = _fitted(texts[:300])
    model.save(tmp_path / "tfidf")
    expected = model.score(texts[300:310]).probs
    code = (
        "import sys, json, numpy as np\n"
        "from security_topics.predictor import Predictor\n"
        "from security_topics.models import load_model\n"
        f"m = load_model({str(tmp_path / 'tfidf')!r})\n"
        f"probs = m.score({texts[300:310]!r}).probs\n"
        "heavy = sorted({n.split('.')[0] for n in sys.modules} & {'sklearn', 'scipy', 'torch', 'pandas'})\n"
        "print(json.dumps({'heavy': heavy, 'probs': probs.tolist()}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    result = json.loads(out)
    assert result["heavy"] == []
    np.testing.assert_allclose(result["probs"], expected, rtol=0, atol=1e-12)
    assert load_model(tmp_path / "tfidf").score(texts[300:302]).probs.shape == (2, 2)
