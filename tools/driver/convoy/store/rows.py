"""What the store's backends share, whatever their SQL: their rows as
convoy.models' records (`as_request`, `as_build`, `as_stage`, `as_task`,
`as_event`, `as_release`, `as_open_group`, `as_delivery`, `as_test_result`;
`result_values` for the other way),
the values a record's fields are stored as (`sql_value`: enums as their
values, booleans as 0/1; `bumps_json` and `bumps_of` for a request's bumps),
and the rule of `Transaction.set_meta` (`check_meta`).

A row is any mapping from column names to values that also has `keys()`:
SQLite's sqlite3.Row and psycopg's dict rows both are. sqlite_*.py and
postgres_*.py read and write with these, so both backends give the same
records of the same rows.
"""

from __future__ import annotations

import json
from typing import Any, Iterable, Mapping, Optional

from convoy.models import (
    KIND_REQUEST, Build, BuildState, Delivery, Event, OpenGroup, Phase, Release, Request, RequestBump, RequestState,
    Stage, StageState, TargetOutcome, Task, TaskState, TestResult,
)

RENAMED = {"commit": "commit_sha"}  # a record's field -> its column, where they differ
RESERVED_META = ("schema_version",)  # the store's own: never written through set_meta

Row = Mapping[str, Any]


def sql_value(value: Any) -> Any:
    if isinstance(value, (RequestState, Phase, BuildState, StageState, TaskState)):
        return value.value
    if isinstance(value, bool):
        return int(value)
    return value


def update_sql(table: str, allowed: set[str], row_id: int, fields: Mapping[str, Any],
               mark: str) -> Optional[tuple[str, tuple]]:
    """The UPDATE of one row's `fields` and its values, `mark` the backend's placeholder (? or %s):
    only the `allowed` columns (ValueError otherwise); None when there is no field to set."""
    unknown = set(fields) - allowed
    if unknown:
        raise ValueError(f"cannot update {table}.{', '.join(sorted(unknown))}")
    if not fields:
        return None
    if "bumps" in fields:
        fields = {**fields, "bumps": bumps_json(fields["bumps"])}
    sets = ", ".join(f"{RENAMED.get(k, k)} = {mark}" for k in fields)
    return f"UPDATE {table} SET {sets} WHERE id = {mark}", (*(sql_value(v) for v in fields.values()), row_id)


def results_sql(mark: str, *, target: Optional[str], configuration: Optional[str],
                task_id: Optional[int]) -> tuple[str, list]:
    """The SELECT of `Transaction.test_results` for the filters given (None: any), newest first, and its
    arguments; `mark` the backend's placeholder. The caller adds its LIMIT."""
    where, args = [], []
    for column, value in (("target", target), ("configuration", configuration), ("task_id", task_id)):
        if value is not None:
            where.append(f"{column} = {mark}")
            args.append(value)
    return "SELECT * FROM test_results" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id DESC", args


def check_meta(key: str, value: object) -> None:
    """ValueError or TypeError unless `set_meta(key, value)` may store it."""
    if key in RESERVED_META:
        raise ValueError(f"meta key {key!r} is the store's own")
    if not isinstance(value, str):
        raise TypeError(f"meta values are text, not {type(value).__name__}")


def bumps_json(bumps: Iterable[object]) -> str:
    """Bumps (RequestBump, or mappings of its fields) as the JSON text of a `bumps` column."""
    return json.dumps([RequestBump.of(b).to_dict() for b in bumps or ()], sort_keys=True)


def bumps_of(text: Optional[str]) -> tuple[RequestBump, ...]:
    """The bumps of a `bumps` column's JSON text (None or empty: none)."""
    return tuple(RequestBump.from_dict(b) for b in json.loads(text or "[]"))


def targets_json(targets: Iterable[TargetOutcome]) -> str:
    """A task's target outcomes as the JSON text of its `targets` column."""
    return json.dumps([t.to_dict() for t in targets])


def event_json(data: Optional[Mapping[str, Any]]) -> str:
    """An event's data as the JSON text of its `data` column."""
    return json.dumps(dict(data or {}), sort_keys=True, default=str)


def as_request(row: Row) -> Request:
    keys = row.keys()
    return Request(
        id=row["id"], component=row["component"], version=row["version"], commit=row["commit_sha"],
        commit_given=bool(row["commit_given"]), archive_url=row["archive_url"], strip_prefix=row["strip_prefix"],
        configuration=row["configuration"], requested_by=row["requested_by"], state=RequestState(row["state"]),
        phase=Phase(row["phase"]) if row["phase"] else None, attempts=row["attempts"],
        base_commit=row["base_commit"], candidate_commit=row["candidate_commit"], tag=row["tag"],
        detail=row["detail"], superseded_by=row["superseded_by"], cancel_requested=bool(row["cancel_requested"]),
        created_at=row["created_at"], updated_at=row["updated_at"], finished_at=row["finished_at"],
        total_seconds=row["total_seconds"], bazel_seconds=row["bazel_seconds"], git_seconds=row["git_seconds"],
        bumps=bumps_of(row["bumps"]) if "bumps" in keys else (),  # a version-1 database, read as it is
        kind=row["kind"] if "kind" in keys else KIND_REQUEST,  # before version 4: no tries
        priority=row["priority"] if "priority" in keys else 0,  # before version 5: all normal
    )


def as_build(row: Row) -> Build:
    return Build(
        id=row["id"], request_id=row["request_id"], number=row["number"], state=BuildState(row["state"]),
        base_commit=row["base_commit"], candidate_commit=row["candidate_commit"], started_at=row["started_at"],
        finished_at=row["finished_at"], detail=row["detail"],
    )


def as_stage(row: Row) -> Stage:
    return Stage(
        id=row["id"], build_id=row["build_id"], position=row["position"], name=row["name"], command=row["command"],
        state=StageState(row["state"]), started_at=row["started_at"], finished_at=row["finished_at"],
    )


def as_task(row: Row) -> Task:
    return Task(
        id=row["id"], stage_id=row["stage_id"], build_id=row["build_id"], configuration=row["configuration"],
        state=TaskState(row["state"]), slot=row["slot"], pid=row["pid"], outcome=row["outcome"],
        exit_code=row["exit_code"], log_path=row["log_path"], bep_path=row["bep_path"],
        targets=tuple(TargetOutcome.from_dict(t) for t in json.loads(row["targets"] or "[]")),
        detail=row["detail"], runs=row["runs"], started_at=row["started_at"], finished_at=row["finished_at"],
        log_tail=row["log_tail"] if "log_tail" in row.keys() else None,  # before version 6: none
    )


def as_event(row: Row) -> Event:
    return Event(
        id=row["id"], ts=row["ts"], type=row["type"], request_id=row["request_id"], build_id=row["build_id"],
        stage_id=row["stage_id"], task_id=row["task_id"], data=json.loads(row["data"] or "{}"),
    )


def as_release(row: Row) -> Release:
    return Release(
        id=row["id"], request_id=row["request_id"], build_id=row["build_id"], tag=row["tag"],
        commit=row["commit_sha"], notes=row["notes"], created_at=row["created_at"],
    )


def as_open_group(row: Row) -> OpenGroup:
    return OpenGroup(name=row["name"], bumps=bumps_of(row["bumps"]), requested_by=row["requested_by"],
                     created_at=row["created_at"] or 0.0)


def as_delivery(row: Row) -> Delivery:
    return Delivery(forge=row["forge"], delivery=row["delivery"], request_id=row["request_id"],
                    outcome=row["outcome"], received_at=row["received_at"])


def result_values(rows: Iterable[dict], ts: float) -> list[tuple]:
    """`add_test_results`'s dicts as the values of test_results' columns
    (target, configuration, stage, status, attempts, rigs, detail, request_id,
    build_id, task_id, recorded_at)."""
    return [(r["target"], r["configuration"], r["stage"], r["status"], int(r.get("attempts", 1)),
             json.dumps(list(r.get("rigs", ()))), r.get("detail"), r.get("request_id"), r.get("build_id"),
             r.get("task_id"), ts) for r in rows]


def as_test_result(row: Row) -> TestResult:
    return TestResult(
        id=row["id"], target=row["target"], configuration=row["configuration"], stage=row["stage"],
        status=row["status"], attempts=row["attempts"], rigs=tuple(json.loads(row["rigs"] or "[]")),
        detail=row["detail"], request_id=row["request_id"], build_id=row["build_id"], task_id=row["task_id"],
        recorded_at=row["recorded_at"],
    )
