"""One task of a stage: its slot, its Bazel run, and its end in the store.

    ctx = RunContext(checkout, config, store, meter)            # what a build run needs besides the build
    runner = TaskRunner(ctx, request, build, worktree, abort)   # one per build run
    runner.run(stage, spec, task, slots)                        # in a task thread of the stage

convoy.pipeline's BuildRunner orchestrates the stages and runs each stage's
tasks side by side, one thread each; a task is this module's. It waits for
a slot (`Slots`: `parallelism` of them; each slot is its own Bazel output
base, `.convoy/bazel/slot-<k>`, so parallel tasks do not queue on one
server, and a configuration prefers the slot `index(sorted(configurations
of the manifest)) % parallelism`, the same in every build whichever other
configurations it has, so it finds a warm server with its own analysis
cache and cached test results),
records BUILDING and TASK_START, runs Bazel (convoy.bazel.run_bazel, or the
context's stand-in) with the task's flags (convoy.task_flags), its log and build
event file (`log_paths`), the configuration in the repository environment
(`--repo_env=CONVOY_CONFIGURATION=<configuration>`), inside the lab's
invocation on a `check_pools: true` stage (convoy.lab.stage), on the tests
convoy.affected selects on an `affected_only: true` test stage (none
selected: Bazel does not run, the task succeeds as NO_TESTS), and records
its end: TASK_COMPLETE with TASK_SUCCESS or TASK_FAIL, the failing targets
with copies of their test logs (`keep_test_logs`), and each test target's
result in the store (test_results: `convoy flakes`).

A red test is not believed at once (convoy.retries): when a test task's run
ends with tests failed, `retry_policies` may run the failing tests again,
each run an `_attempt` of its own (`<stage>-<configuration>.run-<n>.log`
beside the first; on the lab one ledger and one `.rigs.json`, which then
holds every run's rigs): on another rig of the pool (convoy.lab.health),
then once more if the test passed on main (convoy.flaky). The task's
targets and outcome are `retries.judge`'s verdict over the runs (flaky,
quarantined, the rigs each test ran on, why it ran again), and the rigs'
health learns from them (`health.observe_rigs`).

`Abort` is the build run's stop: a cancel ("cancel"), a shutdown ("stop")
or a task's infrastructure error ("infra", which stops its siblings). A
task that the abort finds not started ends INTERRUPTED; one interrupted by
a shutdown stays (or goes back to) ready, and runs at the next start.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from pathlib import Path
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

from convoy import affected
from convoy import artifacts
from convoy import bep
from convoy import failpoints
from convoy import fsutil
from convoy import models
from convoy import flaky
from convoy import retries
from convoy import spares
from convoy import task_logs
from convoy.lab import health
from convoy.lab.pools import RIGS_SUFFIX
from convoy.lab.stage import LabRun, PoolCheck, lab_invocation, lab_pool_check
from convoy.bazel import Outcome
from convoy.config import Config, StageSpec
from convoy.diskcache import cache_flags
from convoy.models import Build, Request, Stage, Task, TaskState, TargetOutcome
from convoy.store import Store, now
from convoy.task_flags import CONFIGURATION_ENV, task_flags  # noqa: F401 (also tasks' API)
from convoy.timing import Meter

log = logging.getLogger("convoy.tasks")

SLOTS_DIR = Path(".convoy") / "bazel"
LOGS_DIR = Path(".convoy") / "logs"


class Slots:
    """`count` task slots; a configuration prefers its own slot."""

    def __init__(self, count: int, configurations: Sequence[str]) -> None:
        self.count = count
        self.order = sorted(configurations)
        self.free = set(range(count))
        self.cond = threading.Condition()

    def preferred(self, configuration: str) -> int:
        index = self.order.index(configuration) if configuration in self.order else 0
        return index % self.count

    def acquire(self, configuration: str, spec: Optional[StageSpec] = None) -> int:
        with self.cond:
            while not self.free:
                self.cond.wait()
            slot = self.preferred(configuration)
            if slot not in self.free:
                slot = min(self.free)
            self.free.remove(slot)
            return slot

    def release(self, slot: int, spec: Optional[StageSpec] = None) -> None:
        with self.cond:
            self.free.add(slot)
            self.cond.notify()


def slot_output_base(checkout: Path, slot: int, *, lane: int = 0) -> Path:
    """The output base of `slot`: `.convoy/bazel/slot-<k>` in lane 0, `.convoy/bazel/lane-<l>/slot-<k>`
    in lane l (a lane's worktree is its own workspace, and an output base serves one)."""
    return checkout / SLOTS_DIR / (f"slot-{slot}" if lane == 0 else f"lane-{lane}/slot-{slot}")


def log_paths(checkout: Path, request_id: int, build_number: int, stage: str, configuration: str) -> tuple[Path, Path]:
    directory = checkout / LOGS_DIR / f"request-{request_id}" / f"build-{build_number}"
    return directory / f"{stage}-{configuration}.log", directory / f"{stage}-{configuration}.bep.json"


def attempt_paths(log_path: Path, bep_path: Path, number: int) -> tuple[Path, Path]:
    """The log and build event file of a task's run `number` (2, 3, ...: convoy.retries) beside its first's."""
    stem = log_path.name[: -len(".log")]
    return (log_path.with_name(f"{stem}.run-{number}.log"), bep_path.with_name(f"{stem}.run-{number}.bep.json"))


def read_rig_record(path: Path) -> Optional[dict]:
    """A run's record of which rig ran each test (convoy.lab.stage.record_rigs), or None."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def combine_rig_records(path: Path, attempts: Sequence["retries.Attempt"]) -> None:
    """Writes the record of every run of a task to `path` (the task's .rigs.json, which the
    provenance reads): the first run's id, each run's id in `invocations`, every run's rigs."""
    records = [a.rigs for a in attempts if a.rigs is not None]
    if not records:
        return
    combined = {
        "invocation_id": records[0].get("invocation_id"),
        "invocations": [r.get("invocation_id") for r in records],
        "runs": [run for r in records for run in r.get("runs", ())],
        "error": next((r["error"] for r in records if r.get("error")), None),
    }
    try:
        fsutil.atomic_write(path, json.dumps(combined, indent=2) + "\n")
    except OSError as e:
        log.warning("could not write %s: %s", path, e)


@dataclass
class RunContext:
    """What a build run needs besides the build itself."""

    checkout: Path
    config: Config
    store: Store
    meter: Meter
    pool_check: Optional[PoolCheck] = lab_pool_check  # None: no lab (check_pools stages run plainly)
    lab_run: LabRun = lab_invocation
    stop: threading.Event = field(default_factory=threading.Event)  # the driver is shutting down
    run_bazel: Optional[Callable[..., Any]] = None  # default: convoy.bazel.run_bazel
    lane: int = 0  # the candidate's lane: its output bases (tasks.slot_output_base)
    # The slots of a build (default: `parallelism` of its own); a window's are shared by its lanes.
    make_slots: Optional[Callable[[Sequence[str]], Slots]] = None
    # Asked before each stage starts (index, stage, spec); False: the build is cancelled or stopped.
    gate: Optional[Callable[[int, Stage, StageSpec], bool]] = None
    out: Optional[Callable[[str], None]] = None  # the queue's output (a log copy's problem); None: a warning
    offer: bool = True  # offer its tasks to spare workers first (convoy.spares); a spare's own: False

    def output_base(self, slot: int) -> Path:
        return slot_output_base(self.checkout, slot, lane=self.lane)

    def bazel(self) -> Callable[..., Any]:
        if self.run_bazel is None:
            from convoy.bazel import run_bazel

            self.run_bazel = run_bazel
        return self.run_bazel


def retry_policies(ctx: RunContext, spec: StageSpec, configuration: str, on_lab: bool,
                   quarantined: Callable[[str], Optional[str]]) -> tuple["retries.Policy", ...]:
    """What may run a test stage's failing tests again, in order: another rig of
    the pool (a lab stage: convoy.lab.health), then a test that passed on main
    (the stage's `retry_failed`: convoy.flaky), leaving out the tests that
    `quarantined` (flaky.quarantine_note) holds."""
    policies: list[retries.Policy] = []
    if on_lab:
        policies.append(health.retry_on_other_rig(ctx.config, spec, configuration))
    policies.append(flaky.retry_known_on_main(ctx.store, spec, configuration, quarantined=quarantined))
    return tuple(policies)


def keep_test_logs(label: str, paths: Sequence[str], task_log: Path) -> tuple[str, ...]:
    """Copies a failing target's test logs beside the task's log (the slot's
    bazel-testlogs are overwritten by the next run); returns the copies'
    paths (an original's where it cannot be copied)."""
    directory = task_log.parent / (task_log.name[: -len(".log")] + ".testlogs")
    name = label.lstrip("/@").replace("/", "_").replace(":", ".")
    kept = []
    for index, path in enumerate(paths, 1):
        suffix = f".attempt-{index}" if len(paths) > 1 else ""
        dest = directory / f"{name}{suffix}.test.log"
        try:
            fsutil.private_dir(directory)
            fsutil.private_copy(path, dest)
            kept.append(str(dest))
        except OSError:
            kept.append(str(path))
    return tuple(kept)


def target_summary(t: TargetOutcome) -> dict:
    """A failing target as events and rejections name it: label, status, log paths."""
    return {"label": t.label, "status": t.status, "log_paths": list(t.log_paths)}


def is_infra(outcome_name: str) -> bool:
    """Whether a task's recorded outcome (an Outcome's name, or INFRA_ERROR
    for a task convoy could not run) is not the candidate's fault."""
    try:
        return bool(Outcome[outcome_name].is_infrastructure)
    except KeyError:
        return outcome_name == "INFRA_ERROR"


class Abort:
    """The stop of a build run's Bazel runs: `event` (run_bazel's cancel)
    and the first `reason` given ("cancel", "stop" or "infra")."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.reason: Optional[str] = None
        self._lock = threading.Lock()

    def set(self, reason: str) -> None:
        with self._lock:
            if self.reason is None:
                self.reason = reason
            self.event.set()

    def is_set(self) -> bool:
        return self.event.is_set()


class TaskRunner:
    """Runs the tasks of one build run; see the module docstring. A task
    that convoy cannot run (a bug, an OS failure) ends as an infrastructure
    error and aborts its siblings, never as a hang."""

    def __init__(self, ctx: RunContext, request: Request, build: Build, worktree: Path, abort: Abort) -> None:
        self.ctx = ctx
        self.request = request
        self.build = build
        self.worktree = worktree
        self.abort = abort

    def run(self, stage: Stage, spec: StageSpec, task: Task, slots: Slots) -> None:
        """Runs `task` (ready) on a slot of `slots` and records its end."""
        if self.abort.is_set():
            self._interrupted(stage, task, "not started: " + (self.abort.reason or "aborted"))
            return
        if self.ctx.offer and spares.offered(self.ctx, self.build, stage, spec, task):  # a spare ran it
            return
        slot = slots.acquire(task.configuration, spec)
        try:
            self._run_on(stage, spec, task, slot)
        except Exception as e:  # a bug or an OS failure: an infrastructure error, never a hang
            log.exception("task %s/%s failed to run", stage.name, task.configuration)
            self.finish(stage, task, state=TaskState.FAILED, outcome="INFRA_ERROR", exit_code=None,
                        targets=(), detail=f"convoy could not run the task: {e}", duration=0.0)
            self.abort.set("infra")
        finally:
            slots.release(slot, spec)

    def _run_on(self, stage: Stage, spec: StageSpec, task: Task, slot: int) -> None:
        log_path, bep_path = log_paths(self.ctx.checkout, self.request.id, self.build.number, stage.name,
                                       task.configuration)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.ctx.store.transaction() as tx:
            tx.update_task(task.id, state=TaskState.SCHEDULED, slot=slot, pid=None)
        started = now()
        flags = task_flags(self.ctx.config, spec)
        flags += cache_flags(self.ctx.config, self.ctx.checkout, task.configuration, flags)
        selection = self._affected(spec, task, slot, flags, log_path)
        with self.ctx.store.transaction() as tx:
            task = tx.update_task(task.id, state=TaskState.BUILDING, started_at=started, finished_at=None,
                                  runs=task.runs + 1, log_path=str(log_path), bep_path=str(bep_path))
            tx.add_event(
                models.TASK_START, request_id=self.request.id, build_id=self.build.id, stage_id=stage.id,
                task_id=task.id,
                data={"stage": stage.name, "configuration": task.configuration, "slot": slot, "run": task.runs,
                      "log_path": str(log_path),
                      **({"affected": selection.event_data()} if selection is not None else {})},
            )
        if selection is not None and selection.nothing_to_run:  # Bazel has nothing to do
            affected.note_not_run(log_path, selection)
            self.finish(stage, task, state=TaskState.SUCCEEDED, outcome=Outcome.NO_TESTS.name, exit_code=None,
                        targets=(), detail=selection.detail(), duration=selection.seconds)
            return
        targets = selection.targets(spec) if selection is not None else spec.targets_for(task.configuration)
        on_lab = spec.check_pools and self.ctx.pool_check is not None
        paths = (log_path, bep_path)
        first = self._attempt(spec, task, targets, flags, slot, paths, on_lab)
        if first.result.outcome.name == "INTERRUPTED" and self.abort.reason == "stop":
            with self.ctx.store.transaction() as tx:  # runs again at the next start
                tx.update_task(task.id, state=TaskState.READY, pid=None)
            return
        attempts = [first]
        quarantined = flaky.quarantine_note(self.ctx.config, task.configuration)
        policies = retry_policies(self.ctx, spec, task.configuration, on_lab, quarantined) \
            if spec.command == "test" else ()
        while not self.abort.is_set():
            retry = retries.next_retry(policies, attempts)
            if retry is None:
                break
            number = len(attempts) + 1
            log.info("task %s/%s: run %d of %s: %s", stage.name, task.configuration, number,
                     ", ".join(retry.targets), retry.reason)
            again = self._attempt(spec, task, retry.targets, flags + retry.flags, slot,
                                  attempt_paths(log_path, bep_path, number), on_lab, reason=retry.reason,
                                  kind=retry.kind, ledger=log_path.with_suffix(".invocation"))
            attempts.append(again)
        if on_lab and len(attempts) > 1:
            combine_rig_records(log_path.with_suffix(RIGS_SUFFIX), attempts)
        verdict = retries.judge(attempts, quarantined=quarantined,
                                infra=health.rig_failure if on_lab else (lambda _a, _l: False))
        if on_lab:
            health.observe_rigs(self.ctx.store, self.ctx.config, spec, task.configuration, attempts, verdict)
        result, outcome = first.result, verdict.outcome
        targets_out = tuple(
            TargetOutcome(label=v.label, status=v.status, cached=v.result.cached, duration_ms=v.result.duration_ms,
                          log_paths=(keep_test_logs(v.label, v.result.log_paths, log_path) if v.result.failing
                                     else tuple(v.result.log_paths)),
                          attempts=v.attempts, rigs=v.rigs, notes=v.notes)
            for v in verdict.targets
        )
        success = bool(outcome.is_success)
        if success and spec.is_release:  # keep what it built before the slot builds anything else
            kept = artifacts.keep(self.ctx.checkout, self.build.id, task.configuration, bep_path,
                                  spec.targets_for(task.configuration))
            if kept.problem:
                self.finish(stage, task, state=TaskState.FAILED, outcome="INFRA_ERROR", exit_code=result.exit_code,
                            targets=targets_out, detail=kept.problem, duration=result.duration)
                self.abort.set("infra")
                return
        detail = verdict.detail if len(attempts) > 1 or verdict.outcome is not result.outcome else result.detail
        self.finish(
            stage, task, state=TaskState.SUCCEEDED if success else TaskState.FAILED, outcome=outcome.name,
            exit_code=attempts[-1].result.exit_code, targets=targets_out,
            duration=sum(a.result.duration for a in attempts),
            detail="; ".join(filter(None, (detail, selection.detail() if selection is not None else None))),
            attempts=attempts,
        )
        if outcome.is_infrastructure:
            self.abort.set("infra")

    def _attempt(self, spec: StageSpec, task: Task, targets: Sequence[str], flags: tuple[str, ...], slot: int,
                 paths: tuple[Path, Path], on_lab: bool, *, reason: Optional[str] = None,
                 kind: Optional[str] = None, ledger: Optional[Path] = None) -> retries.Attempt:
        """One Bazel run of the task (of `targets`), inside the lab's invocation on a lab stage. Every
        attempt of a task has the first's `ledger` (and .rigs.json): they run one after the other."""
        log_path, bep_path = paths
        ledger = ledger or log_path.with_suffix(".invocation")
        run_bazel = self.ctx.bazel()

        def started_client(pid: int) -> None:
            with self.ctx.store.transaction() as tx:
                tx.update_task(task.id, pid=pid)
            failpoints.hit("task_running")

        lab = self.ctx.lab_run(flags, ledger) if on_lab else contextlib.nullcontext(())
        with self.ctx.meter.measure("bazel"), lab as lab_flags:
            result = run_bazel(
                self.worktree, spec.command, tuple(targets),
                log_path=log_path, bep_path=bep_path,
                flags=flags + tuple(lab_flags), startup_flags=tuple(self.ctx.config.bazel_startup_flags),
                output_base=self.ctx.output_base(slot),
                repo_env={CONFIGURATION_ENV: task.configuration}, timeout=spec.timeout, cancel=self.abort.event,
                on_start=started_client,
                secret_env=self.ctx.config.secret_env, pass_env=self.ctx.config.bazel_pass_env,
            )
        rigs = read_rig_record(ledger.with_suffix(RIGS_SUFFIX)) if on_lab else None
        return retries.Attempt(result=result, targets=tuple(targets), reason=reason, kind=kind, rigs=rigs,
                               flags=flags)

    def _affected(self, spec: StageSpec, task: Task, slot: int, flags: tuple[str, ...],
                  log_path: Path) -> Optional[affected.Selection]:
        """The tests to run of a test stage with `affected_only` (convoy.affected); None: the stage's targets."""
        if not (spec.affected_only and spec.command == "test"):
            return None
        config = self.ctx.config
        changed = affected.changed_components(self.ctx.checkout, self.build, task.configuration)  # git time
        settings = affected.QuerySettings.of(config, self.ctx.output_base(slot), flags,
                                             timeout=min(spec.timeout, affected.QUERY_TIMEOUT),
                                             log_path=log_path.with_suffix(".query.log"))
        with self.ctx.meter.measure("bazel"):
            return affected.select_tests(self.worktree, spec, task.configuration, changed, settings,
                                         commit=self.build.candidate_commit)

    def _interrupted(self, stage: Stage, task: Task, detail: str) -> None:
        if self.abort.reason == "stop":
            return  # stays ready; runs at the next start
        self.finish(stage, task, state=TaskState.FAILED, outcome="INTERRUPTED", exit_code=None, targets=(),
                    detail=detail, duration=0.0)

    def finish(self, stage: Stage, task: Task, *, state: TaskState, outcome: str, exit_code: Optional[int],
               targets: Sequence[TargetOutcome], detail: Optional[str], duration: Optional[float],
               attempts: Sequence[retries.Attempt] = ()) -> None:
        """Records the task's end: its state and outcome, its tests' results
        (test_results: `convoy flakes`), TASK_COMPLETE, and TASK_SUCCESS or
        TASK_FAIL (also for a task that never ran, e.g. when the stage's
        pool check failed). `attempts` beyond the first are its reruns."""
        log_path = log_paths(self.ctx.checkout, self.request.id, self.build.number, stage.name, task.configuration)[0]
        tail = task_logs.read_tail(log_path) if log_path.is_file() else None
        problem = task_logs.share(self.ctx.config, self.ctx.checkout, log_path)  # before the end is seen
        if problem is not None:
            (self.ctx.out or log.warning)(problem)
        finished = now()
        with self.ctx.store.transaction() as tx:
            task = tx.update_task(task.id, state=state, outcome=outcome, exit_code=exit_code, targets=tuple(targets),
                                  detail=detail, finished_at=finished, pid=None, log_tail=tail)
            if outcome != "INTERRUPTED":
                tx.add_test_results(
                    {"target": t.label, "configuration": task.configuration, "stage": stage.name, "status": t.status,
                     "attempts": t.attempts, "rigs": t.rigs, "detail": "; ".join(t.notes) or None,
                     "request_id": self.request.id, "build_id": self.build.id, "task_id": task.id}
                    for t in targets if t.is_test and not t.cached)
            failing = [target_summary(t) for t in task.failing_targets]
            data = {
                "stage": stage.name, "configuration": task.configuration, "outcome": outcome,
                "exit_code": exit_code, "duration": duration if duration is not None else 0.0,
                "targets": len(targets), "failing_targets": failing, "log_path": task.log_path,
                "detail": detail,
            }
            reruns = [{"run": n, "targets": list(a.targets), "reason": a.reason, "kind": a.kind,
                       "outcome": a.result.outcome.name}
                      for n, a in enumerate(attempts, 1) if a.reason is not None]
            if reruns:
                data["reruns"] = reruns
            special = {t.label: {"status": t.status, "rigs": list(t.rigs), "notes": list(t.notes)}
                       for t in targets if t.status in (bep.FLAKY, retries.QUARANTINED) or len(t.rigs) > 1 or t.notes}
            if special:
                data["retried_targets"] = special
            ids = dict(request_id=self.request.id, build_id=self.build.id, stage_id=stage.id, task_id=task.id)
            tx.add_event(models.TASK_COMPLETE, data=data, **ids)
            tx.add_event(models.TASK_SUCCESS if state == TaskState.SUCCEEDED else models.TASK_FAIL, data=data, **ids)
