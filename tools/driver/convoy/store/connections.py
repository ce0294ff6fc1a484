"""One database connection per thread, for both backends (SQLiteStore,
PostgresStore): a thread's connection is closed when the thread ends (its
locals are dropped) or when the store is closed.

    self.connections = ThreadConnections()
    conn = self.connections.current(usable=lambda c: not c.broken)   # None: connect
    if conn is None:
        conn = self.connections.hold(connect(...))   # closed with the store, even if its setup then fails
    self.connections.close()
    self.connections.open_count()   # for tests: threads must not leak them
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from typing import Any, Callable, Optional


class ThreadConnections:
    """Each thread's connection, held weakly (see the module docstring)."""

    def __init__(self) -> None:
        self._local = threading.local()
        self._held: weakref.WeakSet[_Held] = weakref.WeakSet()
        self._lock = threading.Lock()

    def current(self, usable: Callable[[Any], bool] = lambda conn: True) -> Optional[Any]:
        """This thread's connection, or None (none yet, or not `usable`: then it is closed)."""
        held = getattr(self._local, "held", None)
        if held is None or held.conn is None:
            return None
        if not usable(held.conn):
            held.close()
            return None
        return held.conn

    def hold(self, conn: Any) -> Any:
        """Makes `conn` this thread's connection; returns it."""
        held = _Held(conn)
        with self._lock:
            self._held.add(held)
        self._local.held = held
        return conn

    def close(self) -> None:
        with self._lock:
            for held in list(self._held):
                held.close()
        self._local = threading.local()

    def open_count(self) -> int:
        with self._lock:
            return sum(1 for held in self._held if held.conn is not None)


class _Held:
    """One thread's connection; closed when the thread's locals are dropped or the store is closed."""

    def __init__(self, conn: Any) -> None:
        self.conn: Optional[Any] = conn

    def close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    __del__ = close
