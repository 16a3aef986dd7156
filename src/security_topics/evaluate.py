"""Evaluate any saved model on held-out sentences and articles (the DVC evaluate stage).

`python -m security_topics.evaluate model_uri=runs:/<id>/model` (or a directory, or
`models:/<name>/<version>`): per-topic and averaged metrics, plots and error files in
`output_dir`, logged to MLflow as an `evaluate` run. Settings: configs/evaluate.yaml.
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from security_topics import tracking
from security_topics.data import fingerprint, read_articles, read_sentences
from security_topics.errors import exit_on_project_errors
from security_topics.labels import LabelSet
from security_topics.overrides import check_run_overrides
from security_topics.predictor import Predictor
from security_topics.reporting import evaluate_predictor

log = logging.getLogger(__name__)


def evaluate(cfg: DictConfig) -> dict[str, float]:
    """Score `cfg.model_uri` on `cfg.sentences` and `cfg.articles`; files go to `cfg.output_dir`."""
    out_dir = Path(cfg.output_dir)
    uri = tracking.resolve_uri(cfg.tracking.uri, cfg.tracking.local_uri)
    predictor = Predictor.load(str(cfg.model_uri), device=cfg.device, tracking_uri=uri)
    labels = LabelSet.of(predictor.labels)
    if list(cfg.data.labels) != predictor.labels:
        log.warning("the model's labels %s differ from data.labels %s", predictor.labels, list(cfg.data.labels))
    examples = read_sentences(cfg.sentences, labels) if cfg.sentences else []
    articles = read_articles(cfg.articles, labels) if cfg.articles else []
    files = [p for p in (cfg.sentences, cfg.articles) if p]
    real = None
    if cfg.data.get("real") and (cfg.real_sentences or cfg.real_articles):
        real = (
            read_sentences(cfg.real_sentences, labels) if cfg.real_sentences else [],
            read_articles(cfg.real_articles, labels) if cfg.real_articles else [],
        )
        files += [p for p in (cfg.real_sentences, cfg.real_articles) if p]
    metrics = evaluate_predictor(predictor, examples, articles, out_dir, real=real)
    if cfg.log_to_mlflow:
        tracking.configure(uri, cfg.tracking.evaluation_experiment, cfg.tracking.artifact_root)
        tags = {
            "stage": "evaluate",
            "evaluated_model": str(cfg.model_uri),
            "model": str(predictor.model.card.settings.get("name", predictor.model.card.family)),
            "data_fingerprint": fingerprint(files),
            **tracking.git_tags(cfg.paths.root_dir),
        }
        with tracking.start_run(run_name=f"evaluate-{out_dir.name}", tags=tags) as run:
            tracking.log_config(OmegaConf.to_container(cfg, resolve=True), OmegaConf.to_yaml(cfg, resolve=True))
            tracking.log_metrics(metrics)
            tracking.log_artifacts(out_dir, "eval")
        log.info("MLflow run %s in experiment %s (%s)", run.info.run_id, cfg.tracking.evaluation_experiment, uri)
    log.info(
        "sentences macro-F1 %.3f, articles macro-F1 %.3f (%s)",
        metrics.get("test_macro_f1", float("nan")),
        metrics.get("article_macro_f1", float("nan")),
        out_dir,
    )
    return metrics


@hydra.main(version_base="1.3", config_path="../../configs", config_name="evaluate")
@exit_on_project_errors("evaluate")
def main(cfg: DictConfig) -> None:
    check_run_overrides(cfg)
    evaluate(cfg)


if __name__ == "__main__":
    main()
