"""The lab's private PostgreSQL cluster: BuildGrid's scheduler database.

    cluster = Cluster(Path(".convoy/lab/pg"), port=54329)
    cluster.start(log)        # initdb on first use, then pg_ctl start; idempotent
    cluster.url               # postgresql+psycopg2://bgd@127.0.0.1:54329/bgd
    cluster.stop()

Debian's PostgreSQL binaries (/usr/lib/postgresql/<version>/bin). The cluster
listens on 127.0.0.1 only, with no Unix socket, and trusts local connections
(nothing else can reach it). PostgreSQL refuses to run as root: when convoy
runs as root, the cluster's directory belongs to the `postgres` user and
every command runs as that user (runuser).

The URL names psycopg2 on purpose: with a plain postgresql:// URL SQLAlchemy
2.x picks psycopg 3, BuildGrid's LISTEN/NOTIFY job notifier fails and Bazel
waits forever for results.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
from pathlib import Path
from typing import List, Optional

from convoy.errors import ConvoyError

USER = "bgd"
DATABASE = "bgd"
PG_USER = "postgres"
TIMEOUT = 120


def bin_dir() -> Path:
    """Where initdb and pg_ctl are (the newest Debian PostgreSQL, else PATH)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(Path(p).parts[4]))
    if found:
        return Path(found[-1]).parent
    pg_ctl = shutil.which("pg_ctl")
    if pg_ctl:
        return Path(pg_ctl).parent
    raise ConvoyError("PostgreSQL is not installed (no pg_ctl). Run: bash scripts/setup")


class Cluster:
    """A PostgreSQL cluster in `directory` (data in directory/data), on 127.0.0.1:`port`."""

    def __init__(self, directory: Path, port: int) -> None:
        self.directory = directory
        self.data = directory / "data"
        self.port = port
        self.log = directory / "postgres.log"

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://{USER}@127.0.0.1:{self.port}/{DATABASE}"

    def _as_owner(self, argv: List[str]) -> List[str]:
        if os.geteuid() == 0:
            return ["runuser", "-u", PG_USER, "--", *argv]
        return argv

    def _run(self, argv: List[str], what: str) -> subprocess.CompletedProcess:
        try:
            proc = subprocess.run(
                self._as_owner(argv),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=TIMEOUT,
                cwd="/",
            )
        except subprocess.TimeoutExpired:
            raise ConvoyError(f"PostgreSQL: {what} took more than {TIMEOUT} s; see {self.log}") from None
        return proc

    def _check(self, proc: subprocess.CompletedProcess, what: str) -> None:
        if proc.returncode != 0:
            last = (proc.stdout or "").strip().splitlines()[-1:] or ["no output"]
            raise ConvoyError(f"PostgreSQL: {what} failed ({last[0]}); see {self.log}")

    def initialized(self) -> bool:
        return (self.data / "PG_VERSION").is_file()

    def running(self) -> bool:
        if not self.initialized():
            return False
        return self._run([str(bin_dir() / "pg_ctl"), "-D", str(self.data), "status"], "status").returncode == 0

    def pid(self) -> Optional[int]:
        try:
            return int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def start(self) -> None:
        """Creates the cluster if needed and starts it; nothing to do if it runs."""
        self.directory.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            entry = pwd.getpwnam(PG_USER)
            os.chown(self.directory, entry.pw_uid, entry.pw_gid)
            self._check_reachable()
        if not self.initialized():
            self._check(
                self._run(
                    [str(bin_dir() / "initdb"), "-D", str(self.data), "-U", USER, "--auth=trust",
                     "-E", "UTF8", "--no-locale"],
                    "initdb",
                ),
                "initdb",
            )
        if self.running():
            return
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories='' -c fsync=off"
        self._check(
            self._run(
                [str(bin_dir() / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60",
                 "-o", options, "start"],
                "start",
            ),
            "pg_ctl start",
        )
        exists = self._run(
            [str(bin_dir() / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", USER, "-d", "postgres",
             "-tAc", f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'"],
            "psql",
        )
        self._check(exists, "checking the database")
        if exists.stdout.strip() != "1":
            self._check(
                self._run(
                    [str(bin_dir() / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", USER, DATABASE],
                    "createdb",
                ),
                "createdb",
            )

    def stop(self) -> bool:
        """Stops the cluster (fast shutdown); returns whether it was running."""
        if not self.running():
            return False
        self._check(
            self._run(
                [str(bin_dir() / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop"], "stop"
            ),
            "pg_ctl stop",
        )
        return True

    def _check_reachable(self) -> None:
        proc = self._run(["test", "-w", str(self.directory)], "access check")
        if proc.returncode != 0:
            raise ConvoyError(
                f"PostgreSQL runs as the {PG_USER} user, who cannot write {self.directory} "
                f"(a parent directory is private?); choose another --lab_dir"
            )
