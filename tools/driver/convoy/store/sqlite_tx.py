"""`SQLiteTransaction`: the SQL behind every method of `Transaction` (the
converters from SQLite's rows to convoy.models' records are sqlite_rows.py).

`update_*` take only the columns that a caller may change (a request's
`commit` is the column `commit_sha`); enums and booleans are stored as their
values. A transaction counts the events it adds: the store calls its commit
listeners only after a transaction that added some.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any, Iterable, Optional, Sequence

from convoy.models import (
    KIND_REQUEST, Build, BuildState, Delivery, Event, OpenGroup, Release, Request, RequestBump, RequestState, Stage,
    StageState, Task, TaskState, TestResult,
)
from convoy.store.base import MAX_ID, Transaction, iso, now
from convoy.store.rows import (
    RENAMED, as_build, as_event, as_release, as_request, as_stage, as_task, bumps_json, event_json, sql_value,
    targets_json,
)
from convoy.store.sqlite_meta import MetaAndGroups
from convoy.store.sqlite_recent import RecentReads
from convoy.store.sqlite_results import TestResults
from convoy.store.sqlite_rows import update_row

# The columns `insert_request` and `update_*` accept, by table.
REQUEST_COLUMNS = {
    "component", "version", "commit", "commit_given", "archive_url", "strip_prefix", "configuration",
    "requested_by", "state", "phase", "attempts", "base_commit", "candidate_commit", "tag", "detail",
    "superseded_by", "cancel_requested", "created_at", "updated_at", "finished_at", "bumps", "kind", "priority",
}
BUILD_COLUMNS = {"state", "finished_at", "detail"}
STAGE_COLUMNS = {"state", "started_at", "finished_at"}
TASK_COLUMNS = {
    "state", "slot", "pid", "outcome", "exit_code", "log_path", "bep_path", "targets", "detail", "runs",
    "started_at", "finished_at", "log_tail",
}


class SQLiteTransaction(Transaction):
    """One transaction on `conn`, which SQLiteStore begins and ends. The
    requests, builds, stages, tasks, events and releases are its own SQL;
    it forwards the rest to collaborators on the same connection: the small
    tables (`small`: sqlite_meta.py), the reads of what is recent (`recent`:
    sqlite_recent.py) and the tests' results (`results`: sqlite_results.py)."""

    def __init__(self, conn: sqlite3.Connection, readonly: bool = False) -> None:
        self.conn = conn
        self.readonly = readonly
        self.added_events = 0
        self.small = MetaAndGroups(conn)
        self.recent = RecentReads(conn)
        self.results = TestResults(conn)

    def _one(self, sql: str, args: Sequence[Any] = ()) -> Optional[sqlite3.Row]:
        return self.conn.execute(sql, args).fetchone()

    def _all(self, sql: str, args: Sequence[Any] = ()) -> list[sqlite3.Row]:
        return self.conn.execute(sql, args).fetchall()

    # requests
    def insert_request(self, **fields: Any) -> Request:
        ts = now()
        fields = {"state": RequestState.QUEUED, "created_at": ts, "updated_at": ts, **fields}
        unknown = set(fields) - REQUEST_COLUMNS
        if unknown:
            raise ValueError(f"unknown request fields {sorted(unknown)}")
        if "bumps" in fields:
            fields["bumps"] = bumps_json(fields["bumps"])
        columns = [RENAMED.get(k, k) for k in fields]
        cursor = self.conn.execute(
            f"INSERT INTO requests ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})",
            [sql_value(v) for v in fields.values()],
        )
        return self.request(cursor.lastrowid)

    def request(self, request_id: int) -> Optional[Request]:
        if request_id > MAX_ID:  # SQLite cannot even compare it (OverflowError)
            return None
        row = self._one("SELECT * FROM requests WHERE id = ?", (request_id,))
        return None if row is None else as_request(row)

    def requests(self, states=None, component=None, kind=KIND_REQUEST) -> list[Request]:
        where, args = [], []
        if self._has_kinds():
            where, args = ["kind = ?"], [kind]
        elif kind != KIND_REQUEST:  # a database before version 4, read as it is: no tries
            return []
        if states is not None:
            states = [RequestState(s).value for s in states]
            where.append(f"state IN ({', '.join('?' for _ in states)})")
            args += states
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        found = [as_request(r) for r in self._all(f"SELECT * FROM requests{clause} ORDER BY id", args)]
        return found if component is None else [r for r in found if component in r.components]

    def _has_kinds(self) -> bool:
        """Whether `requests` has its `kind` column (schema version 4)."""
        if not hasattr(self, "_kinds"):
            self._kinds = any(row[1] == "kind" for row in self._all("PRAGMA table_info(requests)"))
        return self._kinds

    def update_request(self, request_id: int, **fields: Any) -> Request:
        update_row(self.conn, "requests", REQUEST_COLUMNS, request_id, {**fields, "updated_at": now()})
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
        return None if row is None else as_build(row)

    def builds(self, request_id: int) -> list[Build]:
        return [as_build(r) for r in self._all("SELECT * FROM builds WHERE request_id = ? ORDER BY number", (request_id,))]

    def builds_of_commit(self, candidate_commit: str) -> list[Build]:
        rows = self._all("SELECT * FROM builds WHERE candidate_commit = ? ORDER BY id", (candidate_commit,))
        return [as_build(r) for r in rows]

    def update_build(self, build_id: int, **fields: Any) -> Build:
        update_row(self.conn, "builds", BUILD_COLUMNS, build_id, fields)
        return self.build(build_id)

    # stages
    def insert_stage(self, build_id: int, position: int, name: str, command: str) -> Stage:
        cursor = self.conn.execute(
            "INSERT INTO stages (build_id, position, name, command, state) VALUES (?, ?, ?, ?, ?)",
            (build_id, position, name, command, StageState.WAITING.value),
        )
        return as_stage(self._one("SELECT * FROM stages WHERE id = ?", (cursor.lastrowid,)))

    def stages(self, build_id: int) -> list[Stage]:
        return [as_stage(r) for r in self._all("SELECT * FROM stages WHERE build_id = ? ORDER BY position", (build_id,))]

    def update_stage(self, stage_id: int, **fields: Any) -> Stage:
        update_row(self.conn, "stages", STAGE_COLUMNS, stage_id, fields)
        return as_stage(self._one("SELECT * FROM stages WHERE id = ?", (stage_id,)))

    # tasks
    def insert_task(self, stage_id: int, build_id: int, configuration: str) -> Task:
        cursor = self.conn.execute(
            "INSERT INTO tasks (stage_id, build_id, configuration, state) VALUES (?, ?, ?, ?)",
            (stage_id, build_id, configuration, TaskState.WAITING.value),
        )
        return self.task(cursor.lastrowid)

    def task(self, task_id: int) -> Optional[Task]:
        row = self._one("SELECT * FROM tasks WHERE id = ?", (task_id,))
        return None if row is None else as_task(row)

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
        return [as_task(r) for r in self._all(f"SELECT * FROM tasks{clause} ORDER BY id", args)]

    def update_task(self, task_id: int, **fields: Any) -> Task:
        if "targets" in fields:
            fields = {**fields, "targets": targets_json(fields["targets"])}
        update_row(self.conn, "tasks", TASK_COLUMNS, task_id, fields)
        return self.task(task_id)

    # events
    def add_event(self, type, *, request_id=None, build_id=None, stage_id=None, task_id=None, data=None) -> Event:
        ts = iso(now())
        payload = event_json(data)
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
        return [as_event(r) for r in self._all(sql, args)]

    def last_event_id(self) -> int:
        return self._one("SELECT COALESCE(MAX(id), 0) FROM events")[0]

    # releases
    def insert_release(self, *, request_id, build_id, tag, commit, notes) -> Release:
        cursor = self.conn.execute(
            "INSERT INTO releases (request_id, build_id, tag, commit_sha, notes, created_at) VALUES (?, ?, ?, ?, ?, ?)",
            (request_id, build_id, tag, commit, notes, now()),
        )
        return as_release(self._one("SELECT * FROM releases WHERE id = ?", (cursor.lastrowid,)))

    def releases(self, *, request_id=None) -> list[Release]:
        if request_id is None:
            rows = self._all("SELECT * FROM releases ORDER BY id")
        else:
            rows = self._all("SELECT * FROM releases WHERE request_id = ? ORDER BY id", (request_id,))
        return [as_release(r) for r in rows]

    # meta, open groups, deliveries, plugin cursors, leases: sqlite_meta.py
    def meta(self, key: str) -> Optional[str]:
        return self.small.meta(key)

    def set_meta(self, key: str, value: str) -> None:
        return self.small.set_meta(key, value)

    def open_group(self, name: str) -> Optional[OpenGroup]:
        return self.small.open_group(name)

    def open_groups(self) -> list[OpenGroup]:
        return self.small.open_groups()

    def put_open_group(self, name: str, bumps: Iterable[RequestBump], requested_by: Optional[str]) -> OpenGroup:
        return self.small.put_open_group(name, bumps, requested_by)

    def delete_open_group(self, name: str) -> None:
        return self.small.delete_open_group(name)

    def delivery(self, forge: str, delivery: str) -> Optional[Delivery]:
        return self.small.delivery(forge, delivery)

    def record_delivery(self, forge: str, delivery: str, *, request_id: Optional[int], outcome: str) -> Delivery:
        return self.small.record_delivery(forge, delivery, request_id=request_id, outcome=outcome)

    def cursor(self, plugin: str) -> Optional[int]:
        return self.small.cursor(plugin)

    def set_cursor(self, plugin: str, event_id: int) -> None:
        return self.small.set_cursor(plugin, event_id)

    def acquire_lease(self, name: str, owner: str, ttl: float) -> Optional[str]:
        return self.small.acquire_lease(name, owner, ttl)

    def release_lease(self, name: str, owner: str) -> None:
        return self.small.release_lease(name, owner)

    def leases(self) -> list:
        return self.small.leases()

    # what is recent: sqlite_recent.py
    def latest_requests(self, states: Iterable[RequestState], limit: int) -> list[Request]:
        return self.recent.latest_requests(states, limit)

    def merged_stages(self, limit: int) -> list[Stage]:
        return self.recent.merged_stages(limit)

    def latest_releases(self, limit: int) -> list[Release]:
        return self.recent.latest_releases(limit)

    # the tests' results: sqlite_results.py
    def add_test_results(self, rows: Iterable[dict]) -> None:
        return self.results.add_test_results(rows)

    def test_results(self, *, target: Optional[str] = None, configuration: Optional[str] = None,
                     task_id: Optional[int] = None, limit: Optional[int] = None) -> list[TestResult]:
        return self.results.test_results(target=target, configuration=configuration, task_id=task_id, limit=limit)

    def passed_on_main(self, target: str, configuration: str) -> bool:
        return self.results.passed_on_main(target, configuration)
