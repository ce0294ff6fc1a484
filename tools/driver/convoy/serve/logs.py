"""`GET /api/requests/{id}/logs/{task_id}`: the tail of a task's log, for the status page's links.

    curl -sS "$CONVOY/api/requests/6/logs/12"                    # the task's Bazel log, last 64 KiB, as JSON
    curl -sS "$CONVOY/api/requests/6/logs/12?file=1&kib=16&format=text"   # its first failing test's log

A task's files are its Bazel log, then the test logs of its failing
targets, in the order `convoy show` lists them (`task_logs`); `file=N`
picks one (default 0). Only a file the store recorded for that task of
that request is read, and only when it resolves (symbolic links followed)
to a regular file under the checkout's `.convoy/logs`: a path in the store
that points anywhere else (a test log left in a Bazel output base, or a
value someone wrote into the store) is refused with 404, so this endpoint
can read convoy's own logs and nothing else. The Bazel log of a task that
another worker ran (its file is not in this checkout's `.convoy/logs`) is
read from its copy in convoy.yaml's `logs_url` (convoy.task_logs; only a
file under that directory), else it is the tail the store kept
(tasks.log_tail, at most 16 KiB); `source` says which: local, shared or store.

The answer is the last `kib` KiB (default 64, at most 1024), from the
start of a line when it is cut, decoded as UTF-8 (a bad byte becomes
U+FFFD): JSON `{"request_id", "task_id", "file", "name", "size",
"truncated", "text", "source"}`, or with `format=text` the text itself as
`text/plain` (`X-Content-Type-Options: nosniff`, so no browser runs it).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any, Optional

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse

from convoy.actions import checkout as common
from convoy.config import CONFIG_NAME
from convoy.models import Task
from convoy.task_logs import cut_tail, logs_dir, shared_log
from convoy.serve.web import JSON, ApiError, check_read
from convoy.store import state_dir

DEFAULT_KIB = 64
MAX_KIB = 1024
MAX_FILES = 1000


def task_logs(task: Task) -> list[str]:
    """The task's log files: its Bazel log, then its failing targets' test logs (each once)."""
    paths = [task.log_path] if task.log_path else []
    for target in task.failing_targets:
        paths += [p for p in target.log_paths if p not in paths]
    return paths


def url(request_id: int, task_id: int, file: int) -> str:
    """The page's link to one log's tail, as text."""
    return f"/api/requests/{request_id}/logs/{task_id}?file={file}&format=text"


async def tail(request: Request) -> Any:
    check_read(request)
    request_id = _path_id(request, "id", "request id")
    task_id = _path_id(request, "task_id", "task id")
    file = _param(request, "file", 0, high=MAX_FILES)
    kib = _param(request, "kib", DEFAULT_KIB, low=1, high=MAX_KIB)
    as_text = request.query_params.get("format", "json")
    if as_text not in ("json", "text"):
        raise ApiError(400, "format must be json or text")
    found = await run_in_threadpool(read_tail, request.app.state.root, request_id, task_id, file, kib * 1024)
    if as_text == "text":
        return PlainTextResponse(found["text"], headers={"X-Content-Type-Options": "nosniff",
                                                         "Content-Security-Policy": "default-src 'none'; sandbox",
                                                         "Cache-Control": "no-store"})
    return JSON(found)


def read_tail(root: Path, request_id: int, task_id: int, file: int, limit: int) -> dict[str, Any]:
    """The last `limit` bytes of file `file` of task `task_id` of request `request_id` (see the module docstring)."""
    task, path = _recorded(root, request_id, task_id, file)
    logs = (state_dir(root, create=False) / "logs").resolve()
    resolved = Path(os.path.realpath(path)) if os.path.isabs(path) else None
    found: Optional[tuple[Path, int, bool, str]] = None
    if resolved is not None and resolved.is_relative_to(logs):
        found = _read_end(resolved, limit, file, task_id)
    elif file != 0:
        raise ApiError(404, f"log {file} of task {task_id} is not in convoy's logs directory; read it on the host")
    source = "local"
    if found is None and file == 0:  # the Bazel log of a task another worker ran: its copy, else its tail
        found, source = _shared(root, task, limit), "shared"
        if found is None and task.log_tail is not None:
            data = task.log_tail.encode("utf-8")
            text = cut_tail(data[-limit:], len(data) > limit).decode("utf-8", errors="replace")
            found, source = (Path(path), len(data), len(data) > limit, text), "store"
    if found is None:
        raise ApiError(404, f"log {file} of task {task_id} is gone (logs are kept in .convoy/logs)")
    name, size, truncated, text = found
    return {"request_id": request_id, "task_id": task_id, "file": file, "name": name.name, "size": size,
            "truncated": truncated, "text": text, "source": source}


def _read_end(path: Path, limit: int, file: int, task_id: int) -> Optional[tuple[Path, int, bool, str]]:
    """(path, size, truncated, text) of the regular file at `path` (None: it is not there)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ApiError(404, f"log {file} of task {task_id} is not a regular file")
        start = max(0, info.st_size - limit)
        f.seek(start)
        data = f.read(limit)
    return path, info.st_size, start > 0, cut_tail(data, start > 0).decode("utf-8", errors="replace")


def _shared(root: Path, task: Task, limit: int) -> Optional[tuple[Path, int, bool, str]]:
    """The end of the task's log copy in convoy.yaml's `logs_url` (None: no such copy)."""
    config = common.config(root) if (root / CONFIG_NAME).is_file() else None
    shared = shared_log(config, root, task) if config is not None else None
    directory = logs_dir(config, root) if config is not None else None
    if shared is None or directory is None:
        return None
    resolved = Path(os.path.realpath(shared))
    if not resolved.is_relative_to(Path(os.path.realpath(directory))):
        return None
    return _read_end(resolved, limit, 0, task.id)


def _recorded(root: Path, request_id: int, task_id: int, file: int) -> tuple[Task, str]:
    """The task, and the path the store recorded as its file `file` (404 when there is none)."""
    task: Optional[Task] = None
    if common.has_store(root):
        with common.store(root, readonly=True) as store, store.read() as tx:
            task = tx.task(task_id)
            build = tx.build(task.build_id) if task is not None else None
            if build is None or build.request_id != request_id:
                task = None
    if task is None:
        raise ApiError(404, f"request #{request_id} has no task {task_id}; see GET /api/requests/{request_id}")
    paths = task_logs(task)
    if file >= len(paths):
        raise ApiError(404, f"task {task_id} has {len(paths)} log file(s); file must be below {len(paths)}")
    return task, paths[file]


def _path_id(request: Request, name: str, what: str) -> int:
    text = request.path_params[name]
    if not (text.isascii() and text.isdigit()) or len(text) > 19 or not 1 <= int(text) <= common.MAX_ID:
        raise ApiError(400, f"{text[:40]!r} is not a {what} (a number from 1)")
    return int(text)


def _param(request: Request, name: str, default: int, *, low: int = 0, high: int) -> int:
    text = request.query_params.get(name)
    if text is None:
        return default
    if not (text.isascii() and text.isdigit()) or len(text) > 19 or not low <= int(text) <= high:
        raise ApiError(400, f"{name} must be a number from {low} to {high}")
    return int(text)
