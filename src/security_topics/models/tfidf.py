"""TF-IDF (word and character n-grams) + one logistic regression per topic: the baseline.

Saved as vocabularies (JSON) and arrays (safetensors), never as a pickle, so loading a
model directory can not run code.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load_file, save_file
from scipy import sparse
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import normalize as l2_normalize

from security_topics.data import Example
from security_topics.labels import LabelSet
from security_topics.models.base import ModelMeta, Scores
from security_topics.text import NormalizerConfig, normalize

log = logging.getLogger(__name__)

WEIGHTS = "tfidf.safetensors"
VOCAB = "tfidf_vocab.json"
_ANALYZERS = {"word": "word", "char": "char_wb"}


class TfidfModel:
    """Scores texts with fixed vocabularies, idf weights and per-topic linear models."""

    def __init__(self, meta: ModelMeta, vocab: dict[str, list[str]], arrays: dict[str, np.ndarray]) -> None:
        self.meta = meta
        self.arrays = arrays
        self.vocab = vocab
        ranges = meta.settings["ngram_ranges"]
        self._counters = {
            kind: CountVectorizer(
                analyzer=_ANALYZERS[kind],
                ngram_range=tuple(ranges[kind]),
                vocabulary={term: i for i, term in enumerate(terms)},
                lowercase=True,
            )
            for kind, terms in vocab.items()
        }

    def features(self, texts: Sequence[str]) -> sparse.csr_matrix:
        """The same transform as sklearn's TfidfVectorizer(sublinear_tf=True) with the fitted idf."""
        normalizer = self.meta.normalizer
        clean = [normalize(t, normalizer) for t in texts]
        blocks = []
        for kind, counter in self._counters.items():
            counts = counter.transform(clean).astype(np.float64)
            counts.data = 1.0 + np.log(counts.data)
            blocks.append(l2_normalize(counts.multiply(self.arrays[f"idf_{kind}"]).tocsr()))
        return sparse.hstack(blocks, format="csr")

    def score(self, texts: Sequence[str], batch_size: int = 64) -> Scores:
        if not texts:
            return Scores(np.zeros((0, len(self.meta.labels))), np.zeros(0, dtype=bool))
        logits = self.features(texts) @ self.arrays["coef"].T + self.arrays["intercept"]
        return Scores(1.0 / (1.0 + np.exp(-np.asarray(logits))), np.zeros(len(texts), dtype=bool))

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        save_file({k: np.ascontiguousarray(v) for k, v in self.arrays.items()}, str(directory / WEIGHTS))
        (directory / VOCAB).write_text(json.dumps(self.vocab, ensure_ascii=False))
        self.meta.save(directory)

    @classmethod
    def load(cls, directory: Path, meta: ModelMeta) -> TfidfModel:
        vocab = json.loads((directory / VOCAB).read_text())
        return cls(meta, vocab, load_file(str(directory / WEIGHTS)))


class TfidfRecipe:
    """How to train the baseline; built from `configs/model/tfidf.yaml`."""

    def __init__(
        self,
        name: str = "tfidf",
        word_ngrams: Sequence[int] = (1, 2),
        char_ngrams: Sequence[int] = (2, 5),
        min_df: int = 2,
        max_features: int = 60000,
        C: float = 4.0,
        class_weight: str | None = "balanced",
        normalization: dict[str, bool] | None = None,
    ) -> None:
        self.name = name
        self.ngram_ranges = {"word": list(word_ngrams), "char": list(char_ngrams)}
        self.min_df, self.max_features = min_df, max_features
        self.C, self.class_weight = C, class_weight
        self.normalizer = NormalizerConfig.from_dict(normalization)

    def fit(
        self,
        train: Sequence[Example],
        validation: Sequence[Example],
        labels: LabelSet,
        trainer: Any,
        workdir: Path,
        log_metrics: Callable[[dict[str, float], int], None],
    ) -> TfidfModel:
        texts = [normalize(e.text, self.normalizer) for e in train]
        y = labels.encode_many([e.labels for e in train])
        vocab, arrays, blocks = {}, {}, []
        for kind, ngram_range in self.ngram_ranges.items():
            vectorizer = TfidfVectorizer(
                analyzer=_ANALYZERS[kind],
                ngram_range=tuple(ngram_range),
                min_df=self.min_df,
                max_features=self.max_features,
                sublinear_tf=True,
            )
            blocks.append(vectorizer.fit_transform(texts))
            vocab[kind] = list(vectorizer.get_feature_names_out())
            arrays[f"idf_{kind}"] = vectorizer.idf_
        features = sparse.hstack(blocks, format="csr")
        coef = np.zeros((len(labels), features.shape[1]))
        intercept = np.zeros(len(labels))
        for j, name in enumerate(labels.names):
            if len(np.unique(y[:, j])) < 2:
                raise ValueError(f"topic {name!r} has no positive (or no negative) training example")
            clf = LogisticRegression(C=self.C, class_weight=self.class_weight, max_iter=2000, solver="liblinear")
            clf.fit(features, y[:, j])
            coef[j], intercept[j] = clf.coef_[0], clf.intercept_[0]
        arrays.update(coef=coef, intercept=intercept)
        log.info("tfidf: %d features (%s)", features.shape[1], {k: len(v) for k, v in vocab.items()})
        meta = ModelMeta(
            family="tfidf",
            labels=list(labels.names),
            thresholds=[0.5] * len(labels),
            normalization=self.normalizer.to_dict(),
            settings={"name": self.name, "ngram_ranges": self.ngram_ranges},
        )
        return TfidfModel(meta, vocab, arrays)
