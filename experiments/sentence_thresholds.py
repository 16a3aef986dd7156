"""Fit the sentence thresholds on every validation sentence, or on the real news alone? Out of fold.

    python experiments/sentence_thresholds.py models/pipeline models/seed44

We are judged on real news, and the written validation sentences are easy: thresholds fitted on all of
them might sit where the written rows want them (counterterrorism's 0.38 on the default). For each
saved model, as it scores, every way of fitting below is tuned inside the folds of validation grouped
by time (`decisions.time_groups`, as training chooses) and judged on the held-out rows:
- `shared` (`metrics.shared_thresholds`, what training keeps) or `per_topic` (`tune_thresholds`);
- fitted on all the fold's rows or on its real rows only;
- once, or averaged over bootstrap resamples (`metrics.bagged_thresholds`, as the article thresholds).
Printed: macro-F1 of the held-out decisions on the real rows; its difference from the first fit (what
training keeps) on the same rows, with its spread over 200 bootstrap resamples of them; macro-F1 on all
rows; per-topic F1 on the real rows; the thresholds of the full fit; and, reported only, never chosen
on, `test_real` sentences at the full fit.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from each_model import run

from security_topics.data import read_sentences
from security_topics.decisions import time_groups
from security_topics.labels import LabelSet
from security_topics.metrics import bagged_thresholds, compute_metrics, cv_splits, shared_thresholds, tune_thresholds
from security_topics.models import load_model

PROCESSED = Path("data/processed/security_topics")
KINDS = {"shared": shared_thresholds, "per_topic": tune_thresholds}


def fitter(kind: str, rows: str, bagged: bool) -> Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]:
    """`fit(y, scores, real)`: thresholds of `kind` on all rows or the real ones, once or bagged."""

    def fit(y: np.ndarray, scores: np.ndarray, real: np.ndarray) -> np.ndarray:
        if rows == "real":
            y, scores = y[real], scores[real]
        return bagged_thresholds(KINDS[kind], y, scores) if bagged else KINDS[kind](y, scores)

    return fit


def compare(path: str) -> None:
    model = load_model(path, num_threads=2)
    labels = LabelSet.of(model.card.labels)
    names = labels.names
    val = read_sentences(PROCESSED / "validation.jsonl", labels)
    test_real = read_sentences(PROCESSED / "test_real.jsonl", labels)
    y = labels.encode_many([e.labels for e in val]).astype(bool)
    y_test = labels.encode_many([e.labels for e in test_real]).astype(bool)
    real = np.array([e.is_real for e in val])
    scores = model.score([e.text for e in val]).probs
    scores_test = model.score([e.text for e in test_real]).probs
    folds = cv_splits(len(y), time_groups(val), 5)
    print(f"{path}: {len(y)} validation sentences, {real.sum()} real; {len(folds)} folds grouped by time")
    fits = {
        (kind, rows, bagged): fitter(kind, rows, bagged)
        for kind in KINDS
        for rows in ("all", "real")
        for bagged in (False, True)
    }
    decided = {key: np.zeros_like(y) for key in fits}
    for train, test in folds:
        for key, fit in fits.items():
            decided[key][test] = scores[test] >= fit(y[train], scores[train], real[train])
    y_real, kept = y[real], decided[("shared", "all", False)][real]  # what training keeps
    rng = np.random.default_rng(0)
    draws = [rng.integers(0, len(y_real), len(y_real)) for _ in range(200)]
    kept_f1 = [compute_metrics(y_real[d], kept[d], names)["macro_f1"] for d in draws]
    for (kind, rows, bagged), fit in fits.items():
        mine = decided[(kind, rows, bagged)]
        on_real = compute_metrics(y_real, mine[real], names)
        gaps = [compute_metrics(y_real[d], mine[real][d], names)["macro_f1"] - f1 for d, f1 in zip(draws, kept_f1)]
        full = fit(y, scores, real)
        reported = compute_metrics(y_test, scores_test >= full, names)
        topics = " ".join(f"{on_real[n + '_f1']:.3f}" for n in names)
        print(
            f"  {kind:9s} on {rows:4s} rows{' bagged' if bagged else '       '}: out of fold, real "
            f"{on_real['macro_f1']:.3f} ({np.mean(gaps):+.3f} ± {np.std(gaps):.3f} against the first), "
            f"all {compute_metrics(y, mine, names)['macro_f1']:.3f} | real per topic {topics}"
            f" | thresholds {' '.join(f'{t:.2f}' for t in full)}"
            f" | test_real (reported only) {reported['macro_f1']:.3f}"
        )


if __name__ == "__main__":
    run(__doc__, compare)
