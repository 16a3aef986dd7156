"""End to end on the fixture: train tfidf and tiny, track in MLflow, reload, evaluate, resume."""

import json
import os

import mlflow
import numpy as np
import pandas as pd
import pytest
from helpers import compose_config, compose_train, logged_run, train_run
from omegaconf import OmegaConf
from scipy.special import expit

from security_topics import tracking
from security_topics.calibration import logit
from security_topics.corpus import CorpusSpec, load_splits
from security_topics.data import read_sentences
from security_topics.decisions import decide
from security_topics.errors import ConfigError
from security_topics.labels import LabelSet
from security_topics.metrics import compute_metrics, majority_baseline
from security_topics.mlflow_model import log_model
from security_topics.predictor import Predictor

pytestmark = pytest.mark.slow


def _splits(cfg):
    return load_splits(CorpusSpec.from_mapping(OmegaConf.to_container(cfg.data, resolve=True)))


def _majority_macro_f1(cfg, level):
    labels = LabelSet.of(cfg.data.labels)
    splits = _splits(cfg)
    train, held_out = (
        (splits.sentences["train"], splits.sentences["test"])
        if level == "test"
        else (splits.articles["validation"], splits.articles["test"])
    )
    y_train = labels.encode_many([e.labels for e in train])
    y_test = labels.encode_many([e.labels for e in held_out])
    return compute_metrics(y_test, majority_baseline(y_train, len(y_test)), labels.names)["macro_f1"]


@pytest.mark.parametrize("run", ["tfidf_run", "tiny_run"])
def test_trained_models_beat_the_majority_baseline_on_sentences_and_articles(run, request):
    run = request.getfixturevalue(run)
    metrics = run.metrics
    assert metrics["test_macro_f1"] > _majority_macro_f1(run.cfg, "test") + 0.4, metrics["test_macro_f1"]
    assert metrics["article_macro_f1"] > _majority_macro_f1(run.cfg, "article") + 0.3, metrics["article_macro_f1"]
    assert metrics["test_exact_match"] > 0.4


def test_mlflow_run_holds_params_metrics_and_artifacts(tiny_run):
    run = logged_run(tiny_run)
    assert run.data.params["model.name"] == "tiny"
    assert run.data.params["trainer.epochs"] == "6"
    assert {"git_commit", "data_fingerprint"} <= set(run.data.tags)
    assert run.data.metrics["test_macro_f1"] == pytest.approx(tiny_run.metrics["test_macro_f1"])
    assert not [k for k in run.data.metrics if k.endswith("_support")]  # counts live in the report files
    client = mlflow.MlflowClient()
    history = client.get_metric_history(run.info.run_id, "eval_macro_f1")
    assert len(history) >= 2 and len({m.step for m in history}) == len(history)
    assert client.get_metric_history(run.info.run_id, "loss")
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "eval")}
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
    assert "name: tiny" in mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/config.yaml")


def test_saved_model_directory_is_self_describing(tiny_run):
    cfg, model_dir = tiny_run.cfg, tiny_run.model_dir
    card = json.loads(open(model_dir + "/security_topics.json").read())
    assert card["labels"] == list(cfg.data.labels) and card["format_version"] == 3
    assert len(card["thresholds"]) == len(card["labels"]) == len(card["article_rule"]["thresholds"])
    assert card["article_rule"]["kind"] in ("max", "logistic")
    assert card["normalization"]["diacritics"] is True
    assert {"model.safetensors", "tokenizer.json", "config.json", "training_config.yaml"} <= set(os.listdir(model_dir))


def test_calibration_changes_scores_not_labels_and_old_cards_behave_as_before(tfidf_run, tmp_path):
    """The test split's label sets, sentences and articles, are the same with the card's calibrators
    and without them (a version-2 card: no calibration, no band), and the scores are calibrated."""
    import shutil

    splits = _splits(tfidf_run.cfg)
    sentences, articles = splits.sentences["test"], splits.articles["test"]
    old = tmp_path / "v2"
    shutil.copytree(tfidf_run.model_dir, old)
    card = json.loads((old / "security_topics.json").read_text())
    assert card["calibration"]["sentence"] and card["calibration"]["article"] and card["review"]["bands"]
    card.update(format_version=2)
    del card["calibration"], card["review"]
    (old / "security_topics.json").write_text(json.dumps(card))
    new, before = (
        decide(Predictor.load(tfidf_run.model_dir), sentences, articles),
        decide(Predictor.load(old), sentences, articles),
    )
    assert np.array_equal(new.sentence_labels, before.sentence_labels)
    assert np.array_equal(new.article_labels, before.article_labels)
    assert np.array_equal(new.sentence_raw, before.sentence_raw) and np.array_equal(
        before.sentence_scores, before.sentence_raw
    )
    assert not np.allclose(new.sentence_scores, before.sentence_scores) or not np.allclose(
        new.article_scores, before.article_scores
    )
    assert not before.needs_review.any() and Predictor.load(old).review_target is None


def test_a_version_1_model_directory_still_loads(tfidf_run, tmp_path):
    import shutil

    old = tmp_path / "old"
    shutil.copytree(tfidf_run.model_dir, old)
    card = json.loads((old / "security_topics.json").read_text())
    card["format_version"] = 1
    del card["article_rule"], card["calibration"], card["review"]  # version 1 had none of them
    (old / "security_topics.json").write_text(json.dumps(card))
    predictor = Predictor.load(old)
    assert predictor.article_rule.kind == "max"
    assert predictor.article_thresholds.tolist() == card["thresholds"]


@pytest.mark.parametrize("run", ["tfidf_run", "tiny_run"])
def test_predictor_is_the_same_from_the_directory_and_from_mlflow(run, request, capfd, monkeypatch):
    run = request.getfixturevalue(run)
    articles = _splits(run.cfg).articles["test"][:4]
    texts, titles = [a.text for a in articles], [a.title for a in articles]
    local = Predictor.load(run.model_dir).predict_articles(texts, titles)
    logged = logged_run(run)
    run_id = logged.info.run_id
    description = logged.data.tags["mlflow.note.content"]  # the run's line in the MLflow UI
    assert (
        description.startswith(f"{run.cfg.model.name}")
        and f"val macro-F1 {run.metrics['val_macro_f1']:.3f}" in description
    )
    monkeypatch.delenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", raising=False)
    capfd.readouterr()
    remote = Predictor.load(f"runs:/{run_id}/model").predict_articles(texts, titles)
    assert "Downloading artifacts" not in capfd.readouterr().err  # no bar on stderr at every runs:/ load
    assert [r.to_dict() for r in local] == [r.to_dict() for r in remote]

    pyfunc = mlflow.pyfunc.load_model(f"runs:/{run_id}/model")
    frame = pyfunc.predict(pd.DataFrame({"text": texts, "title": titles}))
    assert frame["topics"].tolist() == [list(r.labels) for r in local]
    assert frame["scores"].tolist() == [r.scores for r in local]
    assert frame["needs_review"].tolist() == [r.needs_review for r in local]
    assert frame["evidence"].tolist() == [
        [{"topic": t.topic, **e.to_dict()} for t in r.topics for e in t.evidence] for r in local
    ]
    assert all("highlights" not in e for row in frame["evidence"] for e in row)  # only when asked for
    shown = pyfunc.predict(pd.DataFrame({"text": texts, "title": titles}), params={"highlights": True})
    local_shown = Predictor.load(run.model_dir).predict_articles(texts, titles, highlights=True)
    assert shown["evidence"].tolist() == [r.to_row()["evidence"] for r in local_shown]
    assert any(e["highlights"] for row in shown["evidence"] for e in row)
    every = pyfunc.predict(pd.DataFrame({"text": texts, "title": titles}), params={"max_evidence": 0})
    assert all(len(a) >= len(b) for a, b in zip(every["evidence"], frame["evidence"]))
    loose = pyfunc.predict(pd.DataFrame({"text": texts, "title": titles}), params={"review_target": 0.9})
    strict = Predictor.load(run.model_dir, review_target=0.9).predict_articles(texts, titles)
    assert loose["needs_review"].tolist() == [r.needs_review for r in strict]


def test_evaluate_entry_point_scores_a_logged_model(tfidf_run, workspace):
    from security_topics.evaluate import evaluate

    metrics = tfidf_run.metrics
    run_id = logged_run(tfidf_run).info.run_id
    out = workspace / "eval-out"
    cfg = compose_config("evaluate", workspace, f"model_uri=runs:/{run_id}/model", f"output_dir={out}")
    result = evaluate(cfg)
    assert result["test_macro_f1"] == pytest.approx(metrics["test_macro_f1"])
    assert result["article_macro_f1"] == pytest.approx(metrics["article_macro_f1"])
    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk["test"]["macro_f1"] == pytest.approx(result["test_macro_f1"])
    assert json.loads((out / "test_metrics.json").read_text())["support"]["none"] > 0


def test_a_resumed_run_continues_in_its_own_folder_and_links_the_run_it_resumes(workspace):
    common = ("model=tiny", "save_dir=null", "tracking.log_model=false", "trainer.save_optimizer=true")
    first = train_run(workspace, "resume", *common, "trainer.epochs=1")
    old = first.dir / "checkpoints"
    assert (next(old.glob("checkpoint-*")) / "optimizer.pt").is_file()
    before = sorted(p.relative_to(old) for p in old.rglob("*"))
    second = train_run(workspace, "resumed", *common, "trainer.epochs=2", f"trainer.resume={old}")

    assert sorted(p.relative_to(old) for p in old.rglob("*")) == before  # the resumed-from folder is intact
    new = second.dir / "checkpoints"
    steps = sorted(int(p.name.split("-")[1]) for p in new.glob("checkpoint-*"))
    state = json.loads((new / f"checkpoint-{steps[-1]}" / "trainer_state.json").read_text())
    first_steps = int(next(old.glob("checkpoint-*")).name.split("-")[1])
    assert state["epoch"] == 2.0 and state["global_step"] == 2 * first_steps

    mlflow.set_tracking_uri(tracking.resolve_uri(second.cfg.tracking.uri, second.cfg.tracking.local_uri))
    run_ids = [json.loads((r.dir / "mlflow_run.json").read_text())["run_id"] for r in (first, second)]
    tags = mlflow.get_run(run_ids[1]).data.tags
    assert tags["resumed_from_run"] == run_ids[0]
    assert tags["resumed_from_checkpoint"] == str(old.resolve())


def test_the_same_config_twice_gives_the_same_vocabulary_scores_and_metrics(workspace):
    """Seeded, deterministic CPU training: the README promises it, so two runs must agree exactly."""
    common = ("model=tiny", "trainer.max_steps=6", "save_dir=null", "tracking.log_model=false")
    runs = [train_run(workspace, f"twice-{i}", *common) for i in (1, 2)]
    vocabularies = [json.loads((r.dir / "model" / "tokenizer.json").read_text())["model"]["vocab"] for r in runs]
    assert vocabularies[0] == vocabularies[1]
    metrics = [{k: v for k, v in r.metrics.items() if k != "train_seconds"} for r in runs]
    assert metrics[0] == metrics[1]
    texts = [e.text for e in _splits(runs[0].cfg).sentences["test"][:20]]
    scores = [Predictor.load(r.model_dir).score_sentences(texts) for r in runs]
    np.testing.assert_array_equal(scores[0], scores[1])


def test_checkpoints_hold_no_optimizer_state_unless_asked(tiny_run):
    checkpoint = next((tiny_run.dir / "checkpoints").glob("checkpoint-*"))
    assert (checkpoint / "model.safetensors").is_file() and not (checkpoint / "optimizer.pt").exists()


def test_prepared_splits_do_not_share_texts(workspace):
    cfg = compose_train(workspace, "model=tfidf")
    splits = _splits(cfg)
    seen = {}
    for name, examples in splits.sentences.items():
        for e in examples:
            assert seen.setdefault(e.text, name) == name
    labels = LabelSet.of(cfg.data.labels)
    written = read_sentences(cfg.data.sentences, labels)
    real = read_sentences(cfg.data.real.sentences, labels)
    # every written and every real sentence lands in exactly one split (the fixture repeats no line)
    assert sum(len(v) for v in splits.sentences.values()) == len(written) + len(real)
    assert len(splits.sentences["test_real"]) > 0
    assert {a.id for a in splits.articles["validation"]}.isdisjoint(a.id for a in splits.articles["test"])


def test_bad_threshold_mode_stops_before_training(workspace):
    from security_topics.train import train

    never = workspace / "never"
    with pytest.raises(ConfigError, match="thresholds.mode must be 'tune' or 'fixed', got 'tuned'"):
        train(compose_train(workspace, "model=tfidf", "thresholds.mode=tuned", f"output_dir={never}"))
    with pytest.raises(ConfigError, match="thresholds.value must be a number between 0 and 1, got 'abc'"):
        train(compose_train(workspace, "model=tfidf", "thresholds.mode=fixed", "thresholds.value=abc"))
    assert not never.exists()


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


def test_a_registered_model_loads_from_its_models_uri(tfidf_run, tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    tracking.configure(uri, "registry-test", tmp_path / "artifacts")
    with tracking.start_run("register", tags={}):
        log_model(tfidf_run.dir / "model", registered_name="security-topics-test")
    text = "ضبط شحنة كبتاجون في ميناء جدة"
    from_registry = Predictor.load("models:/security-topics-test/1", tracking_uri=uri).predict_article(text)
    local = Predictor.load(tfidf_run.model_dir).predict_article(text)
    assert from_registry.to_dict() == local.to_dict()
    assert mlflow.MlflowClient(uri).get_registered_model("security-topics-test").name == "security-topics-test"


def test_an_ensemble_trains_saves_and_loads_like_any_model(workspace):
    run = train_run(
        workspace,
        "ensemble",
        "model=tiny_tfidf",
        "trainer.epochs=4",
        "save_dir=null",
        "tracking.log_model=false",
    )
    card = json.loads((run.dir / "model" / "security_topics.json").read_text())
    assert card["family"] == "ensemble" and card["settings"]["members"] == ["tfidf", "tiny"]
    assert sum(card["settings"]["weights"]) == pytest.approx(1.0)
    assert card["settings"]["combination"] == "logits"  # as configs/model/tiny_tfidf.yaml says
    predictor = Predictor.load(run.model_dir)
    member = Predictor.load(run.dir / "model" / "members" / "tfidf")
    texts = ["ضبط شحنة كبتاجون في ميناء جدة", "اختراق خوادم شركة الطيران"]
    w_tfidf = card["settings"]["weights"][0]
    tiny = Predictor.load(run.dir / "model" / "members" / "tiny")
    expected = expit(w_tfidf * logit(member.raw_scores(texts)) + (1 - w_tfidf) * logit(tiny.raw_scores(texts)))
    assert np.allclose(predictor.raw_scores(texts), expected)  # the model's own scores, before calibration
    assert run.metrics["test_macro_f1"] > _majority_macro_f1(run.cfg, "test") + 0.4


def test_save_dir_keeps_a_better_model_unless_told_to_replace_it(tfidf_run, workspace, tmp_path):
    import shutil

    target = tmp_path / "default"
    shutil.copytree(tfidf_run.model_dir, target)
    held = (target / "security_topics.json").read_text()
    worse = ("model=tfidf", "thresholds.mode=fixed", "thresholds.value=0.95", "tracking.log_model=false")
    run = train_run(workspace, "worse", *worse, f"save_dir={target}")
    assert run.metrics["val_macro_f1"] < tfidf_run.metrics["val_macro_f1"]
    assert (target / "security_topics.json").read_text() == held  # kept
    train_run(workspace, "worse-always", *worse, f"save_dir={target}", "save_dir_policy=always")
    assert json.loads((target / "security_topics.json").read_text())["thresholds"] == [0.95] * 5
