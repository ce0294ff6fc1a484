"""The builds a window runs side by side: one `Job` per item in flight, and the slots its lanes share.

    job = Job(window, item, base=tip, lane=1)      # makes the candidate (or resumes its build), runs it
    job.start()
    job.admit(2)                                    # the scheduler lets it into stage 2
    job.discard("rebuilt on #3's new candidate")    # its base is stale: cancel its Bazel runs

A job runs in its own thread: it makes the item's candidate on its base in
the worktree of its lane (convoy.candidate, every request of the item in one
commit), creates the build under the item's first request (its other
requests point at the same candidate), and runs it with convoy.pipeline's
BuildRunner, stopping at the gate before each stage until the scheduler
admits it (`admit`). Its end goes to the window (`JobReports.job_ended`),
which changes the requests' states. A discarded job ends its build as
failed ("rebuilt: ...") and touches nothing else.

`SharedSlots` bounds the tasks of every lane together to `parallelism`,
nearest the head first; tasks of a stage with a rig pool (`check_pools`)
take no local slot: the rigs bound them.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional, Sequence

from convoy import affected
from convoy import candidate as cand
from convoy import culprits
from convoy import failpoints
from convoy import gitutil
from convoy import requests
from convoy.config import StageSpec
from convoy.errors import ConvoyError, InfraError, StoreUnavailable
from convoy.lock import changed_configurations
from convoy.models import BuildState, Request
from convoy.pipeline import BuildResult, BuildRunner, RunContext, construction_plan, create_build
from convoy.queue.phases import rejection_summary
from convoy.queue.rigs import StagePools
from convoy.tasks import Slots
from convoy.timing import Meter

if TYPE_CHECKING:
    from convoy.queue.chain import Item
    from convoy.queue.base import QueueManager  # the WindowQueue (not imported: no cycle)

log = logging.getLogger("convoy.queue.jobs")


@dataclass
class JobEnd:
    """How a job ended: result is one of made_failed (the candidate cannot
    be made), succeeded, failed, infra, discarded, stopped, bug."""

    result: str
    reason: str = ""
    stage: Optional[str] = None
    stage_index: int = 0
    failures: tuple = ()
    build_id: Optional[int] = None
    suspects: Optional[tuple[int, ...]] = None  # for a failed item of several requests (convoy.culprits)
    how: str = ""  # how the suspects were found
    error: Optional[BaseException] = None  # result "bug": the exception


class SharedSlots:
    """`count` local task slots shared by every lane; the waiter nearest the head goes first."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.busy = 0
        self.cond = threading.Condition()
        self.waiting: list[int] = []  # priorities of waiting tasks (lower: nearer the head)

    def for_lane(self, configurations: Sequence[str], priority, cancelled: threading.Event) -> "LaneSlots":
        return LaneSlots(self, configurations, priority, cancelled)

    def take(self, priority: int, cancelled: threading.Event) -> bool:
        """Waits for a slot; False (none taken) once `cancelled` is set: the task will not run."""
        with self.cond:
            self.waiting.append(priority)
            try:
                while self.busy >= self.count or min(self.waiting) < priority:
                    if cancelled.is_set():
                        return False
                    self.cond.wait(0.5)
            finally:
                self.waiting.remove(priority)
            self.busy += 1
            return True

    def give(self) -> None:
        with self.cond:
            self.busy -= 1
            self.cond.notify_all()


class LaneSlots(Slots):
    """A lane's slots (its own output bases) under the window's shared bound."""

    def __init__(self, shared: SharedSlots, configurations: Sequence[str], priority,
                 cancelled: threading.Event) -> None:
        super().__init__(shared.count, configurations)
        self.shared = shared
        self.priority = priority  # () -> the item's position in the chain
        self.cancelled = cancelled  # the job was discarded: its tasks stop waiting (and do not run)
        self.taken: set[int] = set()  # lane slots holding a shared slot

    def acquire(self, configuration: str, spec: Optional[StageSpec] = None) -> int:
        shared = (spec is None or not spec.check_pools) and self.shared.take(self.priority(), self.cancelled)
        slot = super().acquire(configuration, spec)
        if shared:
            self.taken.add(slot)
        return slot

    def release(self, slot: int, spec: Optional[StageSpec] = None) -> None:
        super().release(slot, spec)
        if slot in self.taken:
            self.taken.discard(slot)
            self.shared.give()


class Gate:
    """Where a job waits before each stage until the scheduler admits it."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.admitted: set[int] = set()
        self.closed = False

    def admit(self, stage: int) -> None:
        with self.cond:
            self.admitted.add(stage)
            self.cond.notify_all()

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()

    def wait(self, stage: int, stop: threading.Event) -> bool:
        with self.cond:
            while stage not in self.admitted and not self.closed and not stop.is_set():
                self.cond.wait(0.5)
            return stage in self.admitted and not self.closed and not stop.is_set()


def free_lane(live: Sequence["Job"], retired: Sequence["Job"]) -> int:
    """The lowest lane no job holds (a `retired` one, discarded, holds its lane until its thread ends)."""
    used = {job.lane for job in live} | {job.lane for job in retired if job.thread.is_alive()}
    lane = 0
    while lane in used:
        lane += 1
    return lane


def item_label(item: "Item") -> str:
    return ", ".join(f"#{r}" for r in item.requests)


class Job:
    """One item's candidate and build, in a thread of its own (see the module docstring)."""

    def __init__(self, window: "QueueManager", item: "Item", base: str, *, lane: int, resume=None) -> None:
        self.window = window
        self.item = item
        self.base = base
        self.lane = lane
        self.resume = resume  # the build to resume (after a restart); None: make the candidate
        self.gate = Gate()
        self.pools = StagePools(window.ctx, lane)  # what the rig stage needs, asked once at its gate
        self.cancel = threading.Event()
        self.discarded: Optional[str] = None
        self.build = resume
        self.thread = threading.Thread(target=self._run, name=f"job-{item.key}", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def join(self, timeout: float) -> None:
        if self.thread.is_alive():
            self.thread.join(timeout)

    def discard(self, reason: str) -> None:
        """Its base went stale (or a request of it was cancelled): stop its Bazel runs."""
        self.discarded = reason
        self.cancel.set()
        self.gate.close()

    # -- the thread ------------------------------------------------------------------------------

    def _run(self) -> None:
        meter = Meter()
        try:
            with meter.active():
                end = self._make_and_build(meter)
        except StoreUnavailable as e:  # not the candidate's nor a bug: this worker goes back to standby
            end = JobEnd("store", reason=" ".join(str(e).split()), build_id=self.build.id if self.build else None)
        except (InfraError, gitutil.GitError, ConvoyError) as e:
            end = JobEnd("infra", reason=" ".join(str(e).split()) or type(e).__name__,
                         build_id=self.build.id if self.build else None)
        except Exception as e:  # a bug: the window ends its requests in error, with a crash log
            log.debug("job %s failed", self.item.key, exc_info=True)  # the traceback goes to the crash log
            end = JobEnd("bug", reason=str(e), error=e, build_id=self.build.id if self.build else None)
        if self.discarded is not None and end.result not in ("bug",):
            end = JobEnd("discarded", reason=self.discarded, build_id=end.build_id)
        try:
            with self.window.ctx.store.transaction() as tx:
                for rid in self.item.requests:
                    tx.add_request_time(rid, meter.elapsed(), meter.seconds("bazel"), meter.seconds("git"))
        except Exception:
            log.warning("could not record the time of %s", self.item.key)
        self.window.reports.job_ended(self, end)

    def _requests(self) -> list[Request]:
        with self.window.ctx.store.read() as tx:
            return [tx.request(rid) for rid in self.item.requests]

    def _make_and_build(self, meter: Meter) -> JobEnd:
        ctx = self.window.ctx
        found = self._requests()
        lead = found[0]
        if self.build is None:
            try:
                made = cand.make_candidate(ctx.checkout, found if len(found) > 1 else lead, self.base, lane=self.lane,
                                           changelog=ctx.config.release.changelog)
            except cand.CandidateRejected as e:
                return JobEnd("made_failed", reason=str(e), stage="candidate", stage_index=0,
                              suspects=None)
            if self.discarded is not None:
                return JobEnd("discarded", reason=self.discarded)
            plan = construction_plan(ctx.config.plan_stages, made.manifest, found if len(found) > 1 else lead,
                                     changed_configurations(made.previous_lock, made.lock))
            with ctx.store.transaction() as tx:
                previous = tx.builds(lead.id)  # why this is not its first build: what ended the last one
                reason = (previous[-1].detail if previous and previous[-1].detail and lead.base_commit
                          and lead.base_commit != self.base else None)
                self.build = create_build(tx, lead, self.base, made.commit, plan, reason=reason)
                for request in found:
                    requests.building(tx, request, base_commit=self.base, candidate_commit=made.commit)
            self.window.reports.made(self, self.base, made.commit)
            failpoints.hit("after_candidate")
        build = self.build
        worktree = cand.prepare_worktree(ctx.checkout, build.candidate_commit, lane=self.lane)
        window = self.window
        run = RunContext(checkout=ctx.checkout, config=ctx.config, store=ctx.store, meter=meter,
                         pool_check=ctx.pool_check and self.pools.check, stop=ctx.stop, run_bazel=ctx.run_bazel,
                         lane=self.lane, out=window.out,
                         make_slots=lambda order: window.slots.for_lane(order, lambda: window.position(self.item),
                                                                          self.cancel),
                         gate=lambda index, stage, spec: self._gate(index, spec, worktree))
        outcome = BuildRunner(run, lead, build, worktree, self.cancel).run()
        window.steps.prune_cache()
        if outcome.result == BuildResult.SUCCEEDED:
            return JobEnd("succeeded", build_id=build.id)
        if outcome.result == BuildResult.STOPPED:
            return JobEnd("stopped", build_id=build.id)
        if outcome.result == BuildResult.CANCELLED:
            return JobEnd("discarded", reason=self.discarded or "cancelled", build_id=build.id)
        if outcome.result == BuildResult.INFRA:
            return JobEnd("infra", reason=outcome.reason, stage=outcome.stage, build_id=build.id)
        index = next((i for i, s in enumerate(ctx.config.plan_stages) if s.name == outcome.stage), 0)
        failures = tuple(f.to_dict() for f in outcome.failures)
        suspects, how = self._suspects(worktree, outcome.failures, found, run)
        with ctx.store.transaction() as tx:
            requests.end_build(tx, lead, build, BuildState.FAILED, reason=outcome.reason, stage=outcome.stage)
        return JobEnd("failed", reason=rejection_summary(outcome.stage, outcome.failures), stage=outcome.stage,
                      stage_index=index, failures=failures, build_id=build.id, suspects=suspects, how=how)

    def _gate(self, index: int, spec: StageSpec, worktree) -> bool:
        needs: dict[str, int] = {}
        if spec.check_pools and self.window.rigs.capacity():
            needs = self.pools.needs(spec, worktree, self.build.id)
        self.window.reports.at_gate(self, index, needs)
        return self.gate.wait(index, self.window.stop)

    def _suspects(self, worktree, failures, found: list[Request], run) -> tuple[Optional[tuple[int, ...]], str]:
        """The requests of a failed item of several that the build graph can explain the failure by."""
        if len(found) < 2 or not failures:
            return None, ""
        failure = failures[0]
        targets = [t["label"] for t in failure.targets]
        bumped = {r.id: list(r.components) for r in found}
        settings = affected.QuerySettings.of(run.config, run.output_base(0), run.config.bazel_flags)
        try:
            suspicion = culprits.suspects(worktree, failure.configuration, targets, bumped, settings)
        except Exception as e:  # the graph is a shortcut: bisection still finds the culprit
            log.warning("could not ask the build graph for the culprits (%s)", e)
            return None, ""
        if not suspicion.suspects or len(suspicion.suspects) == len(found):
            return None, suspicion.line()
        return tuple(suspicion.suspects), suspicion.line()

    def end_build_discarded(self, end: JobEnd) -> None:
        """A discarded job's build ends as failed, saying why; nothing else changes."""
        if end.build_id is None:
            return
        ctx = self.window.ctx
        with ctx.store.transaction() as tx:
            build = tx.build(end.build_id)
            if build is not None and build.state == BuildState.BUILDING:
                requests.end_build(tx, tx.request(build.request_id), build, BuildState.FAILED,
                                   reason=end.reason or "rebuilt")
