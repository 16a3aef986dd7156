"""Compare training runs from the MLflow store in a markdown and CSV table (`security-topics report`).

One row per training run (sweep parents left out): model, key params, every parameter a sweep set
that differs between the runs (from the jobs' `sweep_overrides` tags; never `tracking.*`, `paths.*`
or `hydra.*`, which say where runs were kept and may hold credentials), training time,
validation/test/article macro-F1 and per-topic test F1. Run names are unique (a name two runs share
gets its run id).
"""

from __future__ import annotations

import logging
from pathlib import Path

import mlflow
import pandas as pd

from security_topics.errors import TrackingError
from security_topics.tracking import check_server, resolve_uri

log = logging.getLogger(__name__)


PARAMS = {
    "model.name": "model",
    "model.lr": "lr",
    "model.head_lr": "head_lr",
    "model.C": "C",
    "model.freeze_word_embeddings": "frozen_emb",
    "model.max_length": "max_len",
    "trainer.epochs": "epochs",
    "trainer.batch_size": "batch",
    "data.name": "data",
}
METRICS = {
    "train_seconds": "train_s",
    "val_macro_f1": "val_macro_f1",
    "test_macro_f1": "test_macro_f1",
    "test_micro_f1": "test_micro_f1",
    "article_macro_f1": "article_macro_f1",
    "article_exact_match": "article_exact",
    "article_rule_cv_max_macro_f1": "val_art_cv_max",
    "article_rule_cv_logistic_macro_f1": "val_art_cv_logistic",
}
# Overrides never reported: where runs were stored and read from (a tracking URI may hold credentials).
UNREPORTED = {"tracking", "paths", "hydra"}
# Columns that only mean something for one family (a TF-IDF run has no epochs, a transformer no C).
FAMILY_COLUMNS = {
    "TfidfRecipe": {"C"},
    "TransformerRecipe": {"lr", "head_lr", "frozen_emb", "max_len", "epochs", "batch"},
    "EnsembleRecipe": {"epochs", "batch"},
}
MODEL_SPECIFIC = set().union(*FAMILY_COLUMNS.values())


def collect_runs(tracking_uri: str | None, experiment: str, filter_string: str = "") -> pd.DataFrame:
    uri = resolve_uri(tracking_uri)
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
        raise TrackingError(f"no MLflow store at {uri}: train a model first (make run)")
    if uri.startswith(("http://", "https://")):
        check_server(uri)
    mlflow.set_tracking_uri(uri)
    if mlflow.get_experiment_by_name(experiment) is None:
        raise TrackingError(f"no experiment {experiment!r} in {uri}")
    conditions = ["tags.stage = 'train'", "attributes.status = 'FINISHED'", *([filter_string] if filter_string else [])]
    runs = mlflow.search_runs(
        experiment_names=[experiment], filter_string=" and ".join(conditions), output_format="list"
    )
    rows = []
    for run in runs:
        params, metrics, tags = run.data.params, run.data.metrics, run.data.tags
        labels = [
            k.removeprefix("test_").removesuffix("_f1")
            for k in metrics
            if k.startswith("test_") and k.endswith("_f1") and k not in ("test_macro_f1", "test_micro_f1")
        ]
        row = {"run": run.info.run_name, "run_id": run.info.run_id[:8], "sweep": tags.get("sweep_id", "")}
        family = params.get("model._target_", "").rsplit(".", 1)[-1]
        keep = FAMILY_COLUMNS.get(family, set())
        row.update(
            {
                short: params.get(key, "")
                for key, short in PARAMS.items()
                if short not in MODEL_SPECIFIC or short in keep
            }
        )
        for key, value in swept_parameters(tags.get("sweep_overrides", "")).items():
            if key.split(".")[0] not in UNREPORTED and key not in PARAMS and key not in row:
                row[key] = params.get(key, value)
        row.update({short: metrics.get(key) for key, short in METRICS.items()})
        row.update({f"f1_{label}": metrics[f"test_{label}_f1"] for label in sorted(labels)})
        row["started"] = pd.Timestamp(run.info.start_time, unit="ms").strftime("%Y-%m-%d %H:%M")
        rows.append(row)
    table = pd.DataFrame(rows)
    if not table.empty:
        shared = table["run"].duplicated(keep=False)
        table.loc[shared, "run"] = table.loc[shared, "run"] + " (" + table.loc[shared, "run_id"] + ")"
        leading = ["run", "run_id", "sweep", *PARAMS.values()]
        trailing = [*METRICS.values(), *sorted(c for c in table.columns if c.startswith("f1_")), "started"]
        swept = [c for c in table.columns if c not in leading and c not in trailing]  # in the order first seen
        swept = [c for c in swept if table[c].astype(str).nunique(dropna=False) > 1]  # one value for all: no comparison
        table = table[[c for c in [*leading, *swept, *trailing] if c in table.columns]]
    return table.loc[:, [c for c in table.columns if not (table[c].isna() | (table[c] == "")).all()]]


def swept_parameters(overrides: str) -> dict[str, str]:
    """`key=value` pairs of a job's Hydra overrides, joined by commas (commas inside brackets,
    braces or quotes belong to a value); `+`/`++`/`~` prefixes dropped."""
    pairs, depth, quote, start = {}, 0, "", 0
    for i, char in enumerate(overrides + ","):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "[{(":
            depth += 1
        elif char in "]})":
            depth -= 1
        elif char == "," and depth <= 0:
            key, sep, value = overrides[start:i].partition("=")
            if sep and key.strip():
                pairs[key.strip().lstrip("+~")] = value.strip()
            start = i + 1
    return pairs


def to_markdown(table: pd.DataFrame) -> str:
    """A GitHub-flavoured markdown table (numbers to 3 decimals, seconds to whole)."""

    def cell(column: str, value: object) -> str:
        if value is None or (isinstance(value, float) and pd.isna(value)):
            return ""
        if isinstance(value, float):
            return f"{value:.0f}" if column.endswith("_s") else f"{value:.3f}"
        return str(value)

    header = "| " + " | ".join(table.columns) + " |"
    rule = "|" + "|".join("---" for _ in table.columns) + "|"
    body = ["| " + " | ".join(cell(c, v) for c, v in row.items()) + " |" for _, row in table.iterrows()]
    return "\n".join([header, rule, *body]) + "\n"


def write_comparison(tracking_uri: str | None, experiment: str, output: Path, filter_string: str = "") -> pd.DataFrame:
    """Write OUTPUT.md and OUTPUT.csv, best validation macro-F1 first (models are chosen on
    validation, never on test); return the table."""
    table = collect_runs(tracking_uri, experiment, filter_string)
    if table.empty:
        raise TrackingError(f"no finished training runs in experiment {experiment!r}")
    table = table.sort_values("val_macro_f1", ascending=False, na_position="last")
    output.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(output.with_suffix(".csv"), index=False)
    output.with_suffix(".md").write_text(to_markdown(table))
    log.info("wrote %s.md and %s.csv (%d runs)", output, output, len(table))
    return table
