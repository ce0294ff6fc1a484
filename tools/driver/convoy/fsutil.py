"""Files that are never half-written.

A reader of a file written here sees either the old content or the new one,
never a mix, even if the writer dies midway: the new content goes to a
temporary file in the same directory, is flushed to disk, and is moved over
the old file with os.replace (atomic within one file system).

Logs (Bazel's output, build event files, copied test logs, plugin output)
may hold what a build printed, so they are private to the driver's user:
`private_dir` makes directories 0700, `open_private` and `private_copy`
files 0600, whatever the umask.
"""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path


PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700


def atomic_write(path: str | os.PathLike[str], data: str | bytes, *, mode: int = 0o666) -> None:
    """Replaces the file at `path` with `data` (str is written as UTF-8).

    The file gets `mode` less the umask (by default the usual permissions of
    a new file). On any error the old file is untouched and no temporary
    file is left.
    """
    path = Path(path)
    if isinstance(data, str):
        data = data.encode("utf-8")
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def private_dir(path: str | os.PathLike[str]) -> Path:
    """Makes the directory `path` (and missing parents, each 0700) and sets
    `path` itself to 0700 if it already existed; returns it."""
    path = Path(path)
    missing = []
    parent = path
    while not parent.exists() and parent != parent.parent:
        missing.append(parent)
        parent = parent.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=PRIVATE_DIR)
        except FileExistsError:  # made meanwhile by someone else
            pass
        else:
            os.chmod(directory, PRIVATE_DIR)  # mkdir's mode is less the umask
    if not missing:
        path.mkdir(mode=PRIVATE_DIR, exist_ok=True)  # raises unless it is a directory
    if path.stat().st_mode & 0o777 != PRIVATE_DIR:
        os.chmod(path, PRIVATE_DIR)
    return path


def open_private(path: str | os.PathLike[str], flags: int) -> int:
    """os.open(path, flags | O_CREAT) for a file only its owner may read:
    0600 when created, and set to 0600 if it already existed wider."""
    fd = os.open(path, flags | os.O_CREAT, PRIVATE_FILE)
    try:
        if os.fstat(fd).st_mode & 0o777 != PRIVATE_FILE:
            os.fchmod(fd, PRIVATE_FILE)
    except BaseException:
        os.close(fd)
        raise
    return fd


def private_copy(source: str | os.PathLike[str], dest: str | os.PathLike[str]) -> None:
    """Copies the file `source` to `dest` (replaced if there), 0600."""
    fd = open_private(dest, os.O_WRONLY | os.O_TRUNC)
    with os.fdopen(fd, "wb") as out, open(source, "rb") as src:
        shutil.copyfileobj(src, out)


def _fsync_dir(directory: Path) -> None:
    """Makes the rename itself durable (where the platform allows it)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
