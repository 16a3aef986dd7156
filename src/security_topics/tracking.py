"""MLflow: store set-up (fail fast when a server is down), run metadata, metrics, artifacts."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow
from mlflow.exceptions import MlflowException

from security_topics.atomic import process_alive
from security_topics.errors import Terminated, TrackingError

log = logging.getLogger(__name__)

# The project's own store, wherever the code runs from (a notebook in another folder included):
# the repository root for a source checkout, else the working directory.
_SOURCE_ROOT = Path(__file__).resolve().parents[2]
PROJECT_ROOT = _SOURCE_ROOT if (_SOURCE_ROOT / "configs").is_dir() else Path.cwd()
DEFAULT_URI = f"sqlite:///{PROJECT_ROOT / 'experiments' / 'mlflow.db'}"
MAX_PARAM_LENGTH = 6000  # MLflow 3's limit on a param value
PARAMS_PER_CALL = 100


def resolve_uri(uri: str | None = None, local_uri: str = DEFAULT_URI) -> str:
    """An explicit URI, else MLFLOW_TRACKING_URI, else the project's local store."""
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or local_uri


def configure(uri: str, experiment: str, artifact_root: str | Path | None = None) -> str:
    """Point MLflow at `uri` and select `experiment`, creating it if new; return its id.

    A server that does not answer is reported at once rather than after MLflow's retries.
    """
    if uri.startswith(("http://", "https://")):
        check_server(uri)
    elif uri.startswith("sqlite:///"):
        _check_writable(uri, Path(uri.removeprefix("sqlite:///")))
    mlflow.set_tracking_uri(uri)
    try:
        found = mlflow.get_experiment_by_name(experiment)
    except ModuleNotFoundError as err:  # a store whose driver is not installed (postgresql:// without psycopg)
        raise TrackingError(
            f"MLflow store {uri}: needs the Python package {err.name!r}, which is not installed "
            f"(pip install {err.name}), or point tracking.uri / MLFLOW_TRACKING_URI at another store"
        ) from None
    except MlflowException as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise TrackingError(f"MLflow store {uri} is not usable: {first[:300]}") from None
    if found is not None:
        experiment_id = found.experiment_id
    else:
        location = None
        if artifact_root is not None and not uri.startswith(("http://", "https://")):
            location = (Path(artifact_root).resolve() / experiment).as_uri()
        experiment_id = mlflow.create_experiment(experiment, artifact_location=location)
    if (found is None or EXPERIMENT_KIND not in found.tags) and not uri.startswith(("http://", "https://")):
        # MLflow 3's UI opens a model-training experiment on its runs table, not the GenAI overview
        mlflow.MlflowClient().set_experiment_tag(experiment_id, EXPERIMENT_KIND, "custom_model_development")
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


def _check_writable(uri: str, db: Path) -> None:
    """A run writes to the store: a read-only file or folder is named now, not in an SQL error later."""
    try:
        db.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise TrackingError(f"MLflow store {uri}: cannot create its folder ({err.strerror})") from None
    target = db if db.exists() else db.parent
    if not os.access(target, os.W_OK) or (db.exists() and not os.access(db.parent, os.W_OK)):
        raise TrackingError(
            f"MLflow store {uri} is read-only ({target}); make it writable, or point tracking.uri or "
            "MLFLOW_TRACKING_URI at a store you can write"
        )


def check_server(uri: str, timeout: float = 5.0) -> None:
    """Fail in seconds, naming the cause, when `uri` is not a working MLflow server: nothing
    listens (MLflow itself would retry for minutes), or something answers that is not MLflow."""
    probe = uri.rstrip("/") + "/api/2.0/mlflow/experiments/search?max_results=1"
    try:
        with urllib.request.urlopen(probe, timeout=timeout) as response:
            body = response.read()
    except urllib.error.HTTPError as err:
        if err.code in (401, 403):
            return  # it is there and wants credentials: MLflow sends them (MLFLOW_TRACKING_TOKEN …)
        if err.code >= 500:
            raise TrackingError(
                f"MLflow tracking server {uri} answered with HTTP {err.code} (a server or proxy error): "
                "check the server's log and its backend store"
            ) from None
        raise TrackingError(
            f"{uri} answers (HTTP {err.code} for MLflow's REST API) but is not an MLflow tracking server; "
            "check the address and port in tracking.uri or MLFLOW_TRACKING_URI"
        ) from None
    except (urllib.error.URLError, OSError) as err:
        problem = str(getattr(err, "reason", err))
        raise TrackingError(
            f"MLflow tracking server {uri} is unreachable ({problem}). Start it (`mlflow server --port 5000`), "
            "fix tracking.uri or MLFLOW_TRACKING_URI, or unset MLFLOW_TRACKING_URI to use the local store "
            "experiments/mlflow.db."
        ) from None
    try:
        json.loads(body)
    except ValueError:
        raise TrackingError(
            f"{uri} answers, but not with MLflow's JSON (is it a web page or a proxy?); check the address "
            "and port in tracking.uri or MLFLOW_TRACKING_URI"
        ) from None


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """`{"model": {"lr": 1e-3}}` → `{"model.lr": "0.001"}`, values cut to MLflow's limit."""
    flat: dict[str, str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = str(value)[:MAX_PARAM_LENGTH]
    return flat


def log_config(config: Mapping[str, Any], config_yaml: str) -> None:
    """The resolved config as flat params, and as the YAML file it was written in."""
    items = sorted(flatten(config).items())
    for start in range(0, len(items), PARAMS_PER_CALL):
        mlflow.log_params(dict(items[start : start + PARAMS_PER_CALL]))
    mlflow.log_text(config_yaml, "config.yaml")


def git_tags(root: str | Path = ".") -> dict[str, str]:
    """Commit and dirty state of the working tree, so a run can be traced to code."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return {"git_commit": "unknown"}
    return {"git_commit": commit, "git_dirty": str(bool(dirty)).lower()}


@contextmanager
def start_run(run_name: str, tags: dict[str, str], parent_run_id: str | None = None) -> Iterator[mlflow.ActiveRun]:
    """A run that leaves an honest trail: FAILED on an error, KILLED on Ctrl-C or SIGTERM (with its
    end time), and `pid`/`host` tags so a later run can close it if the process died on SIGKILL."""
    tags = {**tags, "pid": str(os.getpid()), "host": socket.gethostname()}
    if parent_run_id:
        tags["mlflow.parentRunId"] = parent_run_id
    with _sigterm_unwinds(), mlflow.start_run(run_name=run_name, tags=tags) as run:
        try:
            close_dead_runs(run.info.experiment_id)
        except MlflowException as err:  # housekeeping must never fail the run it starts
            log.warning("could not look for runs left RUNNING by dead processes: %s", err)
        try:
            yield run
        except (KeyboardInterrupt, Terminated):
            mlflow.end_run("KILLED")
            raise


@contextmanager
def _sigterm_unwinds() -> Iterator[None]:
    """Turn SIGTERM into an exception for the duration of a run (main thread only: Python's rule)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise Terminated(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def close_dead_runs(experiment_id: str) -> list[str]:
    """Mark KILLED the runs left RUNNING by a process of this host that no longer exists (SIGKILL,
    power loss); return their ids. Runs of other hosts, or of live processes, are left alone."""
    client = mlflow.MlflowClient()
    host = socket.gethostname()
    runs = client.search_runs([experiment_id], filter_string=f"attributes.status = 'RUNNING' and tags.host = '{host}'")
    closed = []
    for found in runs:
        pid = found.data.tags.get("pid", "")
        if not pid.isdigit() or process_alive(int(pid)):
            continue
        client.set_tag(found.info.run_id, "closed_by", f"pid {os.getpid()}: process {pid} on {host} had died")
        client.set_terminated(found.info.run_id, status="KILLED")
        log.warning("MLflow run %s was left RUNNING by process %s, which died: marked KILLED", found.info.run_id, pid)
        closed.append(found.info.run_id)
    return closed


def log_metrics(metrics: Mapping[str, float], step: int | None = None, prefix: str = "") -> None:
    mlflow.log_metrics({f"{prefix}{k}": float(v) for k, v in metrics.items()}, step=step)


EXPERIMENT_KIND = "mlflow.experimentKind"


def download_artifacts(uri: str, tracking_uri: str | None = None) -> Path:
    """Fetch a logged model or artifact folder (`runs:/…`, `models:/…`) into a local folder."""
    store = resolve_uri(tracking_uri)
    if store.startswith(("http://", "https://")):
        check_server(store)
    elif store.startswith("sqlite:///") and not Path(store.removeprefix("sqlite:///")).is_file():
        raise TrackingError(
            f"{uri}: there is no MLflow store at {store} (nothing was created); pass tracking_uri=... "
            "or --tracking-uri, or set MLFLOW_TRACKING_URI, to use another"
        )
    mlflow.set_tracking_uri(store)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no bars on stderr at every load
    try:
        return Path(mlflow.artifacts.download_artifacts(artifact_uri=uri))
    except MlflowException as err:
        raise TrackingError(
            f"{uri}: {err.message} (searched the MLflow store {store}; pass tracking_uri=... "
            "or --tracking-uri, or set MLFLOW_TRACKING_URI, to use another)"
        ) from None


def set_tags(tags: Mapping[str, str]) -> None:
    mlflow.set_tags(dict(tags))


def log_artifacts(directory: Path, artifact_path: str) -> None:
    mlflow.log_artifacts(str(directory), artifact_path)


def sweep_parent(experiment_id: str, tags: Mapping[str, str]) -> str | None:
    """The parent run that groups a sweep's jobs in the MLflow UI (created by the first job).

    `tags` are the job's sweep tags (`sweep_id` …); none means the job is not part of a sweep.
    """
    if not tags:
        return None
    client = mlflow.MlflowClient()
    found = client.search_runs(
        [experiment_id], filter_string=f"tags.sweep_id = '{tags['sweep_id']}' and tags.sweep_parent = 'true'"
    )
    if found:
        return found[0].info.run_id
    parent = client.create_run(
        experiment_id, run_name=f"sweep-{tags['sweep_id']}", tags={"sweep_id": tags["sweep_id"], "sweep_parent": "true"}
    )
    client.set_terminated(parent.info.run_id)
    return parent.info.run_id
