"""A training whose MLflow store or run folder sits on a full disk ends in one line, not a
traceback: a real 64 KB tmpfs (the test is skipped, saying why, where one cannot be mounted)."""

import subprocess
import sys

import pytest
from helpers import FIXTURE_DATA, ROOT

pytestmark = pytest.mark.slow


@pytest.fixture
def full_disk(tmp_path):
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()[:200]}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


@pytest.mark.parametrize("where", ["store", "run folder"])
def test_a_full_disk_under_the_store_or_the_run_folder_is_one_line(full_disk, tmp_path, where):
    on_disk = {
        "store": [f"tracking.uri=sqlite:///{full_disk}/mlflow.db"],
        "run folder": [f"tracking.uri=sqlite:///{tmp_path}/mlflow.db", f"hydra.run.dir={full_disk}/run"],
    }[where]
    command = [
        sys.executable,
        "-m",
        "security_topics.train",
        "model=tfidf",
        *FIXTURE_DATA,
        f"paths.root_dir={tmp_path}",
        "tracking.log_model=false",
        "save_dir=null",
        *on_disk,
    ]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    last = done.stderr.strip().splitlines()[-1]
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert last.startswith("train: the disk is full (") and last.endswith("free space and run again")
    words = {"store": "database or disk is full", "run folder": "No space left on device"}[where]
    assert words in last
