"""Fit the TF-IDF baseline: word and character TF-IDF, then scikit-learn's one-vs-rest logistic regression."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier

from security_topics.data import Example
from security_topics.errors import ConfigError
from security_topics.labels import LabelSet
from security_topics.models.card import ModelCard
from security_topics.models.tfidf import ANALYZERS, TfidfModel
from security_topics.recipes.settings import MetricsLogger, TrainerSettings, no_logging
from security_topics.text import NormalizerConfig, normalize

log = logging.getLogger(__name__)


class TfidfRecipe:
    """How to train the baseline; built from `configs/model/tfidf.yaml`."""

    family = "tfidf"

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
        if float(C) <= 0:
            raise ConfigError(f"model.C must be > 0, got {C}")
        if int(min_df) < 1 or int(max_features) < 1:
            raise ConfigError(f"model.min_df and model.max_features must be ≥ 1, got {min_df}, {max_features}")
        self.name = name
        self.ngram_ranges = {"word": list(word_ngrams), "char": list(char_ngrams)}
        self.min_df, self.max_features = int(min_df), int(max_features)
        self.C, self.class_weight = float(C), class_weight
        self.normalizer = NormalizerConfig.from_dict(normalization)

    def fit(
        self,
        train: Sequence[Example],
        validation: Sequence[Example],
        labels: LabelSet,
        settings: TrainerSettings | None = None,
        workdir: Path | None = None,
        log_metrics: MetricsLogger = no_logging,
    ) -> TfidfModel:
        """Fit on `train`; the baseline needs no validation data, settings or working folder."""
        texts = [normalize(e.text, self.normalizer) for e in train]
        y = labels.encode_many([e.labels for e in train]).astype(int)
        for j, name in enumerate(labels.names):
            if len(np.unique(y[:, j])) < 2:
                raise ValueError(f"topic {name!r} has no positive (or no negative) training example")
        vocab, arrays, blocks = {}, {}, []
        for kind, ngram_range in self.ngram_ranges.items():
            vectorizer = TfidfVectorizer(
                analyzer=ANALYZERS[kind],
                ngram_range=tuple(ngram_range),
                min_df=self.min_df,
                max_features=self.max_features,
                sublinear_tf=True,
            )
            blocks.append(vectorizer.fit_transform(texts))
            vocab[kind] = list(vectorizer.get_feature_names_out())
            arrays[f"idf_{kind}"] = vectorizer.idf_
        features = sparse.hstack(blocks, format="csr")
        classifier = OneVsRestClassifier(
            LogisticRegression(C=self.C, class_weight=self.class_weight, max_iter=2000, solver="liblinear")
        ).fit(features, y)
        arrays["coef"] = np.vstack([e.coef_ for e in classifier.estimators_])
        arrays["intercept"] = np.concatenate([e.intercept_ for e in classifier.estimators_])
        log.info("tfidf: %d features (%s)", features.shape[1], {k: len(v) for k, v in vocab.items()})
        card = ModelCard(
            family=self.family,
            labels=list(labels.names),
            thresholds=[0.5] * len(labels),
            normalization=self.normalizer.to_dict(),
            settings={"name": self.name, "ngram_ranges": self.ngram_ranges},
        )
        return TfidfModel(card, vocab, arrays)
