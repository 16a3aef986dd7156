"""The TF-IDF baseline at prediction time: word and character n-grams, a linear model per topic.

Saved as vocabularies (JSON) and arrays (safetensors), never as a pickle, so loading a
model directory can not run code. Scoring needs numpy alone: the n-grams are cut the way
scikit-learn's `CountVectorizer` cuts them (a test holds the two equal), so a serving process
starts without importing scikit-learn or SciPy (about 1.3 s of start-up).
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

from security_topics.calibration import sigmoid
from security_topics.errors import JSON_ERRORS
from security_topics.models.card import CARD_FILE, ModelCard, ModelDirError, Scores

if TYPE_CHECKING:
    from scipy import sparse

log = logging.getLogger(__name__)

WEIGHTS = "tfidf.safetensors"
VOCAB = "tfidf_vocab.json"
ANALYZERS = {"word": "word", "char": "char_wb"}
_TOKEN = re.compile(r"(?u)\b\w\w+\b")  # scikit-learn's default token_pattern
_SPACES = re.compile(r"\s\s+")


def word_ngrams(text: str, low: int, high: int) -> list[str]:
    """scikit-learn's `analyzer="word"`: lower-cased tokens of two or more word characters, joined in n-grams."""
    tokens = _TOKEN.findall(text.lower())
    grams = list(tokens) if low == 1 else []
    for n in range(max(low, 2), min(high, len(tokens)) + 1):
        grams.extend(" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1))
    return grams


def char_wb_ngrams(text: str, low: int, high: int) -> list[str]:
    """scikit-learn's `analyzer="char_wb"`: character n-grams inside space-padded words; a word
    shorter than n counts once, whole."""
    grams = []
    for word in _SPACES.sub(" ", text.lower()).split():
        word = f" {word} "
        for n in range(low, high + 1):
            grams.extend(word[i : i + n] for i in range(max(1, len(word) - n + 1)))
            if len(word) <= n:
                break
    return grams


_NGRAMS = {"word": word_ngrams, "char": char_wb_ngrams}


class TfidfModel:
    """Scores texts with fixed vocabularies, idf weights and per-topic linear models."""

    def __init__(self, card: ModelCard, vocab: dict[str, list[str]], arrays: dict[str, np.ndarray]) -> None:
        self.card = card
        self.arrays = arrays
        self.vocab = vocab
        ranges = card.settings["ngram_ranges"]
        offsets = np.cumsum([0] + [len(terms) for terms in vocab.values()]).tolist()
        # Per vocabulary: its term index, how its n-grams are cut, its idf and where its columns start.
        self._blocks = [
            ({term: i for i, term in enumerate(terms)}, _NGRAMS[kind], ranges[kind], arrays[f"idf_{kind}"], offset)
            for (kind, terms), offset in zip(vocab.items(), offsets)
        ]
        self.n_features = offsets[-1]

    def _weights(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """One normalised text's non-zero features (columns, values): TfidfVectorizer(sublinear_tf=True)
        with the fitted idf, each vocabulary's block scaled to unit length."""
        columns, values = [], []
        for index, ngrams, (low, high), idf, offset in self._blocks:
            counts = Counter(g for g in ngrams(text, low, high) if g in index)
            if not counts:
                continue
            cols = np.fromiter((index[g] for g in counts), dtype=np.int64, count=len(counts))
            weights = (1.0 + np.log(np.fromiter(counts.values(), dtype=np.float64, count=len(counts)))) * idf[cols]
            columns.append(cols + offset)
            values.append(weights / np.sqrt(np.dot(weights, weights)))
        if not columns:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        return np.concatenate(columns), np.concatenate(values)

    def features(self, texts: Sequence[str]) -> sparse.csr_matrix:
        """The TF-IDF features of `texts` as a sparse matrix (texts × vocabulary)."""
        from scipy import sparse

        rows = [self._weights(text) for text in self.card.model_inputs(texts)]
        indptr = np.cumsum([0] + [len(columns) for columns, _ in rows])
        columns = np.concatenate([c for c, _ in rows]) if rows else np.zeros(0, dtype=np.int64)
        values = np.concatenate([v for _, v in rows]) if rows else np.zeros(0)
        return sparse.csr_matrix((values, columns, indptr), shape=(len(texts), self.n_features))

    def score(self, texts: Sequence[str], batch_size: int = 64) -> Scores:
        coef, intercept = self.arrays["coef"], self.arrays["intercept"]
        logits = np.zeros((len(texts), len(self.card.labels)))
        for i, text in enumerate(self.card.model_inputs(texts)):
            columns, values = self._weights(text)
            logits[i] = coef[:, columns] @ values + intercept
        return Scores(sigmoid(logits), np.zeros(len(texts), dtype=bool))

    def embed(self, texts: Sequence[str], batch_size: int = 64) -> sparse.csr_matrix:
        """TF-IDF vectors (sparse, unit length): where texts stand for this model."""
        from sklearn.preprocessing import normalize as l2_normalize

        return l2_normalize(self.features(texts))

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        save_file({k: np.ascontiguousarray(v) for k, v in self.arrays.items()}, str(directory / WEIGHTS))
        (directory / VOCAB).write_text(json.dumps(self.vocab, ensure_ascii=False))
        self.card.save(directory)

    @classmethod
    def load(
        cls,
        directory: Path,
        card: ModelCard,
        device: str = "cpu",
        precision: str | None = None,
        num_threads: int | None = None,
    ) -> TfidfModel:
        """`device`, `precision` and `num_threads` are accepted for a uniform interface; TF-IDF
        always runs on the CPU in float64."""
        try:
            vocab = json.loads((directory / VOCAB).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, *JSON_ERRORS) as err:
            raise ModelDirError(f"{directory / VOCAB}: missing or damaged ({err})") from None
        try:
            arrays = load_file(str(directory / WEIGHTS))
        except (OSError, SafetensorError) as err:
            raise ModelDirError(f"{directory / WEIGHTS}: missing or damaged ({err})") from None
        expected = {"coef", "intercept", *(f"idf_{kind}" for kind in vocab)}
        if not expected <= set(arrays) or arrays["coef"].shape[0] != len(card.labels):
            raise ModelDirError(f"{directory / WEIGHTS}: arrays {sorted(arrays)} do not match the card's labels")
        _check_ngram_ranges(card.settings.get("ngram_ranges"), vocab, directory / CARD_FILE)
        return cls(card, vocab, arrays)


def _check_ngram_ranges(value: object, vocab: dict[str, list[str]], card_path: Path) -> None:
    """The card's `settings.ngram_ranges`: for each vocabulary, [low, high] with 1 ≤ low ≤ high ≤ 10."""
    if not isinstance(value, dict):
        raise ModelDirError(f"{card_path}: field 'settings.ngram_ranges': expected a mapping, got {value!r}"[:300])
    for kind in vocab:
        pair = value.get(kind)
        if (
            not isinstance(pair, list)
            or len(pair) != 2
            or not all(isinstance(n, int) and not isinstance(n, bool) for n in pair)
            or not 1 <= pair[0] <= pair[1] <= 10
        ):
            raise ModelDirError(
                f"{card_path}: field 'settings.ngram_ranges.{kind}': expected [low, high] with 1 ≤ low ≤ high ≤ 10, "
                f"got {pair!r}"[:300]
            )
