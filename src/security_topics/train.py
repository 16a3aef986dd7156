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
from security_topics.predictor import Predictor
from security_topics.prepare import load_splits
from security_topics.runs import hydra_run_dir
from security_topics.thresholds import tune_thresholds

log = logging.getLogger(__name__)


def train(cfg: DictConfig, run_dir: Path | None = None) -> dict[str, float]:
    """Run the pipeline; outputs go to `run_dir` (default: Hydra's run directory)."""
    run_dir = run_dir or hydra_run_dir()
    labels = LabelSet.of(cfg.data.labels)
    splits = load_splits(cfg.data)
    articles = read_articles(cfg.data.articles, labels) if cfg.data.articles else []
    recipe = hydra.utils.instantiate(cfg.model)

    experiment_id = tracking.configure(cfg.tracking.uri, cfg.tracking.experiment, cfg.tracking.artifact_root)
    tags = {
        "model": cfg.model.name,
        "data_fingerprint": fingerprint([cfg.data.sentences]),
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
        if cfg.thresholds.mode == "tune":
            model.meta.thresholds = tune_thresholds(y_val, val_probs).tolist()
        else:
            model.meta.thresholds = [float(cfg.thresholds.value)] * len(labels)
        validation = compute_metrics(y_val, val_probs >= np.asarray(model.meta.thresholds), labels.names)

        model_dir = run_dir / "model"
        model.save(model_dir)
        (model_dir / "training_config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
        if cfg.save_dir and not parent:  # sweep jobs keep their models in their own run dirs
            shutil.rmtree(cfg.save_dir, ignore_errors=True)
            shutil.copytree(model_dir, cfg.save_dir)
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
        metrics["test_macro_f1"],
        metrics.get("article_macro_f1", float("nan")),
        train_seconds,
    )
    return metrics


@hydra.main(version_base="1.3", config_path="../../configs", config_name="train")
def main(cfg: DictConfig) -> float:
    return train(cfg)["val_macro_f1"]


if __name__ == "__main__":
    main()
