"""One request in full: `show(root, request_id)` is what `convoy show --json`
prints and GET /api/requests/ID returns (its bumps, stages, tasks, targets
and timings); `describe(tx, request)` the same within a transaction.

A task's log is in the clone of the worker that ran it (`log_path`); each
task also says whether that file is readable here (`log_readable`), the
copy in convoy.yaml's `logs_url` when it is there (`shared_log`,
convoy.task_logs) and the log's last 16 KiB the store keeps (`log_tail`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

from convoy import task_logs
from convoy.actions import checkout
from convoy.config import CONFIG_NAME, Config
from convoy.models import Request, Task
from convoy.store import Transaction


def show(root: Path, request_id: int) -> dict[str, Any]:
    """Request `request_id` of the checkout `root`, described (`describe`);
    ConvoyError if there is no such request. Read-only: no write lock,
    nothing created."""
    config = checkout.config(root) if (root / CONFIG_NAME).is_file() else None
    with checkout.store(root, readonly=True) as store, store.read() as tx:
        request = tx.request(request_id)
        if request is None:
            raise checkout.not_found(request_id)
        return describe(tx, request, root=root, config=config)


def log_places(task: Task, root: Optional[Path] = None, config: Optional[Config] = None) -> dict[str, Any]:
    """Where `task`'s log can be read from here: `log_readable` (its log_path is a readable file),
    `shared_log` (the copy in logs_url, when it exists; None otherwise) and `log_tail` (the store's)."""
    shared = task_logs.shared_log(config, root, task) if root is not None and config is not None else None
    readable = bool(task.log_path) and os.path.isfile(task.log_path) and os.access(task.log_path, os.R_OK)
    return {"log_readable": readable,
            "shared_log": str(shared) if shared is not None and shared.is_file() else None,
            "log_tail": task.log_tail}


def timings(r: Request) -> dict[str, float]:
    driver = max(0.0, r.total_seconds - r.bazel_seconds - r.git_seconds)
    return {"total_seconds": round(r.total_seconds, 3), "bazel_seconds": round(r.bazel_seconds, 3),
            "git_seconds": round(r.git_seconds, 3), "driver_seconds": round(driver, 3)}


def describe(tx: Transaction, r: Request, *, root: Optional[Path] = None,
             config: Optional[Config] = None) -> dict[str, Any]:
    """`r` in full; with the checkout `root` and its `config`, each task's shared log copy too."""
    builds = []
    for build in tx.builds(r.id):
        stages = []
        for stage in tx.stages(build.id):
            tasks = []
            for task in tx.tasks(stage_id=stage.id):
                tasks.append({
                    "id": task.id, "configuration": task.configuration, "state": task.state.value,
                    "outcome": task.outcome, "exit_code": task.exit_code, "slot": task.slot, "runs": task.runs,
                    "duration": task.duration, "detail": task.detail, "log_path": task.log_path,
                    "bep_path": task.bep_path, "targets": [t.to_dict() for t in task.targets],
                    "failing_targets": [t.to_dict() for t in task.failing_targets],
                    "tests": dict(zip(("ran", "cached"), task.test_counts())),
                    "started_at": task.started_at, "finished_at": task.finished_at,
                    **log_places(task, root, config),
                })
            duration = (stage.finished_at - stage.started_at) if stage.finished_at and stage.started_at else None
            stages.append({"id": stage.id, "name": stage.name, "command": stage.command,
                           "state": stage.state.value, "duration": duration, "started_at": stage.started_at,
                           "finished_at": stage.finished_at, "tasks": tasks})
        builds.append({
            "id": build.id, "number": build.number, "state": build.state.value, "base_commit": build.base_commit,
            "candidate_commit": build.candidate_commit, "detail": build.detail,
            "duration": (build.finished_at - build.started_at) if build.finished_at else None,
            "started_at": build.started_at, "finished_at": build.finished_at, "stages": stages,
        })
    return {
        "request": {
            "id": r.id, "kind": r.kind, "component": r.component, "version": r.version, "commit": r.commit,
            "commit_given": r.commit_given, "archive_url": r.archive_url, "strip_prefix": r.strip_prefix,
            "configuration": r.configuration, "requested_by": r.requested_by, "state": r.state.value,
            "phase": r.phase.value if r.phase else None, "attempts": r.attempts, "base_commit": r.base_commit,
            "candidate_commit": r.candidate_commit, "tag": r.tag, "detail": r.detail,
            "superseded_by": r.superseded_by, "cancel_requested": r.cancel_requested,
            "created_at": r.created_at, "finished_at": r.finished_at,
            "bumps": [b.to_dict() for b in r.bumps], "all_bumps": [b.to_dict() for b in r.all_bumps],
        },
        "builds": builds,
        "releases": [{"tag": rel.tag, "commit": rel.commit, "notes": rel.notes} for rel in tx.releases(request_id=r.id)],
        "timings": timings(r),
    }
