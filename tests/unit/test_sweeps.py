"""Sweeps: the best job is named, and the report reads every parameter a job's overrides set."""

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
