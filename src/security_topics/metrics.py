"""Metric maths and per-topic threshold tuning: scikit-learn's metrics, one F1 everywhere."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

DEFAULT_GRID = tuple(float(t) for t in np.round(np.arange(0.05, 0.951, 0.025), 3))
SHRINK = 20  # positive examples at which a topic's own threshold offset from the shared one counts half
BAGS = 200  # bootstrap resamples a bagged threshold is averaged over


def compute_metrics(y_true: np.ndarray, y_pred: np.ndarray, labels: Sequence[str]) -> dict[str, float]:
    """Per-topic precision/recall/F1, macro and micro F1, exact match, none accuracy (flat dict).

    Support counts are not metrics (they do not change between models); `support` gives them.
    """
    from sklearn.metrics import f1_score, precision_recall_fscore_support  # not at import: serving never needs it

    y_true = np.asarray(y_true).astype(int)
    y_pred = np.asarray(y_pred).astype(int)
    only = topic_columns(y_true)
    precision, recall, f1, _ = precision_recall_fscore_support(
        y_true, y_pred, average=None, labels=only, zero_division=0
    )
    metrics: dict[str, float] = {
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", labels=only, zero_division=0)),
        "micro_f1": float(f1_score(y_true, y_pred, average="micro", labels=only, zero_division=0)),
        "exact_match": float(np.mean(np.all(y_true == y_pred, axis=1))) if len(y_true) else 0.0,
        "none_accuracy": _none_accuracy(y_true, y_pred),
    }
    for j, name in enumerate(labels):
        metrics[f"{name}_precision"] = float(precision[j])
        metrics[f"{name}_recall"] = float(recall[j])
        metrics[f"{name}_f1"] = float(f1[j])
    return metrics


def topic_columns(y: np.ndarray) -> list[int] | None:
    """The `labels` argument of scikit-learn's metrics for a label matrix: scikit-learn reads a
    one-column matrix as a binary target with two classes (0 and 1) and would average the `none` class
    in; [1] keeps the topic alone. More columns are multilabel (None: every column)."""
    return [1] if np.ndim(y) == 2 and np.shape(y)[1] == 1 else None


def support(y_true: np.ndarray, labels: Sequence[str]) -> dict[str, int]:
    """Positive examples per topic, and how many carry no topic at all."""
    y_true = np.asarray(y_true).astype(int)
    counts = {name: int(y_true[:, j].sum()) for j, name in enumerate(labels)}
    counts["none"] = int(np.sum(~y_true.any(axis=1))) if len(y_true) else 0
    return counts


def _none_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Of the texts without any topic, the share the model also left without one."""
    none = ~y_true.any(axis=1)
    return float(np.mean(~y_pred[none].any(axis=1))) if none.any() else float("nan")


def majority_baseline(y_train: np.ndarray, n_rows: int) -> np.ndarray:
    """Predict the most frequent label combination of the training set for every row."""
    combos, counts = np.unique(np.asarray(y_train).astype(int), axis=0, return_counts=True)
    return np.tile(combos[np.argmax(counts)], (n_rows, 1))


def f1_by_threshold(y_true: np.ndarray, scores: np.ndarray, grid: Sequence[float]) -> np.ndarray:
    """F1 of `scores >= t` against `y_true` at every threshold t of `grid`, per column (grid × topics).

    The same F1 as scikit-learn's `f1_score(..., zero_division=0)`, counted for the whole grid in one
    pass: threshold sweeps (tuning, the article rule's cross-validation) call it thousands of times.
    """
    y_true = np.asarray(y_true) > 0
    scores = np.asarray(scores, dtype=np.float64)
    if y_true.ndim == 1:
        return f1_by_threshold(y_true[:, None], scores[:, None], grid)[:, 0]
    predicted = scores[None, :, :] >= np.asarray(grid, dtype=np.float64)[:, None, None]  # grid × rows × topics
    tp = np.sum(predicted & y_true[None], axis=1)
    false = np.sum(predicted & ~y_true[None], axis=1) + (y_true.sum(axis=0)[None] - tp)  # fp + fn
    denominator = 2 * tp + false
    return np.divide(2 * tp, denominator, out=np.zeros(denominator.shape), where=denominator > 0)


def best_threshold(y_true: np.ndarray, scores: np.ndarray, grid: Sequence[float], default: float) -> float:
    """The grid threshold with the best F1 for one topic; ties go to the one nearest `default`.

    Nearest-default keeps a flat F1 curve from drifting to an extreme; a topic with no positive
    example keeps `default` (nothing to learn from).
    """
    y_true = np.asarray(y_true) > 0
    if not y_true.any():
        return float(default)
    f1s = f1_by_threshold(y_true, scores, grid)
    best = np.flatnonzero(np.isclose(f1s, f1s.max()))
    return float(min((grid[i] for i in best), key=lambda t: (abs(t - default), t)))


def tune_thresholds(
    y_true: np.ndarray, scores: np.ndarray, grid: Sequence[float] = DEFAULT_GRID, default: float = 0.5
) -> np.ndarray:
    """Per topic, the threshold on `grid` that maximises F1 on held-out scores (see `best_threshold`)."""
    y_true, scores = np.asarray(y_true), np.asarray(scores)
    return np.array([best_threshold(y_true[:, j], scores[:, j], grid, default) for j in range(y_true.shape[1])])


def shared_thresholds(
    y_true: np.ndarray, scores: np.ndarray, grid: Sequence[float] = DEFAULT_GRID, shrink: float = SHRINK
) -> np.ndarray:
    """One threshold for every topic (best macro-F1), plus each topic's own best offset from it
    shrunk by n / (n + shrink), n its positive examples: few examples, little offset. Fewer free
    parameters than `tune_thresholds`, for thresholds that should travel to new outlets and years."""
    y = np.asarray(y_true).astype(bool)
    f1 = f1_by_threshold(y, scores, grid).mean(axis=1)  # macro-F1 at each threshold
    best = np.flatnonzero(np.isclose(f1, f1.max()))
    shared = min((grid[i] for i in best), key=lambda t: (abs(t - 0.5), t))
    own = tune_thresholds(y, scores, grid=grid, default=shared)
    weight = y.sum(axis=0) / (y.sum(axis=0) + shrink)
    return shared + weight * (own - shared)


def bagged_thresholds(
    fit: Callable[[np.ndarray, np.ndarray], np.ndarray],
    y_true: np.ndarray,
    scores: np.ndarray,
    rounds: int = BAGS,
    seed: int = 0,
) -> np.ndarray:
    """`fit(y, scores)` averaged over `rounds` bootstrap resamples of the rows (bagging).

    A threshold picked as the argmax of a step-shaped F1 curve on a few hundred rows jumps between
    the ends of a flat top when a handful of rows move (two seeds of one model: 0.825 and 0.875);
    the bootstrap mean sits inside the top and moves a few hundredths at most. A resample without
    positives for a topic gives whatever `fit` gives then (`shared_thresholds`: the shared threshold),
    which pulls a rare topic's mean toward it. The resamples are seeded: same rows, same thresholds."""
    y_true, scores = np.asarray(y_true), np.asarray(scores, dtype=np.float64)
    rng = np.random.default_rng(seed)
    draws = (rng.integers(0, len(y_true), len(y_true)) for _ in range(rounds))
    return np.mean([fit(y_true[rows], scores[rows]) for rows in draws], axis=0)


def cv_splits(
    n: int, groups: Sequence[str] | None = None, folds: int = 5, seed: int = 0
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Train/held-out index pairs for comparing choices: with two or more `groups` (a time period or
    a source per row) each group stays whole, so a choice is judged on rows unlike those it was fitted
    on; otherwise shuffled folds (at least 2, at most one row each)."""
    from sklearn.model_selection import GroupKFold, KFold

    if groups is not None and len(set(groups)) >= 2:
        return list(GroupKFold(min(folds, len(set(groups)))).split(np.zeros(n), groups=list(groups)))
    return list(KFold(max(2, min(folds, n)), shuffle=True, random_state=seed).split(np.zeros(n)))


def one_standard_error(kinds: Sequence[str], cv: dict[str, float], per_fold: dict[str, list[float]]) -> str:
    """The kind with the fewest free parameters (listed first) whose cross-validated score is within
    one standard error of the best one's (the spread of its per-fold scores): a smaller difference is
    noise, and the simpler choice is the one that travels to new outlets and years."""
    top = max(kinds, key=lambda kind: (cv[kind], -list(kinds).index(kind)))
    folds = per_fold[top]
    error = float(np.std(folds, ddof=1) / np.sqrt(len(folds))) if len(folds) > 1 else 0.0
    return next(kind for kind in kinds if cv[kind] >= cv[top] - error)


def compare_kinds(
    kinds: Sequence[str],
    splits: Sequence[tuple[np.ndarray, np.ndarray]],
    y: np.ndarray,
    fit_score: Callable[[str, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]],
) -> tuple[str, dict[str, float], dict[str, np.ndarray]]:
    """Cross-validate kinds of decision rule on the same folds and keep the one that travels best.

    `fit_score(kind, train, test)` fits `kind` on the rows `train` and returns the scores of the rows
    `test` and the thresholds they are decided at. Every kind is judged on its held-out decisions:
    macro-F1 over all rows, micro-F1 per fold for the spread (`one_standard_error`). Returns the kept
    kind, each kind's cross-validated macro-F1 and each kind's out-of-fold scores (rows × topics)."""
    y = np.asarray(y).astype(int)
    names = [str(j) for j in range(y.shape[1])]
    decided = {kind: np.zeros(y.shape, dtype=int) for kind in kinds}
    oof = {kind: np.zeros(y.shape) for kind in kinds}
    per_fold: dict[str, list[float]] = {kind: [] for kind in kinds}
    for train, test in splits:
        for kind in kinds:
            scores, thresholds = fit_score(kind, train, test)
            oof[kind][test] = scores
            decided[kind][test] = scores >= thresholds
            per_fold[kind].append(compute_metrics(y[test], decided[kind][test], names)["micro_f1"])
    cv = {kind: compute_metrics(y, decided[kind], names)["macro_f1"] for kind in kinds}
    return one_standard_error(kinds, cv, per_fold), cv, oof


def slice_rates(
    y_true: np.ndarray, y_pred: np.ndarray, groups: Sequence[str], labels: Sequence[str]
) -> list[dict[str, float | str]]:
    """Per slice (a sub-theme, an article kind): its size, exact match, and per topic the
    false-positive rate among its rows that do not carry that topic (empty where none qualify)."""
    y_true, y_pred = np.asarray(y_true).astype(bool), np.asarray(y_pred).astype(bool)
    groups = np.asarray(groups, dtype=object)
    rows: list[dict[str, float | str]] = []
    for group in sorted(set(groups)):
        member = groups == group
        row: dict[str, float | str] = {
            "slice": str(group),
            "rows": int(member.sum()),
            "exact_match": float(np.mean(np.all(y_true[member] == y_pred[member], axis=1))),
        }
        for j, name in enumerate(labels):
            negatives = member & ~y_true[:, j]
            row[f"fp_rate_{name}"] = float(y_pred[negatives, j].mean()) if negatives.any() else ""
        rows.append(row)
    return rows
