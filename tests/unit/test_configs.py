"""Every config composes; hub models fail fast and clearly when offline."""

import time
from pathlib import Path

import hydra
import pytest
from helpers import ROOT, compose_config, compose_train
from omegaconf import OmegaConf

from security_topics.errors import ConfigError, ModelNotFoundError
from security_topics.models.encoders import PretrainedEncoder
from security_topics.recipes.settings import TrainerSettings

MODELS = sorted(p.stem for p in (ROOT / "configs" / "model").glob("*.yaml") if p.stem != "hub_bert")
HUB_MODELS = ["arabert", "camelbert_msa", "marbert"]


def test_the_model_group_has_the_expected_choices():
    assert {"tiny", "tfidf", "e5_small", "e5_tfidf", "tiny_tfidf", *HUB_MODELS} <= set(MODELS)


@pytest.mark.parametrize("model", MODELS)
def test_every_model_config_composes_and_instantiates(model, tmp_path):
    cfg = compose_train(tmp_path, f"model={model}")
    recipe = hydra.utils.instantiate(cfg.model)
    assert recipe.name == model == cfg.model.name


def test_hub_models_share_one_base_and_keep_their_own_settings(tmp_path):
    arabert = compose_train(tmp_path, "model=arabert").model
    camel = compose_train(tmp_path, "model=camelbert_msa").model
    assert arabert._target_ == camel._target_ == "security_topics.recipes.transformer.TransformerRecipe"
    assert arabert.normalization.arabert_v02 is True and camel.normalization.digits is False
    generic = compose_train(tmp_path, "model=hub_bert", "model.encoder.name_or_path=/some/checkpoint").model
    assert hydra.utils.instantiate(generic).encoder.name_or_path == "/some/checkpoint"


@pytest.mark.parametrize("experiment", sorted(p.stem for p in (ROOT / "configs" / "experiment").glob("*.yaml")))
def test_every_experiment_config_composes(experiment, tmp_path):
    compose_train(tmp_path, f"experiment={experiment}")


def test_trainer_settings_are_built_as_an_object(tmp_path):
    cfg = compose_train(tmp_path, "trainer=gpu", "trainer.epochs=3")
    settings = hydra.utils.instantiate(cfg.trainer)
    assert isinstance(settings, TrainerSettings) and settings.device == "cuda" and settings.epochs == 3
    assert cfg.save_dir == cfg.paths.model_dir and cfg.optimized_metric == "val_macro_f1"


@pytest.mark.parametrize(("trainer", "backend", "device"), [("ddp_cpu", "gloo", "cpu"), ("ddp_gpu", "nccl", "cuda")])
def test_torchrun_trainers_name_their_backend(tmp_path, trainer, backend, device):
    settings = hydra.utils.instantiate(compose_train(tmp_path, f"trainer={trainer}").trainer)
    assert (settings.ddp_backend, settings.device) == (backend, device)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("trainer.epochs=abc", "trainer.epochs: expected a number, got 'abc'"),
        ("trainer.batch_size=0", "trainer.batch_size must be ≥ 1, got 0"),
        ("trainer.warmup_ratio=1.5", r"trainer.warmup_ratio must be in \[0, 1\), got 1.5"),
        ("trainer.deterministic=maybe", "trainer.deterministic: expected true or false, got 'maybe'"),
        ("trainer.precision=fp8", "trainer.precision must be one of auto, fp32, bf16, fp16"),
        ("trainer.ddp_backend=mpi", "trainer.ddp_backend must be gloo, nccl or null"),
        ("trainer.sampling=shuffle", "trainer.sampling must be group_by_length or random"),
        ("trainer.resume=/no/such/run/checkpoints", "trainer.resume=/no/such/run/checkpoints: no such folder"),
    ],
)
def test_bad_trainer_settings_name_the_key(tmp_path, override, message):
    cfg = compose_train(tmp_path, override)
    with pytest.raises(ConfigError, match=message):
        TrainerSettings(**{k: v for k, v in OmegaConf.to_container(cfg.trainer).items() if k != "_target_"})


@pytest.mark.parametrize(
    ("model", "override", "message"),
    [
        ("tiny", "model.lr=-0.001", "model.lr must be a number > 0"),
        ("tfidf", "model.C=0", "model.C must be > 0"),
        ("tiny", "model.freeze_word_embeddings=sometimes", "model.freeze_word_embeddings must be true, false or auto"),
    ],
)
def test_bad_model_settings_name_the_key(tmp_path, model, override, message):
    cfg = compose_train(tmp_path, f"model={model}", override)
    with pytest.raises(Exception, match=message):
        hydra.utils.instantiate(cfg.model)


def test_evaluate_has_its_own_config_that_needs_a_model(tmp_path):
    cfg = compose_config("evaluate", tmp_path)
    assert OmegaConf.is_missing(cfg, "model_uri")
    assert cfg.articles.endswith("articles_test.jsonl") and cfg.sentences.endswith("test.jsonl")


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

    hydra_cfg = OmegaConf.to_container(OmegaConf.load(ROOT / "configs" / "hydra" / "default.yaml"))
    assert "\noutput_dir: ${hydra:runtime.output_dir}\n" in (ROOT / "configs" / "train.yaml").read_text()
    assert hydra_cfg["job"]["chdir"] is False
    assert hydra_cfg["run"]["dir"].startswith("${paths.experiments_dir}")
    assert hydra_cfg["sweep"]["dir"].startswith("${paths.experiments_dir}")
    assert cfg.tracking.uri is None  # MLFLOW_TRACKING_URI, read at run time, else the local store:
    assert Path(cfg.tracking.local_uri.removeprefix("sqlite:///")).parent == Path(cfg.paths.experiments_dir)


def test_a_torchrun_start_without_a_ddp_trainer_stops_before_any_work(tmp_path, monkeypatch):
    from security_topics.train import train

    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ConfigError, match="use trainer=ddp_cpu or trainer=ddp_gpu"):
        train(compose_train(tmp_path, "model=tfidf"))
    assert not (tmp_path / "experiments").exists()
