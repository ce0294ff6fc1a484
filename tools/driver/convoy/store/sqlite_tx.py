"""`SQLiteTransaction`: the SQL behind every method of `Transaction`, and
the converters from SQLite's rows to convoy.models' records.

`update_*` take only the columns that a caller may change (a request's
`commit` is the column `commit_sha`); enums and booleans are stored as their
values. A transaction counts the events it adds: the store calls its commit
listeners only after a transaction that added some.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any, Mapping, Optional, Sequence

from convoy.models import (
    KIND_REQUEST, Build, BuildState, Event, Phase, Release, Request, RequestState, Stage, StageState, TargetOutcome,
    Task, TaskState,
)
from convoy.store.base import MAX_ID, Transaction, iso, now
from convoy.store.sqlite_meta import MetaAndGroups, bumps_json, bumps_of
from convoy.store.sqlite_recent import RecentReads
from convoy.store.sqlite_results import TestResults

# The columns `insert_request` and `update_*` accept, by table.
_REQUEST_COLUMNS = {
    "component", "version", "commit", "commit_given", "archive_url", "strip_prefix", "configuration",
    "requested_by", "state", "phase", "attempts", "base_commit", "candidate_commit", "tag", "detail",
    "superseded_by", "cancel_requested", "created_at", "updated_at", "finished_at", "bumps", "kind", "priority",
}
_BUILD_COLUMNS = {"state", "finished_at", "detail"}
_STAGE_COLUMNS = {"state", "started_at", "finished_at"}
_TASK_COLUMNS = {
    "state", "slot", "pid", "outcome", "exit_code", "log_path", "bep_path", "targets", "detail", "runs",
    "started_at", "finished_at",
}
_RENAMED = {"commit": "commit_sha"}


class SQLiteTransaction(MetaAndGroups, RecentReads, TestResults, Transaction):
    """One transaction on `conn`, which SQLiteStore begins and ends (meta
    and open groups: sqlite_meta.py; the recent requests, stages and
    releases: sqlite_recent.py; the tests' results: sqlite_results.py)."""

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
        if "bumps" in fields:
            fields = {**fields, "bumps": bumps_json(fields["bumps"])}
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
        if "bumps" in fields:
            fields["bumps"] = bumps_json(fields["bumps"])
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
        found = [_request(r) for r in self._all(f"SELECT * FROM requests{clause} ORDER BY id", args)]
        return found if component is None else [r for r in found if component in r.components]

    def _has_kinds(self) -> bool:
        """Whether `requests` has its `kind` column (schema version 4)."""
        if not hasattr(self, "_kinds"):
            self._kinds = any(row[1] == "kind" for row in self._all("PRAGMA table_info(requests)"))
        return self._kinds

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
        bumps=bumps_of(row["bumps"]) if "bumps" in row.keys() else (),  # a version-1 database, read as it is
        kind=row["kind"] if "kind" in row.keys() else KIND_REQUEST,  # before version 4: no tries
        priority=row["priority"] if "priority" in row.keys() else 0,  # before version 5: all normal
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
