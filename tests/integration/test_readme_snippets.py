"""The README's Python snippets run as written (with the pipeline's TF-IDF model standing in for
models/default, which a fresh clone has not trained yet): the predictor walkthrough and highlights,
and the MLflow pyfunc snippet from another folder."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import logged_run

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parents[2]


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(encoding="utf-8"), re.S)


def test_the_predictor_and_highlights_snippets_run(tfidf_run):
    blocks = _python_blocks()
    walkthrough = next(b for b in blocks if b.startswith("from security_topics import Predictor"))
    highlights = next(b for b in blocks if "highlights=True" in b)
    script = (walkthrough + highlights).replace('"models/default"', repr(str(tfidf_run.model_dir)))
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "narcotics" in done.stdout or "counterterrorism" in done.stdout  # the printed evidence


def test_the_predict_command_lines_run(tfidf_run):
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = next(b for b in re.findall(r"```bash\n(.*?)```", text, re.S) if b.startswith("security-topics predict"))
    lines = [line.split("#")[0].strip() for line in block.splitlines()]
    lines = [line for line in lines if line and "<" not in line]  # not the ones with a run id to fill in
    assert len(lines) >= 5
    env_path = f"{Path(sys.executable).parent}:/usr/bin:/bin"
    for line in lines:
        command = f"{line} --model {tfidf_run.model_dir}"
        done = subprocess.run(
            ["bash", "-c", command], cwd=ROOT, capture_output=True, text=True, timeout=300, env={"PATH": env_path}
        )
        assert done.returncode == 0, (command, done.stderr[-1000:])
        assert all(line.startswith("{") and '"labels"' in line for line in done.stdout.splitlines()), command


def test_the_mlflow_pyfunc_snippet_runs_from_another_folder_and_leaves_no_store_there(tfidf_run, tmp_path):
    uri = tfidf_run.cfg.tracking.local_uri
    block = next(b for b in _python_blocks() if "mlflow.pyfunc.load_model" in b)
    script = block.replace("<run_id>", logged_run(tfidf_run).info.run_id)
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "MLFLOW_TRACKING_URI": uri, "HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "narcotics" in done.stdout  # the printed topics of the captagon sentence
    assert not list(tmp_path.glob("*.db")) and not (tmp_path / "mlruns").exists()


def test_the_local_score_command_line_runs(tfidf_run, tmp_path):
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    (line,) = [x for x in text.splitlines() if x.startswith("security-topics score --model models/default ")]
    command = (
        line.split("#")[0]
        .replace("models/default", str(tfidf_run.model_dir))
        .replace(" scored.", f" {tmp_path}/scored.")
    )
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run(
        ["bash", "-c", command.replace("security-topics ", "security-topics -q ", 1)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    import pyarrow.parquet as pq

    rows = sum(pq.read_table(part).num_rows for part in (tmp_path / "scored.parquet").rglob("*.parquet"))
    assert rows == sum(
        1 for x in (ROOT / "data/raw/articles.jsonl").read_text(encoding="utf-8").splitlines() if x.strip()
    )
