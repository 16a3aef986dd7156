"""Train a topic model: `python -m security_topics.train model=tfidf trainer.epochs=3`.

splits -> fit -> sentence thresholds (validation sentences) -> article rule (validation articles)
-> save -> evaluate (test sentences and articles) -> MLflow (config, metrics, plots, pyfunc model).
Returns `optimized_metric` for sweeps.
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from security_topics import distributed, tracking
from security_topics.atomic import hold_lock, staging_for, swap_into_place
from security_topics.corpus import CorpusSpec, load_splits, training_sentences
from security_topics.data import fingerprint
from security_topics.decisions import DecisionSettings, decide, fit_decisions
from security_topics.errors import ConfigError, exit_on_project_errors
from security_topics.labels import LabelSet
from security_topics.metrics import compute_metrics
from security_topics.mlflow_model import log_model
from security_topics.models.card import CARD_FILE
from security_topics.overrides import check_run_overrides
from security_topics.predictor import Predictor
from security_topics.recipes.settings import TrainerSettings
from security_topics.reporting import evaluate_predictor
from security_topics.splits import REAL

log = logging.getLogger(__name__)

RUN_FILE = "mlflow_run.json"  # in every run folder: which MLflow run wrote it (links resumed runs)
RUN_LOCK = ".train.lock"  # held by the training writing the run folder


def train(cfg: DictConfig) -> dict[str, float]:
    """Run the pipeline; outputs go to `cfg.output_dir`."""
    if cfg.save_dir_policy not in ("better", "always"):
        raise ConfigError(f"save_dir_policy must be 'better' or 'always', got {cfg.save_dir_policy!r}")
    decision_settings = decision_settings_from(cfg)
    settings: TrainerSettings = hydra.utils.instantiate(cfg.trainer)
    recipe = hydra.utils.instantiate(cfg.model)
    spec = CorpusSpec.from_mapping(OmegaConf.to_container(cfg.data, resolve=True))
    labels = LabelSet.of(spec.labels)
    if distributed.world_size() > 1:  # under torchrun: rank 0's run folder and splits for all
        if settings.ddp_backend is None:
            raise ConfigError("started by torchrun: use trainer=ddp_cpu or trainer=ddp_gpu (trainer.ddp_backend)")
        distributed.init(settings.ddp_backend)
    run_dir = Path(distributed.share_from_main(str(Path(cfg.output_dir).resolve())))
    with distributed.main_first():
        splits = load_splits(spec)
    sentences, articles = splits.sentences, splits.articles
    fit_rows = training_sentences(spec, sentences["train"])
    if not distributed.is_main():  # the other ranks train alongside rank 0, and neither write nor log
        recipe.fit(fit_rows, sentences["validation"], labels, settings, run_dir)
        return {}

    experiment_id = tracking.configure(
        tracking.resolve_uri(cfg.tracking.uri, cfg.tracking.local_uri),
        cfg.tracking.experiment,
        cfg.tracking.artifact_root,
    )
    sweep = _sweep_tags()
    tags = {
        "model": cfg.model.name,
        "data_fingerprint": fingerprint(spec.files),
        "stage": "train",
        **tracking.git_tags(cfg.paths.root_dir),
        **sweep,
    }
    if settings.resume:
        tags.update(_resumed_from(Path(settings.resume)))
    parent = tracking.sweep_parent(experiment_id, sweep)
    run_dir.mkdir(parents=True, exist_ok=True)
    run_lock = _hold_run_dir(run_dir)  # before the MLflow run: a refused training logs nothing
    with (
        run_lock,
        tracking.start_run(run_name=_run_name(cfg.model.name, run_dir, sweep), tags=tags, parent_run_id=parent) as run,
    ):
        (run_dir / RUN_FILE).write_text(json.dumps({"run_id": run.info.run_id, "experiment_id": experiment_id}))
        params = {**OmegaConf.to_container(cfg, resolve=True), "world_size": distributed.world_size()}
        tracking.log_config(params, OmegaConf.to_yaml(cfg, resolve=True))
        started = time.perf_counter()
        model = recipe.fit(fit_rows, sentences["validation"], labels, settings, run_dir, tracking.log_metrics)
        train_seconds = time.perf_counter() - started
        precisions = _precisions(model)
        if precisions:
            tracking.set_tags(precisions)
            log.info("precision: %s", precisions)

        fitted = fit_decisions(model, sentences["validation"], articles["validation"], decision_settings)
        metrics = fitted["metrics"]
        (run_dir / "eval").mkdir(parents=True, exist_ok=True)
        (run_dir / "eval" / "decisions.json").write_text(json.dumps(fitted["info"], indent=2) + "\n")

        model_dir = run_dir / "model"
        model.save(model_dir)
        (model_dir / "training_config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
        if cfg.save_dir and not parent:  # sweep jobs keep their models in their own run dirs
            _save_if_better(Path(cfg.save_dir), model_dir, metrics["val_macro_f1"], sentences["validation"], cfg)
        real = (sentences[REAL], articles[REAL]) if REAL in sentences else None
        metrics.update(
            evaluate_predictor(Predictor(model), sentences["test"], articles["test"], run_dir / "eval", real=real)
        )
        metrics.update(train_seconds=train_seconds)
        tracking.log_metrics(metrics)
        tracking.set_tags({"mlflow.note.content": describe_run(cfg.model.name, precisions, metrics)})
        tracking.log_artifacts(run_dir / "eval", "eval")
        uri = log_model(model_dir, cfg.tracking.registered_model_name) if cfg.tracking.log_model else None
    log.info("MLflow run %s; run folder %s; evaluation files %s", run.info.run_id, run_dir, run_dir / "eval")
    if uri:
        log.info("model: runs:/%s/model (logged as %s)", run.info.run_id, uri)
    log.info(
        "%s: validation macro-F1 %.3f, test macro-F1 %.3f, article macro-F1 %.3f (%s rule; %.0f s training)",
        cfg.model.name,
        metrics["val_macro_f1"],
        metrics.get("test_macro_f1", float("nan")),
        metrics.get("article_macro_f1", float("nan")),
        model.card.article_rule.get("kind", "sentence"),
        train_seconds,
    )
    if "test_real_macro_f1" in metrics:
        log.info(
            "real news held out (test_real): sentence macro-F1 %.3f, article micro-F1 %.3f, article macro-F1 %.3f",
            metrics["test_real_macro_f1"],
            metrics.get("article_real_micro_f1", float("nan")),
            metrics.get("article_real_macro_f1", float("nan")),
        )
    return metrics


def describe_run(model: str, precisions: dict[str, str], metrics: dict[str, float]) -> str:
    """The run's one-line description in the MLflow UI: what was trained and the figures people compare."""
    figures = [
        f"{name} {metrics[key]:.3f}"
        for key, name in (
            ("val_macro_f1", "val macro-F1"),
            ("val_real_macro_f1", "val real news"),
            ("test_macro_f1", "test"),
            ("article_macro_f1", "test articles"),
            ("test_real_macro_f1", "test_real"),
        )
        if key in metrics
    ]
    trained = precisions.get("train_precision")
    name = f"{model}, trained in {trained}" if trained else model
    return " · ".join([name, *figures, f"{metrics['train_seconds']:.0f} s"])


def _precisions(model: Any) -> dict[str, str]:
    """Which precision each transformer trained in and is served in (an ensemble's members too)."""
    cards = [model.card, *(m.card for m in getattr(model, "members", []))]
    out = {}
    for key in ("train_precision", "precision"):
        values = {c.settings[key] for c in cards if key in c.settings}
        if values:
            out[key] = ",".join(sorted(values))
    return out


def decision_settings_from(cfg: DictConfig) -> DecisionSettings:
    """How thresholds, the article rule, calibration and the review band are fitted (checked now)."""
    return DecisionSettings(
        thresholds=cfg.thresholds.mode,
        threshold_value=cfg.thresholds.value,
        threshold_kinds=tuple(cfg.thresholds.choose),
        article_rule=cfg.article_rule,
        calibration=tuple(cfg.calibration.choose),
        review_target=cfg.review.target,
        seed=cfg.trainer.seed,
    )


def _resumed_from(resume: Path) -> dict[str, str]:
    """Tags that link a resumed run to the checkpoint and, when its run folder says so, the run it continues."""
    tags = {"resumed_from_checkpoint": str(resume.resolve())}
    for folder in (resume, resume.parent, resume.parent.parent):  # run dir, checkpoints/, checkpoint-N/
        if (folder / RUN_FILE).is_file():
            tags["resumed_from_run"] = json.loads((folder / RUN_FILE).read_text())["run_id"]
            break
    return tags


def _run_name(model: str, run_dir: Path, sweep: dict[str, str]) -> str:
    """`<model>-<run folder>`: unique, as run folders are (a sweep job's folder is only its number, so
    its sweep's id goes in too)."""
    return f"{model}-{sweep['sweep_id']}-{run_dir.name}" if sweep else f"{model}-{run_dir.name}"


def _sweep_tags() -> dict[str, str]:
    """Tags that group a multirun's jobs (empty outside a sweep)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return {}
    hydra_cfg = HydraConfig.get()
    return {
        "sweep_id": Path(hydra_cfg.sweep.dir).name,
        "sweep_job": str(hydra_cfg.job.num),
        "sweep_overrides": ",".join(hydra_cfg.overrides.task)[: tracking.MAX_PARAM_LENGTH],
    }


def _save_if_better(target: Path, model_dir: Path, val_macro_f1: float, validation: list, cfg: DictConfig) -> None:
    """Copy the model to `save_dir`, unless the model there scores better on the same validation
    sentences and `save_dir_policy` is `better` (the default); say which happened."""
    held = _held_model_score(target, validation) if cfg.save_dir_policy == "better" else None
    if held is not None and held > val_macro_f1:
        log.warning(
            "kept the model in %s: its validation macro-F1 %.4f beats this run's %.4f (save_dir_policy=better; "
            "this run's model is in %s, or use save_dir_policy=always)",
            target,
            held,
            val_macro_f1,
            model_dir,
        )
        return
    _replace_model_dir(target, model_dir)
    before = "" if held is None else f" (it held a model with validation macro-F1 {held:.4f})"
    log.info("saved the model to %s%s", target, before)


def _held_model_score(target: Path, validation: list) -> float | None:
    """Validation macro-F1 of the model already in `target` (None: none there, or not comparable)."""
    if not (target / CARD_FILE).is_file():
        return None
    try:
        predictor = Predictor.load(target)
    except Exception as err:  # a damaged or foreign model is replaced, not a reason to fail the run
        log.warning("could not load the model in %s to compare (%s): replacing it", target, err)
        return None
    labels = LabelSet.of(predictor.labels)
    if not validation or any(label not in labels for e in validation for label in e.labels):
        return None
    y = labels.encode_many([e.labels for e in validation])
    return compute_metrics(y, decide(predictor, validation, []).sentence_labels, labels.names)["macro_f1"]


def _hold_run_dir(run_dir: Path) -> Any:
    """One training per run folder: two that share one (a fixed hydra.run.dir) would log each
    other's model under their MLflow runs."""
    refusal = (
        f"run folder {run_dir} is in use by another training: give each run its own folder "
        "(hydra.run.dir), or wait for the other to finish"
    )
    return hold_lock(run_dir / RUN_LOCK, refusal)


def _replace_model_dir(target: Path, model_dir: Path) -> None:
    """Copy the model to its stable path, replacing only an earlier model (never other files)."""
    if target.exists() and not (target / CARD_FILE).is_file() and any(target.iterdir()):
        raise FileExistsError(f"save_dir={target} holds files that are not a saved model: choose another save_dir")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = staging_for(target)
    try:
        shutil.copytree(model_dir, staging)
        swap_into_place(staging, target)  # a kill or a full disk here keeps the earlier model whole
    finally:
        shutil.rmtree(staging, ignore_errors=True)


@hydra.main(version_base="1.3", config_path="../../configs", config_name="train")
@exit_on_project_errors("train")
def main(cfg: DictConfig) -> float | None:
    check_run_overrides(cfg)
    try:
        metrics = train(cfg)
    finally:
        distributed.finish()
    return metrics.get(cfg.optimized_metric) if distributed.is_main() else None


if __name__ == "__main__":
    if not distributed.is_main():  # torchrun's other ranks: no Hydra output folder files, no log file
        sys.argv += ["hydra.output_subdir=null", "hydra/job_logging=disabled"]
    main()
