"""The project's own errors: one base class, so every entry point turns them into one clear line.

Each message says what is wrong and where (file, line, field, config key or store) and what to do.
"""

from __future__ import annotations

from pathlib import Path


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
