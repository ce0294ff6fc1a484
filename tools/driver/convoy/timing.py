"""Where a request's time goes: Bazel, git, and the driver itself.

A `Meter` accumulates wall-clock time per kind ("bazel", "git"), counting
overlapping intervals once (two Bazel tasks running side by side for 10 s
are 10 s of Bazel time), so that `total - bazel - git` is the time the
driver spent on its own work:

    meter = Meter()
    with meter.active():                 # git calls in this context are measured
        with meter.measure("bazel"):
            run_bazel(...)
    meter.seconds("git")

`active()` makes the meter the current one (`current()`) for the duration
of the block: every `convoy.gitutil.run` call made there (including the
ones made by the lock resolver) counts its time as git time on it. The
current meter is a context variable, not a global: it is the request's own,
and a thread sees it only when it runs in a copy of the context that set it
(`contextvars.copy_context().run`, as convoy.pipeline runs its task
threads). gitutil asks this module; this module imports nothing of convoy.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
import time
from typing import Iterator, Optional

_current: contextvars.ContextVar[Optional[Meter]] = contextvars.ContextVar("convoy.timing.current", default=None)


def current() -> Optional[Meter]:
    """The meter of the request this code runs for (`Meter.active()`), or None."""
    return _current.get()


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
        """Measures every gitutil.run call made while the block runs (in
        this context, and in the copies of it that threads run in)."""
        token = _current.set(self)
        try:
            yield self
        finally:
            _current.reset(token)
