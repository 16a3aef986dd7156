"""Calibrated scores and the review band: the maths, on plain arrays (no model, no files).

A score means something when, of the texts scored 0.8, about 80 % carry the topic. Per topic, a
calibrator maps the model's score to that frequency; it is chosen among `none`, `temperature`
(Platt scaling on the logit: σ(a·logit(p) + b), a > 0) and `isotonic` by cross-validated log-loss,
and saved as plain numbers. Every calibrator is strictly increasing, so a threshold re-expressed
on the calibrated scale (`calibrator(threshold)`) gives exactly the labels it gave before.

The review band routes the uncertain to a person: per topic, `accept` and `reject` thresholds on the
calibrated score; outside the band the decision is automatic, inside it is flagged `needs_review`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

CALIBRATORS = ("none", "temperature", "isotonic")  # simplest first: ties go to the simpler
EPS = 1e-6
ECE_BINS = 15
REVIEW_TARGETS = (0.9, 0.95, 0.97, 0.98, 0.99, 0.995)  # bands saved in a card, for load-time overrides
DEFAULT_REVIEW_TARGET = 0.95


def logit(p: np.ndarray) -> np.ndarray:
    """log(p / (1 − p)), with p clipped to [EPS, 1 − EPS] so that scores of 0 and 1 stay finite."""
    p = np.clip(np.asarray(p, dtype=np.float64), EPS, 1 - EPS)
    return np.log(p) - np.log1p(-p)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + e^−x), the inverse of `logit`, in x's float type (ONNX scores stay float32). A
    far-negative x overflows e^−x to inf and gives 0.0, rightly, without a warning."""
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-x))


@dataclass(frozen=True)
class Calibrator:
    """One topic's map from a model score to a calibrated probability (strictly increasing)."""

    kind: str = "none"
    a: float = 1.0
    b: float = 0.0
    x: tuple[float, ...] = ()
    y: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in CALIBRATORS:
            raise ValueError(f"calibrator kind must be one of {CALIBRATORS}, got {self.kind!r}")
        if self.kind == "temperature" and not (np.isfinite(self.a) and self.a > 0 and np.isfinite(self.b)):
            raise ValueError(f"a temperature calibrator needs a finite a > 0 and a finite b, got {self.a}, {self.b}")
        if self.kind == "isotonic":
            x, y = np.asarray(self.x, dtype=np.float64), np.asarray(self.y, dtype=np.float64)
            if len(x) < 2 or len(x) != len(y) or not (np.all(np.diff(x) > 0) and np.all(np.diff(y) > 0)):
                raise ValueError("an isotonic calibrator needs ≥ 2 knots, strictly increasing in x and y")
            if not (np.all(np.isfinite(y)) and y[0] > 0 and y[-1] < 1):
                raise ValueError("an isotonic calibrator's values must lie strictly between 0 and 1")

    def __call__(self, scores: np.ndarray | float) -> np.ndarray:
        p = np.asarray(scores, dtype=np.float64)
        if self.kind == "none":
            return p.copy()
        if self.kind == "temperature":
            return sigmoid(self.a * logit(p) + self.b)
        return np.interp(p, self.x, self.y)

    def to_dict(self) -> dict[str, Any]:
        if self.kind == "none":
            return {"kind": "none"}
        if self.kind == "temperature":
            return {"kind": "temperature", "a": float(self.a), "b": float(self.b)}
        return {"kind": "isotonic", "x": [float(v) for v in self.x], "y": [float(v) for v in self.y]}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Calibrator:
        kind = values.get("kind")
        if kind == "temperature":
            return cls("temperature", a=float(values["a"]), b=float(values["b"]))
        if kind == "isotonic":
            return cls("isotonic", x=tuple(map(float, values["x"])), y=tuple(map(float, values["y"])))
        return cls(str(kind))


IDENTITY = Calibrator()


def _fit_temperature(y: np.ndarray, p: np.ndarray) -> Calibrator:
    from sklearn.linear_model import LogisticRegression  # the fits alone need scikit-learn: serving starts without it

    if len(np.unique(y)) < 2:
        return IDENTITY
    model = LogisticRegression(C=1e6, max_iter=1000).fit(logit(p)[:, None], y)
    a, b = float(model.coef_[0, 0]), float(model.intercept_[0])
    return Calibrator("temperature", a=a, b=b) if a > 0 else IDENTITY


def _fit_isotonic(y: np.ndarray, p: np.ndarray) -> Calibrator:
    """Isotonic regression, made strictly increasing and defined on all of [0, 1]: its steps become
    a piecewise-linear curve through the steps' ends, nudged by 1e-6 per knot where flat."""
    from sklearn.isotonic import IsotonicRegression

    if len(np.unique(y)) < 2:
        return IDENTITY
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(p, y)
    x = np.concatenate([[0.0], iso.X_thresholds_, [1.0]])
    v = np.concatenate([[iso.y_thresholds_[0]], iso.y_thresholds_, [iso.y_thresholds_[-1]]])
    x, keep = np.unique(x, return_index=True)
    v = v[keep]
    # Shrink into (0, 1), then nudge: a knot never equals the one before it.
    v = 0.001 + 0.998 * np.clip(v, 0.0, 1.0)
    for i in range(1, len(v)):
        v[i] = max(v[i], v[i - 1] + 1e-6)
    if v[-1] >= 1.0:
        v = v * (0.999 / v[-1])
    return Calibrator("isotonic", x=tuple(x.tolist()), y=tuple(v.tolist()))


_FITTERS = {"none": lambda y, p: IDENTITY, "temperature": _fit_temperature, "isotonic": _fit_isotonic}


def _loss(y: np.ndarray, p: np.ndarray) -> float:
    from sklearn.metrics import log_loss

    return float(log_loss(y, np.clip(p, EPS, 1 - EPS), labels=[0, 1]))


def fit_calibrator(
    y: np.ndarray, scores: np.ndarray, kinds: Sequence[str] = CALIBRATORS, folds: int = 5, seed: int = 0
) -> tuple[Calibrator, dict[str, float]]:
    """The calibrator among `kinds` with the lowest cross-validated log-loss, refitted on all the
    data, and every kind's cross-validated log-loss. Few examples of either class: `none`."""
    from sklearn.model_selection import StratifiedKFold

    y = np.asarray(y).astype(int)
    p = np.asarray(scores, dtype=np.float64)
    k = min(folds, int(y.sum()), int(len(y) - y.sum()))
    if k < 2:
        return IDENTITY, {}
    losses = {kind: 0.0 for kind in kinds}
    for train, test in StratifiedKFold(k, shuffle=True, random_state=seed).split(p, y):
        for kind in kinds:
            calibrator = _FITTERS[kind](y[train], p[train])
            losses[kind] += _loss(y[test], calibrator(p[test])) * len(test) / len(y)
    best = min(kinds, key=lambda kind: (round(losses[kind], 9), kinds.index(kind)))
    return _FITTERS[best](y, p), losses


def expected_calibration_error(y: np.ndarray, scores: np.ndarray, bins: int = ECE_BINS) -> float:
    """ECE with equal-mass bins: the texts sorted by score, cut into `bins` groups of equal size; the
    size-weighted mean gap between each group's mean score and its share of positives."""
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(scores, dtype=np.float64)
    if len(p) == 0:
        return float("nan")
    order = np.argsort(p, kind="stable")
    return float(
        sum(len(g) * abs(y[g].mean() - p[g].mean()) for g in np.array_split(order, min(bins, len(p))) if len(g))
        / len(p)
    )


def reliability(y: np.ndarray, scores: np.ndarray, bins: int = ECE_BINS) -> tuple[np.ndarray, np.ndarray]:
    """Per equal-mass bin: the mean score and the share of positives (a reliability diagram's points)."""
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(scores, dtype=np.float64)
    groups = [g for g in np.array_split(np.argsort(p, kind="stable"), min(bins, max(len(p), 1))) if len(g)]
    return np.array([p[g].mean() for g in groups]), np.array([y[g].mean() for g in groups])


# --- the review band ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Band:
    """One topic's review band on its calibrated score: automatic above `accept` (given) and below
    `reject` (not given); in between, decided by the threshold and flagged for review."""

    reject: float
    accept: float

    def needs_review(self, score: float) -> bool:
        return self.reject <= score < self.accept


def fit_band(y: np.ndarray, scores: np.ndarray, threshold: float, target: float = DEFAULT_REVIEW_TARGET) -> Band:
    """The narrowest band around `threshold` outside which precision and recall are both ≥ `target`.

    `accept` is the lowest cut (≥ threshold) whose automatic positives reach the precision target;
    `reject` then the highest cut (≤ threshold) that keeps recall over the automatic decisions at
    the target. Scores should be held out (cross-fitted), or the band is too narrow.
    """
    y = np.asarray(y).astype(bool)
    s = np.asarray(scores, dtype=np.float64)
    cuts = np.unique(np.concatenate([s, [threshold]]))
    accept = 1.0  # nothing automatic above (a calibrated score reaches 1 only when it is certain)
    for cut in cuts[cuts >= threshold]:
        above = s >= cut
        if not above.any() or y[above].mean() >= target:
            accept = float(cut)
            break
    tp = int((y & (s >= accept)).sum())
    reject = 0.0
    for cut in cuts[cuts <= threshold][::-1]:
        missed = int((y & (s < cut)).sum())
        if tp + missed == 0 or tp / (tp + missed) >= target:
            reject = float(cut)
            break
    return Band(reject=min(reject, threshold), accept=max(accept, threshold))


def fit_bands(
    y: np.ndarray, scores: np.ndarray, thresholds: np.ndarray, targets: Sequence[float] = REVIEW_TARGETS
) -> dict[str, dict[str, list[float]]]:
    """Per target, every topic's band: `{"0.99": {"reject": [...], "accept": [...]}, ...}` (card form)."""
    y, scores = np.asarray(y), np.asarray(scores)
    out = {}
    for target in targets:
        bands = [fit_band(y[:, j], scores[:, j], float(thresholds[j]), target) for j in range(scores.shape[1])]
        out[str(target)] = {"reject": [b.reject for b in bands], "accept": [b.accept for b in bands]}
    return out


def coverage(
    y: np.ndarray, scores: np.ndarray, thresholds: np.ndarray, reject: np.ndarray, accept: np.ndarray
) -> dict[str, float]:
    """What a band does on labelled rows: the share of rows decided automatically (no topic in its
    band), micro-F1 on those rows, and the same per (row, topic) decision."""
    y = np.asarray(y).astype(bool)
    s = np.asarray(scores, dtype=np.float64)
    predicted = s >= np.asarray(thresholds)
    in_band = (s >= np.asarray(reject)) & (s < np.asarray(accept))
    auto_rows = ~in_band.any(axis=1)
    out = {
        "coverage": float(auto_rows.mean()) if len(s) else float("nan"),
        "f1_covered": _micro_f1(y[auto_rows], predicted[auto_rows]),
        "decision_coverage": float((~in_band).mean()) if len(s) else float("nan"),
        "f1_all": _micro_f1(y, predicted),
    }
    auto = ~in_band
    out["decision_f1_covered"] = _pooled_f1(y & auto, predicted & auto)
    return out


def _micro_f1(y: np.ndarray, predicted: np.ndarray) -> float:
    return _pooled_f1(y, predicted) if len(y) else float("nan")


def _pooled_f1(y: np.ndarray, predicted: np.ndarray) -> float:
    """Micro-F1 from the (row, topic) decisions pooled, 1.0 where there is nothing to find or miss.
    Counted, not scikit-learn's: it reads a one-topic matrix as binary and pools the `none` class in."""
    tp = int((y & predicted).sum())
    fp = int((~y & predicted).sum())
    fn = int((y & ~predicted).sum())
    return 2 * tp / (2 * tp + fp + fn) if (tp + fp + fn) else 1.0


def cross_fitted(fit: Any, y: np.ndarray, x: np.ndarray, folds: int = 5, seed: int = 0) -> np.ndarray:
    """Out-of-fold values of `fit(x_train, y_train)(x_test)`, for fitting on held-out scores."""
    from sklearn.model_selection import KFold

    out = np.zeros(len(x), dtype=np.float64)
    k = max(2, min(folds, len(x)))
    for train, test in KFold(k, shuffle=True, random_state=seed).split(x):
        out[test] = fit(x[train], y[train])(x[test])
    return out
