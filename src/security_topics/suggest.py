"""Choose the sentences most worth labelling next, from a pool of unlabelled articles or sentences.

Worth labelling = the model is unsure (a score near a topic's threshold, or inside the topic's
review band where the card has one) and the pick is not a paraphrase of another pick or of a row
already labelled: uncertain candidates are spread over the encoder's embedding space by k-means, and
the most uncertain of each cluster is taken; near-duplicates (cosine ≥ `near_duplicate`) are skipped.
`simulate` measures whether this pays against random picks, by letting gold labels play annotator.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import sparse
from sklearn.cluster import KMeans
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer

from security_topics.calibration import logit
from security_topics.data import Example, read_text
from security_topics.errors import JSON_ERRORS, DataError, json_problem
from security_topics.labels import LabelSet
from security_topics.metrics import compute_metrics, tune_thresholds
from security_topics.predictor import Predictor
from security_topics.text import dedup_key, is_boilerplate, normalize, split_sentences

log = logging.getLogger(__name__)

MIN_WORDS = 4  # shorter pool sentences (a dateline, a caption) are not worth a labeller's time
CANDIDATES_PER_PICK = 10  # uncertain candidates clustered per sentence chosen
EMBEDDING_DIMS = 128  # sparse vectors (TF-IDF) are reduced to this many for clustering


@dataclass
class PoolText:
    """A sentence of the pool: its own id, where it comes from, and its article's id and offsets."""

    id: str
    text: str
    source: str
    article_id: str = ""
    start: int = 0
    end: int = 0
    meta: dict[str, Any] = field(default_factory=dict)


def read_pool(path: str | Path, unit: str = "auto") -> list[PoolText]:
    """Pool sentences from JSONL, CSV or Parquet records (`id`, `text`, optional `title`): articles
    are split into sentences, sentences kept whole (`unit`: article, sentence or auto = article when
    records have a title or several sentences). Boilerplate, texts under MIN_WORDS words and repeats
    (after normalisation) are left out. Extra fields (date, outlet …) travel as `meta`."""
    path = Path(path)
    records = _records(path)
    if unit == "auto":
        multi = sum(len(split_sentences(str(r.get("text", "")))) > 1 for _, r in records[:200])
        unit = (
            "article" if any("title" in r for _, r in records[:200]) or multi > len(records[:200]) / 2 else "sentence"
        )
    if unit not in ("article", "sentence"):
        raise DataError(path, 0, "unit", f"unit must be article, sentence or auto, got {unit!r}")
    out, seen = [], set()
    for line, record in records:
        text = record.get("text")
        if not isinstance(text, str):
            raise DataError(path, line, "text", f"expected a string, got {type(text).__name__}")
        rid = str(record.get("id") or f"{path.stem}:{line}")
        meta = {k: v for k, v in record.items() if k not in ("id", "text", "title", "labels") and _plain(v)}
        spans = (
            [(text.strip(), 0, len(text))]
            if unit == "sentence"
            else [(s.text, s.start, s.end) for s in split_sentences(text)]
        )
        for i, (sentence, start, end) in enumerate(spans, 1):
            key = dedup_key(sentence)
            if len(sentence.split()) < MIN_WORDS or is_boilerplate(sentence) or key in seen:
                continue
            seen.add(key)
            sid = rid if unit == "sentence" else f"{rid}#{i}"
            out.append(PoolText(sid, sentence, f"{path}:{line}", rid if unit == "article" else "", start, end, meta))
    return out


def _plain(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool)) or value is None


def _records(path: Path) -> list[tuple[int, dict[str, Any]]]:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return list(enumerate(pq.read_table(path).to_pylist(), 1))
    if path.suffix == ".csv":
        import csv
        import io

        reader = csv.DictReader(io.StringIO(read_text(path), newline=""))
        return [(reader.line_num, dict(row)) for row in reader]
    if path.suffix != ".jsonl":
        raise DataError(path, 0, "path", "a pool is .jsonl, .csv or .parquet")
    out = []
    for line, raw in enumerate(read_text(path).splitlines(), 1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except JSON_ERRORS as err:
            raise DataError(path, line, "json", f"not valid JSON: {json_problem(err)}") from None
        if not isinstance(record, dict):
            raise DataError(path, line, "json", "expected an object")
        out.append((line, record))
    return out


# --- uncertainty and diversity ------------------------------------------------------------------


def uncertainty(scores: np.ndarray, reject: np.ndarray, accept: np.ndarray) -> np.ndarray:
    """Per text, how unsure the model is about its most uncertain topic, in (0, 1]: 1 inside a
    topic's band [reject, accept) (a band of zero width is the threshold), falling as exp(−d) with d
    the distance in logits to the band's nearest edge."""
    s, lo, hi = logit(scores), logit(reject), logit(accept)
    distance = np.where(s < lo, lo - s, np.where(s > hi, s - hi, 0.0))
    return np.exp(-distance.min(axis=1)) if len(s) else np.zeros(0)


def dense_vectors(vectors: Any, fit_on: Any | None = None, seed: int = 0) -> np.ndarray:
    """Unit-length dense vectors: sparse ones (TF-IDF) reduced by truncated SVD first."""
    if sparse.issparse(vectors):
        dims = min(EMBEDDING_DIMS, vectors.shape[1] - 1, max(vectors.shape[0] - 1, 1))
        svd = TruncatedSVD(dims, random_state=seed).fit(fit_on if fit_on is not None else vectors)
        vectors = svd.transform(vectors)
    vectors = np.asarray(vectors, dtype=np.float64)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True).clip(min=1e-12)


def choose(
    vectors: np.ndarray,
    scores: np.ndarray,
    n: int,
    surface: Any | None = None,
    labelled_surface: Any | None = None,
    near_duplicate: float = 0.8,
    seed: int = 0,
) -> list[int]:
    """Indices of `n` texts: from the CANDIDATES_PER_PICK·n most uncertain (`scores`), one per k-means
    cluster of `vectors` (unit-length meaning vectors), its most uncertain member; most uncertain
    first. With `surface` vectors (unit-length character n-grams: what the words are, not what they
    mean) a text within `near_duplicate` cosine of a labelled row or of an earlier pick is skipped."""
    order = np.argsort(-scores, kind="stable")
    if surface is not None and labelled_surface is not None and labelled_surface.shape[0]:
        nearest = _max_cosine(surface[order[: CANDIDATES_PER_PICK * n * 3]], labelled_surface)
        order = order[: len(nearest)][nearest < near_duplicate]
    candidates = order[: CANDIDATES_PER_PICK * n]
    if len(candidates) <= n:
        return _distinct([int(i) for i in candidates], surface, n, near_duplicate)
    clusters = KMeans(n, n_init=1, random_state=seed).fit_predict(vectors[candidates])
    ranked = [[int(i) for i, c in zip(candidates, clusters) if c == k] for k in range(n)]  # uncertain first
    picks: list[int] = []
    for members in sorted(ranked, key=lambda m: -scores[m[0]]):
        for i in members:
            if surface is None or not picks or _max_cosine(surface[[i]], surface[picks])[0] < near_duplicate:
                picks.append(i)
                break
    if len(picks) < n:  # clusters whose members were all near-duplicates: fill by uncertainty
        picks = _distinct(picks + [int(i) for i in candidates if i not in picks], surface, n, near_duplicate)
    return sorted(picks, key=lambda i: -scores[i])


def _max_cosine(a: Any, b: Any) -> np.ndarray:
    products = a @ b.T
    products = products.toarray() if sparse.issparse(products) else np.asarray(products)
    return products.max(axis=1)


def _distinct(indices: list[int], surface: Any | None, n: int, near_duplicate: float) -> list[int]:
    out: list[int] = []
    for i in indices:
        if len(out) == n:
            break
        if surface is None or not out or _max_cosine(surface[[i]], surface[out])[0] < near_duplicate:
            out.append(int(i))
    return out


def surface_vectors(texts: Sequence[str]) -> sparse.csr_matrix:
    """Unit-length character 5-gram TF-IDF: texts that share most of their wording are close
    (a sentence with one word added stays above 0.8), whatever a model thinks of them."""
    vectorizer = TfidfVectorizer(analyzer="char", ngram_range=(5, 5), sublinear_tf=True)
    return vectorizer.fit_transform([normalize(t) for t in texts]).tocsr()


def embed(predictor: Predictor, texts: Sequence[str]) -> tuple[Any, str]:
    """The model's own sentence vectors where it has them (the encoder's, or its TF-IDF), else a
    word TF-IDF of the texts; and which it was."""
    embedder = getattr(predictor.model, "embed", None)
    if embedder is not None:
        try:
            return embedder(list(texts)), f"{predictor.model.card.family} model"
        except AttributeError:
            pass
    vectorizer = TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True)
    return vectorizer.fit_transform([normalize(t) for t in texts]), "word TF-IDF of the pool"


@dataclass
class Suggestion:
    item: PoolText
    uncertainty: float
    scores: dict[str, float]
    topics: list[str]


def suggest(
    predictor: Predictor,
    pool: Sequence[PoolText],
    n: int,
    labelled: Sequence[str] = (),
    near_duplicate: float = 0.8,
    seed: int = 0,
    review_target: float | None = None,
) -> list[Suggestion]:
    """The `n` pool sentences most worth labelling for `predictor`'s model (see the module doc)."""
    if n < 1:
        raise ValueError(f"n must be ≥ 1, got {n}")
    texts = [p.text for p in pool]
    raw = predictor.raw_scores(texts) if texts else np.zeros((0, len(predictor.labels)))
    reject, accept = _sentence_band(predictor, review_target)
    unsure = uncertainty(raw, reject, accept)
    vectors, kind = embed(predictor, texts)
    vectors = dense_vectors(vectors, seed=seed)
    surface = surface_vectors([*texts, *labelled])
    log.info("suggest: %d pool sentences, %d labelled; diversity in the %s's space", len(texts), len(labelled), kind)
    picks = choose(vectors, unsure, n, surface[: len(texts)], surface[len(texts) :], near_duplicate, seed)
    calibrated = predictor.score_sentences([texts[i] for i in picks]) if picks else np.zeros((0, 0))
    out = []
    for row, i in enumerate(picks):
        topics = [name for name, p, t in zip(predictor.labels, raw[i], predictor.raw_thresholds) if p >= t]
        scores = {name: float(p) for name, p in zip(predictor.labels, calibrated[row])}
        out.append(Suggestion(pool[i], float(unsure[i]), scores, topics))
    return out


def _sentence_band(predictor: Predictor, review_target: float | None) -> tuple[np.ndarray, np.ndarray]:
    """The review band of sentences on raw scores, or the thresholds (a band of zero width)."""
    thresholds = predictor.raw_thresholds
    review = predictor.model.card.review or {}
    target = review_target if review_target is not None else review.get("target")
    band = (review.get("sentence_bands") or {}).get(str(target)) if target is not None else None
    if not band:
        return thresholds, thresholds
    inverse = [_inverse(c) for c in predictor.sentence_calibrators]
    reject = np.array([f(v) for f, v in zip(inverse, band["reject"])])
    accept = np.array([f(v) for f, v in zip(inverse, band["accept"])])
    return np.minimum(reject, thresholds), np.maximum(accept, thresholds)


def _inverse(calibrator: Any) -> Callable[[float], float]:
    """A raw score whose calibrated score is `v` (bisection: every calibrator is increasing)."""

    def invert(v: float) -> float:
        lo, hi = 0.0, 1.0
        for _ in range(50):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if float(calibrator(mid)) < v else (lo, mid)
        return hi

    return invert


# --- does it pay? a simulation ------------------------------------------------------------------


@dataclass
class Curve:
    strategy: str
    seed: int
    labels: list[int]
    macro_f1: list[float]


def simulate(
    train: Sequence[Example],
    validation: Sequence[Example],
    labels: LabelSet,
    fit: Callable[[Sequence[Example]], Any],
    vectors: np.ndarray,
    strategy: str,
    seed: int,
    start: float = 0.2,
    batch: int = 150,
    rounds: int | None = None,
) -> Curve:
    """Start from a seeded `start` share of `train`, then add `batch` sentences a round, chosen by
    `strategy` (active: `choose` on the current model's uncertainty; random) from the rest, whose gold
    labels play the annotator; refit and score validation macro-F1 (thresholds tuned on validation,
    as training does) after each round. `fit(examples)` returns a model with `score(texts)`;
    `vectors` are unit-length sentence vectors of `train` for diversity."""
    if strategy not in ("active", "random"):
        raise ValueError(f"strategy must be active or random, got {strategy!r}")
    rng = random.Random(seed)
    order = list(range(len(train)))
    rng.shuffle(order)
    labelled = order[: max(1, int(round(start * len(train))))]
    rest = order[len(labelled) :]
    y_val = labels.encode_many([e.labels for e in validation])
    curve = Curve(strategy, seed, [], [])
    while True:
        model = fit([train[i] for i in labelled])
        probs = model.score([e.text for e in validation]).probs
        f1 = compute_metrics(y_val, probs >= tune_thresholds(y_val, probs), labels.names)["macro_f1"]
        curve.labels.append(len(labelled))
        curve.macro_f1.append(float(f1))
        if not rest or (rounds is not None and len(curve.labels) > rounds):
            return curve
        take = min(batch, len(rest))
        if strategy == "random":
            chosen = rest[:take]
        else:
            raw = model.score([train[i].text for i in rest]).probs
            thresholds = tune_thresholds(y_val, probs)
            unsure = uncertainty(raw, thresholds, thresholds)
            picks = choose(vectors[rest], unsure, take, seed=seed)
            chosen = [rest[i] for i in picks]
        taken = set(chosen)
        labelled += chosen
        rest = [i for i in rest if i not in taken]


def labels_to_reach(curve: Curve, target: float) -> int | None:
    """The fewest labelled sentences at which the curve reaches `target` (None: never)."""
    return next((n for n, f1 in zip(curve.labels, curve.macro_f1) if f1 >= target), None)
