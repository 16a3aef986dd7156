"""Evaluate any saved model on held-out sentences and articles.

`python -m security_topics.evaluate evaluate.model_uri=runs:/<id>/model` (or a directory,
or `models:/<name>/<version>`): per-topic and averaged metrics, plots and error files in
`evaluate.output_dir`, logged to MLflow as an `evaluate` run. Settings: `evaluate:` in
configs/train.yaml, so data and labels come from the same config as training.
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
from security_topics.runs import hydra_run_dir

log = logging.getLogger(__name__)


def evaluate(cfg: DictConfig, out_dir: Path | None = None) -> dict[str, float]:
    """Score `evaluate.model_uri`; files go to `out_dir`, else `evaluate.output_dir`, else Hydra's run dir."""
    settings = cfg.evaluate
    out_dir = out_dir or (Path(settings.output_dir) if settings.output_dir else hydra_run_dir())
    uri = tracking.resolve_uri(cfg.tracking.uri, cfg.tracking.local_uri)
    predictor = Predictor.load(str(settings.model_uri), device=settings.device, tracking_uri=uri)
    labels = LabelSet.of(predictor.labels)
    if list(cfg.data.labels) != predictor.labels:
        log.warning("the model's labels %s differ from data.labels %s", predictor.labels, list(cfg.data.labels))
    examples = read_sentences(settings.sentences, labels) if settings.sentences else []
    articles = read_articles(settings.articles, labels) if settings.articles else []
    metrics = evaluate_predictor(predictor, examples, articles, out_dir)
    if settings.log_to_mlflow:
        tracking.setup(cfg.tracking)
        data_files = [p for p in (settings.sentences, settings.articles) if p]
        tags = {
            "stage": "evaluate",
            "evaluated_model": str(settings.model_uri),
            "model": str(predictor.model.meta.settings.get("name", predictor.model.meta.family)),
            "data_fingerprint": fingerprint(data_files),
            **tracking.git_tags(cfg.paths.root_dir),
        }
        with tracking.start_run(run_name=f"evaluate-{out_dir.name}", tags=tags):
            tracking.log_config(cfg)
            tracking.log_metrics(metrics)
            tracking.log_artifacts(out_dir, "eval")
    log.info(
        "sentences macro-F1 %.3f, articles macro-F1 %.3f (%s)",
        metrics.get("test_macro_f1", float("nan")),
        metrics.get("article_macro_f1", float("nan")),
        out_dir,
    )
    return metrics


@hydra.main(version_base="1.3", config_path="../../configs", config_name="train")
def main(cfg: DictConfig) -> None:
    evaluate(cfg)


if __name__ == "__main__":
    main()
