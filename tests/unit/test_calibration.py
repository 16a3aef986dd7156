"""Calibration and the review band, pinned on synthetic scores (no model, milliseconds)."""

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from security_topics.calibration import (
    IDENTITY,
    Band,
    Calibrator,
    coverage,
    expected_calibration_error,
    fit_band,
    fit_bands,
    fit_calibrator,
    logit,
    sigmoid,
)


def _scores(rng, n, true_prob):
    """Model scores uniform on (0, 1); a text carries the topic with probability true_prob(score)."""
    p = rng.uniform(0.001, 0.999, n)
    return p, (rng.uniform(0, 1, n) < true_prob(p)).astype(int)


def _logit(p):
    return np.log(p) - np.log1p(-p)


def test_overconfident_scores_get_a_temperature():
    # The model says 0.95 where the truth is sigmoid(logit(0.95) / 3): far too sure of itself.
    p, y = _scores(np.random.default_rng(0), 3000, lambda p: 1 / (1 + np.exp(-_logit(p) / 3)))
    calibrator, losses = fit_calibrator(y, p)
    assert calibrator.kind == "temperature" and calibrator.a == pytest.approx(1 / 3, abs=0.08)
    assert losses["temperature"] < losses["none"] - 0.02
    assert expected_calibration_error(y, calibrator(p)) < expected_calibration_error(y, p) / 2


def test_a_staircase_gets_isotonic():
    # Three plateaus: no sigmoid of the logit follows them, a monotone step function does.
    p, y = _scores(np.random.default_rng(1), 4000, lambda p: np.select([p < 0.3, p < 0.7], [0.1, 0.5], 0.9))
    calibrator, losses = fit_calibrator(y, p)
    assert calibrator.kind == "isotonic"
    assert losses["isotonic"] < min(losses["none"], losses["temperature"])


def test_calibrated_scores_are_left_alone_or_barely_moved():
    p, y = _scores(np.random.default_rng(2), 3000, lambda p: p)
    calibrator, losses = fit_calibrator(y, p)
    assert losses["none"] <= min(losses.values()) + 0.003  # nothing to gain: at most noise
    assert np.abs(calibrator(p) - p).max() < 0.1


def test_too_few_positives_keep_the_scores():
    assert fit_calibrator(np.array([0, 0, 0, 1]), np.array([0.1, 0.2, 0.3, 0.9]))[0] is IDENTITY


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), threshold=st.floats(0.05, 0.95))
def test_every_calibrator_keeps_the_labels_a_threshold_gives(seed, threshold):
    """Calibrators are strictly increasing: `score ≥ t` ⇔ `calibrated ≥ calibrated(t)` (for scores
    apart from t by more than rounding; the predictor itself decides on the model's own scores)."""
    rng = np.random.default_rng(seed)
    p, y = _scores(rng, 300, lambda p: np.clip(p + rng.normal(0, 0.2), 0, 1))
    scores = np.concatenate([p, [threshold, threshold - 1e-9, threshold + 1e-9]])
    for kind in ("temperature", "isotonic"):
        calibrator, _ = fit_calibrator(y, p, kinds=(kind,))
        assert np.array_equal(scores >= threshold, calibrator(scores) >= calibrator(threshold))
        grid = np.linspace(0, 1, 2001)
        assert np.all(np.diff(calibrator(grid)) > 0) or calibrator.kind == "none"


def test_calibrators_travel_as_plain_numbers():
    p, y = _scores(np.random.default_rng(3), 2000, lambda p: np.select([p < 0.5], [0.2], 0.8))
    for kind in ("temperature", "isotonic"):
        calibrator, _ = fit_calibrator(y, p, kinds=(kind,))
        values = calibrator.to_dict()
        assert all(isinstance(v, (str, float, list)) for v in values.values())
        assert np.allclose(Calibrator.from_dict(values)(p), calibrator(p))
    with pytest.raises(ValueError, match="a > 0"):
        Calibrator("temperature", a=-1.0, b=0.0)
    with pytest.raises(ValueError, match="strictly increasing"):
        Calibrator("isotonic", x=(0.0, 0.5, 1.0), y=(0.1, 0.1, 0.9))
    with pytest.raises(ValueError, match="kind"):
        Calibrator("platt")


def test_ece_uses_equal_mass_bins():
    y = np.array([0, 0, 1, 1] * 15)  # 15 bins of 4: each bin's mean score against its share of positives
    assert expected_calibration_error(y, np.full(60, 0.5)) == pytest.approx(0.0)
    assert expected_calibration_error(y, np.full(60, 0.7)) == pytest.approx(0.2)
    perfect = np.repeat(np.linspace(0.05, 0.95, 15), 20)
    labels = np.concatenate([np.r_[np.ones(round(20 * q)), np.zeros(20 - round(20 * q))] for q in perfect[::20]])
    assert expected_calibration_error(labels, perfect) < 0.03


def test_the_band_keeps_what_is_sure_and_routes_the_rest():
    # Negatives score low, positives high; one negative at 0.6 over the threshold 0.5, one positive at 0.45.
    scores = np.array([0.05, 0.1, 0.2, 0.3, 0.6, 0.45, 0.7, 0.8, 0.9, 0.95])
    y = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1, 1])
    band = fit_band(y, scores, threshold=0.5, target=0.99)
    assert band == Band(reject=0.45, accept=0.7)  # the false alarm and the miss are both in the band
    assert not band.needs_review(0.3) and band.needs_review(0.45) and band.needs_review(0.6)
    assert not band.needs_review(0.7)
    loose = fit_band(y, scores, threshold=0.5, target=0.5)
    assert loose.accept - loose.reject <= band.accept - band.reject  # a lower target, a narrower band


def test_coverage_reports_the_share_decided_and_f1_on_it():
    scores = np.array([[0.1, 0.9], [0.6, 0.2], [0.95, 0.05], [0.5, 0.5]])
    y = np.array([[0, 1], [0, 0], [1, 0], [1, 1]])
    thresholds = np.array([0.5, 0.5])
    bands = fit_bands(y, scores, thresholds, targets=(0.99,))["0.99"]
    assert set(bands) == {"reject", "accept"} and len(bands["reject"]) == 2
    figures = coverage(y, scores, thresholds, np.array([0.4, 0.4]), np.array([0.7, 0.7]))
    assert figures["coverage"] == 0.5  # rows 1 (0.6) and 3 (0.5) have a topic in the band
    assert figures["f1_covered"] == 1.0  # rows 0 and 2 are right
    assert figures["decision_coverage"] == pytest.approx(5 / 8)


def test_coverage_of_one_topic_pools_the_topic_alone():
    y, scores = np.array([[1], [1], [0], [1]]), np.array([[0.9], [0.1], [0.8], [0.7]])  # 2 right, 1 missed, 1 false
    figures = coverage(y, scores, np.array([0.5]), np.array([0.0]), np.array([0.0]))  # empty band
    assert figures["f1_all"] == figures["f1_covered"] == figures["decision_f1_covered"] == pytest.approx(2 / 3)


def test_a_steep_temperature_saturates_without_overflow_warnings():
    steep = Calibrator("temperature", a=80.0, b=-3.0)  # exp(-(80 · logit(1e-6) - 3)) overflows float64
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scores = steep(np.array([0.0, 1e-6, 0.5, 1.0]))
    assert scores[0] == 0.0 and scores[1] == 0.0 and 0.0 < scores[2] < 1.0 and scores[3] == 1.0


def test_sigmoid_inverts_logit_keeps_float32_and_saturates_silently():
    p = np.array([1e-4, 0.2, 0.5, 0.9, 1 - 1e-4])
    assert sigmoid(logit(p)) == pytest.approx(p, rel=1e-9)
    assert sigmoid(np.array([-2.0, 0.0, 3.0], dtype=np.float32)).dtype == np.float32  # ONNX scores stay float32
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert sigmoid(np.array([-1000.0]))[0] == 0.0 and sigmoid(np.array([1000.0]))[0] == 1.0
