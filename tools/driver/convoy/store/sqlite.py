"""`SQLiteStore`: the driver's state in one SQLite file, named by the URL
`sqlite:///<absolute path of the database file>` (a checkout's own is
`<checkout>/.convoy/state.db`).

The file is kept in WAL mode (readers never block the writer), one
connection per thread. A write transaction is `BEGIN IMMEDIATE`, so two
writers never interleave a read and a write; `read()` is a deferred one.
`readonly=True` (convoy status, convoy show) opens it with SQLite's mode=ro:
no write lock, nothing created or migrated. A new database gets the schema
below; an existing one must hold it, at `SCHEMA_VERSION`, or at an older
version, which a writer migrates in place when it opens it (and a reader
reads as it is; see sqlite_migrate.py). A failure of the
world at this boundary (the database locked past the busy timeout, damaged,
not convoy's, read-only, the disk full) is a one-line ConvoyError that says
what to do; a transaction it interrupts is rolled back. The SQL of the
transactions themselves is in sqlite_tx.py.
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
import urllib.parse
from pathlib import Path
from typing import Iterator, Optional

from convoy.errors import ConvoyError
from convoy.store.base import Store
from convoy.store.connections import ThreadConnections
from convoy.store.sqlite_migrate import (
    DELIVERIES, OPEN_GROUPS, SCHEMA_VERSION, TEST_RESULTS, TEST_RESULTS_INDEX, known_version, migrate, required_tables,
)
from convoy.store.sqlite_tx import SQLiteTransaction
from convoy.untrusted import printable, redact_userinfo

BUSY_TIMEOUT_MS = 30_000
# How long a command waits for another convoy's write to end before it says
# so: BUSY_TIMEOUT_MS, or CONVOY_STATE_WAIT seconds (0.1 to 3600) when set.
BUSY_WAIT_ENV = "CONVOY_STATE_WAIT"


def busy_timeout_ms() -> int:
    """The wait for a held state database, in milliseconds (see BUSY_WAIT_ENV)."""
    text = os.environ.get(BUSY_WAIT_ENV, "")
    try:
        seconds = float(text)
    except ValueError:
        return BUSY_TIMEOUT_MS
    return int(seconds * 1000) if 0.1 <= seconds <= 3600 else BUSY_TIMEOUT_MS

# The current schema, in SQLite's types (postgres_schema.py translates it, and the migrations, for PostgreSQL).
SCHEMA = """
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
    git_seconds REAL NOT NULL DEFAULT 0,
    bumps TEXT NOT NULL DEFAULT '[]',
    kind TEXT NOT NULL DEFAULT 'request',
    priority INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS requests_by_state ON requests(state, id);
CREATE INDEX IF NOT EXISTS requests_by_kind ON requests(kind, state, id);
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
    log_tail TEXT,
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
""" + OPEN_GROUPS + ";\n" + DELIVERIES + ";\n" + TEST_RESULTS + ";\n" + TEST_RESULTS_INDEX + ";\n"

_TABLES = tuple(re.findall(r"CREATE TABLE IF NOT EXISTS (\w+)", SCHEMA))

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
            f"{shown}: another convoy holds the state database (locked for more than {busy_timeout_ms() / 1000:g} s); "
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


# sqlite:///<absolute path>, percent-encoded like a file: URL; no host, query or fragment.
_URL = re.compile(r"sqlite://(/[^?#]*)", re.IGNORECASE)


def url_path(url: str) -> Path:
    """The database file that the URL `url` names. ConvoyError unless it is
    `sqlite:///<absolute path of the file>`."""
    match = _URL.fullmatch(url)
    raw = urllib.parse.unquote_to_bytes(match.group(1)) if match else b""
    if not raw or raw.endswith(b"/") or b"\0" in raw:
        raise ConvoyError(
            f"store URL {printable(redact_userinfo(url))} does not name an SQLite database by its absolute path; "
            "use sqlite:///<absolute path of the database file>, e.g. sqlite:///srv/integration/.convoy/state.db"
        )
    return Path(os.fsdecode(raw))


def open_url(url: str, *, create: bool = True, readonly: bool = False) -> "SQLiteStore":
    """The store at `url` (see `url_path`). `readonly` implies not `create`;
    without `create`, the database must exist already."""
    path = url_path(url)
    if (readonly or not create) and not path.exists():
        raise ConvoyError(
            f"no convoy state in {printable(path)} (the database does not exist): nothing was submitted there "
            "yet; run: convoy submit --component=<name> --version=<version>"
        )
    return SQLiteStore(path, readonly=readonly)


def stored_version(url: str) -> Optional[str]:
    """The schema version the database at `url` holds, as stored (None: there is no database yet)."""
    path = url_path(url)
    if not path.exists():
        return None
    with contextlib.closing(SQLiteStore(path, readonly=True)) as store, store.read() as tx:
        return tx.meta("schema_version")


def upgrade_url(url: str) -> Optional[int]:
    """Creates the database, or migrates it to SCHEMA_VERSION (what opening it
    to write does); returns the version it was at (None: there was none)."""
    before = stored_version(url)
    SQLiteStore(url_path(url)).close()
    return None if before is None else known_version(before)


class SQLiteStore(Store):
    """The state in one SQLite file (WAL), a connection per thread.

    `readonly`: opened with SQLite's mode=ro; the file must hold convoy's
    schema already, and `transaction()` is not allowed.
    """

    def __init__(self, path: str | os.PathLike[str], *, readonly: bool = False) -> None:
        self.path = Path(path)
        self.readonly = readonly
        self._uri: Optional[str] = None
        # Each thread's connection: a thread that ends (a task's worker thread) closes its own.
        self.connections = ThreadConnections()
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
        existing database is only read here: opening takes no write lock,
        unless it is at an older schema version: then it is migrated."""
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as e:
            raise ConvoyError(f"cannot create {printable(self.path.parent)} ({e.strerror}); it must be a "
                              "directory this user can write") from None
        conn = self._connection()
        version = self._schema_version(conn)
        if version is not None:
            if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                conn.execute("PRAGMA journal_mode=WAL")
            if version < SCHEMA_VERSION:
                with self._begin(conn):  # every step and the new version at once
                    migrate(conn)
            return
        conn.execute("PRAGMA journal_mode=WAL")
        with self._begin(conn):  # two convoys may create it at once: both statements are idempotent
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)",
                         (str(SCHEMA_VERSION),))

    def _open_readonly(self) -> None:
        self._uri = f"{self.path.absolute().as_uri()}?mode=ro"
        try:
            found = self._schema_version(self._connection()) is not None
        except sqlite3.Error as e:
            # A WAL database in a read-only directory, without its -shm file:
            # SQLite cannot make one. Nobody can be writing it there (a
            # writer keeps a -wal file), so read the file as it is.
            if _failure(e) != "cantopen" or not self.path.is_file() or Path(f"{self.path}-wal").exists():
                raise
            self.close()
            self._uri += "&immutable=1"
            found = self._schema_version(self._connection()) is not None
        if not found:
            raise ConvoyError(
                f"no convoy state in {printable(self.path)} (the database is empty): nothing was submitted here "
                "yet; run: convoy submit --component=<name> --version=<version>"
            )

    def _schema_version(self, conn: sqlite3.Connection) -> Optional[int]:
        """The version of convoy's schema the database holds (None: it is
        empty). ConvoyError if it is another program's database, a newer
        convoy's (an unknown schema version), or lacks tables; nothing is
        changed then."""
        shown = printable(self.path)
        with self._begin(conn, "DEFERRED"):
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if not tables:
                return None
            row = None
            if "meta" in tables:
                row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row is None:
            raise ConvoyError(f"{shown} is not convoy's state database (an SQLite database without convoy's "
                              f"schema version); {_move_aside(self.path)}")
        version = known_version(row[0])
        text = str(row[0])
        if version is None and text.isascii() and text.isdigit() and len(text) <= 3 and int(text) > SCHEMA_VERSION:
            raise ConvoyError(
                f"{shown}: state schema {text} is not {SCHEMA_VERSION} (written by a newer convoy); upgrade convoy "
                "to the version that wrote it"
            )
        if version is None:
            raise ConvoyError(
                f"{shown}: state schema {printable(row[0])} is not {SCHEMA_VERSION} (written by another convoy); "
                f"use that convoy, or {_move_aside(self.path)}"
            )
        missing = [table for table in required_tables(_TABLES, version) if table not in tables]
        if missing:
            raise ConvoyError(f"{shown}: the state database is damaged (no table {', '.join(missing)}); "
                              f"{_move_aside(self.path)}")
        return version

    def _connection(self) -> sqlite3.Connection:
        conn = self.connections.current()
        if conn is None:
            target = self._uri if self._uri is not None else self.path
            wait = busy_timeout_ms()
            conn = self.connections.hold(sqlite3.connect(target, timeout=wait / 1000, isolation_level=None,
                                                         check_same_thread=False, uri=self._uri is not None))
            conn.row_factory = sqlite3.Row  # closed with the store, even if a pragma below fails
            conn.execute(f"PRAGMA busy_timeout={wait}")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
        return conn

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
        self.connections.close()

    def open_connections(self) -> int:
        """How many connections are open (for tests: threads must not leak them)."""
        return self.connections.open_count()
