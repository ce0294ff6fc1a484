"""The driver's state: a small `Store` interface and its SQLite implementation.

Every state change is one transaction, and the event that reports a change
is written in the same transaction as the change itself:

    with store.transaction() as tx:
        tx.update_request(request.id, state=RequestState.CANCELLED, finished_at=now)
        tx.add_event(REQUEST_CANCELLED, request_id=request.id)

`Store.transaction()` starts a write transaction (SQLite: `BEGIN
IMMEDIATE`, so two writers never interleave a read and a write); `read()` a
read-only snapshot. All SQL lives in this module, behind the methods of
`Transaction`: a PostgreSQL store for several driver processes (DESIGN.md,
"Scaling out") implements the same two classes. Which request runs next is
not the store's choice but a `QueuePolicy`'s (`SerialPolicy`: the oldest
queued request); speculative or batched policies are other policies.

`SQLiteStore` keeps `<checkout>/.convoy/state.db` in WAL mode (readers never
block the writer), one connection per thread. `open_store(..., readonly=True)`
(convoy status, convoy show) opens it with SQLite's mode=ro: no write lock,
nothing created or migrated. A failure of the world at this boundary (the
database locked past the busy timeout, damaged, not convoy's, read-only, the
disk full) is a one-line ConvoyError that says what to do; a transaction it
interrupts is rolled back.
"""

from __future__ import annotations

import abc
import contextlib
import datetime
import json
import logging
import os
import re
import sqlite3
import threading
import time
import weakref
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Optional, Sequence

from convoy.errors import ConvoyError
from convoy.models import (
    Build, BuildState, Event, Phase, Release, Request, RequestState, Stage, StageState, TargetOutcome, Task,
    TaskState,
)
from convoy.untrusted import printable

SCHEMA_VERSION = 1
STATE_DIR = ".convoy"
DB_NAME = "state.db"
BUSY_TIMEOUT_MS = 30_000
MAX_ID = 2**63 - 1  # SQLite's largest integer; no row has a larger id

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    component TEXT NOT NULL,
    version TEXT NOT NULL,
    commit_sha TEXT,
    commit_given INTEGER NOT NULL DEFAULT 0,
    archive_url TEXT,
    strip_prefix TEXT,
    configuration TEXT,
    requested_by TEXT NOT NULL,
    state TEXT NOT NULL,
    phase TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    base_commit TEXT,
    candidate_commit TEXT,
    tag TEXT,
    detail TEXT,
    superseded_by INTEGER REFERENCES requests(id),
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    finished_at REAL,
    total_seconds REAL NOT NULL DEFAULT 0,
    bazel_seconds REAL NOT NULL DEFAULT 0,
    git_seconds REAL NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS requests_by_state ON requests(state, id);
CREATE TABLE IF NOT EXISTS builds (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id INTEGER NOT NULL REFERENCES requests(id),
    number INTEGER NOT NULL,
    state TEXT NOT NULL,
    base_commit TEXT NOT NULL,
    candidate_commit TEXT NOT NULL,
    started_at REAL NOT NULL,
    finished_at REAL,
    detail TEXT,
    UNIQUE (request_id, number)
);
CREATE TABLE IF NOT EXISTS stages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    build_id INTEGER NOT NULL REFERENCES builds(id),
    position INTEGER NOT NULL,
    name TEXT NOT NULL,
    command TEXT NOT NULL,
    state TEXT NOT NULL,
    started_at REAL,
    finished_at REAL,
    UNIQUE (build_id, position)
);
CREATE TABLE IF NOT EXISTS tasks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    stage_id INTEGER NOT NULL REFERENCES stages(id),
    build_id INTEGER NOT NULL REFERENCES builds(id),
    configuration TEXT NOT NULL,
    state TEXT NOT NULL,
    slot INTEGER,
    pid INTEGER,
    outcome TEXT,
    exit_code INTEGER,
    log_path TEXT,
    bep_path TEXT,
    targets TEXT NOT NULL DEFAULT '[]',
    detail TEXT,
    runs INTEGER NOT NULL DEFAULT 0,
    started_at REAL,
    finished_at REAL,
    UNIQUE (stage_id, configuration)
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts TEXT NOT NULL,
    type TEXT NOT NULL,
    request_id INTEGER,
    build_id INTEGER,
    stage_id INTEGER,
    task_id INTEGER,
    data TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS events_by_request ON events(request_id, id);
CREATE TABLE IF NOT EXISTS plugin_cursors (
    plugin TEXT PRIMARY KEY,
    event_id INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS releases (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id INTEGER REFERENCES requests(id),
    build_id INTEGER REFERENCES builds(id),
    tag TEXT NOT NULL UNIQUE,
    commit_sha TEXT NOT NULL,
    notes TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS leases (
    name TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    expires_at REAL NOT NULL
);
"""


def now() -> float:
    return time.time()


def iso(ts: float) -> str:
    """A timestamp as ISO 8601 UTC with milliseconds ("2024-05-17T09:00:00.123Z")."""
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class Transaction(abc.ABC):
    """The reads and writes of one transaction. Returned records are
    snapshots; `update_*` take the fields to change as keyword arguments."""

    # requests
    @abc.abstractmethod
    def insert_request(self, **fields: Any) -> Request: ...

    @abc.abstractmethod
    def request(self, request_id: int) -> Optional[Request]: ...

    @abc.abstractmethod
    def requests(
        self, states: Optional[Iterable[RequestState]] = None, component: Optional[str] = None,
    ) -> list[Request]:
        """Requests (in these states, of this component), oldest first."""

    @abc.abstractmethod
    def update_request(self, request_id: int, **fields: Any) -> Request: ...

    @abc.abstractmethod
    def add_request_time(self, request_id: int, total: float, bazel: float, git: float) -> None: ...

    # builds, stages, tasks
    @abc.abstractmethod
    def insert_build(self, request_id: int, base_commit: str, candidate_commit: str) -> Build: ...

    @abc.abstractmethod
    def build(self, build_id: int) -> Optional[Build]: ...

    @abc.abstractmethod
    def builds(self, request_id: int) -> list[Build]: ...

    @abc.abstractmethod
    def builds_of_commit(self, candidate_commit: str) -> list[Build]: ...

    @abc.abstractmethod
    def update_build(self, build_id: int, **fields: Any) -> Build: ...

    @abc.abstractmethod
    def insert_stage(self, build_id: int, position: int, name: str, command: str) -> Stage: ...

    @abc.abstractmethod
    def stages(self, build_id: int) -> list[Stage]: ...

    @abc.abstractmethod
    def update_stage(self, stage_id: int, **fields: Any) -> Stage: ...

    @abc.abstractmethod
    def insert_task(self, stage_id: int, build_id: int, configuration: str) -> Task: ...

    @abc.abstractmethod
    def task(self, task_id: int) -> Optional[Task]: ...

    @abc.abstractmethod
    def tasks(self, *, build_id: Optional[int] = None, stage_id: Optional[int] = None,
              states: Optional[Iterable[TaskState]] = None) -> list[Task]: ...

    @abc.abstractmethod
    def update_task(self, task_id: int, **fields: Any) -> Task: ...

    # events and plugin cursors
    @abc.abstractmethod
    def add_event(
        self, type: str, *, request_id: Optional[int] = None, build_id: Optional[int] = None,
        stage_id: Optional[int] = None, task_id: Optional[int] = None, data: Optional[Mapping[str, Any]] = None,
    ) -> Event: ...

    @abc.abstractmethod
    def events(self, *, after: int = 0, request_id: Optional[int] = None, limit: Optional[int] = None) -> list[Event]: ...

    @abc.abstractmethod
    def last_event_id(self) -> int: ...

    @abc.abstractmethod
    def cursor(self, plugin: str) -> Optional[int]: ...

    @abc.abstractmethod
    def set_cursor(self, plugin: str, event_id: int) -> None: ...

    # releases
    @abc.abstractmethod
    def insert_release(self, *, request_id: Optional[int], build_id: Optional[int], tag: str, commit: str,
                       notes: str) -> Release: ...

    @abc.abstractmethod
    def releases(self, *, request_id: Optional[int] = None) -> list[Release]: ...

    # leases: who processes the queue (one holder per name until it expires)
    @abc.abstractmethod
    def acquire_lease(self, name: str, owner: str, ttl: float) -> Optional[str]:
        """Takes or renews the lease; returns None, or the other live holder."""

    @abc.abstractmethod
    def release_lease(self, name: str, owner: str) -> None: ...


class Store(abc.ABC):
    """Where the driver's state lives."""

    @abc.abstractmethod
    def transaction(self) -> contextlib.AbstractContextManager[Transaction]:
        """A write transaction: committed when the block ends, rolled back if it raises."""

    @abc.abstractmethod
    def read(self) -> contextlib.AbstractContextManager[Transaction]:
        """A read-only snapshot."""

    def on_commit(self, listener: Callable[[], None]) -> None:
        """Calls `listener()` after every committed transaction that added events."""
        self._listeners = [*getattr(self, "_listeners", []), listener]

    def _committed(self) -> None:
        for listener in getattr(self, "_listeners", []):
            try:
                listener()
            except Exception:  # a listener (progress lines, plugin wake-up) never undoes a commit's caller
                logging.getLogger("convoy.store").exception("a commit listener failed")

    def close(self) -> None:
        pass

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class QueuePolicy(abc.ABC):
    """Chooses the next queued request to process (the scheduling policy)."""

    @abc.abstractmethod
    def next(self, tx: Transaction) -> Optional[Request]: ...


class SerialPolicy(QueuePolicy):
    """One at a time, oldest first."""

    def next(self, tx: Transaction) -> Optional[Request]:
        queued = tx.requests([RequestState.QUEUED])
        return queued[0] if queued else None


POLICIES = {"serial": SerialPolicy}


def policy_for(queue_mode: str) -> QueuePolicy:
    try:
        return POLICIES[queue_mode]()
    except KeyError:
        raise ConvoyError(
            f"queue mode '{queue_mode}' is not implemented (known: {', '.join(sorted(POLICIES))}); "
            "set queue_mode: serial in convoy.yaml"
        ) from None


def state_dir(checkout: Path, *, create: bool = True) -> Path:
    """The checkout's `.convoy` directory, made if missing and `create`
    (mode 0700: the queue, logs and events are this user's alone).
    ConvoyError if it is not a directory, or cannot be made."""
    path = checkout / STATE_DIR
    if path.is_dir():
        return path
    if path.exists() or path.is_symlink():
        raise ConvoyError(
            f"{printable(path)} is not a directory (convoy keeps its state there); move it aside "
            f"(mv {printable(path)} {printable(path)}.old) and run the command again"
        )
    if create:
        try:
            path.mkdir(mode=0o700)
        except FileExistsError:  # made meanwhile by another convoy
            return state_dir(checkout, create=False)
        except OSError as e:
            raise ConvoyError(
                f"cannot create {printable(path)} ({e.strerror}); make {printable(checkout)} writable for this "
                "user, or run convoy as the checkout's owner"
            ) from None
    return path


def has_state(checkout: Path) -> bool:
    """Whether the checkout has a state database (something was submitted)."""
    return (state_dir(checkout, create=False) / DB_NAME).exists()


def open_store(checkout: Path, *, create: bool = True, readonly: bool = False) -> "SQLiteStore":
    """The store of the integration checkout `checkout` (.convoy/state.db).

    `readonly`: SQLite's mode=ro, for commands that only look (no write
    lock taken, nothing created or migrated); it implies not `create`.
    """
    if not has_state(checkout) and (readonly or not create):
        raise ConvoyError(
            f"no convoy state in {printable(checkout)} ({STATE_DIR}/{DB_NAME} does not exist): nothing was "
            "submitted here yet; run: convoy submit --component=<name> --version=<version>"
        )
    return SQLiteStore(state_dir(checkout, create=not readonly) / DB_NAME, readonly=readonly)


# --- SQLite -------------------------------------------------------------------

_REQUEST_COLUMNS = {
    "component", "version", "commit", "commit_given", "archive_url", "strip_prefix", "configuration",
    "requested_by", "state", "phase", "attempts", "base_commit", "candidate_commit", "tag", "detail",
    "superseded_by", "cancel_requested", "created_at", "updated_at", "finished_at",
}
_BUILD_COLUMNS = {"state", "finished_at", "detail"}
_STAGE_COLUMNS = {"state", "started_at", "finished_at"}
_TASK_COLUMNS = {
    "state", "slot", "pid", "outcome", "exit_code", "log_path", "bep_path", "targets", "detail", "runs",
    "started_at", "finished_at",
}
_RENAMED = {"commit": "commit_sha"}
_TABLES = tuple(re.findall(r"CREATE TABLE IF NOT EXISTS (\w+)", _SCHEMA))

# SQLite's failures of the world, by primary result code (and by message,
# for Pythons before 3.11 that do not give the code). Any other sqlite3.Error
# is a bug in convoy and keeps its traceback.
_FAILURES = {
    sqlite3.SQLITE_BUSY: "locked", sqlite3.SQLITE_LOCKED: "locked", sqlite3.SQLITE_PERM: "readonly",
    sqlite3.SQLITE_READONLY: "readonly", sqlite3.SQLITE_IOERR: "io", sqlite3.SQLITE_CORRUPT: "damaged",
    sqlite3.SQLITE_FULL: "full", sqlite3.SQLITE_CANTOPEN: "cantopen", sqlite3.SQLITE_NOTADB: "damaged",
} if hasattr(sqlite3, "SQLITE_NOTADB") else {}
_FAILURE_TEXTS = (
    ("is locked", "locked"), ("readonly database", "readonly"), ("disk I/O error", "io"),
    ("malformed", "damaged"), ("not a database", "damaged"), ("disk is full", "full"),
    ("unable to open", "cantopen"),
)


def _failure(error: sqlite3.Error) -> Optional[str]:
    """What kind of failure of the world `error` is, or None (a bug)."""
    code = getattr(error, "sqlite_errorcode", None)
    if code is not None and _FAILURES:
        return _FAILURES.get(code & 0xFF)
    return next((kind for text, kind in _FAILURE_TEXTS if text in str(error)), None)


def _move_aside(path: Path) -> str:
    shown = printable(path)
    return (f"move it aside (mv {shown} {shown}.damaged, and its -wal and -shm files if there are any) and run "
            "the command again: convoy starts a new, empty queue")


def _world_error(path: Path, error: sqlite3.Error) -> Optional[ConvoyError]:
    """The one-line ConvoyError, with what to do, for SQLite's `error` on the
    database at `path`; None if `error` is a bug rather than the world's."""
    kind = _failure(error)
    shown, folder, what = printable(path), printable(path.parent), printable(error)
    if kind is not None and path.is_dir():  # SQLite says "unable to open", or "disk I/O error" read-only
        return ConvoyError(f"{shown} is a directory, not convoy's state database; move it aside "
                           f"(mv {shown} {shown}.old) and run the command again")
    if kind == "locked":
        return ConvoyError(
            f"{shown}: another convoy holds the state database (locked for more than {BUSY_TIMEOUT_MS / 1000:g} s); "
            "wait for it to finish, or stop it, then run the command again"
        )
    if kind == "damaged":
        return ConvoyError(f"{shown}: the state database is damaged or is not convoy's ({what}); {_move_aside(path)}")
    if kind == "readonly":
        return ConvoyError(
            f"{shown}: cannot write the state database ({what}); make it and {folder} writable for this user "
            f"(chmod u+w {shown} {folder}; or remount the disk read-write), then run the command again"
        )
    if kind == "full":
        return ConvoyError(f"{shown}: the disk is full ({what}); nothing was changed: free space on it (df -h "
                           f"{folder}), then run the command again")
    if kind == "io":
        return ConvoyError(f"{shown}: the disk failed to read or write the state database ({what}); check the disk "
                           "(dmesg), then run the command again")
    if kind == "cantopen":
        return ConvoyError(f"{shown}: cannot open the state database ({what}); {folder} must be a directory this "
                           "user can read and write (and the disk mounted read-write)")
    return None


class SQLiteStore(Store):
    """The state in one SQLite file (WAL), a connection per thread.

    `readonly`: opened with SQLite's mode=ro; the file must hold convoy's
    schema already, and `transaction()` is not allowed.
    """

    def __init__(self, path: str | os.PathLike[str], *, readonly: bool = False) -> None:
        self.path = Path(path)
        self.readonly = readonly
        self._uri: Optional[str] = None
        self._local = threading.local()
        # Each thread's connection, held weakly: a thread that ends (a task's
        # worker thread) drops its locals and so closes its connection.
        self._held: weakref.WeakSet[_ThreadConnection] = weakref.WeakSet()
        self._lock = threading.Lock()
        try:
            with self._errors():
                if readonly:
                    self._open_readonly()
                else:
                    self._open()
        except BaseException:
            self.close()
            raise

    def _open(self) -> None:
        """Checks the schema; creates it in a new (empty) database. An
        existing database is only read here: opening takes no write lock."""
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as e:
            raise ConvoyError(f"cannot create {printable(self.path.parent)} ({e.strerror}); it must be a "
                              "directory this user can write") from None
        conn = self._connection()
        if self._has_schema(conn):
            if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                conn.execute("PRAGMA journal_mode=WAL")
            return
        conn.execute("PRAGMA journal_mode=WAL")
        with self._begin(conn):  # two convoys may create it at once: both statements are idempotent
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)",
                         (str(SCHEMA_VERSION),))

    def _open_readonly(self) -> None:
        self._uri = f"{self.path.absolute().as_uri()}?mode=ro"
        try:
            found = self._has_schema(self._connection())
        except sqlite3.Error as e:
            # A WAL database in a read-only directory, without its -shm file:
            # SQLite cannot make one. Nobody can be writing it there (a
            # writer keeps a -wal file), so read the file as it is.
            if _failure(e) != "cantopen" or not self.path.is_file() or Path(f"{self.path}-wal").exists():
                raise
            self.close()
            self._uri += "&immutable=1"
            found = self._has_schema(self._connection())
        if not found:
            raise ConvoyError(
                f"no convoy state in {printable(self.path)} (the database is empty): nothing was submitted here "
                "yet; run: convoy submit --component=<name> --version=<version>"
            )

    def _has_schema(self, conn: sqlite3.Connection) -> bool:
        """Whether the database holds convoy's schema (False: it is empty).
        ConvoyError if it is another program's database, another convoy's
        (schema version), or lacks tables; nothing is changed then."""
        shown = printable(self.path)
        with self._begin(conn, "DEFERRED"):
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if not tables:
                return False
            row = None
            if "meta" in tables:
                row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row is None:
            raise ConvoyError(f"{shown} is not convoy's state database (an SQLite database without convoy's "
                              f"schema version); {_move_aside(self.path)}")
        if str(row[0]) != str(SCHEMA_VERSION):
            raise ConvoyError(
                f"{shown}: state schema {printable(row[0])} is not {SCHEMA_VERSION} (written by another convoy); "
                f"use that convoy, or {_move_aside(self.path)}"
            )
        missing = [table for table in _TABLES if table not in tables]
        if missing:
            raise ConvoyError(f"{shown}: the state database is damaged (no table {', '.join(missing)}); "
                              f"{_move_aside(self.path)}")
        return True

    def _connection(self) -> sqlite3.Connection:
        held = getattr(self._local, "held", None)
        if held is None or held.conn is None:
            target = self._uri if self._uri is not None else self.path
            conn = sqlite3.connect(target, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                                   check_same_thread=False, uri=self._uri is not None)
            held = _ThreadConnection(conn)  # closed with the store, even if a pragma below fails
            with self._lock:
                self._held.add(held)
            self._local.held = held
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
        return held.conn

    @contextlib.contextmanager
    def _begin(self, conn: sqlite3.Connection, mode: str = "IMMEDIATE") -> Iterator[None]:
        conn.execute(f"BEGIN {mode}")
        try:
            yield
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:  # SQLite may have rolled back already (a full disk, say)
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            raise

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """SQLite's failures of the world as one-line ConvoyErrors; others (bugs) as they are."""
        try:
            yield
        except sqlite3.Error as e:
            error = _world_error(self.path, e)
            if error is None:
                raise
            raise error from None

    @contextlib.contextmanager
    def transaction(self) -> Iterator["SQLiteTransaction"]:
        if self.readonly:
            raise RuntimeError(f"{self.path} is open read-only: no write transaction")
        with self._errors():
            conn = self._connection()
            tx = SQLiteTransaction(conn)
            with self._begin(conn):
                yield tx
        if tx.added_events:
            self._committed()

    @contextlib.contextmanager
    def read(self) -> Iterator["SQLiteTransaction"]:
        with self._errors():
            conn = self._connection()
            if conn.in_transaction:  # a read inside this thread's write transaction sees it
                yield SQLiteTransaction(conn, readonly=True)
                return
            with self._begin(conn, "DEFERRED"):
                yield SQLiteTransaction(conn, readonly=True)

    def close(self) -> None:
        with self._lock:
            for held in list(self._held):
                held.close()
        self._local = threading.local()

    def open_connections(self) -> int:
        """How many connections are open (for tests: threads must not leak them)."""
        with self._lock:
            return sum(1 for held in self._held if held.conn is not None)


class _ThreadConnection:
    """One thread's connection; closed when the thread's locals are dropped
    (the thread ended) or when the store is closed."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn: Optional[sqlite3.Connection] = conn

    def close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            try:
                conn.close()
            except sqlite3.Error:
                pass

    __del__ = close


class SQLiteTransaction(Transaction):
    def __init__(self, conn: sqlite3.Connection, readonly: bool = False) -> None:
        self.conn = conn
        self.readonly = readonly
        self.added_events = 0

    def _one(self, sql: str, args: Sequence[Any] = ()) -> Optional[sqlite3.Row]:
        return self.conn.execute(sql, args).fetchone()

    def _all(self, sql: str, args: Sequence[Any] = ()) -> list[sqlite3.Row]:
        return self.conn.execute(sql, args).fetchall()

    def _update(self, table: str, allowed: set[str], row_id: int, fields: Mapping[str, Any]) -> None:
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"cannot update {table}.{', '.join(sorted(unknown))}")
        if not fields:
            return
        columns = [_RENAMED.get(k, k) for k in fields]
        values = [_sql_value(v) for v in fields.values()]
        sets = ", ".join(f"{c} = ?" for c in columns)
        cursor = self.conn.execute(f"UPDATE {table} SET {sets} WHERE id = ?", (*values, row_id))
        if cursor.rowcount != 1:
            raise KeyError(f"{table} {row_id} does not exist")

    # requests
    def insert_request(self, **fields: Any) -> Request:
        ts = now()
        fields = {"state": RequestState.QUEUED, "created_at": ts, "updated_at": ts, **fields}
        unknown = set(fields) - _REQUEST_COLUMNS
        if unknown:
            raise ValueError(f"unknown request fields {sorted(unknown)}")
        columns = [_RENAMED.get(k, k) for k in fields]
        cursor = self.conn.execute(
            f"INSERT INTO requests ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})",
            [_sql_value(v) for v in fields.values()],
        )
        return self.request(cursor.lastrowid)

    def request(self, request_id: int) -> Optional[Request]:
        if request_id > MAX_ID:  # SQLite cannot even compare it (OverflowError)
            return None
        row = self._one("SELECT * FROM requests WHERE id = ?", (request_id,))
        return None if row is None else _request(row)

    def requests(self, states=None, component=None) -> list[Request]:
        where, args = [], []
        if states is not None:
            states = [RequestState(s).value for s in states]
            where.append(f"state IN ({', '.join('?' for _ in states)})")
            args += states
        if component is not None:
            where.append("component = ?")
            args.append(component)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        return [_request(r) for r in self._all(f"SELECT * FROM requests{clause} ORDER BY id", args)]

    def update_request(self, request_id: int, **fields: Any) -> Request:
        self._update("requests", _REQUEST_COLUMNS, request_id, {**fields, "updated_at": now()})
        return self.request(request_id)

    def add_request_time(self, request_id: int, total: float, bazel: float, git: float) -> None:
        self.conn.execute(
            "UPDATE requests SET total_seconds = total_seconds + ?, bazel_seconds = bazel_seconds + ?, "
            "git_seconds = git_seconds + ? WHERE id = ?",
            (total, bazel, git, request_id),
        )

    # builds
    def insert_build(self, request_id: int, base_commit: str, candidate_commit: str) -> Build:
        number = self._one("SELECT COALESCE(MAX(number), 0) + 1 FROM builds WHERE request_id = ?", (request_id,))[0]
        cursor = self.conn.execute(
            "INSERT INTO builds (request_id, number, state, base_commit, candidate_commit, started_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (request_id, number, BuildState.BUILDING.value, base_commit, candidate_commit, now()),
        )
        return self.build(cursor.lastrowid)

    def build(self, build_id: int) -> Optional[Build]:
        row = self._one("SELECT * FROM builds WHERE id = ?", (build_id,))
        return None if row is None else _build(row)

    def builds(self, request_id: int) -> list[Build]:
        return [_build(r) for r in self._all("SELECT * FROM builds WHERE request_id = ? ORDER BY number", (request_id,))]

    def builds_of_commit(self, candidate_commit: str) -> list[Build]:
        rows = self._all("SELECT * FROM builds WHERE candidate_commit = ? ORDER BY id", (candidate_commit,))
        return [_build(r) for r in rows]

    def update_build(self, build_id: int, **fields: Any) -> Build:
        self._update("builds", _BUILD_COLUMNS, build_id, fields)
        return self.build(build_id)

    # stages
    def insert_stage(self, build_id: int, position: int, name: str, command: str) -> Stage:
        cursor = self.conn.execute(
            "INSERT INTO stages (build_id, position, name, command, state) VALUES (?, ?, ?, ?, ?)",
            (build_id, position, name, command, StageState.WAITING.value),
        )
        return _stage(self._one("SELECT * FROM stages WHERE id = ?", (cursor.lastrowid,)))

    def stages(self, build_id: int) -> list[Stage]:
        return [_stage(r) for r in self._all("SELECT * FROM stages WHERE build_id = ? ORDER BY position", (build_id,))]

    def update_stage(self, stage_id: int, **fields: Any) -> Stage:
        self._update("stages", _STAGE_COLUMNS, stage_id, fields)
        return _stage(self._one("SELECT * FROM stages WHERE id = ?", (stage_id,)))

    # tasks
    def insert_task(self, stage_id: int, build_id: int, configuration: str) -> Task:
        cursor = self.conn.execute(
            "INSERT INTO tasks (stage_id, build_id, configuration, state) VALUES (?, ?, ?, ?)",
            (stage_id, build_id, configuration, TaskState.WAITING.value),
        )
        return self.task(cursor.lastrowid)

    def task(self, task_id: int) -> Optional[Task]:
        row = self._one("SELECT * FROM tasks WHERE id = ?", (task_id,))
        return None if row is None else _task(row)

    def tasks(self, *, build_id=None, stage_id=None, states=None) -> list[Task]:
        where, args = [], []
        if build_id is not None:
            where.append("build_id = ?")
            args.append(build_id)
        if stage_id is not None:
            where.append("stage_id = ?")
            args.append(stage_id)
        if states is not None:
            states = [TaskState(s).value for s in states]
            where.append(f"state IN ({', '.join('?' for _ in states)})")
            args += states
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        return [_task(r) for r in self._all(f"SELECT * FROM tasks{clause} ORDER BY id", args)]

    def update_task(self, task_id: int, **fields: Any) -> Task:
        if "targets" in fields:
            fields = {**fields, "targets": json.dumps([t.to_dict() for t in fields["targets"]])}
        self._update("tasks", _TASK_COLUMNS, task_id, fields)
        return self.task(task_id)

    # events
    def add_event(self, type, *, request_id=None, build_id=None, stage_id=None, task_id=None, data=None) -> Event:
        ts = iso(now())
        payload = json.dumps(dict(data or {}), sort_keys=True, default=str)
        cursor = self.conn.execute(
            "INSERT INTO events (ts, type, request_id, build_id, stage_id, task_id, data) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (ts, type, request_id, build_id, stage_id, task_id, payload),
        )
        self.added_events += 1
        return Event(cursor.lastrowid, ts, type, request_id, build_id, stage_id, task_id, json.loads(payload))

    def events(self, *, after: int = 0, request_id=None, limit=None) -> list[Event]:
        sql, args = "SELECT * FROM events WHERE id > ?", [after]
        if request_id is not None:
            sql += " AND request_id = ?"
            args.append(request_id)
        sql += " ORDER BY id"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        return [_event(r) for r in self._all(sql, args)]

    def last_event_id(self) -> int:
        return self._one("SELECT COALESCE(MAX(id), 0) FROM events")[0]

    def cursor(self, plugin: str) -> Optional[int]:
        row = self._one("SELECT event_id FROM plugin_cursors WHERE plugin = ?", (plugin,))
        return None if row is None else row[0]

    def set_cursor(self, plugin: str, event_id: int) -> None:
        self.conn.execute(
            "INSERT INTO plugin_cursors (plugin, event_id) VALUES (?, ?) "
            "ON CONFLICT(plugin) DO UPDATE SET event_id = excluded.event_id",
            (plugin, event_id),
        )

    # releases
    def insert_release(self, *, request_id, build_id, tag, commit, notes) -> Release:
        cursor = self.conn.execute(
            "INSERT INTO releases (request_id, build_id, tag, commit_sha, notes, created_at) VALUES (?, ?, ?, ?, ?, ?)",
            (request_id, build_id, tag, commit, notes, now()),
        )
        return _release(self._one("SELECT * FROM releases WHERE id = ?", (cursor.lastrowid,)))

    def releases(self, *, request_id=None) -> list[Release]:
        if request_id is None:
            rows = self._all("SELECT * FROM releases ORDER BY id")
        else:
            rows = self._all("SELECT * FROM releases WHERE request_id = ? ORDER BY id", (request_id,))
        return [_release(r) for r in rows]

    # leases
    def acquire_lease(self, name: str, owner: str, ttl: float) -> Optional[str]:
        ts = now()
        row = self._one("SELECT owner, expires_at FROM leases WHERE name = ?", (name,))
        if row is not None and row["owner"] != owner and row["expires_at"] > ts:
            return row["owner"]
        self.conn.execute(
            "INSERT INTO leases (name, owner, expires_at) VALUES (?, ?, ?) "
            "ON CONFLICT(name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at",
            (name, owner, ts + ttl),
        )
        return None

    def release_lease(self, name: str, owner: str) -> None:
        self.conn.execute("DELETE FROM leases WHERE name = ? AND owner = ?", (name, owner))


def _sql_value(value: Any) -> Any:
    if isinstance(value, (RequestState, Phase, BuildState, StageState, TaskState)):
        return value.value
    if isinstance(value, bool):
        return int(value)
    return value


def _request(row: sqlite3.Row) -> Request:
    return Request(
        id=row["id"], component=row["component"], version=row["version"], commit=row["commit_sha"],
        commit_given=bool(row["commit_given"]), archive_url=row["archive_url"], strip_prefix=row["strip_prefix"],
        configuration=row["configuration"], requested_by=row["requested_by"], state=RequestState(row["state"]),
        phase=Phase(row["phase"]) if row["phase"] else None, attempts=row["attempts"],
        base_commit=row["base_commit"], candidate_commit=row["candidate_commit"], tag=row["tag"],
        detail=row["detail"], superseded_by=row["superseded_by"], cancel_requested=bool(row["cancel_requested"]),
        created_at=row["created_at"], updated_at=row["updated_at"], finished_at=row["finished_at"],
        total_seconds=row["total_seconds"], bazel_seconds=row["bazel_seconds"], git_seconds=row["git_seconds"],
    )


def _build(row: sqlite3.Row) -> Build:
    return Build(
        id=row["id"], request_id=row["request_id"], number=row["number"], state=BuildState(row["state"]),
        base_commit=row["base_commit"], candidate_commit=row["candidate_commit"], started_at=row["started_at"],
        finished_at=row["finished_at"], detail=row["detail"],
    )


def _stage(row: sqlite3.Row) -> Stage:
    return Stage(
        id=row["id"], build_id=row["build_id"], position=row["position"], name=row["name"], command=row["command"],
        state=StageState(row["state"]), started_at=row["started_at"], finished_at=row["finished_at"],
    )


def _task(row: sqlite3.Row) -> Task:
    return Task(
        id=row["id"], stage_id=row["stage_id"], build_id=row["build_id"], configuration=row["configuration"],
        state=TaskState(row["state"]), slot=row["slot"], pid=row["pid"], outcome=row["outcome"],
        exit_code=row["exit_code"], log_path=row["log_path"], bep_path=row["bep_path"],
        targets=tuple(TargetOutcome.from_dict(t) for t in json.loads(row["targets"] or "[]")),
        detail=row["detail"], runs=row["runs"], started_at=row["started_at"], finished_at=row["finished_at"],
    )


def _event(row: sqlite3.Row) -> Event:
    return Event(
        id=row["id"], ts=row["ts"], type=row["type"], request_id=row["request_id"], build_id=row["build_id"],
        stage_id=row["stage_id"], task_id=row["task_id"], data=json.loads(row["data"] or "{}"),
    )


def _release(row: sqlite3.Row) -> Release:
    return Release(
        id=row["id"], request_id=row["request_id"], build_id=row["build_id"], tag=row["tag"],
        commit=row["commit_sha"], notes=row["notes"], created_at=row["created_at"],
    )
