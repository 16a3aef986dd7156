"""Evaluate any saved model on held-out sentences and articles.

`python -m security_topics.evaluate model_uri=models/default` (or `runs:/<id>/model`,
`models:/<name>/<version>`): per-topic and averaged metrics, plots and error files in
`output_dir`, logged to MLflow as an `evaluate` run.
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
from omegaconf import DictConfig

from security_topics import tracking
from security_topics.data import fingerprint, read_articles, read_sentences
from security_topics.evaluation import evaluate_predictor
from security_topics.labels import LabelSet
from security_topics.predictor import Predictor

log = logging.getLogger(__name__)


def evaluate(cfg: DictConfig) -> dict[str, float]:
    if cfg.log_to_mlflow:
        tracking.configure(cfg.tracking.uri, cfg.tracking.experiment, cfg.tracking.artifact_root)
    predictor = Predictor.load(str(cfg.model_uri), device=cfg.device)
    labels = LabelSet.of(predictor.labels)
    if list(cfg.data.labels) != predictor.labels:
        log.warning("the model's labels %s differ from data.labels %s: scoring the model's", predictor.labels, list(cfg.data.labels))
    examples = read_sentences(cfg.sentences, labels) if cfg.sentences else []
    articles = read_articles(cfg.articles, labels) if cfg.articles else []
    out_dir = Path(cfg.output_dir)
    metrics = evaluate_predictor(predictor, examples, articles, out_dir)
    if cfg.log_to_mlflow:
        data_files = [p for p in (cfg.sentences, cfg.articles) if p]
        tags = {
            "stage": "evaluate",
            "evaluated_model": str(cfg.model_uri),
            "model": str(predictor.model.meta.settings.get("name", predictor.model.meta.family)),
            "data_fingerprint": fingerprint(data_files),
            **tracking.git_tags(cfg.paths.root_dir),
        }
        with tracking.start_run(run_name=f"evaluate-{out_dir.name}", tags=tags):
            tracking.log_config(cfg)
            tracking.log_metrics(metrics)
            tracking.log_artifacts(out_dir, "eval")
    log.info("sentences macro-F1 %.3f, articles macro-F1 %.3f (%s)",
             metrics.get("test_macro_f1", float("nan")), metrics.get("article_macro_f1", float("nan")), out_dir)
    return metrics


@hydra.main(version_base="1.3", config_path="../../configs", config_name="evaluate")
def main(cfg: DictConfig) -> None:
    evaluate(cfg)


if __name__ == "__main__":
    main()
