"""The project's own errors: one base class, so every entry point turns them into one clear line.

Each message says what is wrong and where (file, line, field, config key or store) and what to do.
"""

from __future__ import annotations

import functools
import json
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


# What json.loads raises for a text that is not JSON, or nests too deeply for Python's parser (a
# 200,000-deep array is a RecursionError, not a JSONDecodeError).
JSON_ERRORS = (json.JSONDecodeError, RecursionError)


def json_problem(err: BaseException) -> str:
    """What is wrong with a JSON text, for a one-line error."""
    if isinstance(err, json.JSONDecodeError):
        return f"{err.msg} (column {err.colno})"
    return "nested too deeply"


class ProjectError(Exception):
    """Base of every error this project raises on purpose (bad input, config, model or store)."""


class DataError(ProjectError, ValueError):
    """A data file is malformed; the message reads `file:line: field 'x': what is wrong`."""

    def __init__(self, path: str | Path, line: int, field_name: str, message: str) -> None:
        self.path, self.line, self.field = str(path), line, field_name
        super().__init__(f"{path}:{line}: field '{field_name}': {message}")


class ConfigError(ProjectError, ValueError):
    """A config value is of the wrong type or out of range; the message names the key."""


class ModelDirError(ProjectError, ValueError):
    """A model directory is missing, incomplete or damaged; the message names the file."""


class ModelNotFoundError(ProjectError, RuntimeError):
    """A pretrained model is neither cached locally nor reachable."""


class TrackingError(ProjectError, RuntimeError):
    """The tracking store can not be used, or a run or model is not in it; the message says what to do."""


class EngineError(ProjectError, RuntimeError):
    """An external engine (Spark) did not start or its job failed; the message names the engine and why."""


class Terminated(BaseException):
    """SIGTERM arrived during a tracked run: unwinds like Ctrl-C, so the run is closed as KILLED."""


def exit_on_project_errors(task: str) -> Callable[[F], F]:
    """For entry points only: end the command with one line on stderr and exit code 1 when it
    fails with one of the project's own errors (or a missing or unreadable file), also when
    Hydra's `instantiate` wrapped it. `HYDRA_FULL_ERROR=1` or `--debug` shows the traceback."""

    def decorate(func: F) -> F:
        @functools.wraps(func)
        def run(*args: Any, **kwargs: Any) -> Any:
            try:
                return func(*args, **kwargs)
            except (KeyboardInterrupt, Terminated) as err:
                if os.environ.get("HYDRA_FULL_ERROR") == "1":
                    raise
                how = "SIGTERM" if isinstance(err, Terminated) else "Ctrl-C"
                print(f"{task}: stopped by {how} (an open MLflow run is marked KILLED)", file=sys.stderr)
                sys.exit(143 if isinstance(err, Terminated) else 130)
            except Exception as err:
                own = _own_error(err)
                if own is None or os.environ.get("HYDRA_FULL_ERROR") == "1":
                    raise
                print(f"{task}: {own}", file=sys.stderr)
                sys.exit(1)

        return run  # type: ignore[return-value]

    return decorate


# How a full disk reads where it does not arrive as OSError(ENOSPC): SQLite under MLflow's store
# (SQLITE_FULL), Rust's std::io in safetensors and tokenizers.
DISK_FULL = re.compile(
    r"\(sqlite3\.OperationalError\) database or disk is full|^database or disk is full$|"
    r"No space left on device|\(os error 28\)"
)


def _own_error(err: BaseException | None) -> BaseException | None:
    """The project's error (or OSError, or a full disk however a library words it) behind `err`,
    following the chain of causes."""
    seen = 0
    while err is not None and seen < 10:
        if isinstance(err, (ProjectError, OSError)):
            return err
        if DISK_FULL.search(str(err)) and type(err).__name__ != "RestException":  # a server's disk is not ours
            return ProjectError(
                f"the disk is full ({type(err).__name__}: {str(err).splitlines()[0][:200]}); free space and run again"
            )
        err, seen = err.__cause__ or err.__context__, seen + 1
    return None


def is_recoverable(err: BaseException) -> bool:
    """Whether one record's failure may be reported and the job go on: any Exception, and a Rust panic
    from a native library (a tokenizer's normaliser regex), which pyo3 raises as PanicException, a
    BaseException. Never KeyboardInterrupt or SystemExit."""
    return isinstance(err, Exception) or type(err).__name__ == "PanicException"
