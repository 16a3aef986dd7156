"""Faults leave an honest trail: runs killed by SIGTERM or SIGKILL end up closed in MLflow."""

import signal
import subprocess
import sys

import mlflow
import pytest

from security_topics import tracking

pytestmark = pytest.mark.slow

# A tracked "training" that waits to be killed; run under the entry points' error handling.
VICTIM = """
import sys, time
from security_topics import tracking
from security_topics.errors import exit_on_project_errors

@exit_on_project_errors("victim")
def main():
    tracking.configure(sys.argv[1], "faults")
    with tracking.start_run("victim", tags={}) as run:
        print(run.info.run_id, flush=True)
        time.sleep(120)

main()
"""


def _start_victim(uri: str) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(
        [sys.executable, "-c", VICTIM, uri], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    run_id = process.stdout.readline().strip()
    assert run_id, process.stderr.read()
    return process, run_id


def test_a_run_stopped_by_sigterm_is_marked_killed_with_its_end_time(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    process, run_id = _start_victim(uri)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)

    assert process.returncode == 143
    assert stderr.strip().splitlines()[-1] == "victim: stopped by SIGTERM (an open MLflow run is marked KILLED)"
    assert "Traceback" not in stderr
    mlflow.set_tracking_uri(uri)
    info = mlflow.get_run(run_id).info
    assert info.status == "KILLED" and info.end_time is not None


def test_the_next_run_closes_a_run_left_running_by_a_process_killed_with_sigkill(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    process, run_id = _start_victim(uri)
    process.kill()
    process.wait(timeout=60)
    mlflow.set_tracking_uri(uri)
    dead = mlflow.get_run(run_id)
    assert dead.info.status == "RUNNING" and dead.data.tags["pid"] == str(process.pid)

    tracking.configure(uri, "faults")
    with tracking.start_run("next", tags={}) as run:
        pass

    dead = mlflow.get_run(run_id)
    assert dead.info.status == "KILLED" and dead.info.end_time is not None
    assert f"process {process.pid}" in dead.data.tags["closed_by"]
    assert mlflow.get_run(run.info.run_id).info.status == "FINISHED"
