"""MLflow set-up: a down server fails fast, params respect MLflow's limits, the registry works."""

import time

import mlflow
import pytest

from security_topics import Predictor, tracking


def test_an_unreachable_server_fails_fast_with_what_to_do():
    started = time.perf_counter()
    with pytest.raises(tracking.TrackingError, match=r"http://127.0.0.1:9 is unreachable.*mlflow server"):
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


@pytest.mark.slow
def test_a_registered_model_loads_from_its_models_uri(tfidf_run, tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    tracking.configure(uri, "registry-test", tmp_path / "artifacts")
    with tracking.start_run("register", tags={}):
        tracking.log_model(tfidf_run.dir / "model", registered_name="security-topics-test")
    text = "ضبط شحنة كبتاجون في ميناء جدة"
    from_registry = Predictor.load("models:/security-topics-test/1", tracking_uri=uri).predict_article(text)
    local = Predictor.load(tfidf_run.model_dir).predict_article(text)
    assert from_registry.to_dict() == local.to_dict()
    assert mlflow.MlflowClient(uri).get_registered_model("security-topics-test").name == "security-topics-test"
