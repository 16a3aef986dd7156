"""Shared fixtures: an offline environment, composed configs, and models trained once per session."""

import os
from dataclasses import dataclass
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


def compose_train(workspace: Path, *overrides: str) -> DictConfig:
    """The training config as Hydra composes it, pointed at a temporary workspace."""
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        return compose(
            "train",
            overrides=[
                f"paths.root_dir={workspace}",
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


@dataclass
class Run:
    cfg: DictConfig
    metrics: dict
    dir: Path

    @property
    def model_dir(self) -> str:
        return str(self.dir / "model")


def train_run(workspace: Path, name: str, *overrides: str) -> Run:
    from security_topics.train import train

    cfg = compose_train(workspace, *overrides)
    run_dir = workspace / "runs" / name
    return Run(cfg, train(cfg, run_dir=run_dir), run_dir)


@pytest.fixture(scope="session")
def tfidf_run(workspace) -> Run:
    return train_run(workspace, "tfidf", "model=tfidf", "save_dir=null")


@pytest.fixture(scope="session")
def tiny_run(workspace) -> Run:
    return train_run(workspace, "tiny", "model=tiny", "trainer.epochs=6", "save_dir=null")
