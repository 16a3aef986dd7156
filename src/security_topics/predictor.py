"""Label sentences and articles with topics, scores and the evidence sentences behind them.

from security_topics import Predictor
predictor = Predictor.load("models/default")          # or "runs:/<id>/model", "models:/name/1"
result = predictor.predict_article(text, title=title)
result.labels                                          # ("counterterrorism", ...)
result.to_dict()                                       # JSON-serialisable
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from security_topics.aggregation import ArticleRule, article_features, fit_article_rule
from security_topics.data import Article
from security_topics.errors import ConfigError
from security_topics.labels import LabelSet
from security_topics.models import load_model
from security_topics.models.card import CARD_FILE, ModelDirError, TopicModel
from security_topics.text import has_arabic, is_boilerplate, split_sentences

log = logging.getLogger(__name__)

NO_ARABIC = "no_arabic"
TRUNCATED = "truncated"
EMPTY = "empty"
BOILERPLATE = "boilerplate"  # a wire/website line ("اقرأ أيضا: …"): scored, but never decides an article


@dataclass
class SentenceResult:
    """One sentence: its span in the source text, scores for every topic, topics over threshold."""

    text: str
    start: int
    end: int
    topics: list[str]
    scores: dict[str, float]
    source: str = "text"
    flags: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Evidence:
    text: str
    start: int
    end: int
    score: float
    source: str = "text"


@dataclass
class TopicResult:
    """An article topic, its article score (by the model's article rule) and the sentences that carry it."""

    topic: str
    score: float
    evidence: list[Evidence]


@dataclass
class ArticleResult:
    topics: list[TopicResult]
    scores: dict[str, float]
    sentences: list[SentenceResult]
    flags: list[str] = field(default_factory=list)

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(t.topic for t in self.topics)

    def to_dict(self) -> dict[str, Any]:
        return {"labels": list(self.labels), **asdict(self)}

    def to_row(self) -> dict[str, Any]:
        """The flat row that tables and services hold (pyfunc output, scored archives): topics,
        scores, evidence as `{topic, text, start, end, score, source}`, flags."""
        return {
            "topics": list(self.labels),
            "scores": dict(self.scores),
            "evidence": [{"topic": t.topic, **asdict(e)} for t in self.topics for e in t.evidence],
            "flags": list(self.flags),
        }


def resolve_model_dir(path_or_uri: str | Path, tracking_uri: str | None = None) -> Path:
    """A local model directory, or one fetched from an MLflow `runs:/` or `models:/` URI."""
    text = str(path_or_uri)
    if "://" not in text and not text.startswith(("runs:/", "models:/")):
        return Path(text)
    from security_topics.tracking import download_artifacts

    root = download_artifacts(text, tracking_uri)
    for card in sorted(root.rglob(CARD_FILE)):
        return card.parent
    raise ModelDirError(f"{text} holds no security-topics model directory (looked under {root})")


class Predictor:
    """Scores sentences in batches and aggregates them into article topics with evidence.

    `max_evidence` caps the evidence sentences per topic (best first); 0 or None keeps all.
    """

    def __init__(self, model: TopicModel, batch_size: int = 64, max_evidence: int | None = 3) -> None:
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size must be a whole number ≥ 1, got {batch_size!r}")
        if max_evidence is not None and (not isinstance(max_evidence, int) or max_evidence < 0):
            raise ConfigError(f"max_evidence must be a whole number ≥ 0 or None, got {max_evidence!r}")
        self.model = model
        self.labels = list(model.card.labels)
        self.thresholds = np.asarray(model.card.thresholds, dtype=np.float64)
        try:
            self.article_rule = ArticleRule.from_dict(model.card.article_rule, self.thresholds)
        except (ValueError, KeyError, TypeError) as err:
            raise ModelDirError(f"the model card's article_rule is not usable: {err}") from None
        self.batch_size = batch_size
        self.max_evidence = max_evidence or None

    @property
    def article_thresholds(self) -> np.ndarray:
        return self.article_rule.thresholds

    @classmethod
    def load(
        cls,
        path_or_uri: str | Path,
        device: str = "auto",
        batch_size: int = 64,
        tracking_uri: str | None = None,
        max_evidence: int | None = 3,
        precision: str = "fp32",
        num_threads: int | None = None,
    ) -> Predictor:
        """Load a model directory or an MLflow model URI (looked up in `tracking_uri`, else
        MLFLOW_TRACKING_URI, else experiments/mlflow.db).

        `precision`: fp32 (the precision thresholds were tuned in), bf16 (autocast) or auto (bf16 where
        the CPU or GPU has it natively); torch models only, an exported ONNX model has its own.
        `num_threads`: torch's process-wide thread count is set only when given; ONNX Runtime sessions
        use it, or `default_num_threads()` (half the usable CPUs) when None.
        """
        if num_threads is not None and (not isinstance(num_threads, int) or num_threads < 1):
            raise ConfigError(f"num_threads must be a whole number ≥ 1 or None, got {num_threads!r}")
        model = load_model(
            resolve_model_dir(path_or_uri, tracking_uri), device=device, precision=precision, num_threads=num_threads
        )
        if num_threads is not None and "torch" in sys.modules:  # a torch family was loaded
            sys.modules["torch"].set_num_threads(num_threads)
        return cls(model, batch_size=batch_size, max_evidence=max_evidence)

    def score_sentences(self, sentences: Sequence[str]) -> np.ndarray:
        """Probabilities (sentences × topics) for texts taken as single sentences."""
        return self.model.score(_texts(sentences, "sentences"), batch_size=self.batch_size).probs

    def predict_sentences(self, sentences: Sequence[str]) -> list[SentenceResult]:
        """Score each text as one sentence (empty text: no topics, flagged, never an error)."""
        spans = [(s, 0, len(s), "text") for s in _texts(sentences, "sentences")]
        return self._score_spans(spans)

    def predict_article(self, text: str | None, title: str | None = None) -> ArticleResult:
        return self.predict_articles([text], titles=[title])[0]

    def predict_articles(
        self, texts: Sequence[str | None], titles: Sequence[str | None] | None = None
    ) -> list[ArticleResult]:
        """Split every article into sentences, score all of them in one batched pass, aggregate.

        `None` is an empty article (or no title).
        """
        texts = _texts(texts, "texts", allow_none=True)
        titles = _texts(titles, "titles", allow_none=True) if titles is not None else [None] * len(texts)
        if len(titles) != len(texts):
            raise ValueError(f"{len(titles)} titles for {len(texts)} articles")
        spans, owners = [], []
        for i, (text, title) in enumerate(zip(texts, titles)):
            if title and title.strip():
                spans.append((title.strip(), 0, len(title.strip()), "title"))
                owners.append(i)
            for sentence in split_sentences(text or ""):
                spans.append((sentence.text, sentence.start, sentence.end, "text"))
                owners.append(i)
        scored = self._score_spans(spans)
        for result in scored:
            if result.source == "text" and result.scores and is_boilerplate(result.text):
                result.flags.append(BOILERPLATE)
        grouped: list[list[SentenceResult]] = [[] for _ in texts]
        for owner, result in zip(owners, scored):
            grouped[owner].append(result)
        return [self._aggregate(sentences) for sentences in grouped]

    def _score_spans(self, spans: Sequence[tuple[str, int, int, str]]) -> list[SentenceResult]:
        keep = [i for i, span in enumerate(spans) if span[0].strip()]
        scores = self.model.score([spans[i][0] for i in keep], batch_size=self.batch_size)
        results = []
        row = {i: r for r, i in enumerate(keep)}
        for i, (text, start, end, source) in enumerate(spans):
            if i not in row:
                results.append(SentenceResult(text, start, end, [], {}, source, [EMPTY]))
                continue
            probs = scores.probs[row[i]]
            flags = [
                flag for flag, on in ((NO_ARABIC, not has_arabic(text)), (TRUNCATED, scores.truncated[row[i]])) if on
            ]
            results.append(
                SentenceResult(
                    text=text,
                    start=start,
                    end=end,
                    topics=[n for n, p, t in zip(self.labels, probs, self.thresholds) if p >= t],
                    scores={n: float(p) for n, p in zip(self.labels, probs)},
                    source=source,
                    flags=flags,
                )
            )
        return results

    def article_features(self, sentences: Sequence[SentenceResult]) -> np.ndarray:
        """The article rule's features (topics × features) from an article's scored sentences
        (boilerplate lines left out)."""
        scored = _deciding(sentences)
        probs = np.array([[s.scores[n] for n in self.labels] for s in scored]).reshape(-1, len(self.labels))
        return article_features(probs, np.array([s.source == "title" for s in scored]), self.thresholds)

    def _aggregate(self, sentences: list[SentenceResult]) -> ArticleResult:
        """Article topics by the model's article rule; the evidence is the sentences that carry each
        topic (over the sentence threshold, best first; the best sentence when none passes)."""
        deciding = _deciding(sentences)
        if not deciding:
            return ArticleResult([], {}, sentences, [EMPTY])
        article_scores = self.article_rule.scores(self.article_features(sentences))
        scores = {name: float(p) for name, p in zip(self.labels, article_scores)}
        topics = []
        for j, name in enumerate(self.labels):
            if article_scores[j] < self.article_thresholds[j]:
                continue
            ranked = sorted(deciding, key=lambda s: -s.scores[name])
            carriers = [s for s in ranked if s.scores[name] >= self.thresholds[j]] or ranked[:1]
            evidence = [
                Evidence(s.text, s.start, s.end, s.scores[name], s.source) for s in carriers[: self.max_evidence]
            ]
            topics.append(TopicResult(name, scores[name], evidence))
        topics.sort(key=lambda t: -t.score)
        flags = []
        if not any(has_arabic(s.text) for s in sentences):
            flags.append(NO_ARABIC)
        if any(TRUNCATED in s.flags for s in sentences):
            flags.append(TRUNCATED)
        return ArticleResult(topics, scores, sentences, flags)


def learn_article_rule(
    model: TopicModel, articles: Sequence[Article], kinds: Sequence[str], seed: int = 0
) -> dict[str, float]:
    """Learn the article rule on labelled articles from `model`'s own sentence scores at its card's
    thresholds, write it into the card, and return each kind's cross-validated macro-F1. Training
    and export both learn it here, so an exported model's rule is learnt as the trained one was."""
    predictor = Predictor(model)
    results = predictor.predict_articles([a.text for a in articles], titles=[a.title for a in articles])
    features = [predictor.article_features(r.sentences) for r in results]
    y = LabelSet.of(model.card.labels).encode_many([a.labels for a in articles])
    rule, scores = fit_article_rule(features, y, kinds=kinds, seed=seed)
    model.card.article_rule = rule.to_dict()
    return scores


def _deciding(sentences: Sequence[SentenceResult]) -> list[SentenceResult]:
    """The sentences an article decision rests on: scored (not empty) and not boilerplate."""
    return [s for s in sentences if s.scores and BOILERPLATE not in s.flags]


def _texts(values: Any, name: str, allow_none: bool = False) -> list[Any]:
    """Check a public method's list of texts: a sequence of strings (or None where allowed)."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise TypeError(f"{name} must be a list of strings, got {type(values).__name__}")
    for i, value in enumerate(values):
        if not (isinstance(value, str) or (allow_none and value is None)):
            raise TypeError(
                f"{name}[{i}] must be a string{' or None' if allow_none else ''}, got {type(value).__name__}"
            )
    return list(values)
