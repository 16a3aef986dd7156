"""Experiment workflow: the DVC pipeline, Hydra multirun grouped in MLflow, the comparison report."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
import yaml
from helpers import FIXTURE_DATA, ROOT

from security_topics.compare_runs import write_comparison
from security_topics.params import compose_params

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    return {**env, "PATH": f"{BIN}{os.pathsep}{env['PATH']}", **extra}


def _run(args: list[str], cwd: Path) -> str:
    done = subprocess.run(args, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout + done.stderr


def test_params_yaml_is_the_composed_config():
    assert (ROOT / "params.yaml").read_text() == compose_params(), "run `security-topics params` after editing configs/"


@pytest.fixture
def project_copy(tmp_path) -> Path:
    """The repository's tracked files in a fresh git repository (DVC needs one)."""
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for name in files:
        if name.startswith("data/raw/") or not (ROOT / name).is_file():
            continue  # the pipeline below runs on the fixture
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, tmp_path / name)
    for args in (
        ["git", "init", "-q"],
        ["git", "add", "-A"],
        ["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "copy"],
    ):
        subprocess.run(args, cwd=tmp_path, check=True)
    return tmp_path


def test_dvc_pipeline_reproduces_skips_and_reruns_what_changed(project_copy):
    made_by_make_run = project_copy / "models" / "default" / "security_topics.json"
    made_by_make_run.parent.mkdir(parents=True)
    made_by_make_run.write_text("{}")
    _run(["security-topics", "params", "data=fixture", "model=tfidf"], project_copy)
    out = _run(["dvc", "repro"], project_copy)
    assert all(f"Running stage '{s}'" in out for s in ("prepare", "train", "evaluate"))
    assert (project_copy / "metrics" / "metrics.json").is_file()
    assert (project_copy / "metrics" / "test_precision_recall" / "narcotics.csv").is_file()

    assert "Data and pipelines are up to date" in _run(["dvc", "repro"], project_copy)

    out = _run(
        ["dvc", "exp", "run", "-S", "data=fixture", "-S", "model=tfidf", "-S", "thresholds.mode=fixed"], project_copy
    )
    assert "Stage 'prepare' didn't change, skipping" in out
    assert "Running stage 'train'" in out and "Running stage 'evaluate'" in out
    assert "mode: fixed" in (project_copy / "params.yaml").read_text()
    assert "test.macro_f1" in _run(["dvc", "metrics", "show"], project_copy)
    assert "index.html" in _run(["dvc", "plots", "show", "-o", "plots"], project_copy)
    page = (project_copy / "plots" / "index.html").read_text()
    assert "http://" not in page and "https://" not in page  # renders offline: images, no vega from a CDN
    assert page.count("<img") == 4
    # the pipeline and its experiments train into models/pipeline: the model `make run` saved is untouched
    assert (project_copy / "models" / "pipeline" / "security_topics.json").is_file()
    assert made_by_make_run.read_text() == "{}"


def test_multirun_jobs_are_grouped_in_mlflow_and_reported(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    output = _run(
        [
            str(BIN / "python"),
            "-m",
            "security_topics.train",
            "-m",
            "model=tfidf",
            *FIXTURE_DATA,
            f"paths.root_dir={tmp_path}",
            f"tracking.uri={uri}",
            "tracking.log_model=false",
            "model.C=1.0,8.0",
            "review.target=0.9,0.95",  # swept, and not one of the report's usual columns
        ],
        ROOT,
    )
    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=["security-topics"], output_format="list")
    parents = [r for r in runs if r.data.tags.get("sweep_parent") == "true"]
    children = [r for r in runs if r.data.tags.get("stage") == "train"]
    assert len(parents) == 1 and len(children) == 4
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parents[0].info.run_id}
    assert sorted(r.data.params["model.C"] for r in children) == ["1.0", "1.0", "8.0", "8.0"]
    assert list((tmp_path / "experiments" / "multiruns" / "train").glob("*/0"))  # runs land under experiments/

    # the sweep ends naming its best job on optimized_metric, and saves every job's value
    scores = {r.data.params["model.C"]: r.data.metrics["val_macro_f1"] for r in children}  # the target moves no F1
    (best_file,) = (tmp_path / "experiments" / "multiruns" / "train").glob("*/best_job.yaml")
    best = yaml.safe_load(best_file.read_text())
    best_c = next(o.removeprefix("model.C=") for o in best["overrides"] if o.startswith("model.C="))
    assert best["optimized_metric"] == "val_macro_f1" and len(best["jobs"]) == 4
    assert best["value"] == pytest.approx(scores[best_c]) == pytest.approx(max(scores.values()))
    assert f"sweep: best job {best['job']} of 4 (4 scored): val_macro_f1 = {best['value']:.4f}" in output

    table = write_comparison(uri, "security-topics", tmp_path / "report")
    assert len(table) == 4 and set(table["model"]) == {"tfidf"}
    assert table["run"].is_unique and all(best_file.parent.name in name for name in table["run"])
    assert sorted(table["review.target"]) == ["0.9", "0.9", "0.95", "0.95"] and sorted(table["C"]) == [
        "1.0",
        "1.0",
        "8.0",
        "8.0",
    ]
    assert not [
        c for c in table.columns if c.startswith(("tracking", "paths", "data."))
    ]  # where runs were kept: not reported
    markdown = (tmp_path / "report.md").read_text().splitlines()
    assert len(markdown) == 6 and "test_macro_f1" in markdown[0] and "f1_narcotics" in markdown[0]
    assert (tmp_path / "report.csv").read_text().count("\n") == 5
