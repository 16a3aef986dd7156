"""MLflow set-up: a down server fails fast, params respect MLflow's limits, the registry works."""

import time

import pytest

from security_topics import tracking
from security_topics.errors import TrackingError


def test_an_unreachable_server_fails_fast_with_what_to_do():
    started = time.perf_counter()
    with pytest.raises(TrackingError, match=r"http://127.0.0.1:9 is unreachable.*mlflow server"):
        tracking.configure("http://127.0.0.1:9", "security-topics")
    assert time.perf_counter() - started < 10


def test_flatten_nests_keys_and_cuts_long_values():
    flat = tracking.flatten({"model": {"lr": 0.001, "encoder": {"name": "x"}}, "notes": "a" * 7000})
    assert flat["model.lr"] == "0.001" and flat["model.encoder.name"] == "x"
    assert len(flat["notes"]) == tracking.MAX_PARAM_LENGTH


def test_explicit_uri_beats_the_environment_which_beats_the_local_store(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking.resolve_uri(None, "sqlite:///local.db") == "sqlite:///local.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://server:5000")
    assert tracking.resolve_uri(None, "sqlite:///local.db") == "http://server:5000"
    assert tracking.resolve_uri("sqlite:///explicit.db", "sqlite:///local.db") == "sqlite:///explicit.db"


def test_a_missing_run_names_the_store_that_was_searched(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    tracking.configure(uri, "empty", tmp_path / "artifacts")
    with pytest.raises(TrackingError, match=r"runs:/0123456789abcdef/model: .*searched the MLflow store sqlite:///"):
        tracking.download_artifacts("runs:/0123456789abcdef/model", uri)


def test_the_default_store_is_the_projects_wherever_the_code_runs(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    from helpers import ROOT

    assert tracking.resolve_uri() == f"sqlite:///{ROOT / 'experiments' / 'mlflow.db'}"
    missing = f"sqlite:///{tmp_path}/nowhere/mlflow.db"
    with pytest.raises(
        TrackingError, match=r"no MLflow store at sqlite:///.*nowhere/mlflow.db \(nothing was created\)"
    ):
        tracking.download_artifacts("runs:/0123/model", missing)
    assert not (tmp_path / "nowhere").exists() and not (tmp_path / "experiments").exists()


def test_logged_requirements_install_elsewhere_and_fit_the_family(tmp_path):
    from helpers import FakeModel

    from security_topics.mlflow_model import requirements

    model = FakeModel({})
    model.card.family = "tfidf"
    model.save(tmp_path / "tfidf")
    model.card.family = "transformer"
    model.save(tmp_path / "transformer")
    tfidf, transformer = requirements(tmp_path / "tfidf"), requirements(tmp_path / "transformer")
    assert not any(r.startswith(("torch==", "transformers==")) for r in tfidf)
    assert any(r.startswith("torch==") for r in transformer) and not any("+" in r for r in transformer)
