"""`PostgresStore`: the driver's state in a PostgreSQL database, named by the
URL `postgresql://[user[:password]@]host[:port]/database[?param=value]`
(libpq's; `postgres://` too), for several convoys that share one queue.

It behaves as the SQLite store does (the same interface, records and tests:
tests/store/test_contract.py runs on both), through psycopg 3, one
connection per thread. A write transaction starts by taking one
transaction-level advisory lock, the store's write lock, so two writers
never interleave, as SQLite's `BEGIN IMMEDIATE`; it commits when its block
ends and rolls back if it raises. `read()` is a `REPEATABLE READ READ ONLY`
snapshot, and inside this thread's write transaction it sees that
transaction. The wait for the write lock is SQLite's busy timeout
(`CONVOY_STATE_WAIT`, sqlite.py's `busy_timeout_ms`).

Opening checks the schema (postgres_schema.py): an empty database gets it
when `create`; an older version is refused until `convoy db upgrade`, a
newer one until convoy is upgraded. `readonly` creates and migrates
nothing, and allows no `transaction()`.

The password comes from the URL or from libpq's own places (PGPASSFILE,
~/.pgpass, PGPASSWORD): libpq reads them. The URL is shown only with its
password redacted (`shown_url`). A failure of the world (the server down or
gone, a wrong password, no such database, the lock held past the wait, the
disk full) is a one-line ConvoyError that says what to do; a transaction it
interrupts is rolled back, and the thread's next use connects again.
"""

from __future__ import annotations

import contextlib
import re
import urllib.parse
from typing import Any, Iterator, Optional

import psycopg
from psycopg.rows import dict_row

from convoy.errors import ConvoyError, StoreUnavailable
from convoy.store import postgres_schema as schema
from convoy.store.base import Store, shown_url
from convoy.store.connections import ThreadConnections
from convoy.store.postgres_tx import PostgresTransaction
from convoy.store.sqlite import busy_timeout_ms
from convoy.untrusted import printable

# The store's write lock: pg_advisory_xact_lock's key ("convoy" in ASCII), the same for every convoy.
WRITE_LOCK = 0x636F6E766F79
CONNECT_TIMEOUT = 10  # seconds, unless the URL says (connect_timeout=N)
_URL = re.compile(r"postgres(?:ql)?://", re.IGNORECASE)
# The SQLSTATE classes and codes that are the world's, not a bug: a lost connection (08), the server
# shutting down (57P), no disk or memory (53), the lock held too long (55P03), a read-only server (25006),
# a user without the right (42501), a statement cancelled or timed out (57014).
_WORLD = ("08", "57P", "53", "55P03", "25006", "42501", "57014")


def _check_url(url: str) -> None:
    if not _URL.match(url) or "\0" in url:
        raise ConvoyError(f"store URL {shown_url(url)} does not name a PostgreSQL database; use "
                          "postgresql://<user>@<host>[:<port>]/<database>")
    try:
        psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.Error as e:
        raise ConvoyError(f"store URL {shown_url(url)} is not a valid PostgreSQL URL ({_first_line(e, url)}); use "
                          "postgresql://<user>@<host>[:<port>]/<database>") from None


def _first_line(error: BaseException, url: str) -> str:
    """The error's first line, without the URL's password should libpq repeat it."""
    text = (str(error).strip().splitlines() or [type(error).__name__])[0]
    for password in _passwords(url):
        text = text.replace(password, "***")
    return printable(text)


def _passwords(url: str) -> list[str]:
    """The passwords `url` holds, as written and as libpq reads them."""
    found = re.findall(r"[?&]password=([^&#]+)", url, re.IGNORECASE)
    authority = url.partition("://")[2].split("/", 1)[0]
    userinfo = authority.rpartition("@")[0]
    if ":" in userinfo:
        found.append(userinfo.split(":", 1)[1])
    found += [urllib.parse.unquote(p) for p in found]
    return sorted({p for p in found if p}, key=len, reverse=True)


def open_url(url: str, *, create: bool = True, readonly: bool = False) -> "PostgresStore":
    """The store at `url`. `readonly` implies not `create`; without `create`
    the database must hold convoy's schema already."""
    return PostgresStore(url, create=create and not readonly, readonly=readonly)


def stored_version(url: str) -> Optional[str]:
    """The schema version the store at `url` holds, as stored (None: the database is empty)."""
    with contextlib.closing(PostgresStore(url, check=False)) as store, store._errors():
        with store._begin(store._connection(), "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"):
            return schema.read_version(store._connection())


def upgrade_url(url: str) -> Optional[int]:
    """Creates the schema in an empty database, or migrates the store to the
    current version; returns the version it was at (None: it was empty)."""
    with contextlib.closing(PostgresStore(url, check=False)) as store, store._errors():
        conn = store._connection()
        with store._write(conn):
            found = store._version(conn, check=False)
            if found is None:
                schema.create(conn)
                return None
            return schema.migrate(conn)


class PostgresStore(Store):
    """The state in a PostgreSQL database, a connection per thread (see the module's docstring).
    `check=False`: the schema is not looked at (stored_version, upgrade_url)."""

    def __init__(self, url: str, *, create: bool = True, readonly: bool = False, check: bool = True) -> None:
        _check_url(url)
        self.url = url
        self.shown = shown_url(url)
        self.readonly = readonly
        self.connections = ThreadConnections()
        try:
            if check:
                with self._errors():
                    self._open(create)
        except BaseException:
            self.close()
            raise

    def _open(self, create: bool) -> None:
        conn = self._connection()
        with self._begin(conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"):
            found = self._version(conn)
        if found is not None:
            return
        if not create:
            raise ConvoyError(f"no convoy state in {self.shown} (the database is empty): nothing was submitted "
                              "there yet; run: convoy submit --component=<name> --version=<version>")
        with self._write(conn):  # two convoys may create it at once: the second finds it made
            if self._version(conn) is None:
                schema.create(conn)

    def _version(self, conn: Any, *, check: bool = True) -> Optional[int]:
        """The schema version the database holds (None: it is empty).
        ConvoyError if it is not convoy's, lacks tables, or (when `check`)
        is at another version than this convoy's."""
        found = schema.tables(conn)
        if not found:
            return None
        text = schema.read_version(conn)
        if text is None or not (text.isascii() and text.isdigit()) or len(text) > 3 or int(text) < 1:
            raise ConvoyError(f"{self.shown} is not convoy's state database (a PostgreSQL database with tables "
                              "but without convoy's schema version); give convoy an empty database of its own")
        version = int(text)
        if version > schema.SCHEMA_VERSION:
            raise ConvoyError(f"{self.shown}: the store's schema is version {version}, newer than this convoy's "
                              f"({schema.SCHEMA_VERSION}); upgrade convoy to the version that wrote it")
        if version < schema.SCHEMA_VERSION and check:
            raise ConvoyError(f"{self.shown}: the store's schema is version {version}, older than this convoy's "
                              f"({schema.SCHEMA_VERSION}); migrate it: convoy db upgrade")
        missing = [t for t in schema.TABLES if t not in found] if version == schema.SCHEMA_VERSION else []
        if missing:
            raise ConvoyError(f"{self.shown}: the state database is damaged (no table {', '.join(missing)}); "
                              "restore it from a backup, or give convoy an empty database")
        return version

    def _connection(self) -> psycopg.Connection:
        conn = self.connections.current(usable=lambda c: not c.broken and not c.closed)
        if conn is None:
            params = {} if "connect_timeout" in psycopg.conninfo.conninfo_to_dict(self.url) else {
                "connect_timeout": CONNECT_TIMEOUT}
            try:
                conn = psycopg.connect(self.url, autocommit=True, row_factory=dict_row,
                                       application_name="convoy", **params)
            except psycopg.Error as e:
                raise StoreUnavailable(
                    f"store {self.shown}: cannot connect to PostgreSQL ({_first_line(e, self.url)}); start the "
                    "server, or correct the URL's host, port, user or database (the password: in the URL or "
                    "PGPASSFILE), then run the command again") from None
            self.connections.hold(conn)
        return conn

    @contextlib.contextmanager
    def _begin(self, conn: psycopg.Connection, begin: str) -> Iterator[None]:
        conn.execute(begin)
        try:
            yield
            conn.execute("COMMIT")
        except BaseException:
            if not conn.broken and not conn.closed:
                with contextlib.suppress(psycopg.Error):
                    conn.execute("ROLLBACK")
            raise

    @contextlib.contextmanager
    def _write(self, conn: psycopg.Connection) -> Iterator[None]:
        """A write transaction: BEGIN, then the store's write lock (waited for at most the busy timeout)."""
        with self._begin(conn, "BEGIN"):
            conn.execute(f"SET LOCAL lock_timeout = {int(busy_timeout_ms())}")
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
            conn.execute("SET LOCAL lock_timeout TO DEFAULT")
            yield

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """PostgreSQL's failures of the world as one-line ConvoyErrors; others (bugs) as they are."""
        try:
            yield
        except psycopg.Error as e:
            code = e.sqlstate or ""
            lost = isinstance(e, psycopg.OperationalError) and not code
            if not lost and not code.startswith(_WORLD):
                raise
            if code == "55P03":
                raise ConvoyError(
                    f"store {self.shown}: another convoy holds the store's write lock (for more than "
                    f"{busy_timeout_ms() / 1000:g} s); wait for it to finish, or stop it, then run the command "
                    "again") from None
            error = StoreUnavailable if lost or code.startswith(("08", "57P")) else ConvoyError
            raise error(f"store {self.shown}: PostgreSQL failed ({_first_line(e, self.url)}); nothing of the "
                              "interrupted transaction was kept: check the server, then run the command "
                              "again") from None

    @contextlib.contextmanager
    def transaction(self) -> Iterator[PostgresTransaction]:
        if self.readonly:
            raise RuntimeError(f"{self.shown} is open read-only: no write transaction")
        with self._errors():
            conn = self._connection()
            if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                raise RuntimeError("a write transaction inside another one on the same thread")
            tx = PostgresTransaction(conn)
            with self._write(conn):
                yield tx
        if tx.added_events:
            self._committed()

    @contextlib.contextmanager
    def read(self) -> Iterator[PostgresTransaction]:
        with self._errors():
            conn = self._connection()
            if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                yield PostgresTransaction(conn, readonly=True)  # inside this thread's write transaction: sees it
                return
            with self._begin(conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"):
                yield PostgresTransaction(conn, readonly=True)

    def close(self) -> None:
        self.connections.close()

    def open_connections(self) -> int:
        """How many connections are open (for tests: threads must not leak them)."""
        return self.connections.open_count()
