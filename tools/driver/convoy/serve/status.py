"""`GET /api/status` and `GET /api/releases`: the queue and its releases as JSON, from one read snapshot.

The status is in the spirit of Zuul's `/api/tenant/{t}/status`: a list of
queues (convoy has one per checkout, named after its branch), each with its
items in the order they will be tested, and per item what it is doing:

    {"now": 1718000000.0, "last_event_id": 57,
     "queues": [{"name": "main", "mode": "speculative", "window": {"size": 4, "items": [[7], [8]]},
                 "control": {"state": "paused", "paused": true, "draining": false, "reason": "upgrading Bazel",
                             "by": "alice", "since": 1717999000.0},
                 "items": [{"id": 7, "component": "messages", "version": "v1.6.0", "state": "testing",
                            "phase": "building", "stage": "integration", "elapsed_seconds": 312.4,
                            "estimate_seconds_left": 250.0, "ahead": [], "stages": [
                               {"name": "build", "state": "succeeded", "duration": 61.2, "estimate_seconds": 60.0,
                                "tasks": [{"configuration": "rover", "state": "succeeded", ...}]}, ...]}]}],
     "recent": [{"id": 6, "state": "rejected", "failure": {"reason": "...", "stage": "integration",
                 "failing": [{"configuration": "rover", "label": "//integration:x_test", ...}]}}]}

`control` is the queue's control state (convoy.control: `convoy pause`,
`resume`, `drain`; state "running", "paused" or "draining"); the items are
in the order the queue takes them (highest `priority` first, then oldest).

A failure's failing targets carry `task_id` and `logs`, links to the tail
of each of their logs (convoy.serve.logs), which the status page follows.

Estimates come from past durations: each stage's median over the stages
that passed in the last HISTORY merged requests. An item's time left is
what its running stage has left of its median plus the medians of the
stages after it; a queued item adds the time left of every item ahead of
it (as if tested one after another: the serial mode's view, and an upper
bound for the windowed ones). Without history the estimates are null.

Reads only: the store is opened read-only (no write lock), as `convoy
status` opens it; a checkout where nothing was submitted has an empty queue.
What it reads is what it shows: the requests in the queue, the newest
RECENT finished ones, the stages of the newest HISTORY merged ones and the
newest releases asked for, each found from the newest end of an index
(convoy.store's `latest_requests`, `merged_stages`, `latest_releases`), so
its cost does not grow with the history the store keeps.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any, Optional

from convoy import control
from convoy import modes
from convoy import requests
from convoy.actions import checkout as common
from convoy.actions import status as status_command
from convoy.config import Config
from convoy.models import Request, RequestState, Stage, StageState, Task, TaskState
from convoy.serve import logs
from convoy.store import Transaction, now

HISTORY = 20  # merged requests whose stage durations give the estimates
RECENT = 20  # finished requests listed under "recent"
CHAIN_KEY = "queue.chain"  # where the windowed modes keep their window (convoy.queue.window_record)
FINISHED = tuple(s for s in RequestState if s.is_final)


def status(root: Path, config: Config) -> dict[str, Any]:
    """The queue of the checkout `root` (see the module docstring)."""
    queue: dict[str, Any] = {"name": config.branch, "mode": config.queue_mode, "window": None,
                             "control": control.QueueControl().to_dict(), "items": []}
    result: dict[str, Any] = {"now": now(), "last_event_id": 0, "queues": [queue], "recent": []}
    if not common.has_store(root):
        return result
    with common.store(root, readonly=True) as store, store.read() as tx:
        at = result["now"]
        queue["control"] = control.state(tx).to_dict()
        medians = stage_medians(tx)
        chain = _chain(tx) if modes.get(config.queue_mode).has_window else None
        testing = tx.requests([RequestState.TESTING])
        order = {rid: i for i, rid in enumerate(r for item in (chain or {}).get("items", []) for r in item)}
        testing.sort(key=lambda r: (order.get(r.id, len(order)), r.id))
        ahead: list[int] = []
        left_ahead: Optional[float] = 0.0
        for request in [*testing, *requests.in_queue_order(tx)]:
            entry = item(tx, request, config, medians, at)
            entry["ahead"] = list(ahead)
            own = entry["estimate_seconds_left"]
            if request.state == RequestState.QUEUED:
                total = None if own is None or left_ahead is None else own + left_ahead
                entry["estimate_seconds_left"] = total
            left_ahead = None if own is None or left_ahead is None else left_ahead + own
            ahead.append(request.id)
            queue["items"].append(entry)
        if chain is not None:
            queue["window"] = {"size": chain.get("window"), "items": chain.get("items", [])}
        result["recent"] = [item(tx, r, config, medians, at) for r in tx.latest_requests(FINISHED, RECENT)]
        result["last_event_id"] = tx.last_event_id()
    return result


def _chain(tx: Transaction) -> Optional[dict[str, Any]]:
    try:
        saved = json.loads(tx.meta(CHAIN_KEY) or "null")
        return {"window": saved.get("window"), "items": [list(i["requests"]) for i in saved.get("items", [])]}
    except (ValueError, TypeError, KeyError, AttributeError):  # not there yet, or not readable: no window shown
        return None


def stage_medians(tx: Transaction) -> dict[str, float]:
    """Stage name -> the median seconds of its passed runs in the last HISTORY merged requests."""
    runs: dict[str, list[float]] = {}
    for stage in tx.merged_stages(HISTORY):  # the passed stages of their passed builds
        if stage.started_at and stage.finished_at:
            runs.setdefault(stage.name, []).append(stage.finished_at - stage.started_at)
    return {name: round(statistics.median(seconds), 1) for name, seconds in runs.items()}


def item(tx: Transaction, r: Request, config: Config, medians: dict[str, float], at: float) -> dict[str, Any]:
    """One request of the queue: what `convoy status` says of it, its build's
    stages and tasks, its times, and why it failed."""
    row = status_command.row(tx, r)
    builds = tx.builds(r.id)
    build = builds[-1] if builds else None
    # The build's stages with their tasks, read once for the stages and the failure (a queued request
    # shows the configured stages, whatever its last attempt's build did).
    shown = build is not None and r.state != RequestState.QUEUED
    ran = [(stage, tx.tasks(stage_id=stage.id)) for stage in tx.stages(build.id)] if shown else []
    stages = _stages(ran, at, medians) if shown else [
        {"name": s.name, "state": "waiting", "started_at": None, "duration": None,
         "estimate_seconds": medians.get(s.name), "tasks": []} for s in config.plan_stages]
    end = r.finished_at or at
    row.update(
        elapsed_seconds=round(end - r.created_at, 1),
        build=None if build is None else {
            "number": build.number, "state": build.state.value, "started_at": build.started_at,
            "elapsed_seconds": round((build.finished_at or at) - build.started_at, 1),
            "candidate_commit": build.candidate_commit, "base_commit": build.base_commit},
        stages=stages,
        estimate_seconds_left=_left(stages, at) if not r.state.is_final else 0.0,
        failure=_failure(tx, r, ran) if r.state in (RequestState.REJECTED, RequestState.ERROR) else None,
    )
    return row


def _stages(ran: list[tuple[Stage, list[Task]]], at: float, medians: dict[str, float]) -> list[dict[str, Any]]:
    stages = []
    for stage, stage_tasks in ran:
        tasks = []
        for task in stage_tasks:
            running = task.state == TaskState.BUILDING and task.started_at
            tasks.append({"id": task.id, "configuration": task.configuration, "state": task.state.value, "outcome": task.outcome,
                          "slot": task.slot, "started_at": task.started_at, "duration": task.duration,
                          "elapsed_seconds": round(at - task.started_at, 1) if running else None,
                          "detail": task.detail})
        finished = stage.finished_at and stage.started_at
        stages.append({"name": stage.name, "state": stage.state.value, "started_at": stage.started_at,
                       "duration": round(stage.finished_at - stage.started_at, 1) if finished else None,
                       "estimate_seconds": medians.get(stage.name), "tasks": tasks})
    return stages


def _left(stages: list[dict[str, Any]], at: float) -> Optional[float]:
    """Seconds left of the stages not finished, from their medians (None: a median is missing)."""
    left = 0.0
    for stage in stages:
        if stage["state"] in (StageState.SUCCEEDED.value, StageState.FAILED.value, StageState.SKIPPED.value):
            continue
        if stage["estimate_seconds"] is None:
            return None
        spent = at - stage["started_at"] if stage["state"] == StageState.BUILDING.value and stage["started_at"] else 0
        left += max(0.0, stage["estimate_seconds"] - spent)
    return round(left, 1)


def _failure(tx: Transaction, r: Request, ran: list[tuple[Stage, list[Task]]]) -> dict[str, Any]:
    failing = []
    for task in sorted((t for _, tasks in ran for t in tasks), key=lambda t: t.id):  # the build's, in order
        if task.state != TaskState.FAILED:
            continue
        failing += [{"configuration": task.configuration, "task_id": task.id, "label": t.label, "status": t.status,
                     "log_paths": list(t.log_paths), "logs": _log_links(r, task, t.log_paths)}
                    for t in task.failing_targets]
        if not task.failing_targets:
            paths = [task.log_path] if task.log_path else []
            failing.append({"configuration": task.configuration, "task_id": task.id, "label": None,
                            "status": task.outcome, "log_paths": paths, "logs": _log_links(r, task, paths)})
    return {"reason": r.detail, "stage": status_command.current_stage(tx, r), "failing": failing}


def _log_links(r: Request, task, paths) -> list[dict[str, str]]:
    """The page's links to the tails of `paths`, logs of `task` (convoy.serve.logs)."""
    files = logs.task_logs(task)
    return [{"name": Path(p).name, "url": logs.url(r.id, task.id, files.index(p))} for p in paths if p in files]


def releases(root: Path, limit: int) -> dict[str, Any]:
    """The newest `limit` releases: tag, commit, notes, and the request behind each (null: tagged by hand)."""
    if not common.has_store(root):
        return {"releases": []}
    found = []
    with common.store(root, readonly=True) as store, store.read() as tx:
        for release in tx.latest_releases(limit):
            request = tx.request(release.request_id) if release.request_id is not None else None
            found.append({
                "tag": release.tag, "commit": release.commit, "notes": release.notes,
                "created_at": release.created_at,
                "request": None if request is None else {
                    "id": request.id, "component": request.component, "version": request.version,
                    "requested_by": request.requested_by, "all_bumps": [b.to_dict() for b in request.all_bumps]},
            })
    return {"releases": found}
