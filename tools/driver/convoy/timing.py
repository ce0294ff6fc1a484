"""Where a request's time goes: Bazel, git, and the driver itself.

A `Meter` accumulates wall-clock time per kind ("bazel", "git"), counting
overlapping intervals once (two Bazel tasks running side by side for 10 s
are 10 s of Bazel time), so that `total - bazel - git` is the time the
driver spent on its own work:

    meter = Meter()
    with meter.active():                 # git calls anywhere are measured
        with meter.measure("bazel"):
            run_bazel(...)
    meter.seconds("git")

`active()` routes every `convoy.gitutil.run` call (including the ones made
by the lock resolver) to the meter, for the duration of the block.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Iterator, Optional

from convoy import gitutil

_original_git_run = gitutil.run
_current: Optional["Meter"] = None


class Meter:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._active: dict[str, int] = {}
        self._since: dict[str, float] = {}
        self._total: dict[str, float] = {}
        self.started = time.monotonic()

    def _enter(self, kind: str) -> None:
        with self._lock:
            if not self._active.get(kind):
                self._since[kind] = time.monotonic()
            self._active[kind] = self._active.get(kind, 0) + 1

    def _exit(self, kind: str) -> None:
        with self._lock:
            self._active[kind] -= 1
            if not self._active[kind]:
                self._total[kind] = self._total.get(kind, 0.0) + time.monotonic() - self._since.pop(kind)

    @contextlib.contextmanager
    def measure(self, kind: str) -> Iterator[None]:
        self._enter(kind)
        try:
            yield
        finally:
            self._exit(kind)

    def seconds(self, kind: str) -> float:
        with self._lock:
            total = self._total.get(kind, 0.0)
            if self._active.get(kind):
                total += time.monotonic() - self._since[kind]
            return total

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @contextlib.contextmanager
    def active(self) -> Iterator["Meter"]:
        """Measures every gitutil.run call made while the block runs."""
        global _current
        previous, _current = _current, self
        gitutil.run = _measured_git_run
        try:
            yield self
        finally:
            _current = previous
            if previous is None:
                gitutil.run = _original_git_run


def _measured_git_run(*args, **kwargs):
    meter = _current
    if meter is None:
        return _original_git_run(*args, **kwargs)
    with meter.measure("git"):
        return _original_git_run(*args, **kwargs)
