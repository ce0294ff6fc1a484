"""Spare workers: the workers of a shared store that wait on standby run the
stage tasks the scheduling worker offers (`queue.spare_workers: true`), so
that a speculative window's candidates are built on several machines at once.

The scheduling side is `offered(...)`, asked by convoy.tasks.TaskRunner
before a task runs here. A task of a plain stage (not one that reserves rigs,
`check_pools`, nor the release stage, whose artifacts must stay where the
release is published) is set OFFERED, when another worker is alive on the
store (its presence row). Its candidate is pushed first to
`refs/convoy/candidates/<commit>` on the remote, where every clone can fetch
it. A spare claims it within OFFER_SECONDS, or it is taken back (READY) and
runs here after all. A claimed task is waited for until it ends; if its spare
stops renewing the task's lease row ("task <id>") for its time to live (the
spare died, or lost the store), the task is taken back and runs here.

The spare side is convoy.queue.spare's `SpareWorker.work_once()`, called by the standby loop
(convoy.queue.lock.Lease.take's `idle`). In one write transaction it claims
the oldest offered task and takes its lease. The store's writes are
serialized (SQLite's BEGIN IMMEDIATE, PostgreSQL's advisory write lock), so
two spares never claim one task, without `SELECT ... FOR UPDATE SKIP LOCKED`.
It then fetches the candidate, checks it out in its own lane, and runs the
task there with the same TaskRunner the scheduling worker would have used:
the task's state, results and events go to the store as if it ran there. Its
log is in the spare's clone, and in `logs_url` when that is set (convoy.task_logs).
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

from convoy import gitutil
from convoy.config import Config, StageSpec
from convoy.config_release import RELEASE_STAGE
from convoy.models import QUEUE_LEASE, WORKER_PREFIX, Build, Stage, Task, TaskState
from convoy.store import Store, now

log = logging.getLogger(__name__)

OFFER_SECONDS = 2.0  # how long an offered task waits for a spare before it runs here
POLL_SECONDS = 0.05  # the scheduling worker looks at an offered task this often
TASK_TTL = 15.0  # a claimed task's lease: the spare renews it every third
SPARE_LANE = 90  # the spare's own worktree and output bases (convoy.candidate.worktree_path, tasks.slot_output_base)
REF = "refs/convoy/candidates/{commit}"


def task_lease(task_id: int) -> str:
    return f"task {task_id}"


def offerable(config: Config, stage: Stage, spec: StageSpec) -> bool:
    return config.spare_workers and not spec.check_pools and stage.name != RELEASE_STAGE


def offered(ctx: Any, build: Build, stage: Stage, spec: StageSpec, task: Task) -> bool:
    """Offers `task` to the spare workers; True once a spare ran it to its end,
    False when it is to run here (no spare took it, or its spare died).
    `ctx` is the build's convoy.tasks.RunContext (not imported: tasks imports this)."""
    if not offerable(ctx.config, stage, spec) or not spares_present(ctx.store):
        return False
    share_candidate(ctx.checkout, ctx.config, build.candidate_commit)
    with ctx.store.transaction() as tx:
        tx.update_task(task.id, state=TaskState.OFFERED)
    deadline = time.monotonic() + OFFER_SECONDS
    while True:
        with ctx.store.read() as tx:
            row = tx.task(task.id)
            holder = next((lease for lease in tx.leases() if lease.name == task_lease(task.id)), None)
        if row.state.is_final:
            return True
        if row.state == TaskState.OFFERED and (time.monotonic() > deadline or ctx.stop.is_set()):
            if _take_back(ctx.store, task.id, TaskState.OFFERED):
                return False
            continue  # a spare claimed it meanwhile
        if row.state != TaskState.OFFERED and (holder is None or holder.expires_at < now()):
            if _take_back(ctx.store, task.id, row.state):  # its spare is gone
                _say(ctx, f"convoy: task {stage.name}/{task.configuration}: its spare worker stopped renewing "
                          "it; it runs here")
                return False
        ctx.stop.wait(POLL_SECONDS)


def spares_present(store: Store) -> bool:
    """Whether a worker other than the scheduling one is alive on the store (its presence row: convoy.queue.lock)."""
    with store.read() as tx:
        leases = tx.leases()
    t = now()
    queue = next((lease.owner for lease in leases if lease.name == QUEUE_LEASE), None)
    return any(lease.name.startswith(WORKER_PREFIX) and lease.owner != queue and lease.expires_at > t
               for lease in leases)


def _take_back(store: Store, task_id: int, seen: TaskState) -> bool:
    """The task back to READY if it is still `seen` (no one changed it meanwhile)."""
    with store.transaction() as tx:
        if tx.task(task_id).state != seen:
            return False
        tx.update_task(task_id, state=TaskState.READY, pid=None)
        return True


_shared: set[str] = set()  # the candidates this process pushed (or found) already
_sharing = threading.Lock()  # a build's tasks are offered side by side: one push of its candidate


def share_candidate(checkout: Path, config: Config, commit: str) -> None:
    """Pushes `commit` to the remote's refs/convoy/candidates/<commit>, once (a ref there already is kept)."""
    ref = REF.format(commit=commit)
    with _sharing:
        if commit in _shared:
            return
        if not _on_remote(checkout, config, ref):
            try:
                gitutil.run(["push", "--quiet", "--", config.remote, f"{commit}:{ref}"], cwd=checkout)
            except gitutil.GitError:
                if not _on_remote(checkout, config, ref):  # another worker's push of the same commit is as good
                    raise
        _shared.add(commit)


def _on_remote(checkout: Path, config: Config, ref: str) -> bool:
    found = gitutil.run(["ls-remote", "--", config.remote, ref], cwd=checkout, check=False)
    return found.returncode == 0 and bool(found.stdout.strip())


def _say(ctx: Any, line: str) -> None:
    (ctx.out or log.warning)(line)
