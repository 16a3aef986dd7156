"""torchrun: two CPU processes train one model (DDP through the Trainer); rank 0 alone logs and saves."""

import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
from helpers import FIXTURE_DATA, ROOT

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent


def _train(launcher: list[str], workspace: Path, name: str, *overrides: str) -> None:
    command = [
        *launcher,
        "-m",
        "security_topics.train",
        # no dropout and batches in random order: DDP then computes what one process computes
        "model=tiny",
        "model.dropout=0",
        "model.encoder.dropout=0",
        "trainer.sampling=random",
        "trainer.epochs=6",
        *FIXTURE_DATA,
        f"paths.root_dir={workspace}",
        "save_dir=null",
        "tracking.log_model=false",
        f"hydra.run.dir={workspace / name}",
        *overrides,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]


def test_two_processes_train_like_one_with_the_same_effective_batch_and_log_one_run(tmp_path):
    torchrun = [str(BIN / "torchrun"), "--standalone", "--nproc_per_node=2"]
    _train(torchrun, tmp_path / "ddp", "run", "trainer=ddp_cpu", "trainer.batch_size=8")
    _train([sys.executable], tmp_path / "single", "run", "trainer.batch_size=16")

    results = {}
    for kind in ("ddp", "single"):
        mlflow.set_tracking_uri(f"sqlite:///{tmp_path / kind / 'experiments' / 'mlflow.db'}")
        runs = mlflow.search_runs(search_all_experiments=True, output_format="list")
        assert len(runs) == 1 and runs[0].info.status == "FINISHED"  # rank 1 neither logged nor started a run
        results[kind] = runs[0].data
    assert results["ddp"].params["world_size"] == "2" and results["single"].params["world_size"] == "1"
    ddp, single = (results[k].metrics["val_macro_f1"] for k in ("ddp", "single"))
    assert abs(ddp - single) <= 0.02, (ddp, single)
    assert ddp > 0.5  # and both learnt something

    # rank 0 alone wrote the run folder's files; rank 1 left no log file anywhere
    assert (tmp_path / "ddp" / "run" / "model" / "security_topics.json").is_file()
    assert [p.name for p in (tmp_path / "ddp").rglob("train.log")] == ["train.log"]
