"""The construction plan of a candidate and its run: stages in order, tasks in parallel.

    plan = construction_plan(config.stages, manifest, request)    # StagePlan per stage (request: one, or a batch)
    with store.transaction() as tx:
        build = create_build(tx, request, base, candidate, plan)    # rows + BUILD_START
    outcome = BuildRunner(context, request, build, worktree).run()

A stage has one task per affected configuration (the configurations that
include the bumped component, or the one the request names; for a group or
a batch, the union over all their bumps); a stage with
`per_configuration: false` has one task, in the manifest's default
configuration. An affected configuration whose resolved pins did not move
(its entries in the candidate's lock equal the base's: it pins the
component, say) gets a task that never runs: skipped, outcome UNCHANGED.
Tasks of a stage run side by side on `parallelism` slots.
Each slot is its own Bazel output base (`.convoy/bazel/slot-<k>`), so
parallel tasks do not queue on one server, and a configuration prefers the
slot `index(sorted(configurations)) % parallelism`, so it finds a warm
server with its own analysis cache.

Every task of a stage runs, even after one failed, so that a rejection names
every configuration that fails. A failed stage ends the build: the stages
after it (and their tasks) are marked `skipped`. A task whose Bazel run is an
infrastructure error (Bazel crashed, timed out, bad flags) stops its
siblings, and the build ends as `infra`: the processor re-queues the request
rather than rejecting it.

The run resumes: stages that succeeded are kept, tasks that finished are
kept, and tasks found `ready` (a restarted driver sets interrupted ones back
to ready) run again.

A stage with `check_pools: true` is the hardware lab's stage: the pool
check runs before it (a failure is an infrastructure error), and each of its
tasks runs Bazel inside the lab's invocation. That is convoy.lab.stage's;
here it is a seam of RunContext (convoy.tasks': `pool_check`, `lab_run`), and a context
without a pool check (`pool_check=None`: no lab, e.g. a stand-in Bazel)
runs such a stage plainly. One task (its slot, its Bazel run, its end in
the store) is convoy.tasks'.
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import enum
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

from convoy import models
from convoy.candidate import MANIFEST as CANDIDATE_MANIFEST
from convoy.config import StageSpec
from convoy.config_release import RELEASE_STAGE
from convoy.errors import ConvoyError
from convoy.manifest import Manifest, load_manifest
from convoy.models import Build, Request, Stage, StageState, Task, TaskState
from convoy.requests import bumps_data
from convoy.store import Transaction, now
from convoy.tasks import Abort, RunContext, Slots, TaskRunner, is_infra, target_summary  # noqa: F401 (RunContext: also pipeline's API)


@dataclass(frozen=True)
class StagePlan:
    spec: StageSpec
    configurations: tuple[str, ...]  # run
    unchanged: tuple[str, ...] = ()  # affected, but their pins did not move: skipped


def affected_configurations(manifest: Manifest, component: Union[str, Request, Sequence[Request]],
                            scope: Optional[str] = None) -> tuple[str, ...]:
    """The configurations a bump of `component` changes: `scope` alone, or
    every configuration that includes the component (sorted).

    Given a request (or a sequence of requests, a batch) instead of a
    component: the union over all their bumps (sorted), each bump's own
    `configuration` limiting that bump; `scope` is not used then."""
    if not isinstance(component, str):
        requests = (component,) if isinstance(component, Request) else tuple(component)
        return tuple(sorted({name for request in requests for bump in request.all_bumps
                             for name in affected_configurations(manifest, bump.component, bump.configuration)}))
    if scope is not None:
        return (scope,)
    return tuple(sorted(name for name, c in manifest.configurations.items() if component in c.components))


def construction_plan(stages: Sequence[StageSpec], manifest: Manifest, request: Union[Request, Sequence[Request]],
                      changed: Optional[frozenset[str]] = None) -> tuple[StagePlan, ...]:
    """Each stage's configurations, for `request` (one request, or a
    sequence of them: a batch). `changed` (lock.changed_configurations:
    the configurations whose pins moved; None: unknown, all count as moved)
    puts the affected configurations whose pins did not move in `unchanged`."""
    affected = affected_configurations(manifest, request)
    if not affected:
        affected = (manifest.default_configuration,)
    plans = []
    for spec in stages:
        configurations = affected if spec.per_configuration else (manifest.default_configuration,)
        if spec.is_release:  # only the configurations that have release targets
            configurations = tuple(c for c in configurations if spec.targets_for(c))
        if changed is None:
            plans.append(StagePlan(spec, configurations))
        else:
            plans.append(StagePlan(spec, tuple(c for c in configurations if c in changed),
                                   tuple(c for c in configurations if c not in changed)))
    return tuple(plans)


def create_build(tx: Transaction, request: Request, base_commit: str, candidate_commit: str,
                 plan: Sequence[StagePlan], *, reason: Optional[str] = None) -> Build:
    """Persists a build of `request` with its stages and tasks, and
    BUILD_START (`reason`: why this is not the request's first build)."""
    build = tx.insert_build(request.id, base_commit, candidate_commit)
    for position, stage in enumerate(plan):
        row = tx.insert_stage(build.id, position, stage.spec.name, stage.spec.command)
        for configuration in stage.configurations:
            tx.insert_task(row.id, build.id, configuration)
        for configuration in stage.unchanged:
            task = tx.insert_task(row.id, build.id, configuration)
            tx.update_task(task.id, state=TaskState.SKIPPED, outcome=models.UNCHANGED, detail=models.UNCHANGED_DETAIL)
    configurations = sorted({c for stage in plan for c in stage.configurations})
    unchanged = sorted({c for stage in plan for c in stage.unchanged} - set(configurations))
    tx.add_event(
        models.BUILD_START, request_id=request.id, build_id=build.id,
        data={
            "number": build.number, "component": request.component, "version": request.version,
            **bumps_data(request), "base_commit": base_commit, "candidate_commit": candidate_commit,
            "stages": [stage.spec.name for stage in plan], "configurations": configurations,
            **({"unchanged": unchanged} if unchanged else {}),
            **({"reason": reason} if reason else {}),
        },
    )
    return build


class BuildResult(str, enum.Enum):
    """How a build run ended: `succeeded`, `failed` (a stage failed: reject),
    `infra` (re-queue), `cancelled` (the request was cancelled) or `stopped`
    (the driver is shutting down; the build resumes at the next start)."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    INFRA = "infra"
    CANCELLED = "cancelled"
    STOPPED = "stopped"


@dataclass(frozen=True)
class Failure:
    """A failed task of the stage that failed a build: what a rejection
    names. `targets` are its failing targets (label, status, log_paths)."""

    configuration: str
    outcome: Optional[str]
    exit_code: Optional[int]
    targets: tuple[dict, ...]
    log_path: Optional[str]
    detail: Optional[str]

    def to_dict(self) -> dict:
        """The failure as the REQUEST_REJECTED event carries it."""
        return {
            "configuration": self.configuration, "outcome": self.outcome, "exit_code": self.exit_code,
            "targets": list(self.targets), "log_path": self.log_path, "detail": self.detail,
        }


@dataclass(frozen=True)
class BuildOutcome:
    """How a build run ended (`result`), in which stage, why (`reason`) and,
    for a failed build, the failed tasks of that stage (`failures`)."""

    result: BuildResult
    stage: Optional[str] = None
    failures: tuple[Failure, ...] = ()
    reason: str = ""


class BuildRunner:
    """Runs (or resumes) one build's stages; see the module docstring."""

    def __init__(self, ctx: RunContext, request: Request, build: Build, worktree: Path,
                 cancel: Optional[threading.Event] = None, out: Callable[[str], None] = lambda _: None) -> None:
        self.ctx = ctx
        self.request = request
        self.build = build
        self.worktree = worktree
        self.cancel = cancel or threading.Event()
        self.out = out
        self.abort = Abort()  # stops the Bazel runs of the stage under way
        self.tasks = TaskRunner(ctx, request, build, worktree, self.abort)
        self._watcher_done = threading.Event()

    def run(self) -> BuildOutcome:
        watcher = threading.Thread(target=self._watch, name="abort-watch", daemon=True)
        watcher.start()
        try:
            return self._run()
        finally:
            self._watcher_done.set()
            watcher.join(2)

    def _watch(self) -> None:
        """Turns a cancel or a shutdown into an abort of the running tasks."""
        while not self._watcher_done.is_set():
            if self.ctx.stop.is_set():
                self.abort.set("stop")
            elif self.cancel.is_set():
                self.abort.set("cancel")
            self._watcher_done.wait(0.2)

    def _slot_order(self) -> list[str]:
        """The configurations slots are given by: every configuration of the
        candidate's manifest, so that a configuration gets the same slot (the
        same output base, with its cached results) in every build, whichever
        other configurations the build has; the build's own when the
        worktree has no readable manifest."""
        try:
            return sorted(load_manifest(self.worktree / CANDIDATE_MANIFEST).configurations)
        except ConvoyError:
            return sorted({t.configuration for t in self._tasks_of_build()})

    def _run(self) -> BuildOutcome:
        with self.ctx.store.read() as tx:
            stages = tx.stages(self.build.id)
        order = self._slot_order()
        slots = self.ctx.make_slots(order) if self.ctx.make_slots else Slots(self.ctx.config.parallelism, order)
        for index, stage in enumerate(stages):
            if stage.state == StageState.SUCCEEDED:
                continue
            if stage.state in (StageState.FAILED, StageState.SKIPPED):
                return self._end_failed(stages[index:], stage, self._failures(stage), "")
            try:
                spec = self.ctx.config.stage(stage.name)
            except KeyError:
                return self._infra(stages[index:], stage,
                                   f"stage '{stage.name}' of build {self.build.number} is no longer in convoy.yaml")
            if self.cancel.is_set() or self.ctx.stop.is_set():
                return self._aborted(stages[index:], stage)
            if self.ctx.gate is not None and not self.ctx.gate(index, stage, spec):
                return self._aborted(stages[index:], stage)
            stage = self._start_stage(stage)
            outcome = self._run_stage(stage, spec, slots)
            if outcome is not None:
                if outcome.result is BuildResult.STOPPED:
                    return outcome
                later = stages[index + 1:]
                self._skip(later)
                return outcome
        return BuildOutcome(BuildResult.SUCCEEDED)

    def _tasks_of_build(self) -> list[Task]:
        with self.ctx.store.read() as tx:
            return tx.tasks(build_id=self.build.id)

    def _start_stage(self, stage: Stage) -> Stage:
        with self.ctx.store.transaction() as tx:
            tasks = tx.tasks(stage_id=stage.id)
            if stage.state == StageState.WAITING:
                stage = tx.update_stage(stage.id, state=StageState.BUILDING, started_at=now())
                tx.add_event(
                    models.STAGE_START, request_id=self.request.id, build_id=self.build.id, stage_id=stage.id,
                    data={"stage": stage.name, "position": stage.position,
                          "configurations": [t.configuration for t in tasks]},
                )
            for task in tasks:
                if task.state == TaskState.WAITING:
                    tx.update_task(task.id, state=TaskState.READY)
        return stage

    def _run_stage(self, stage: Stage, spec: StageSpec, slots: Slots) -> Optional[BuildOutcome]:
        """Runs the stage's unfinished tasks; None if the stage succeeded."""
        with self.ctx.store.read() as tx:
            tasks = tx.tasks(stage_id=stage.id)
        pending = [t for t in tasks if t.state == TaskState.READY]
        if spec.check_pools and pending and self.ctx.pool_check is not None:
            try:
                self.ctx.pool_check(self.worktree, spec, [t.configuration for t in pending], self.ctx.config,
                                    {t.configuration: self.ctx.output_base(slots.preferred(t.configuration))
                                     for t in pending})
            except Exception as e:  # the lab's check failed: not the candidate's fault
                reason = f"pool check before stage {stage.name} failed: {str(e) or type(e).__name__}"
                for task in pending:
                    self.tasks.finish(stage, task, state=TaskState.FAILED, outcome="INFRA_ERROR", exit_code=None,
                                      targets=(), detail=reason, duration=0.0)
                return self._complete_stage(stage, infra_reason=reason)
        if pending:
            workers = min(len(pending), self.ctx.config.parallelism)
            with concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="task") as pool:
                # each in a copy of this context: git time in a task is still the request's (timing.current())
                futures = [pool.submit(contextvars.copy_context().run, self.tasks.run, stage, spec, task, slots)
                           for task in pending]
                for future in futures:
                    future.result()
        if self.abort.reason == "stop":
            return BuildOutcome(BuildResult.STOPPED, stage=stage.name, reason="the driver is shutting down")
        return self._complete_stage(stage)

    def _complete_stage(self, stage: Stage, infra_reason: Optional[str] = None) -> Optional[BuildOutcome]:
        with self.ctx.store.transaction() as tx:
            tasks = tx.tasks(stage_id=stage.id)
            infra = [t for t in tasks if t.outcome is not None and is_infra(t.outcome)]
            failed = [t for t in tasks if t.state != TaskState.SUCCEEDED and not t.is_unchanged]
            state = StageState.FAILED if failed else StageState.SUCCEEDED
            finished = now()
            tx.update_stage(stage.id, state=state, finished_at=finished)
            tx.add_event(
                models.STAGE_COMPLETE, request_id=self.request.id, build_id=self.build.id, stage_id=stage.id,
                data={"stage": stage.name, "state": state.value,
                      "duration": finished - (stage.started_at or finished),
                      "failed_configurations": [t.configuration for t in failed]},
            )
        if not failed:
            return None
        if self.abort.reason == "cancel":
            return BuildOutcome(BuildResult.CANCELLED, stage=stage.name, reason="cancelled by request")
        releasing = stage.name == RELEASE_STAGE and self.ctx.config.release.has_artifacts
        if infra_reason is None and not infra and releasing:  # not the candidate's fault: re-queue
            infra_reason = "the release artifacts did not build (" + "; ".join(
                f"{t.configuration}: {t.outcome}" + (f", log {t.log_path}" if t.log_path else "") for t in failed
            ) + "); nothing was merged and the request goes back to the queue: fix the release targets"
        if infra_reason is not None or infra:
            reason = infra_reason or "; ".join(
                f"{stage.name}/{t.configuration}: {t.outcome}" + (f" ({t.detail})" if t.detail else "")
                for t in infra
            )
            return BuildOutcome(BuildResult.INFRA, stage=stage.name, reason=reason)
        return BuildOutcome(BuildResult.FAILED, stage=stage.name, failures=self._failures(stage),
                            reason=f"stage {stage.name} failed")

    def _failures(self, stage: Stage) -> tuple[Failure, ...]:
        with self.ctx.store.read() as tx:
            tasks = tx.tasks(stage_id=stage.id)
        return tuple(
            Failure(configuration=t.configuration, outcome=t.outcome, exit_code=t.exit_code,
                    targets=tuple(target_summary(x) for x in t.failing_targets), log_path=t.log_path,
                    detail=t.detail)
            for t in tasks if t.state == TaskState.FAILED
        )

    def _skip(self, stages: Sequence[Stage]) -> None:
        if not stages:
            return
        with self.ctx.store.transaction() as tx:
            for stage in stages:
                if stage.state in (StageState.WAITING, StageState.BUILDING):
                    tx.update_stage(stage.id, state=StageState.SKIPPED)
                for task in tx.tasks(stage_id=stage.id):
                    if not task.state.is_final:
                        tx.update_task(task.id, state=TaskState.SKIPPED)

    def _end_failed(self, stages: Sequence[Stage], failed: Stage, failures, reason) -> BuildOutcome:
        self._skip([s for s in stages if s.id != failed.id])
        return BuildOutcome(BuildResult.FAILED, stage=failed.name, failures=tuple(failures),
                            reason=reason or f"stage {failed.name} failed")

    def _infra(self, stages: Sequence[Stage], stage: Stage, reason: str) -> BuildOutcome:
        with self.ctx.store.transaction() as tx:
            tx.update_stage(stage.id, state=StageState.FAILED, finished_at=now())
        self._skip([s for s in stages if s.id != stage.id])
        return BuildOutcome(BuildResult.INFRA, stage=stage.name, reason=reason)

    def _aborted(self, stages: Sequence[Stage], stage: Stage) -> BuildOutcome:
        if self.ctx.stop.is_set():
            return BuildOutcome(BuildResult.STOPPED, stage=stage.name, reason="the driver is shutting down")
        self._skip(stages)
        return BuildOutcome(BuildResult.CANCELLED, stage=stage.name, reason="cancelled by request")
