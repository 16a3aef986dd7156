"""Replace a folder whole or not at all: build it beside the target, flush it to disk, swap by rename.
And hold a folder for one job at a time.

A kill or a full disk while a model is saved then leaves the previous model as it was (and a hidden
staging folder that the next save clears), never an empty folder or a mix of two models.
"""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path
from typing import IO

from security_topics.errors import ConfigError


def staging_for(target: Path) -> Path:
    """A fresh hidden sibling of `target` to build the new folder in (unique per process and call)."""
    return target.with_name(f".{target.name}.staging-{os.getpid()}-{secrets.token_hex(4)}")


def swap_into_place(staging: Path, target: Path) -> None:
    """Flush every file of `staging` to disk, then put it where `target` is; an earlier `target` is
    renamed aside first and removed only once the new one is in place."""
    for path in sorted(staging.rglob("*")):
        if path.is_file() and not path.is_symlink():
            with open(path, "rb") as stream:
                os.fsync(stream.fileno())
    retired = staging.with_name(staging.name + ".old")
    if target.exists():
        target.rename(retired)
    staging.rename(target)
    _fsync_dir(target.parent)
    shutil.rmtree(retired, ignore_errors=True)


def _fsync_dir(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def hold_lock(path: Path, refusal: str) -> IO[str]:
    """An exclusive lock on the file `path` (created if missing) for as long as the returned file is
    open (close it, or use it in `with`; a process that ends, even killed, releases it). Raises
    ConfigError with `refusal` when another job holds it."""
    import fcntl

    stream = open(path, "a+")  # noqa: SIM115 - the lock lives as long as this file stays open
    try:
        fcntl.flock(stream.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        stream.close()
        raise ConfigError(refusal) from None
    return stream
