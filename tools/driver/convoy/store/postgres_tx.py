"""`PostgresTransaction`: the PostgreSQL SQL behind every method of
`Transaction`, the twin of sqlite_tx.py (the same columns accepted, the
same records: rows.py converts both backends' rows).

A new row's id is the identity column's next value (`RETURNING id`): ids
ascend, events are read in the order of their ids, and since every write
transaction holds the store's write lock until it commits, ids also commit
in that order. An id is never used again, even one of a rolled-back row.
A transaction counts the events it adds: the store calls its commit
listeners only after a transaction that added some.
"""

from __future__ import annotations

from typing import Any, Iterable, Optional

from convoy.models import (
    KIND_REQUEST, Build, BuildState, Delivery, Event, OpenGroup, Release, Request, RequestBump, RequestState, Stage,
    StageState, Task, TaskState, TestResult,
)
from convoy.store.base import MAX_ID, Transaction, iso, now
from convoy.store.postgres_tables import PgTables, sql_limit
from convoy.store.rows import (
    RENAMED, as_build, as_event, as_release, as_request, as_stage, as_task, bumps_json, event_json, sql_value,
    targets_json, update_sql,
)
from convoy.store.sqlite_tx import BUILD_COLUMNS, REQUEST_COLUMNS, STAGE_COLUMNS, TASK_COLUMNS


class PostgresTransaction(Transaction):
    """One transaction on `conn` (psycopg, dict rows), which PostgresStore
    begins and ends. The requests, builds, stages, tasks, events and
    releases are its own SQL; the rest is forwarded to `tables`
    (postgres_tables.py), on the same connection."""

    def __init__(self, conn: Any, readonly: bool = False) -> None:
        self.conn = conn
        self.readonly = readonly
        self.added_events = 0
        self.tables = PgTables(conn)

    def _one(self, sql: str, args: Iterable[Any] = ()) -> Optional[dict]:
        return self.conn.execute(sql, tuple(args)).fetchone()

    def _all(self, sql: str, args: Iterable[Any] = ()) -> list[dict]:
        return self.conn.execute(sql, tuple(args)).fetchall()

    def _insert(self, table: str, fields: dict[str, Any]) -> int:
        columns = ", ".join(fields)
        marks = ", ".join("%s" for _ in fields)
        return self._one(f"INSERT INTO {table} ({columns}) VALUES ({marks}) RETURNING id", fields.values())["id"]

    def _update(self, table: str, allowed: set[str], row_id: int, fields: dict[str, Any]) -> None:
        """UPDATE one row's `fields` (only the `allowed` columns; KeyError if the row does not exist)."""
        statement = update_sql(table, allowed, row_id, fields, "%s")
        if statement is None:
            return
        if self.conn.execute(*statement).rowcount != 1:
            raise KeyError(f"{table} {row_id} does not exist")

    def _by_id(self, table: str, row_id: int) -> Optional[dict]:
        if not -MAX_ID - 1 <= row_id <= MAX_ID:  # no row has it (and it is no BIGINT)
            return None
        return self._one(f"SELECT * FROM {table} WHERE id = %s", (row_id,))

    # requests
    def insert_request(self, **fields: Any) -> Request:
        ts = now()
        fields = {"state": RequestState.QUEUED, "created_at": ts, "updated_at": ts, **fields}
        unknown = set(fields) - REQUEST_COLUMNS
        if unknown:
            raise ValueError(f"unknown request fields {sorted(unknown)}")
        if "bumps" in fields:
            fields["bumps"] = bumps_json(fields["bumps"])
        return self.request(self._insert("requests", {RENAMED.get(k, k): sql_value(v) for k, v in fields.items()}))

    def request(self, request_id: int) -> Optional[Request]:
        row = self._by_id("requests", request_id)
        return None if row is None else as_request(row)

    def requests(self, states=None, component=None, kind=KIND_REQUEST) -> list[Request]:
        where, args = ["kind = %s"], [kind]
        if states is not None:
            where.append("state = ANY(%s)")
            args.append([RequestState(s).value for s in states])
        found = [as_request(r) for r in self._all(f"SELECT * FROM requests WHERE {' AND '.join(where)} ORDER BY id",
                                                  args)]
        return found if component is None else [r for r in found if component in r.components]

    def update_request(self, request_id: int, **fields: Any) -> Request:
        self._update("requests", REQUEST_COLUMNS, request_id, {**fields, "updated_at": now()})
        return self.request(request_id)

    def add_request_time(self, request_id: int, total: float, bazel: float, git: float) -> None:
        self.conn.execute(
            "UPDATE requests SET total_seconds = total_seconds + %s, bazel_seconds = bazel_seconds + %s, "
            "git_seconds = git_seconds + %s WHERE id = %s", (total, bazel, git, request_id))

    # builds
    def insert_build(self, request_id: int, base_commit: str, candidate_commit: str) -> Build:
        number = self._one("SELECT COALESCE(MAX(number), 0) + 1 AS n FROM builds WHERE request_id = %s",
                           (request_id,))["n"]
        return self.build(self._insert("builds", {
            "request_id": request_id, "number": number, "state": BuildState.BUILDING.value,
            "base_commit": base_commit, "candidate_commit": candidate_commit, "started_at": now()}))

    def build(self, build_id: int) -> Optional[Build]:
        row = self._by_id("builds", build_id)
        return None if row is None else as_build(row)

    def builds(self, request_id: int) -> list[Build]:
        return [as_build(r) for r in self._all("SELECT * FROM builds WHERE request_id = %s ORDER BY number",
                                               (request_id,))]

    def builds_of_commit(self, candidate_commit: str) -> list[Build]:
        return [as_build(r) for r in self._all("SELECT * FROM builds WHERE candidate_commit = %s ORDER BY id",
                                               (candidate_commit,))]

    def update_build(self, build_id: int, **fields: Any) -> Build:
        self._update("builds", BUILD_COLUMNS, build_id, fields)
        return self.build(build_id)

    # stages
    def insert_stage(self, build_id: int, position: int, name: str, command: str) -> Stage:
        stage_id = self._insert("stages", {"build_id": build_id, "position": position, "name": name,
                                           "command": command, "state": StageState.WAITING.value})
        return as_stage(self._by_id("stages", stage_id))

    def stages(self, build_id: int) -> list[Stage]:
        return [as_stage(r) for r in self._all("SELECT * FROM stages WHERE build_id = %s ORDER BY position",
                                               (build_id,))]

    def update_stage(self, stage_id: int, **fields: Any) -> Stage:
        self._update("stages", STAGE_COLUMNS, stage_id, fields)
        return as_stage(self._by_id("stages", stage_id))

    # tasks
    def insert_task(self, stage_id: int, build_id: int, configuration: str) -> Task:
        return self.task(self._insert("tasks", {"stage_id": stage_id, "build_id": build_id,
                                                "configuration": configuration, "state": TaskState.WAITING.value}))

    def task(self, task_id: int) -> Optional[Task]:
        row = self._by_id("tasks", task_id)
        return None if row is None else as_task(row)

    def tasks(self, *, build_id=None, stage_id=None, states=None) -> list[Task]:
        where, args = [], []
        for column, value in (("build_id", build_id), ("stage_id", stage_id)):
            if value is not None:
                where.append(f"{column} = %s")
                args.append(value)
        if states is not None:
            where.append("state = ANY(%s)")
            args.append([TaskState(s).value for s in states])
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        return [as_task(r) for r in self._all(f"SELECT * FROM tasks{clause} ORDER BY id", args)]

    def update_task(self, task_id: int, **fields: Any) -> Task:
        if "targets" in fields:
            fields = {**fields, "targets": targets_json(fields["targets"])}
        self._update("tasks", TASK_COLUMNS, task_id, fields)
        return self.task(task_id)

    # events
    def add_event(self, type, *, request_id=None, build_id=None, stage_id=None, task_id=None, data=None) -> Event:
        row = {"ts": iso(now()), "type": type, "request_id": request_id, "build_id": build_id,
               "stage_id": stage_id, "task_id": task_id, "data": event_json(data)}
        row["id"] = self._insert("events", dict(row))
        self.added_events += 1
        return as_event(row)

    def events(self, *, after: int = 0, request_id=None, limit=None) -> list[Event]:
        sql, args = "SELECT * FROM events WHERE id > %s", [after]
        if request_id is not None:
            sql += " AND request_id = %s"
            args.append(request_id)
        sql += " ORDER BY id"
        if limit is not None:
            sql += " LIMIT %s"
            args.append(sql_limit(limit))
        return [as_event(r) for r in self._all(sql, args)]

    def last_event_id(self) -> int:
        return self._one("SELECT COALESCE(MAX(id), 0) AS id FROM events")["id"]

    # releases
    def insert_release(self, *, request_id, build_id, tag, commit, notes) -> Release:
        release_id = self._insert("releases", {"request_id": request_id, "build_id": build_id, "tag": tag,
                                               "commit_sha": commit, "notes": notes, "created_at": now()})
        return as_release(self._by_id("releases", release_id))

    def releases(self, *, request_id=None) -> list[Release]:
        if request_id is None:
            return [as_release(r) for r in self._all("SELECT * FROM releases ORDER BY id")]
        return [as_release(r) for r in self._all("SELECT * FROM releases WHERE request_id = %s ORDER BY id",
                                                 (request_id,))]

    # meta, open groups, deliveries, plugin cursors, leases, the tests' results, what is recent: postgres_tables.py
    def meta(self, key: str) -> Optional[str]:
        return self.tables.meta(key)

    def set_meta(self, key: str, value: str) -> None:
        return self.tables.set_meta(key, value)

    def open_group(self, name: str) -> Optional[OpenGroup]:
        return self.tables.open_group(name)

    def open_groups(self) -> list[OpenGroup]:
        return self.tables.open_groups()

    def put_open_group(self, name: str, bumps: Iterable[RequestBump], requested_by: Optional[str]) -> OpenGroup:
        return self.tables.put_open_group(name, bumps, requested_by)

    def delete_open_group(self, name: str) -> None:
        return self.tables.delete_open_group(name)

    def delivery(self, forge: str, delivery: str) -> Optional[Delivery]:
        return self.tables.delivery(forge, delivery)

    def record_delivery(self, forge: str, delivery: str, *, request_id: Optional[int], outcome: str) -> Delivery:
        return self.tables.record_delivery(forge, delivery, request_id=request_id, outcome=outcome)

    def cursor(self, plugin: str) -> Optional[int]:
        return self.tables.cursor(plugin)

    def set_cursor(self, plugin: str, event_id: int) -> None:
        return self.tables.set_cursor(plugin, event_id)

    def acquire_lease(self, name: str, owner: str, ttl: float) -> Optional[str]:
        return self.tables.acquire_lease(name, owner, ttl)

    def release_lease(self, name: str, owner: str) -> None:
        return self.tables.release_lease(name, owner)

    def leases(self) -> list:
        return self.tables.leases()

    def latest_requests(self, states: Iterable[RequestState], limit: int) -> list[Request]:
        return self.tables.latest_requests(states, limit)

    def merged_stages(self, limit: int) -> list[Stage]:
        return self.tables.merged_stages(limit)

    def latest_releases(self, limit: int) -> list[Release]:
        return self.tables.latest_releases(limit)

    def add_test_results(self, rows: Iterable[dict]) -> None:
        return self.tables.add_test_results(rows)

    def test_results(self, *, target: Optional[str] = None, configuration: Optional[str] = None,
                     task_id: Optional[int] = None, limit: Optional[int] = None) -> list[TestResult]:
        return self.tables.test_results(target=target, configuration=configuration, task_id=task_id, limit=limit)

    def passed_on_main(self, target: str, configuration: str) -> bool:
        return self.tables.passed_on_main(target, configuration)
