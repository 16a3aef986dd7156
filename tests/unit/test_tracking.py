"""MLflow set-up: a down server fails fast, params respect MLflow's limits, the registry works."""

import time
from pathlib import Path

import pytest

from security_topics import tracking
from security_topics.errors import TrackingError


def test_an_unreachable_server_fails_fast_with_what_to_do():
    started = time.perf_counter()
    with pytest.raises(TrackingError, match=r"http://127.0.0.1:9 is unreachable.*mlflow server"):
        tracking.configure("http://127.0.0.1:9", "security-topics")
    assert time.perf_counter() - started < 10


def test_flatten_nests_keys_and_cuts_long_values():
    flat = tracking.flatten({"model": {"lr": 0.001, "encoder": {"name": "x"}}, "notes": "a" * 7000})
    assert flat["model.lr"] == "0.001" and flat["model.encoder.name"] == "x"
    assert len(flat["notes"]) == tracking.MAX_PARAM_LENGTH


def test_explicit_uri_beats_the_environment_which_beats_the_local_store(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking.resolve_uri(None, "sqlite:///local.db") == "sqlite:///local.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://server:5000")
    assert tracking.resolve_uri(None, "sqlite:///local.db") == "http://server:5000"
    assert tracking.resolve_uri("sqlite:///explicit.db", "sqlite:///local.db") == "sqlite:///explicit.db"


def test_a_missing_run_names_the_store_that_was_searched(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    tracking.configure(uri, "empty", tmp_path / "artifacts")
    with pytest.raises(TrackingError, match=r"runs:/0123456789abcdef/model: .*searched the MLflow store sqlite:///"):
        tracking.download_artifacts("runs:/0123456789abcdef/model", uri)


def test_the_default_store_is_the_projects_wherever_the_code_runs(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    from helpers import ROOT

    assert tracking.resolve_uri() == f"sqlite:///{ROOT / 'experiments' / 'mlflow.db'}"
    missing = f"sqlite:///{tmp_path}/nowhere/mlflow.db"
    with pytest.raises(
        TrackingError, match=r"no MLflow store at sqlite:///.*nowhere/mlflow.db \(nothing was created\)"
    ):
        tracking.download_artifacts("runs:/0123/model", missing)
    assert not (tmp_path / "nowhere").exists() and not (tmp_path / "experiments").exists()


def test_logged_requirements_install_elsewhere_and_fit_the_family(tmp_path):
    from helpers import FakeModel

    from security_topics.mlflow_model import requirements

    model = FakeModel({})
    model.card.family = "tfidf"
    model.save(tmp_path / "tfidf")
    model.card.family = "transformer"
    model.save(tmp_path / "transformer")
    tfidf, transformer = requirements(tmp_path / "tfidf"), requirements(tmp_path / "transformer")
    assert not any(r.startswith(("torch==", "transformers==")) for r in tfidf)
    assert any(r.startswith("torch==") for r in transformer) and not any("+" in r for r in transformer)


@pytest.fixture
def web_page():
    """A local web server that is not MLflow: every path answers with an HTML page (or a 404)."""
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            code = {"missing": 404, "down": 503}.get(self.server.mode, 200)
            self.send_response(code)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(b"<html><body>" + b"<p>welcome</p>" * 500 + b"</body></html>")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.mode = ""
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()


@pytest.mark.parametrize(
    ("mode", "message"),
    [("page", "not with MLflow's JSON"), ("missing", "HTTP 404"), ("down", "answered with HTTP 503 .*server's log")],
)
def test_a_server_that_answers_but_is_not_mlflow_is_named_without_its_html(web_page, mode, message):
    web_page.mode = mode
    uri = f"http://127.0.0.1:{web_page.server_address[1]}"
    for attempt in (lambda: tracking.configure(uri, "x"), lambda: tracking.download_artifacts("runs:/abc/model", uri)):
        with pytest.raises(TrackingError, match=message) as caught:
            attempt()
        assert uri in str(caught.value) and "<html" not in str(caught.value)


def test_a_read_only_store_is_named(tmp_path, monkeypatch):
    db = tmp_path / "store" / "mlflow.db"
    db.parent.mkdir()
    db.write_bytes(b"")
    # Permission bits do not stop root (CI): stand in for a read-only mount through os.access.
    monkeypatch.setattr(tracking.os, "access", lambda path, mode: Path(path) != db)
    with pytest.raises(TrackingError, match=rf"MLflow store sqlite:///{db} is read-only"):
        tracking.configure(f"sqlite:///{db}", "x")


def test_a_store_without_its_driver_or_a_retired_backend_is_one_line(tmp_path, monkeypatch):
    import importlib.util

    monkeypatch.chdir(tmp_path)
    if importlib.util.find_spec("psycopg") is None:  # not one of our dependencies
        with pytest.raises(TrackingError, match=r"postgresql://u@localhost/db: needs the Python package 'psycopg'"):
            tracking.configure("postgresql://u@localhost/db", "x")
    with pytest.raises(TrackingError, match=r"MLflow store file: is not usable: The filesystem tracking backend"):
        tracking.configure("file:", "x")
    assert list(tmp_path.iterdir()) == []  # nothing left behind where the command ran


def test_a_full_disk_is_one_line_however_the_library_words_it(tmp_path, capsys):
    """SQLite under MLflow's store says SQLITE_FULL, safetensors says Rust's 'os error 28': neither is an
    OSError, and both must end a command in one line, not a traceback."""
    import sqlite3

    from safetensors import SafetensorError

    from security_topics.errors import exit_on_project_errors

    db = sqlite3.connect(tmp_path / "store.db")
    db.execute("create table runs (x blob)")
    db.execute("pragma max_page_count = 2")  # a real SQLITE_FULL, as a full disk under the store gives
    try:
        db.execute("insert into runs values (?)", (b"x" * 100_000,))
    except sqlite3.OperationalError as err:
        full = err
    assert str(full) == "database or disk is full"

    def logging_a_run():
        try:
            raise full
        except sqlite3.OperationalError as err:  # as MLflow wraps SQLAlchemy's wrapping of it
            raise RuntimeError("(sqlite3.OperationalError) database or disk is full [SQL: INSERT …]") from err

    def saving_weights():
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    for fails, words in (
        (logging_a_run, "RuntimeError: (sqlite3.OperationalError) database or disk is full"),
        (saving_weights, "SafetensorError: Error while serializing: I/O error: No space left"),
    ):
        with pytest.raises(SystemExit) as ended:
            exit_on_project_errors("train")(fails)()
        err = capsys.readouterr().err
        assert ended.value.code == 1 and err.count("\n") == 1
        assert err.startswith("train: the disk is full (") and words in err and "free space and run again" in err


def test_only_a_full_disk_reads_as_one():
    from security_topics.errors import _own_error

    class RestException(Exception):  # as MLflow's client raises what a tracking server answered
        pass

    assert _own_error(RuntimeError("I/O error (os error 280)")) is None
    assert _own_error(RestException("INTERNAL_ERROR: (sqlite3.OperationalError) database or disk is full")) is None
    assert "the disk is full" in str(_own_error(RuntimeError("I/O error: No space left on device (os error 28)")))
