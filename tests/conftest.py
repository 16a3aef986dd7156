"""Shared fixtures: an offline environment, composed configs, and models trained once per session."""

import os
from pathlib import Path

import pytest

# Tests never touch the network: no hub downloads, no tracking server.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["HF_DATASETS_DISABLE_PROGRESS_BARS"] = "1"
os.environ.pop("MLFLOW_TRACKING_URI", None)

from hydra import compose, initialize_config_dir  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"


def compose_train(workspace: Path, *overrides: str, config_name: str = "train") -> DictConfig:
    """The training config as Hydra composes it, pointed at a temporary workspace."""
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        return compose(
            config_name,
            overrides=[
                f"paths.root_dir={workspace}",
                f"paths.output_dir={workspace}/run-{abs(hash(overrides)) % 10**8}",
                "data=fixture",
                f"data.sentences={FIXTURES / 'sentences.csv'}",
                f"data.articles={FIXTURES / 'articles.jsonl'}",
                *overrides,
            ],
        )


@pytest.fixture(scope="session")
def workspace(tmp_path_factory) -> Path:
    """One temporary root (processed data, MLflow store, models) for the session's runs."""
    return tmp_path_factory.mktemp("workspace")


@pytest.fixture(scope="session")
def tfidf_run(workspace):
    from security_topics.train import train

    cfg = compose_train(workspace, "model=tfidf", "save_dir=null")
    return cfg, train(cfg)


@pytest.fixture(scope="session")
def tiny_run(workspace):
    from security_topics.train import train

    cfg = compose_train(workspace, "model=tiny", "trainer.epochs=6", "save_dir=null")
    return cfg, train(cfg)
