"""Replace a folder whole or not at all: build it beside the target, flush it to disk, swap by rename.
And hold a folder for one job at a time.

A kill or a full disk while a model is saved then leaves the previous model as it was (and a hidden
staging folder that the next save into the same place clears), never an empty folder or a mix of two
models. On Linux the old and new folders trade places in one `renameat2(RENAME_EXCHANGE)`, so there is
no moment without a model; elsewhere the old one is renamed aside first, and a save that died between
the two renames is put back by the next.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import re
import secrets
import shutil
import socket
from pathlib import Path
from typing import IO

from security_topics.errors import ConfigError

log = logging.getLogger(__name__)


def staging_for(target: Path) -> Path:
    """A fresh hidden sibling of `target` to build the new folder in (unique per process and call).
    What earlier saves into `target` left behind is cleared first: staging folders of processes that
    are gone, and an earlier `target` that a save killed between two renames left aside is put back."""
    _clear_leftovers(target)
    return target.with_name(f".{target.name}.staging-{_HOST}-{os.getpid()}-{secrets.token_hex(4)}")


def swap_into_place(staging: Path, target: Path) -> None:
    """Flush every file of `staging` to disk, then put it where `target` is: the two trade places in
    one step where the system can (Linux), else an earlier `target` is renamed aside first; the old
    folder is removed only once the new one is in place."""
    for path in sorted(staging.rglob("*")):
        if path.is_file() and not path.is_symlink():
            with open(path, "rb") as stream:
                os.fsync(stream.fileno())
    if target.exists() and _exchange(staging, target):
        _fsync_dir(target.parent)
        shutil.rmtree(staging, ignore_errors=True)  # it holds the earlier folder now
        return
    retired = staging.with_name(staging.name + ".old")
    if target.exists():
        target.rename(retired)
    staging.rename(target)
    _fsync_dir(target.parent)
    shutil.rmtree(retired, ignore_errors=True)


# This host, in staging names: a process id means something only on the host that wrote it (a model
# folder on a shared volume may be saved from several).
_HOST = hashlib.sha1(socket.gethostname().encode()).hexdigest()[:8]


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically with Linux's renameat2(RENAME_EXCHANGE); False where the system or
    file system has no such call (the caller falls back to two renames)."""
    import ctypes

    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EPERM):  # EPERM: a seccomp filter
        return False
    raise OSError(code, os.strerror(code), str(a))


def _clear_leftovers(target: Path) -> None:
    """Best effort: a leftover that cannot be cleared now is left for a later save, never an error."""
    pattern = re.compile(rf"\.{re.escape(target.name)}\.staging-{_HOST}-(\d+)-[0-9a-f]{{8}}(\.old)?")
    try:
        names = sorted(p.name for p in target.parent.iterdir())
    except OSError:
        return
    for match in filter(None, map(pattern.fullmatch, names)):
        path = target.parent / match[0]
        try:
            if process_alive(int(match[1])):
                continue
            if match[2] and not os.path.lexists(target):
                path.rename(target)  # the earlier folder, set aside by a save that died before its swap
            else:
                shutil.rmtree(path)
        except (OSError, OverflowError) as err:
            log.warning("%s: left as it is (%s)", path, err)


def process_alive(pid: int) -> bool:
    """Whether process `pid` runs on this host (owned by anyone)."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


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
