"""A real PostgreSQL for the tests of the PostgreSQL store: Debian's
binaries, one private cluster per test session (tests/conftest.py's
`pg_server`), a fresh database for each test that asks (`pg_url`).

The cluster is convoy.lab.postgres's `Cluster` (the lab's own: initdb with
trust authentication, 127.0.0.1 only, no Unix socket, fsync off, run as
the postgres user when the tests run as root) on a free port, in a new
directory of the system's temporary directory: pytest's own temporary
directories are private to the user running the tests, and the postgres
user could not reach one. The cluster is stopped and its directory removed
when the session ends.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import shutil
import socket
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from convoy.lab.postgres import PG_USER, USER, Cluster


def free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class PgServer:
    """The session's cluster: `url(database)` names one of its databases, `new_database()` makes one."""

    cluster: Cluster
    port: int
    _numbers: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database}"

    def admin(self):
        import psycopg

        return psycopg.connect(self.url("postgres"), autocommit=True)

    def new_database(self) -> str:
        """A new, empty database (t_<n>); its URL."""
        name = f"t_{next(self._numbers)}"
        with self.admin() as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def drop_database(self, url: str) -> None:
        name = url.rsplit("/", 1)[1]
        with self.admin() as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@contextlib.contextmanager
def pg_server() -> Iterator[PgServer]:
    """Starts a private cluster; stops it and removes its directory at the end."""
    directory = Path(tempfile.mkdtemp(prefix="convoy-pg-tests-"))
    if os.geteuid() == 0:
        entry = pwd.getpwnam(PG_USER)
        os.chown(directory, entry.pw_uid, entry.pw_gid)
    port = free_port()
    cluster = Cluster(directory / "cluster", port=port)
    try:
        cluster.start()
        yield PgServer(cluster, port)
    finally:
        with contextlib.suppress(Exception):
            cluster.stop()
        shutil.rmtree(directory, ignore_errors=True)
