"""Comparing runs: the best job of a sweep is named, the report reads every parameter a job's overrides
set, and each run has a one-line description."""

from security_topics.compare_runs import swept_parameters
from security_topics.sweeps import best_job


def test_the_best_job_is_the_highest_scored_and_unscored_jobs_are_passed_over():
    jobs = [
        {"job": 0, "overrides": ["model.C=1.0"], "value": 0.71},
        {"job": 1, "overrides": ["model.C=8.0"], "value": None},  # failed, or returned no number
        {"job": 2, "overrides": ["model.C=4.0"], "value": 0.83},
        {"job": 3, "overrides": ["model.C=2.0"], "value": 0.83},  # a tie keeps the first
    ]
    assert best_job(jobs) == {"job": 2, "overrides": ["model.C=4.0"], "value": 0.83}
    assert best_job(jobs, "minimize")["job"] == 0
    assert best_job([{"job": 0, "overrides": [], "value": None}]) is None


def test_swept_parameters_split_on_commas_outside_brackets_and_quotes():
    tag = "model=tfidf,model.C=8.0,+review.target=0.9,model.ngram=[1,2],data.name='a,b',++x.y={k: 1, j: 2}"
    assert swept_parameters(tag) == {
        "model": "tfidf",
        "model.C": "8.0",
        "review.target": "0.9",
        "model.ngram": "[1,2]",
        "data.name": "'a,b'",
        "x.y": "{k: 1, j: 2}",
    }
    assert swept_parameters("") == {}


def test_a_runs_description_names_the_model_its_precision_and_the_compared_figures():
    from security_topics.train import describe_run

    metrics = {"val_macro_f1": 0.91734, "test_macro_f1": 0.962, "article_macro_f1": 0.975, "train_seconds": 1103.4}
    assert describe_run("e5_tfidf", {"train_precision": "bf16", "precision": "bf16"}, metrics) == (
        "e5_tfidf, trained in bf16 · val macro-F1 0.917 · test 0.962 · test articles 0.975 · 1103 s"
    )
    assert describe_run("tfidf", {}, {"val_macro_f1": 0.8, "train_seconds": 2.0}) == "tfidf · val macro-F1 0.800 · 2 s"
