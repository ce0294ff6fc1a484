"""A spare worker (convoy.spares): a `convoy process --forever` on standby
that runs the stage tasks the scheduling worker offers, in its own clone and
lane, with the same TaskRunner; called by the standby loop
(convoy.queue.lock.Lease.take's `idle`) until this worker takes the queue.

    spare = SpareWorker(checkout, config, store, owner=lease.owner, out=print, stop=stop)
    spare.work_once()        # claims and runs one offered task; whether there was one
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Callable, Optional

from convoy import candidate as cand
from convoy import gitutil
from convoy.config import Config
from convoy.errors import StoreUnavailable
from convoy.models import Build, Request, Stage, Task, TaskState
from convoy.spares import REF, SPARE_LANE, TASK_TTL, task_lease
from convoy.store import Store
from convoy.tasks import Abort, RunContext, Slots, TaskRunner
from convoy.timing import Meter


class SpareWorker:
    """A worker on standby running the tasks offered to spares (see the module docstring)."""

    def __init__(self, checkout: Path, config: Config, store: Store, owner: str,
                 out: Callable[[str], None], stop: threading.Event) -> None:
        self.checkout, self.config, self.store, self.owner = checkout, config, store, owner
        self.out, self.stop = out, stop
        self.ran = 0

    def work_once(self) -> bool:
        """Claims and runs one offered task; whether there was one."""
        if not self.config.spare_workers:
            return False
        try:
            claimed = self._claim()
        except StoreUnavailable:
            return False  # the standby loop says so
        if claimed is None:
            return False
        task, stage, build, request = claimed
        renewing = threading.Event()
        renewer = threading.Thread(target=self._renew, args=(task.id, renewing), name="spare-lease", daemon=True)
        renewer.start()
        try:
            self._run(task, stage, build, request)
        finally:
            renewing.set()
            renewer.join(5)
            try:
                with self.store.transaction() as tx:
                    tx.release_lease(task_lease(task.id), self.owner)
            except StoreUnavailable:
                pass  # it expires
        self.ran += 1
        return True

    def _claim(self) -> Optional[tuple[Task, Stage, Build, Request]]:
        with self.store.read() as tx:  # a look first: the claim's write transaction only when there is one
            if not tx.tasks(states=[TaskState.OFFERED]):
                return None
        with self.store.transaction() as tx:
            offered = tx.tasks(states=[TaskState.OFFERED])
            if not offered:
                return None
            task = min(offered, key=lambda t: t.id)
            tx.update_task(task.id, state=TaskState.SCHEDULED)
            tx.acquire_lease(task_lease(task.id), self.owner, TASK_TTL)
            build = tx.build(task.build_id)
            stage = next(s for s in tx.stages(task.build_id) if s.id == task.stage_id)
            request = tx.request(build.request_id)
        return task, stage, build, request

    def _renew(self, task_id: int, done: threading.Event) -> None:
        while not done.wait(TASK_TTL / 3):
            try:
                with self.store.transaction() as tx:
                    tx.acquire_lease(task_lease(task_id), self.owner, TASK_TTL)
            except Exception:  # the store is away: the scheduling worker takes the task back when it expires
                pass

    def _run(self, task: Task, stage: Stage, build: Build, request: Request) -> None:
        spec = next(s for s in self.config.stages if s.name == stage.name)
        self.out(f"{time.strftime('%H:%M:%S')} #{request.id} spare: task {stage.name}/{task.configuration} of "
                 f"build {build.number} (candidate {build.candidate_commit[:10]}) runs here")
        ref = REF.format(commit=build.candidate_commit)
        gitutil.run(["fetch", "--quiet", "--", self.config.remote, f"+{ref}:{ref}"], cwd=self.checkout)
        worktree = cand.prepare_worktree(self.checkout, build.candidate_commit, lane=SPARE_LANE)
        ctx = RunContext(checkout=self.checkout, config=self.config, store=self.store, meter=Meter(), pool_check=None,
                         stop=self.stop, lane=SPARE_LANE, out=self.out, offer=False)
        TaskRunner(ctx, request, build, worktree, Abort()).run(stage, spec, task, Slots(1, [task.configuration]))
