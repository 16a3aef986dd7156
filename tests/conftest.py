"""An offline environment for every test, and models trained once per session (slow tests only)."""

import os

import pytest

# Tests never touch the network: no hub downloads, no tracking server.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["HF_DATASETS_DISABLE_PROGRESS_BARS"] = "1"
os.environ.pop("MLFLOW_TRACKING_URI", None)

# Under pytest-xdist (`make test` runs one worker per core), each worker gets one thread, so that the
# workers' torch and BLAS pools do not oversubscribe the cores they share.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("MKL_NUM_THREADS", "1")

import atexit  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402

# `precision="auto"` caches its measurements: never in the user's home.
os.environ["SECURITY_TOPICS_CACHE_DIR"] = tempfile.mkdtemp(prefix="security-topics-cache-")
atexit.register(shutil.rmtree, os.environ["SECURITY_TOPICS_CACHE_DIR"], ignore_errors=True)

from helpers import Run, train_run  # noqa: E402


@pytest.fixture(autouse=True)
def _no_tracking_uri_leaks():
    """`mlflow.set_tracking_uri` exports MLFLOW_TRACKING_URI: reset it after every test."""
    yield
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    if "mlflow" in sys.modules:
        sys.modules["mlflow"].set_tracking_uri(None)
        os.environ.pop("MLFLOW_TRACKING_URI", None)


@pytest.fixture(scope="session")
def workspace(tmp_path_factory) -> "os.PathLike":
    """One temporary root (processed data, MLflow store, models) for the session's runs."""
    return tmp_path_factory.mktemp("workspace")


@pytest.fixture(scope="session")
def tfidf_run(workspace) -> Run:
    return train_run(workspace, "tfidf", "model=tfidf", "save_dir=null")


@pytest.fixture(scope="session")
def tiny_run(workspace) -> Run:
    return train_run(workspace, "tiny", "model=tiny", "trainer.epochs=6", "save_dir=null")
