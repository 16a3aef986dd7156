"""Train a topic model: `python -m security_topics.train model=tfidf trainer.epochs=3`.

data splits -> fit -> per-topic thresholds -> save -> evaluate (sentences, articles)
-> MLflow (config, metrics, plots, pyfunc model). Returns validation macro-F1 for sweeps.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

import hydra
import numpy as np
from omegaconf import DictConfig, OmegaConf

from security_topics import tracking
from security_topics.data import fingerprint, read_articles
from security_topics.evaluation import compute_metrics, evaluate_predictor
from security_topics.labels import LabelSet
from security_topics.models.base import MODEL_CARD
from security_topics.predictor import Predictor
from security_topics.prepare import load_splits
from security_topics.runs import hydra_run_dir
from security_topics.thresholds import tune_thresholds

log = logging.getLogger(__name__)


def train(cfg: DictConfig, run_dir: Path | None = None) -> dict[str, float]:
    """Run the pipeline; outputs go to `run_dir` (default: Hydra's run directory)."""
    if cfg.thresholds.mode not in ("tune", "fixed"):
        raise ValueError(f"thresholds.mode must be 'tune' or 'fixed', got {cfg.thresholds.mode!r}")
    run_dir = run_dir or hydra_run_dir()
    labels = LabelSet.of(cfg.data.labels)
    splits = load_splits(cfg.data)
    articles = read_articles(cfg.data.articles, labels) if cfg.data.articles else []
    recipe = hydra.utils.instantiate(cfg.model)

    experiment_id = tracking.setup(cfg.tracking)
    tags = {
        "model": cfg.model.name,
        "data_fingerprint": fingerprint([p for p in (cfg.data.sentences, cfg.data.articles) if p]),
        "stage": "train",
        **tracking.git_tags(cfg.paths.root_dir),
        **tracking.sweep_tags(),
    }
    parent = tracking.sweep_parent(experiment_id)
    with tracking.start_run(run_name=f"{cfg.model.name}-{run_dir.name}", tags=tags, parent_run_id=parent):
        tracking.log_config(cfg)
        started = time.perf_counter()
        model = recipe.fit(splits["train"], splits["validation"], labels, cfg.trainer, run_dir, tracking.log_metrics)
        train_seconds = time.perf_counter() - started

        y_val = labels.encode_many([e.labels for e in splits["validation"]])
        val_probs = model.score([e.text for e in splits["validation"]]).probs
        model.meta.thresholds = _thresholds(cfg.thresholds, y_val, val_probs, len(labels))
        validation = compute_metrics(y_val, val_probs >= np.asarray(model.meta.thresholds), labels.names)

        model_dir = run_dir / "model"
        model.save(model_dir)
        (model_dir / "training_config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
        if cfg.save_dir and not parent:  # sweep jobs keep their models in their own run dirs
            _replace_model_dir(Path(cfg.save_dir), model_dir)
        metrics = evaluate_predictor(Predictor(model), splits["test"], articles, run_dir / "eval")
        metrics.update({f"val_{k}": v for k, v in validation.items()}, train_seconds=train_seconds)
        tracking.log_metrics(metrics)
        tracking.log_metrics(dict(zip([f"threshold_{n}" for n in labels.names], model.meta.thresholds)))
        tracking.log_artifacts(run_dir / "eval", "eval")
        if cfg.tracking.log_model:
            uri = tracking.log_model(model_dir, cfg.tracking.registered_model_name)
            log.info("logged model %s", uri)
    log.info(
        "%s: validation macro-F1 %.3f, test macro-F1 %.3f, article macro-F1 %.3f (%.0f s training)",
        cfg.model.name,
        metrics["val_macro_f1"],
        metrics.get("test_macro_f1", float("nan")),
        metrics.get("article_macro_f1", float("nan")),
        train_seconds,
    )
    return metrics


def _thresholds(settings: DictConfig, y_val: np.ndarray, val_probs: np.ndarray, n_labels: int) -> list[float]:
    if settings.mode == "tune":
        return tune_thresholds(y_val, val_probs).tolist()
    return [float(settings.value)] * n_labels


def _replace_model_dir(target: Path, model_dir: Path) -> None:
    """Copy the model to its stable path, replacing only an earlier model (never other files)."""
    if target.exists() and not (target / MODEL_CARD).is_file() and any(target.iterdir()):
        raise FileExistsError(f"save_dir={target} holds files that are not a saved model: choose another save_dir")
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(model_dir, target)


@hydra.main(version_base="1.3", config_path="../../configs", config_name="train")
def main(cfg: DictConfig) -> float:
    return train(cfg)["val_macro_f1"]


if __name__ == "__main__":
    main()
