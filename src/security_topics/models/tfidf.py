"""The TF-IDF baseline at prediction time: word and character n-grams, a linear model per topic.

Saved as vocabularies (JSON) and arrays (safetensors), never as a pickle, so loading a
model directory can not run code.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file
from scipy import sparse
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.preprocessing import normalize as l2_normalize

from security_topics.errors import JSON_ERRORS
from security_topics.models.card import CARD_FILE, ModelCard, ModelDirError, Scores
from security_topics.text import normalize

log = logging.getLogger(__name__)

WEIGHTS = "tfidf.safetensors"
VOCAB = "tfidf_vocab.json"
ANALYZERS = {"word": "word", "char": "char_wb"}


class TfidfModel:
    """Scores texts with fixed vocabularies, idf weights and per-topic linear models."""

    def __init__(self, card: ModelCard, vocab: dict[str, list[str]], arrays: dict[str, np.ndarray]) -> None:
        self.card = card
        self.arrays = arrays
        self.vocab = vocab
        ranges = card.settings["ngram_ranges"]
        self._counters = {
            kind: CountVectorizer(
                analyzer=ANALYZERS[kind],
                ngram_range=tuple(ranges[kind]),
                vocabulary={term: i for i, term in enumerate(terms)},
                lowercase=True,
            )
            for kind, terms in vocab.items()
        }

    def features(self, texts: Sequence[str]) -> sparse.csr_matrix:
        """The same transform as sklearn's TfidfVectorizer(sublinear_tf=True) with the fitted idf."""
        normalizer = self.card.normalizer
        clean = [normalize(t, normalizer) for t in texts]
        blocks = []
        for kind, counter in self._counters.items():
            counts = counter.transform(clean).astype(np.float64)
            counts.data = 1.0 + np.log(counts.data)
            blocks.append(l2_normalize(counts.multiply(self.arrays[f"idf_{kind}"]).tocsr()))
        return sparse.hstack(blocks, format="csr")

    def score(self, texts: Sequence[str], batch_size: int = 64) -> Scores:
        if not texts:
            return Scores(np.zeros((0, len(self.card.labels))), np.zeros(0, dtype=bool))
        logits = self.features(texts) @ self.arrays["coef"].T + self.arrays["intercept"]
        return Scores(1.0 / (1.0 + np.exp(-np.asarray(logits))), np.zeros(len(texts), dtype=bool))

    def embed(self, texts: Sequence[str], batch_size: int = 64) -> sparse.csr_matrix:
        """TF-IDF vectors (sparse, unit length): where texts stand for this model."""
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
