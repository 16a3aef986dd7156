import numpy as np
import pytest

from security_topics.labels import LabelSet
from security_topics.metrics import (
    DEFAULT_GRID,
    bagged_thresholds,
    best_threshold,
    compare_kinds,
    compute_metrics,
    cv_splits,
    f1_by_threshold,
    majority_baseline,
    one_standard_error,
    shared_thresholds,
    support,
    tune_thresholds,
)


def test_metrics_match_hand_computed_values():
    y_true = np.array([[1, 0], [1, 1], [0, 0], [0, 1]])
    y_pred = np.array([[1, 0], [1, 0], [1, 0], [0, 1]])
    m = compute_metrics(y_true, y_pred, ["a", "b"])
    # a: tp=2 fp=1 fn=0 -> p=2/3 r=1 f1=0.8; b: tp=1 fp=0 fn=1 -> p=1 r=.5 f1=2/3
    assert m["a_precision"] == pytest.approx(2 / 3) and m["a_recall"] == 1.0 and m["a_f1"] == pytest.approx(0.8)
    assert m["b_f1"] == pytest.approx(2 / 3)
    assert m["macro_f1"] == pytest.approx((0.8 + 2 / 3) / 2)
    assert m["micro_f1"] == pytest.approx(2 * 3 / (2 * 3 + 1 + 1))
    assert m["exact_match"] == 0.5
    assert m["none_accuracy"] == 0.0  # the one text without topics got a false alarm
    assert not any(k.endswith("_support") for k in m)  # counts are not metrics...
    assert support(y_true, ["a", "b"]) == {"a": 2, "b": 2, "none": 1}  # ...they are reported apart


def test_majority_baseline_predicts_the_most_common_label_set():
    y = np.array([[0, 0], [0, 0], [1, 0]])
    assert majority_baseline(y, 2).tolist() == [[0, 0], [0, 0]]


def test_thresholds_are_tuned_per_topic():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, size=(400, 2))
    # topic 0 separates at 0.3, topic 1 at 0.7
    scores = np.stack(
        [
            np.where(y[:, 0] == 1, rng.uniform(0.3, 0.5, 400), rng.uniform(0.0, 0.28, 400)),
            np.where(y[:, 1] == 1, rng.uniform(0.72, 1.0, 400), rng.uniform(0.4, 0.69, 400)),
        ],
        axis=1,
    )
    t = tune_thresholds(y, scores)
    assert 0.28 < t[0] <= 0.3 and 0.69 < t[1] <= 0.72 + 1e-9
    assert compute_metrics(y, scores >= t, ["a", "b"])["macro_f1"] == 1.0
    assert compute_metrics(y, scores >= 0.5, ["a", "b"])["macro_f1"] < 0.9


def test_topic_without_positives_keeps_the_default_threshold():
    y = np.zeros((10, 1))
    assert tune_thresholds(y, np.linspace(0, 1, 10)[:, None], default=0.5).tolist() == [0.5]


def test_a_shared_threshold_keeps_a_topics_own_offset_in_proportion_to_its_positives():
    rng = np.random.default_rng(1)
    n = 2000
    y = np.zeros((n, 3), dtype=int)
    y[:1000, 0] = 1  # 1,000 positives, separating at 0.3
    y[:20, 1] = 1  # 20 positives, separating at 0.7: its offset counts half (SHRINK = 20)
    scores = rng.uniform(0.0, 0.25, (n, 3))
    scores[:1000, 0] = rng.uniform(0.3, 0.4, 1000)
    scores[:, 1] = np.where(y[:, 1] == 1, rng.uniform(0.72, 0.9, n), rng.uniform(0.4, 0.69, n))
    shared = shared_thresholds(y, scores, DEFAULT_GRID)
    own = tune_thresholds(y, scores)
    common = shared[2]  # no positives: exactly the shared threshold
    assert common in DEFAULT_GRID
    assert shared[0] == pytest.approx(common + 1000 / 1020 * (own[0] - common))
    assert shared[1] == pytest.approx(common + 20 / 40 * (own[1] - common))
    assert abs(shared[0] - own[0]) < 0.01 < abs(shared[1] - own[1])


def test_bagged_thresholds_move_less_than_the_plain_fit_when_a_few_rows_change():
    """240 rows, three topics with overlapping scores (a flat-topped F1 curve); ten subsets of 220 rows.
    Measured: the plain shared fit's thresholds span 0.025 / 0.071 / 0.025, the bagged 0.011 / 0.020 / 0.021."""
    rng = np.random.default_rng(0)
    y = (rng.uniform(size=(240, 3)) < 0.15).astype(int)
    scores = np.where(y == 1, rng.beta(6, 1.5, (240, 3)), rng.beta(1.5, 4, (240, 3)))
    fit = lambda rows_y, rows_x: shared_thresholds(rows_y, rows_x, DEFAULT_GRID)  # noqa: E731
    plain, bagged = [], []
    for k in range(10):
        rows = np.random.default_rng(k).choice(240, 220, replace=False)
        plain.append(fit(y[rows], scores[rows]))
        bagged.append(bagged_thresholds(fit, y[rows], scores[rows]))
    assert np.ptp(bagged, axis=0).max() <= 0.035 < 0.05 <= np.ptp(plain, axis=0).max()
    again = bagged_thresholds(fit, y[rows], scores[rows])
    assert np.array_equal(again, bagged[-1])  # the resamples are seeded: the same rows, the same thresholds


def test_the_simplest_kind_within_one_standard_error_of_the_best_wins():
    kinds = ("simple", "rich")
    per_fold = {"simple": [0.8, 0.9], "rich": [0.86, 0.86, 0.88, 0.84]}  # rich's standard error: 0.0082
    assert one_standard_error(kinds, {"simple": 0.855, "rich": 0.86}, per_fold) == "simple"
    assert one_standard_error(kinds, {"simple": 0.84, "rich": 0.86}, per_fold) == "rich"
    assert one_standard_error(kinds, {"simple": 0.9, "rich": 0.86}, per_fold) == "simple"


def test_cv_splits_keep_groups_whole_and_fall_back_to_shuffled_folds():
    groups = [f"2016-H{i % 3}" for i in range(12)]
    splits = cv_splits(12, groups, folds=5)
    assert len(splits) == 3  # no more folds than groups
    for train, held_out in splits:
        assert {groups[i] for i in train}.isdisjoint({groups[i] for i in held_out})
    assert sorted(np.concatenate([held_out for _, held_out in splits]).tolist()) == list(range(12))
    one_group = cv_splits(12, ["2016-H1"] * 12, folds=5, seed=1)
    assert len(one_group) == 5 and all(len(held_out) in (2, 3) for _, held_out in one_group)
    assert [h.tolist() for _, h in one_group] == [h.tolist() for _, h in cv_splits(12, None, folds=5, seed=1)]
    assert len(cv_splits(3, None, folds=5)) == 3  # at most one fold per row


def test_compare_kinds_judges_each_kind_on_its_held_out_decisions():
    y = np.array([[1], [0], [1], [0], [1], [0]])
    scores = np.array([[0.9], [0.2], [0.8], [0.3], [0.7], [0.4]])
    splits = cv_splits(6, ["a", "a", "b", "b", "c", "c"], folds=3)
    fitted_on: list[list[int]] = []

    def fit_score(kind, train, test):
        fitted_on.append(sorted(train.tolist()))
        threshold = {"right": 0.5, "wrong": 0.1}[kind]  # "wrong" passes every row
        return scores[test] * (1 if kind == "right" else 0.5), np.array([threshold])

    best, cv, oof = compare_kinds(("wrong", "right"), splits, y, fit_score)
    assert best == "right" and cv["right"] == 1.0 and cv["wrong"] == pytest.approx(2 / 3)
    assert oof["right"].ravel().tolist() == scores.ravel().tolist()  # every row scored once, in place
    assert oof["wrong"].ravel().tolist() == (scores.ravel() * 0.5).tolist()
    held_out = [sorted(test.tolist()) for _, test in splits]
    rests = [sorted(set(range(6)) - set(test)) for test in held_out for _ in range(2)]
    assert fitted_on == rests  # each kind fitted on each fold's other rows


def test_one_topic_is_scored_alone_not_averaged_with_the_none_class():
    y_true, y_pred = np.array([[1], [1], [0], [1]]), np.array([[1], [0], [1], [1]])  # the none class: F1 0
    metrics = compute_metrics(y_true, y_pred, ["aviation"])
    assert metrics["macro_f1"] == metrics["micro_f1"] == metrics["aviation_f1"] == pytest.approx(2 / 3)
    assert metrics["aviation_precision"] == metrics["aviation_recall"] == pytest.approx(2 / 3)


def test_label_set_encodes_and_rejects_bad_sets():
    labels = LabelSet.of(["a", "b", "c"])
    assert labels.encode(["c", "a"]).tolist() == [1, 0, 1]
    assert labels.decode([0, 1, 1]) == ("b", "c")
    assert labels.encode_many([]).shape == (0, 3)
    with pytest.raises(ValueError, match="repeats"):
        LabelSet.of(["a", "a"])
    with pytest.raises(ValueError, match="empty"):
        LabelSet.of([])
    with pytest.raises(ValueError, match="bad topic id"):
        LabelSet.of(["a|b"])


def test_threshold_ties_go_to_the_one_nearest_the_default():
    y = np.array([0, 0, 1, 1])
    scores = np.array([0.1, 0.2, 0.8, 0.9])  # every threshold in (0.2, 0.8] separates perfectly
    assert best_threshold(y, scores, grid=(0.3, 0.45, 0.6, 0.75), default=0.5) == 0.45
    assert best_threshold(y, scores, grid=(0.3, 0.45, 0.6, 0.75), default=0.7) == 0.75
    assert best_threshold(y, scores, grid=(0.4, 0.6), default=0.5) == 0.4  # equally near: the lower


def test_a_score_equal_to_the_threshold_passes():
    y = np.array([1, 0])
    assert best_threshold(y, np.array([0.5, 0.3]), grid=(0.5, 0.55), default=0.9) == 0.5


def test_the_threshold_sweep_gives_scikit_learns_f1_at_every_threshold():
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(3)
    y = rng.random((200, 4)) < [0.3, 0.05, 0.0, 1.0]  # a rare topic, one never present, one always present
    scores = np.clip(y * 0.3 + rng.random((200, 4)) * 0.8, 0, 1)
    scores[:, 1] = 0.0  # never predicted at any positive threshold
    swept = f1_by_threshold(y, scores, DEFAULT_GRID)
    assert swept.shape == (len(DEFAULT_GRID), 4)
    for i, t in enumerate(DEFAULT_GRID):
        expected = f1_score(y, scores >= t, average=None, zero_division=0)
        np.testing.assert_allclose(swept[i], expected, rtol=0, atol=1e-12)
    assert swept[:, 2].tolist() == [0.0] * len(DEFAULT_GRID)  # no positive, whatever is predicted
    np.testing.assert_allclose(f1_by_threshold(y[:, 0], scores[:, 0], DEFAULT_GRID), swept[:, 0])
