"""Finding label errors: corruption on purpose, cleanlab's ranking of out-of-fold scores, the summary."""

import numpy as np

from security_topics.data import Example
from security_topics.label_review import corrupt, detection_figures, rank_issues, summary
from security_topics.labels import LabelSet

LABELS = LabelSet.of(("a", "b", "c"))


def _examples(n=300):
    return [
        Example(f"نص {i}", (("a",), ("b",), ("c",), ())[i % 4] + (("b",) if i % 10 == 0 else ()), id=f"s{i}")
        for i in range(n)
    ]


def test_corruption_changes_the_share_asked_for_and_keeps_labels_valid():
    examples = _examples()
    corrupted, rows = corrupt(examples, LABELS, share=0.05, seed=3)
    assert len(rows) == 15 and rows == sorted(rows)
    changed = [i for i, (a, b) in enumerate(zip(examples, corrupted)) if set(a.labels) != set(b.labels)]
    assert changed == rows
    assert all(set(e.labels) <= set(LABELS.names) and len(set(e.labels)) == len(e.labels) for e in corrupted)
    assert corrupt(examples, LABELS, 0.05, seed=3)[0] == corrupted  # seeded
    assert [e.text for e in corrupted] == [e.text for e in examples]


def test_rows_whose_scores_contradict_their_labels_rank_first_and_are_flagged():
    examples = _examples(200)
    corrupted, rows = corrupt(examples, LABELS, share=0.05, seed=0)
    rng = np.random.default_rng(0)
    truth = LABELS.encode_many([e.labels for e in examples])  # out-of-fold scores that know the truth
    oof = np.clip(truth * 0.85 + rng.uniform(0, 0.15, truth.shape), 0.001, 0.999)
    issues = rank_issues(corrupted, LABELS, oof)
    figures = detection_figures(issues, rows)
    assert figures == {"corrupted": 10, "precision_at_k": 1.0, "recall_top10": 1.0}
    assert {i.index for i in issues if i.flagged} == set(rows)
    worst = issues[0]
    assert worst.suggested == examples[worst.index].labels  # the labels the scores point to
    report = summary(issues, LABELS)
    assert report["flagged"] == 10 and set(report["per_topic"]) == {"a", "b", "c"}
    assert sum(report["confused_pairs"].values()) >= 10


def test_detection_figures_count_hits_in_the_top_k_and_top_tenth():
    class Ranked:
        def __init__(self, index):
            self.index = index

    ranked = [Ranked(i) for i in (5, 1, 7, 2, 3, 4, 0, 6, 8, 9)]
    assert detection_figures(ranked, [1, 9]) == {"corrupted": 2, "precision_at_k": 0.5, "recall_top10": 0.0}
