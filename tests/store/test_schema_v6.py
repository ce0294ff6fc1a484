"""Schema version 6: tasks.log_tail (the last 16 KiB of a task's log, kept at its end for the workers
that do not have the file). A version-5 database is migrated in place when a writer opens it (its
tasks keep everything, with no tail); a reader reads it as it is.
"""

from __future__ import annotations

import sqlite3

from convoy.models import TaskState
from convoy.store import SCHEMA_VERSION, SQLiteStore

from tests.store.test_schema_migration import columns, make_at, raw


def _with_a_task(db):
    """A build with a stage and a finished task, written as a version-5 convoy wrote them."""
    conn = sqlite3.connect(db)
    try:
        conn.execute("INSERT INTO builds (request_id, number, state, base_commit, candidate_commit, started_at) "
                     "VALUES (1, 1, 'failed', ?, ?, 1.0)", ("a" * 40, "b" * 40))
        conn.execute("INSERT INTO stages (build_id, position, name, command, state) "
                     "VALUES (1, 0, 'build', 'build', 'failed')")
        conn.execute("INSERT INTO tasks (stage_id, build_id, configuration, state, outcome, log_path, runs) "
                     "VALUES (1, 1, 'rover', 'failed', 'BUILD_FAILURE', '/c/.convoy/logs/request-1/build-1/"
                     "build-rover.log', 1)")
        conn.commit()
    finally:
        conn.close()
    return db


def test_a_version_5_database_gets_the_log_tail(tmp_path):
    db = _with_a_task(make_at(tmp_path / "state.db", 5))
    assert "log_tail" not in columns(db, "tasks")
    with SQLiteStore(db, readonly=True) as store, store.read() as tx:  # a reader migrates nothing
        (task,) = tx.tasks()
        assert (task.outcome, task.log_tail) == ("BUILD_FAILURE", None)
    assert raw(db, "SELECT value FROM meta WHERE key = 'schema_version'") == [("5",)]
    with SQLiteStore(db) as store, store.transaction() as tx:
        assert tx.task(1).log_tail is None and tx.task(1).log_path.endswith("build-rover.log")
        done = tx.update_task(1, state=TaskState.FAILED, log_tail="ERROR: it broke\n")
        assert done.log_tail == "ERROR: it broke\n"
    assert columns(db, "tasks")[-1] == "log_tail"
    assert raw(db, "SELECT value FROM meta WHERE key = 'schema_version'") == [(str(SCHEMA_VERSION),)] == [("6",)]
    with SQLiteStore(db, readonly=True) as store, store.read() as tx:  # opened again: the tail is there
        assert tx.task(1).log_tail == "ERROR: it broke\n"


def test_a_new_database_has_the_log_tail(tmp_path):
    with SQLiteStore(tmp_path / "state.db") as store, store.transaction() as tx:
        request = tx.insert_request(component="messages", version="v1", requested_by="me")
        build = tx.insert_build(request.id, "a" * 40, "b" * 40)
        task = tx.insert_task(tx.insert_stage(build.id, 0, "build", "build").id, build.id, "rover")
        assert tx.update_task(task.id, log_tail="tail\n").log_tail == "tail\n"
    assert "log_tail" in columns(tmp_path / "state.db", "tasks")
