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

from security_topics.aggregation import ArticleRule, article_features
from security_topics.calibration import IDENTITY, Calibrator
from security_topics.errors import ConfigError, is_recoverable
from security_topics.highlights import HIGHLIGHT_WORDS, occlusion_variants, occlusion_weights, top_spans
from security_topics.models import load_model
from security_topics.models.card import CARD_FILE, ModelDirError, TopicModel
from security_topics.models.runtime import cap_threads
from security_topics.text import has_arabic, is_boilerplate, is_byline, split_sentences

log = logging.getLogger(__name__)

NO_ARABIC = "no_arabic"
TRUNCATED = "truncated"
EMPTY = "empty"
BOILERPLATE = "boilerplate"  # a wire/website line ("اقرأ أيضا: …"): scored, but never decides an article
REVIEW_BELOW = 0.5  # a label whose calibrated article score is under this is flagged for review


@dataclass
class SentenceResult:
    """One sentence: its span in the source text, scores for every topic (calibrated where the model
    is), topics over threshold. `raw` holds the model's own scores, which the article rule reads."""

    text: str
    start: int
    end: int
    topics: list[str]
    scores: dict[str, float]
    source: str = "text"
    flags: list[str] = field(default_factory=list)
    raw: np.ndarray | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "raw"}


@dataclass
class Evidence:
    """A sentence that carries a topic: its text, span, calibrated score for the topic, and where asked
    for, `highlights`: the words that carried it, as [start, end, weight] in the same offsets as the
    sentence (the article's, or the title's), weight the fall in the model's own score without the word."""

    text: str
    start: int
    end: int
    score: float
    source: str = "text"
    highlights: list[list[float]] | None = None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if self.highlights is None:
            del out["highlights"]
        return out


@dataclass
class TopicResult:
    """An article topic, its article score (by the model's article rule) and the sentences that carry it."""

    topic: str
    score: float
    evidence: list[Evidence]


@dataclass
class ArticleResult:
    """An article's topics with their evidence, its article scores (calibrated where the model is),
    its sentences, flags, and `needs_review`: the topics whose score lies in the model's review band,
    and the labels whose calibrated score is under 0.5 (the validation articles say such a label is
    more often wrong than right); decided by the article rule as ever, but worth a person's look;
    empty without a band."""

    topics: list[TopicResult]
    scores: dict[str, float]
    sentences: list[SentenceResult]
    flags: list[str] = field(default_factory=list)
    needs_review: list[str] = field(default_factory=list)
    raw_scores: dict[str, float] = field(default_factory=dict, repr=False, compare=False)

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(t.topic for t in self.topics)

    def to_dict(self) -> dict[str, Any]:
        return {
            "labels": list(self.labels),
            "topics": [
                {"topic": t.topic, "score": t.score, "evidence": [e.to_dict() for e in t.evidence]} for t in self.topics
            ],
            "scores": dict(self.scores),
            "sentences": [s.to_dict() for s in self.sentences],
            "flags": list(self.flags),
            "needs_review": list(self.needs_review),
        }

    def to_row(self) -> dict[str, Any]:
        """The flat row that tables and services hold (pyfunc output, scored archives): topics,
        scores, evidence as `{topic, text, start, end, score, source}` (and `highlights` where asked
        for), flags, needs_review."""
        return {
            "topics": list(self.labels),
            "scores": dict(self.scores),
            "evidence": [{"topic": t.topic, **e.to_dict()} for t in self.topics for e in t.evidence],
            "flags": list(self.flags),
            "needs_review": list(self.needs_review),
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


_KEEP = object()  # a per-call option left at the Predictor's own setting


class Predictor:
    """Scores sentences in batches and aggregates them into article topics with evidence.

    The predictor applies what the model card holds and learns nothing: sentence thresholds, the
    article rule, calibration (scores a user sees are calibrated; thresholds are re-expressed on that
    scale, so the labels are those of the model's own scores) and the review band.
    `max_evidence` caps the evidence sentences per topic (best first); 0 or None keeps all.
    `review_target` picks one of the card's review bands (default: the card's own target).
    """

    def __init__(
        self,
        model: TopicModel,
        batch_size: int = 64,
        max_evidence: int | None = 3,
        review_target: float | None = None,
    ) -> None:
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size must be a whole number ≥ 1, got {batch_size!r}")
        _check_max_evidence(max_evidence)
        self.model = model
        card = model.card
        self.labels = list(card.labels)
        self.raw_thresholds = np.asarray(card.thresholds, dtype=np.float64)
        try:
            self.article_rule = ArticleRule.from_dict(card.article_rule, self.raw_thresholds)
            self.sentence_calibrators = _calibrators(card.calibration.get("sentence"), len(self.labels))
            self.article_calibrators = _calibrators(card.calibration.get("article"), len(self.labels))
        except (ValueError, KeyError, TypeError) as err:
            raise ModelDirError(f"the model card's article_rule or calibration is not usable: {err}") from None
        self.thresholds = _apply(self.sentence_calibrators, self.raw_thresholds)
        self.article_thresholds = _apply(self.article_calibrators, self.article_rule.thresholds)
        self.review_targets = sorted(float(t) for t in (card.review or {}).get("bands", {}))
        self.review_target = self._check_review_target(review_target)
        self.batch_size = batch_size
        self.max_evidence = max_evidence or None

    @classmethod
    def load(
        cls,
        path_or_uri: str | Path,
        device: str = "auto",
        batch_size: int = 64,
        tracking_uri: str | None = None,
        max_evidence: int | None = 3,
        precision: str | None = None,
        num_threads: int | None = None,
        review_target: float | None = None,
    ) -> Predictor:
        """Load a model directory or an MLflow model URI (looked up in `tracking_uri`, else
        MLFLOW_TRACKING_URI, else experiments/mlflow.db).

        `precision`: fp32, bf16 or auto; None (default) is the precision the model's thresholds were
        tuned in, as its card says (bf16 where native for models trained by this version on a machine
        with native bf16, fp32 for older ones). auto serves a torch model on the fastest of fp32,
        native bf16 and the exports beside it that are inside the accuracy budget, measured once on
        this CPU and cached (`models.backends`; on a GPU, bf16 where native). An exported ONNX model
        has its own.
        `num_threads`: torch's process-wide thread count is set only when given; ONNX Runtime sessions
        use it, or `default_num_threads()` (half the usable CPUs) when None.
        `review_target`: the precision and recall wanted outside the review band (one of the card's).
        """
        if num_threads is not None and (not isinstance(num_threads, int) or num_threads < 1):
            raise ConfigError(f"num_threads must be a whole number ≥ 1 or None, got {num_threads!r}")
        num_threads = cap_threads(num_threads)
        model = load_model(
            resolve_model_dir(path_or_uri, tracking_uri), device=device, precision=precision, num_threads=num_threads
        )
        if num_threads is not None and "torch" in sys.modules:  # a torch family was loaded
            sys.modules["torch"].set_num_threads(num_threads)
        return cls(model, batch_size=batch_size, max_evidence=max_evidence, review_target=review_target)

    def _check_review_target(self, target: float | None) -> float | None:
        """The review band's target: the card's own when None; one of the card's bands otherwise."""
        review = self.model.card.review or {}
        if target is None:
            return float(review["target"]) if review.get("target") is not None and self.review_targets else None
        if not self.review_targets:
            raise ConfigError(
                "review_target: this model has no review band (trained before calibration and review bands); "
                "train it again, or leave the target out"
            )
        if not isinstance(target, (int, float)) or isinstance(target, bool) or float(target) not in self.review_targets:
            raise ConfigError(f"review_target must be one of the model's {self.review_targets}, got {target!r}")
        return float(target)

    def band(self, review_target: float | None = None) -> tuple[np.ndarray, np.ndarray] | None:
        """(reject, accept) per topic on the calibrated article scores, or None without a band."""
        target = self.review_target if review_target is None else self._check_review_target(review_target)
        if target is None:
            return None
        bands = self.model.card.review["bands"]
        band = next(v for k, v in bands.items() if float(k) == target)
        return np.asarray(band["reject"], dtype=np.float64), np.asarray(band["accept"], dtype=np.float64)

    def score_sentences(self, sentences: Sequence[str]) -> np.ndarray:
        """Probabilities (sentences × topics) for texts taken as single sentences (calibrated)."""
        return _apply(self.sentence_calibrators, self.raw_scores(sentences))

    def raw_scores(self, sentences: Sequence[str]) -> np.ndarray:
        """The model's own scores (sentences × topics), before calibration: what thresholds were tuned on."""
        return self.model.score(_texts(sentences, "sentences"), batch_size=self.batch_size).probs

    def predict_sentences(self, sentences: Sequence[str]) -> list[SentenceResult]:
        """Score each text as one sentence (empty text: no topics, flagged, never an error)."""
        spans = [(s, 0, len(s), "text") for s in _texts(sentences, "sentences")]
        return self._score_spans(spans)

    def predict_article(
        self,
        text: str | None,
        title: str | None = None,
        *,
        max_evidence: Any = _KEEP,
        review_target: Any = None,
        highlights: bool | int = False,
    ) -> ArticleResult:
        return self.predict_articles(
            [text], [title], max_evidence=max_evidence, review_target=review_target, highlights=highlights
        )[0]

    def predict_articles(
        self,
        texts: Sequence[str | None],
        titles: Sequence[str | None] | None = None,
        *,
        max_evidence: Any = _KEEP,
        review_target: float | None = None,
        highlights: bool | int = False,
    ) -> list[ArticleResult]:
        """Split every article into sentences, score all of them in one batched pass, aggregate.

        `None` is an empty article (or no title). `max_evidence` and `review_target` apply to this
        call only (a shared Predictor never carries one request's options into another).
        `highlights`: True (the 5 heaviest words) or a number of words per evidence sentence, found by
        occlusion (one more batched pass over each evidence sentence's variants); off by default.
        """
        top_k = _check_highlights(highlights)
        texts = _texts(texts, "texts", allow_none=True)
        titles = _texts(titles, "titles", allow_none=True) if titles is not None else [None] * len(texts)
        if len(titles) != len(texts):
            raise ValueError(f"{len(titles)} titles for {len(texts)} articles")
        cap = self.max_evidence if max_evidence is _KEEP else (_check_max_evidence(max_evidence) or None)
        band = self.band(review_target)
        spans, owners = [], []
        for i, (text, title) in enumerate(zip(texts, titles)):
            if title and title.strip():
                spans.append((title.strip(), 0, len(title.strip()), "title"))
                owners.append(i)
            for sentence in split_sentences(text or ""):
                spans.append((sentence.text, sentence.start, sentence.end, "text"))
                owners.append(i)
        scored = self._score_spans(spans)
        first_lines = {}
        for owner, result in zip(owners, scored):
            if result.source == "text":
                first_lines.setdefault(owner, result)
        for owner, result in zip(owners, scored):
            boilerplate = is_boilerplate(result.text) or (first_lines.get(owner) is result and is_byline(result.text))
            if result.source == "text" and result.scores and boilerplate:
                result.flags.append(BOILERPLATE)
        grouped: list[list[SentenceResult]] = [[] for _ in texts]
        for owner, result in zip(owners, scored):
            grouped[owner].append(result)
        results = [self._aggregate(sentences, cap, band) for sentences in grouped]
        if top_k:
            self._add_highlights(results, top_k)
        return results

    def predict_each(
        self,
        texts: Sequence[str | None],
        titles: Sequence[str | None] | None = None,
        *,
        propagate: tuple[type[BaseException], ...] = (),
        **options: Any,
    ) -> list[ArticleResult | BaseException]:
        """`predict_articles`, where one text that makes the model fail (a tokenizer's panic, any
        error) costs only itself: the batch is scored again one by one, and the failing text's place
        holds its exception. Errors of the types in `propagate` from the batch (a bad option) are
        raised as they are; so is anything not recoverable (KeyboardInterrupt)."""
        try:
            return list(self.predict_articles(texts, titles, **options))
        except BaseException as err:
            if not is_recoverable(err) or isinstance(err, propagate):
                raise
        out: list[ArticleResult | BaseException] = []
        for text, title in zip(texts, titles if titles is not None else [None] * len(texts)):
            try:
                out.append(self.predict_article(text, title, **options))
            except BaseException as err:
                if not is_recoverable(err):
                    raise
                out.append(err)
        return out

    def _add_highlights(self, results: Sequence[ArticleResult], top_k: int) -> None:
        """Fill every evidence sentence's `highlights`: its words scored by occlusion, all articles'
        variants in one batch, each sentence scored once however many topics it carries."""
        index = {name: j for j, name in enumerate(self.labels)}
        jobs: dict[tuple[int, str, int], tuple[str, list[tuple[int, int]], int]] = {}
        texts: list[str] = []
        for a, result in enumerate(results):
            for topic in result.topics:
                for e in topic.evidence:
                    key = (a, e.source, e.start)
                    if key not in jobs:
                        spans, variants = occlusion_variants(e.text)
                        jobs[key] = (e.text, spans, len(texts))
                        texts.extend([e.text, *variants])
        keep = [i for i, t in enumerate(texts) if t.strip()]
        probs = np.zeros((len(texts), len(self.labels)))
        if keep:
            probs[keep] = self.model.score([texts[i] for i in keep], batch_size=self.batch_size).probs
        for a, result in enumerate(results):
            for topic in result.topics:
                j = index[topic.topic]
                for e in topic.evidence:
                    _, spans, first = jobs[(a, e.source, e.start)]
                    weights = occlusion_weights(probs[first], probs[first + 1 : first + 1 + len(spans)])
                    e.highlights = [list(s) for s in top_spans(spans, weights[:, j], top_k, offset=e.start)]

    def _score_spans(self, spans: Sequence[tuple[str, int, int, str]]) -> list[SentenceResult]:
        keep = [i for i, span in enumerate(spans) if span[0].strip()]
        scores = self.model.score([spans[i][0] for i in keep], batch_size=self.batch_size)
        calibrated = _apply(self.sentence_calibrators, scores.probs)
        results = []
        row = {i: r for r, i in enumerate(keep)}
        for i, (text, start, end, source) in enumerate(spans):
            if i not in row:
                results.append(SentenceResult(text, start, end, [], {}, source, [EMPTY]))
                continue
            raw = scores.probs[row[i]]
            flags = [
                flag for flag, on in ((NO_ARABIC, not has_arabic(text)), (TRUNCATED, scores.truncated[row[i]])) if on
            ]
            results.append(
                SentenceResult(
                    text=text,
                    start=start,
                    end=end,
                    topics=[n for n, p, t in zip(self.labels, raw, self.raw_thresholds) if p >= t],
                    scores={n: float(p) for n, p in zip(self.labels, calibrated[row[i]])},
                    source=source,
                    flags=flags,
                    raw=raw,
                )
            )
        return results

    def article_features(self, sentences: Sequence[SentenceResult]) -> np.ndarray:
        """The article rule's features (topics × features) from an article's scored sentences
        (boilerplate lines left out), computed on the model's own scores."""
        scored = _deciding(sentences)
        probs = np.array([s.raw for s in scored]).reshape(-1, len(self.labels))
        return article_features(probs, np.array([s.source == "title" for s in scored]), self.raw_thresholds)

    def _aggregate(
        self, sentences: list[SentenceResult], cap: int | None, band: tuple[np.ndarray, np.ndarray] | None
    ) -> ArticleResult:
        """Article topics by the model's article rule; the evidence is the sentences that carry each
        topic (over the sentence threshold, best first; the best sentence when none passes)."""
        deciding = _deciding(sentences)
        if not deciding:
            return ArticleResult([], {}, sentences, [EMPTY])
        raw = self.article_rule.scores(self.article_features(sentences))
        calibrated = _apply(self.article_calibrators, raw)
        scores = {name: float(p) for name, p in zip(self.labels, calibrated)}
        topics = []
        for j, name in enumerate(self.labels):
            if raw[j] < self.article_rule.thresholds[j]:
                continue
            ranked = sorted(deciding, key=lambda s: -s.raw[j])
            carriers = [s for s in ranked if s.raw[j] >= self.raw_thresholds[j]] or ranked[:1]
            evidence = [Evidence(s.text, s.start, s.end, s.scores[name], s.source) for s in carriers[:cap]]
            topics.append(TopicResult(name, scores[name], evidence))
        topics.sort(key=lambda t: -t.score)
        flags = []
        if not any(has_arabic(s.text) for s in sentences):
            flags.append(NO_ARABIC)
        if any(TRUNCATED in s.flags for s in sentences):
            flags.append(TRUNCATED)
        review = []
        if band is not None:
            labelled = {t.topic for t in topics}
            review = [
                n
                for n, p, lo, hi in zip(self.labels, calibrated, *band)
                if lo <= p < hi or (n in labelled and p < REVIEW_BELOW)
            ]
        raw_scores = {name: float(p) for name, p in zip(self.labels, raw)}
        return ArticleResult(topics, scores, sentences, flags, review, raw_scores)


def _calibrators(values: Any, n_topics: int) -> list[Calibrator]:
    """One calibrator per topic from the card (identity for older cards without calibration)."""
    if not values:
        return [IDENTITY] * n_topics
    if not isinstance(values, list) or len(values) != n_topics:
        raise ValueError(f"expected one calibrator per topic ({n_topics}), got {values!r}")
    return [Calibrator.from_dict(v) for v in values]


def _apply(calibrators: Sequence[Calibrator], scores: np.ndarray) -> np.ndarray:
    """Calibrated scores: column j through topic j's calibrator (a vector is one row)."""
    scores = np.asarray(scores, dtype=np.float64)
    if all(c is IDENTITY or c.kind == "none" for c in calibrators):
        return scores.copy()
    out = np.empty_like(scores)
    for j, calibrator in enumerate(calibrators):
        out[..., j] = calibrator(scores[..., j])
    return out


def _check_highlights(value: Any) -> int:
    """Words to highlight per evidence sentence: 0 (off), True (HIGHLIGHT_WORDS) or a whole number."""
    if value is True:
        return HIGHLIGHT_WORDS
    if value is False or value is None:
        return 0
    if not isinstance(value, int) or value < 0:
        raise ConfigError(f"highlights must be true, false or a whole number of words ≥ 0, got {value!r}")
    return value


def _check_max_evidence(value: Any) -> int | None:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
        raise ConfigError(f"max_evidence must be a whole number ≥ 0 or None, got {value!r}")
    return value


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
