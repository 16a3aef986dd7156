"""End to end on the fixture: train tfidf and tiny, track in MLflow, reload, evaluate."""

import json

import mlflow
import numpy as np
import pandas as pd
import pytest
from conftest import compose_train, train_run

from security_topics.data import read_articles, read_sentences
from security_topics.evaluation import compute_metrics, majority_baseline
from security_topics.labels import LabelSet
from security_topics.predictor import Predictor
from security_topics.prepare import load_splits


def _baseline_macro_f1(cfg):
    labels = LabelSet.of(cfg.data.labels)
    splits = load_splits(cfg.data)
    y_train = labels.encode_many([e.labels for e in splits["train"]])
    y_test = labels.encode_many([e.labels for e in splits["test"]])
    return compute_metrics(y_test, majority_baseline(y_train, len(y_test)), labels.names)["macro_f1"]


@pytest.mark.slow
@pytest.mark.parametrize("run", ["tfidf_run", "tiny_run"])
def test_trained_models_beat_the_majority_baseline(run, request):
    run = request.getfixturevalue(run)
    cfg, metrics = run.cfg, run.metrics
    baseline = _baseline_macro_f1(cfg)
    assert metrics["test_macro_f1"] > baseline + 0.3, (metrics["test_macro_f1"], baseline)
    assert metrics["article_macro_f1"] > 0.3
    assert metrics["test_exact_match"] > 0.4


def _run_of(run):
    """The MLflow run of a test's training run (run names are `<model>-<run dir name>`)."""
    mlflow.set_tracking_uri(run.cfg.tracking.local_uri)  # conftest unsets MLFLOW_TRACKING_URI
    found = mlflow.search_runs(
        experiment_names=[run.cfg.tracking.experiment],
        filter_string=f"attributes.run_name = '{run.cfg.model.name}-{run.dir.name}'",
        output_format="list",
    )
    assert len(found) == 1
    return found[0]


@pytest.mark.slow
def test_mlflow_run_holds_params_metrics_and_artifacts(tiny_run):
    metrics = tiny_run.metrics
    run = _run_of(tiny_run)
    assert run.data.params["model.name"] == "tiny"
    assert run.data.params["trainer.epochs"] == "6"
    assert {"git_commit", "data_fingerprint"} <= set(run.data.tags)
    assert run.data.metrics["test_macro_f1"] == pytest.approx(metrics["test_macro_f1"])
    history = mlflow.MlflowClient().get_metric_history(run.info.run_id, "eval_macro_f1")
    assert len(history) >= 2 and len({m.step for m in history}) == len(history)
    assert mlflow.MlflowClient().get_metric_history(run.info.run_id, "loss")
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id, "eval")}
    for name in (
        "test_confusion.png",
        "test_precision_recall.png",
        "test_predictions.csv",
        "test_errors.csv",
        "test_classification_report.txt",
        "article_metrics.json",
        "metrics.json",
    ):
        assert f"eval/{name}" in artifacts
    config = mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/config.yaml")
    assert "name: tiny" in config


@pytest.mark.slow
def test_saved_model_directory_is_self_describing(tiny_run):
    cfg, model_dir = tiny_run.cfg, tiny_run.model_dir
    card = json.loads(open(model_dir + "/security_topics.json").read())
    assert card["labels"] == list(cfg.data.labels)
    assert len(card["thresholds"]) == len(card["labels"])
    assert card["normalization"]["diacritics"] is True
    import os

    assert {"model.safetensors", "tokenizer.json", "config.json", "training_config.yaml"} <= set(os.listdir(model_dir))


@pytest.mark.slow
@pytest.mark.parametrize("run", ["tfidf_run", "tiny_run"])
def test_predictor_is_the_same_from_the_directory_and_from_mlflow(run, request):
    run = request.getfixturevalue(run)
    cfg = run.cfg
    articles = read_articles(cfg.data.articles, LabelSet.of(cfg.data.labels))[:4]
    texts, titles = [a.text for a in articles], [a.title for a in articles]
    local = Predictor.load(run.model_dir).predict_articles(texts, titles)
    run_id = _run_of(run).info.run_id
    remote = Predictor.load(f"runs:/{run_id}/model").predict_articles(texts, titles)
    assert [r.to_dict() for r in local] == [r.to_dict() for r in remote]

    pyfunc = mlflow.pyfunc.load_model(f"runs:/{run_id}/model")
    frame = pyfunc.predict(pd.DataFrame({"text": texts, "title": titles}))
    assert frame["topics"].tolist() == ["|".join(r.labels) for r in local]
    assert np.allclose(frame[f"score_{cfg.data.labels[0]}"], [r.scores[cfg.data.labels[0]] for r in local])


@pytest.mark.slow
def test_evaluate_entry_point_scores_a_logged_model(tfidf_run, workspace):
    from security_topics.evaluate import evaluate

    metrics = tfidf_run.metrics
    run_id = _run_of(tfidf_run).info.run_id
    eval_cfg = compose_train(
        workspace, f"evaluate.model_uri=runs:/{run_id}/model", f"evaluate.output_dir={workspace}/eval-out"
    )
    result = evaluate(eval_cfg)
    assert result["test_macro_f1"] == pytest.approx(metrics["test_macro_f1"])
    assert result["article_macro_f1"] == pytest.approx(metrics["article_macro_f1"])
    on_disk = json.loads((workspace / "eval-out" / "metrics.json").read_text())
    assert on_disk["test"]["macro_f1"] == pytest.approx(result["test_macro_f1"])
    assert (workspace / "eval-out" / "article_precision_recall.png").stat().st_size > 1000


@pytest.mark.slow
def test_training_resumes_from_the_last_checkpoint(workspace):
    common = ("model=tiny", "save_dir=null", "tracking.log_model=false")
    first = train_run(workspace, "resume", *common, "trainer.epochs=1")
    checkpoints = first.dir / "checkpoints"
    train_run(workspace, "resume", *common, "trainer.epochs=2", f"trainer.resume={checkpoints}")
    steps = sorted(int(p.name.split("-")[1]) for p in checkpoints.glob("checkpoint-*"))
    state = json.loads((checkpoints / f"checkpoint-{steps[-1]}" / "trainer_state.json").read_text())
    assert state["epoch"] == 2.0 and state["global_step"] == 2 * steps[0]


def test_prepared_splits_do_not_share_texts(workspace):
    cfg = compose_train(workspace, "model=tfidf")
    splits = load_splits(cfg.data)
    seen = {}
    for name, examples in splits.items():
        for e in examples:
            assert seen.setdefault(e.text, name) == name
    raw = read_sentences(cfg.data.sentences, LabelSet.of(cfg.data.labels))
    assert sum(len(v) for v in splits.values()) == len(raw)


def test_bad_threshold_mode_stops_before_training(workspace):
    from security_topics.train import train

    with pytest.raises(ValueError, match="thresholds.mode must be 'tune' or 'fixed', got 'tuned'"):
        train(compose_train(workspace, "model=tfidf", "thresholds.mode=tuned"), run_dir=workspace / "never")
    assert not (workspace / "never").exists()


def test_save_dir_replaces_a_model_but_never_other_files(tmp_path, tfidf_run):
    from security_topics.train import _replace_model_dir

    target = tmp_path / "models" / "default"
    _replace_model_dir(target, tfidf_run.dir / "model")
    _replace_model_dir(target, tfidf_run.dir / "model")  # an earlier model is replaced
    assert (target / "security_topics.json").is_file()
    precious = tmp_path / "notes"
    precious.mkdir()
    (precious / "todo.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not a saved model"):
        _replace_model_dir(precious, tfidf_run.dir / "model")
    assert (precious / "todo.txt").read_text() == "keep me"
