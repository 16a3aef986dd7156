"""Every config composes; hub models fail fast and clearly when offline."""

import time
from pathlib import Path

import hydra
import pytest
from conftest import ROOT, compose_train

from security_topics.models.transformer import ModelNotFoundError, PretrainedEncoder

MODELS = sorted(p.stem for p in (ROOT / "configs" / "model").glob("*.yaml"))
HUB_MODELS = ["arabert", "camelbert_msa", "marbert"]


def test_the_model_group_has_the_expected_choices():
    assert {"tiny", "tfidf", "e5_small", *HUB_MODELS} <= set(MODELS)


@pytest.mark.parametrize("model", MODELS)
def test_every_model_config_composes_and_instantiates(model, tmp_path):
    cfg = compose_train(tmp_path, f"model={model}")
    recipe = hydra.utils.instantiate(cfg.model)
    assert recipe.name == model == cfg.model.name


@pytest.mark.parametrize("experiment", sorted(p.stem for p in (ROOT / "configs" / "experiment").glob("*.yaml")))
def test_every_experiment_config_composes(experiment, tmp_path):
    compose_train(tmp_path, f"experiment={experiment}")


def test_trainer_and_data_choices_compose(tmp_path):
    cfg = compose_train(tmp_path, "trainer=gpu", "trainer.epochs=3")
    assert cfg.trainer.device == "cuda" and cfg.trainer.epochs == 3
    assert cfg.evaluate.model_uri == cfg.save_dir == cfg.paths.model_dir


@pytest.mark.parametrize("model", HUB_MODELS)
def test_hub_models_fail_fast_offline_with_what_to_do(model, tmp_path):
    cfg = compose_train(tmp_path, f"model={model}")
    encoder = hydra.utils.instantiate(cfg.model).encoder
    started = time.perf_counter()
    with pytest.raises(ModelNotFoundError) as err:
        encoder.build([], seed=0)
    assert time.perf_counter() - started < 10
    message = str(err.value)
    assert cfg.model.encoder.name_or_path in message
    assert "HF_HUB_OFFLINE=1" in message and "model=e5_small" in message


def test_e5_from_the_hub_takes_the_same_offline_path(tmp_path):
    cfg = compose_train(tmp_path, "model=e5_small", "model.encoder.source=hub")
    with pytest.raises(ModelNotFoundError, match="intfloat/multilingual-e5-small"):
        hydra.utils.instantiate(cfg.model).encoder.build([], seed=0)


def test_a_local_directory_without_weights_is_reported(tmp_path):
    with pytest.raises(ModelNotFoundError, match=str(tmp_path)):
        PretrainedEncoder(str(tmp_path)).build([], seed=0)


def test_outputs_go_under_experiments_and_the_working_directory_stays(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # mlflow.set_tracking_uri exports it
    cfg = compose_train(tmp_path, "model=tfidf")
    from omegaconf import OmegaConf

    hydra_cfg = OmegaConf.to_container(OmegaConf.load(ROOT / "configs" / "hydra" / "default.yaml"))
    assert hydra_cfg["job"]["chdir"] is False
    assert hydra_cfg["run"]["dir"].startswith("${paths.experiments_dir}")
    assert hydra_cfg["sweep"]["dir"].startswith("${paths.experiments_dir}")
    assert cfg.tracking.uri is None  # MLFLOW_TRACKING_URI, read at run time, else the local store:
    assert Path(cfg.tracking.local_uri.removeprefix("sqlite:///")).parent == Path(cfg.paths.experiments_dir)
