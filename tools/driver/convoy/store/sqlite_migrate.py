"""The SQLite state's schema versions, and the migration of an older one in place.

A database written by an older convoy is migrated when a writer opens it
(`SQLiteStore`, not read-only): every step from its version to
SCHEMA_VERSION, and the new version number, in one write transaction, so
that an interrupted migration leaves the database as it was. A read-only
open (convoy status, convoy show) migrates nothing and reads an older
database as it is.

    version 1   the first schema
    version 2   requests.bumps (a group's extra bumps, JSON); table open_groups
    version 3   table deliveries (the forges' webhook deliveries `convoy serve` has acted on)
    version 4   requests.kind ('request', or 'try': `convoy try`, never merged)
    version 5   requests.priority (0 normal, higher first: `convoy submit --priority`,
                `convoy promote`); table test_results (each test target's result in each
                task: `convoy flakes`, and whether a failing test passed on main)
    version 6   tasks.log_tail (the last 16 KiB of the task's log, written at its end: what a
                worker without the log file shows, convoy.task_logs)
"""

from __future__ import annotations

import sqlite3
from typing import Optional

SCHEMA_VERSION = 6

OPEN_GROUPS = """
CREATE TABLE IF NOT EXISTS open_groups (
    name TEXT PRIMARY KEY,
    bumps TEXT NOT NULL,
    requested_by TEXT,
    created_at REAL
)"""

# A forge's delivery (GitHub's X-GitHub-Delivery, GitLab's X-Gitlab-Event-UUID)
# and what it did: the same delivery again does nothing more.
DELIVERIES = """
CREATE TABLE IF NOT EXISTS deliveries (
    forge TEXT NOT NULL,
    delivery TEXT NOT NULL,
    request_id INTEGER REFERENCES requests(id),
    outcome TEXT NOT NULL,
    received_at REAL NOT NULL,
    PRIMARY KEY (forge, delivery)
)"""

# Each test target's result in one task (and, for a hardware test, the rigs
# it ran on): what `convoy flakes` counts, and how the queue knows whether a
# test that fails on a candidate passed on main. `status` is Bazel's
# (passed, flaky, failed, ...: convoy.bep's) or convoy's own verdict (quarantined, or
# flaky for a test that failed and passed when convoy ran it again); a row of
# a succeeded build of a merged request is a result on main.
TEST_RESULTS = """
CREATE TABLE IF NOT EXISTS test_results (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    target TEXT NOT NULL,
    configuration TEXT NOT NULL,
    stage TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 1,
    rigs TEXT NOT NULL DEFAULT '[]',
    detail TEXT,
    request_id INTEGER REFERENCES requests(id),
    build_id INTEGER REFERENCES builds(id),
    task_id INTEGER REFERENCES tasks(id),
    recorded_at REAL NOT NULL
)"""
TEST_RESULTS_INDEX = "CREATE INDEX IF NOT EXISTS test_results_by_target ON test_results(target, configuration, id)"

# version -> the statements that make it the next version.
MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: ("ALTER TABLE requests ADD COLUMN bumps TEXT NOT NULL DEFAULT '[]'", OPEN_GROUPS),
    2: (DELIVERIES,),
    3: ("ALTER TABLE requests ADD COLUMN kind TEXT NOT NULL DEFAULT 'request'",
        "CREATE INDEX IF NOT EXISTS requests_by_kind ON requests(kind, state, id)"),
    4: ("ALTER TABLE requests ADD COLUMN priority INTEGER NOT NULL DEFAULT 0", TEST_RESULTS, TEST_RESULTS_INDEX),
    5: ("ALTER TABLE tasks ADD COLUMN log_tail TEXT",),
}

# The tables a version added (a database at an older version lacks them).
ADDED_TABLES: dict[int, tuple[str, ...]] = {2: ("open_groups",), 3: ("deliveries",), 5: ("test_results",)}


def known_version(value: object) -> Optional[int]:
    """The schema version `value` (meta's text) names, if it is one this
    convoy can read or migrate (1 to SCHEMA_VERSION); None otherwise."""
    text = str(value)
    if not (text.isascii() and text.isdigit()) or len(text) > 3:
        return None
    version = int(text)
    return version if 1 <= version <= SCHEMA_VERSION else None


def required_tables(tables: tuple[str, ...], version: int) -> tuple[str, ...]:
    """Which of the current schema's `tables` a database at `version` has."""
    later = {t for v, added in ADDED_TABLES.items() if v > version for t in added}
    return tuple(t for t in tables if t not in later)


def migrate(conn: sqlite3.Connection) -> None:
    """Brings the database to SCHEMA_VERSION; the caller holds a write
    transaction (BEGIN IMMEDIATE), in which the version is read again:
    another convoy may have migrated it meanwhile."""
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    version = known_version(row[0]) if row is not None else None
    if version is None or version == SCHEMA_VERSION:
        return
    while version < SCHEMA_VERSION:
        for statement in MIGRATIONS[version]:
            conn.execute(statement)
        version += 1
    conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))
