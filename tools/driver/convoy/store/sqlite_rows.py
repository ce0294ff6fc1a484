"""The rows of the SQLite store as convoy.models' records (`as_request`,
`as_build`, `as_stage`, `as_task`, `as_event`, `as_release`), the values a
record's fields are stored as (`sql_value`: enums as their values, booleans
as 0/1), and `update_row`, the one UPDATE of the `update_*` methods.
sqlite_tx.py and sqlite_recent.py read with these.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any, Mapping

from convoy.models import (
    KIND_REQUEST, Build, BuildState, Event, Phase, Release, Request, RequestState, Stage, StageState, TargetOutcome,
    Task, TaskState,
)
from convoy.store.sqlite_meta import bumps_json, bumps_of

RENAMED = {"commit": "commit_sha"}  # a record's field -> its column, where they differ


def update_row(conn: sqlite3.Connection, table: str, allowed: set[str], row_id: int,
               fields: Mapping[str, Any]) -> None:
    """UPDATE one row's `fields` (only the `allowed` columns; KeyError if the row does not exist)."""
    unknown = set(fields) - allowed
    if unknown:
        raise ValueError(f"cannot update {table}.{', '.join(sorted(unknown))}")
    if not fields:
        return
    if "bumps" in fields:
        fields = {**fields, "bumps": bumps_json(fields["bumps"])}
    columns = [RENAMED.get(k, k) for k in fields]
    values = [sql_value(v) for v in fields.values()]
    sets = ", ".join(f"{c} = ?" for c in columns)
    cursor = conn.execute(f"UPDATE {table} SET {sets} WHERE id = ?", (*values, row_id))
    if cursor.rowcount != 1:
        raise KeyError(f"{table} {row_id} does not exist")


def sql_value(value: Any) -> Any:
    if isinstance(value, (RequestState, Phase, BuildState, StageState, TaskState)):
        return value.value
    if isinstance(value, bool):
        return int(value)
    return value


def as_request(row: sqlite3.Row) -> Request:
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


def as_build(row: sqlite3.Row) -> Build:
    return Build(
        id=row["id"], request_id=row["request_id"], number=row["number"], state=BuildState(row["state"]),
        base_commit=row["base_commit"], candidate_commit=row["candidate_commit"], started_at=row["started_at"],
        finished_at=row["finished_at"], detail=row["detail"],
    )


def as_stage(row: sqlite3.Row) -> Stage:
    return Stage(
        id=row["id"], build_id=row["build_id"], position=row["position"], name=row["name"], command=row["command"],
        state=StageState(row["state"]), started_at=row["started_at"], finished_at=row["finished_at"],
    )


def as_task(row: sqlite3.Row) -> Task:
    return Task(
        id=row["id"], stage_id=row["stage_id"], build_id=row["build_id"], configuration=row["configuration"],
        state=TaskState(row["state"]), slot=row["slot"], pid=row["pid"], outcome=row["outcome"],
        exit_code=row["exit_code"], log_path=row["log_path"], bep_path=row["bep_path"],
        targets=tuple(TargetOutcome.from_dict(t) for t in json.loads(row["targets"] or "[]")),
        detail=row["detail"], runs=row["runs"], started_at=row["started_at"], finished_at=row["finished_at"],
    )


def as_event(row: sqlite3.Row) -> Event:
    return Event(
        id=row["id"], ts=row["ts"], type=row["type"], request_id=row["request_id"], build_id=row["build_id"],
        stage_id=row["stage_id"], task_id=row["task_id"], data=json.loads(row["data"] or "{}"),
    )


def as_release(row: sqlite3.Row) -> Release:
    return Release(
        id=row["id"], request_id=row["request_id"], build_id=row["build_id"], tag=row["tag"],
        commit=row["commit_sha"], notes=row["notes"], created_at=row["created_at"],
    )
