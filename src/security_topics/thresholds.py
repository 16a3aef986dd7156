"""Per-topic decision thresholds, tuned on validation scores and saved with the model."""

from __future__ import annotations

import numpy as np

DEFAULT_GRID = tuple(np.round(np.arange(0.05, 0.951, 0.025), 3))


def f1_at(y_true: np.ndarray, scores: np.ndarray, threshold: float) -> float:
    predicted = scores >= threshold
    tp = float(np.sum(predicted & (y_true > 0)))
    denominator = float(np.sum(predicted)) + float(np.sum(y_true > 0))
    return 2 * tp / denominator if denominator else 0.0


def tune_thresholds(
    y_true: np.ndarray,
    scores: np.ndarray,
    grid: tuple[float, ...] = DEFAULT_GRID,
    default: float = 0.5,
) -> np.ndarray:
    """Pick, per topic, the threshold on `grid` that maximises F1 on held-out scores.

    Ties go to the threshold nearest `default`, so a flat F1 curve does not drift to an
    extreme; a topic with no positive example keeps `default` (nothing to learn from).
    """
    y_true = np.asarray(y_true)
    scores = np.asarray(scores)
    thresholds = np.full(y_true.shape[1], default, dtype=np.float64)
    for j in range(y_true.shape[1]):
        if not np.any(y_true[:, j] > 0):
            continue
        f1s = np.array([f1_at(y_true[:, j], scores[:, j], t) for t in grid])
        best = np.flatnonzero(np.isclose(f1s, f1s.max()))
        thresholds[j] = min((grid[i] for i in best), key=lambda t: abs(t - default))
    return thresholds
