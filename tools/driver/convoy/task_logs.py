"""A task's log where every worker can read it: its tail in the store, its whole in `logs_url`.

    tail = read_tail(log_path)                   # the last 16 KiB, from a line's start: tasks.log_tail
    problem = share(config, root, log_path)      # the copy in logs_url (None: copied, or no logs_url)
    path = shared_log(config, root, task)        # where that copy is (None: no logs_url, or no log)

A task's log is written in the clone that ran it, `.convoy/logs/request-<id>/build-<n>/<stage>-<conf>.log`
(convoy.tasks.log_paths); the task records that local path. Several workers on several machines
share one store, so at the task's end convoy.tasks keeps the log's tail in the store (in the same
transaction that records the end) and, when convoy.yaml sets `logs_url` (a directory, absolute or
relative to the checkout, or `file:///<absolute path>`: a shared directory), copies the whole log
to `<logs_url>/request-<id>/build-<n>/<same name>`: written as `<name>.partial`, then renamed, so
a reader never sees half a file. `convoy show` and the status page read the local file when it is
there, else the shared copy, else the tail.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from pathlib import Path, PurePath
from typing import Optional

from convoy.config import Config
from convoy.models import Task

TAIL_BYTES = 16 * 1024
_REQUEST = re.compile(r"request-[0-9]{1,19}")
_BUILD = re.compile(r"build-[0-9]{1,9}")
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*\.log")


def read_tail(path: str | os.PathLike[str], limit: int = TAIL_BYTES) -> Optional[str]:
    """The last `limit` bytes of the file at `path`, from the start of a line when it is cut
    (and a line starts in them), decoded as UTF-8 (a bad byte or a NUL becomes U+FFFD); None when it
    cannot be read."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            start = max(0, size - limit)
            f.seek(start)
            data = f.read(limit)
    except OSError:
        return None
    # A NUL becomes U+FFFD too: PostgreSQL's text holds none.
    return cut_tail(data, start > 0).decode("utf-8", errors="replace").replace("\x00", "\ufffd")


def cut_tail(data: bytes, cut: bool) -> bytes:
    """`data`, the end of a file (`cut`: not from its start), from its first line's start."""
    if cut:
        newline = data.find(b"\n")
        if 0 <= newline < len(data) - 1:
            return data[newline + 1:]
    return data


def logs_dir(config: Config, root: Path) -> Optional[Path]:
    """The directory convoy.yaml's `logs_url` names (relative to the checkout `root`), or None."""
    url = config.logs_url
    if not url:
        return None
    path = url[len("file://"):] if url.lower().startswith("file://") else url
    return root / path if not os.path.isabs(path) else Path(path)


def _relative(log_path: Optional[str]) -> Optional[PurePath]:
    """`request-<id>/build-<n>/<name>` of a task's local log path (None: not one of convoy's)."""
    if not log_path:
        return None
    parts = PurePath(log_path).parts[-3:]
    if len(parts) != 3 or not (_REQUEST.fullmatch(parts[0]) and _BUILD.fullmatch(parts[1])
                               and _NAME.fullmatch(parts[2])):
        return None
    return PurePath(*parts)


def shared_log(config: Config, root: Path, task: Task) -> Optional[Path]:
    """Where the copy of `task`'s log is in `logs_url` (whether or not it is there yet); None
    when convoy.yaml sets no `logs_url`, or the task has no log of convoy's."""
    directory = logs_dir(config, root)
    relative = _relative(task.log_path)
    return None if directory is None or relative is None else directory / relative


def share(config: Config, root: Path, log_path: Path) -> Optional[str]:
    """Copies the task's log at `log_path` into `logs_url` (see the module docstring); the
    problem in one line when it cannot (the task is not failed by it), None otherwise."""
    directory = logs_dir(config, root)
    relative = _relative(str(log_path))
    if directory is None or relative is None or not log_path.is_file():
        return None
    dest = directory / relative
    partial = dest.with_name(dest.name + ".partial")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(log_path, partial)
        os.replace(partial, dest)
    except OSError as e:
        with contextlib.suppress(OSError):
            partial.unlink()
        return (f"convoy: could not copy the log {log_path.name} to logs_url {directory}: {e.strerror or e}; "
                f"it stays in {log_path.parent} only; make logs_url a directory this worker can write")
    return None
