"""The construction plan of a candidate and its run: stages in order, tasks in parallel.

    plan = construction_plan(config.stages, manifest, request)    # StagePlan per stage
    with store.transaction() as tx:
        build = create_build(tx, request, base, candidate, plan)    # rows + BUILD_START
    outcome = BuildRunner(context, request, build, worktree).run()

A stage has one task per affected configuration (the configurations that
include the bumped component, or the one the request names); a stage with
`per_configuration: false` has one task, in the manifest's default
configuration. Tasks of a stage run side by side on `parallelism` slots.
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

A stage with `check_pools: true` is the hardware lab's stage. Before it the
pool check runs (a seam for the lab, see `lab_pool_check`); if it raises,
the stage fails as an infrastructure error. Each of its tasks runs Bazel
inside `lab_invocation` (`--invocation_id=<id>`; on exit the lab cancels
whatever that run left queued, so that an interrupted, timed-out or killed
run leaves nothing for a rig). Both ask the lab that the stage's flags name
(`lab_address`). A context without a pool check (`pool_check=None`: no lab,
e.g. a stand-in Bazel) runs such a stage plainly.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import logging
import os
import re
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ContextManager, Iterator, Optional, Sequence

from convoy import failpoints
from convoy import fsutil
from convoy import models
from convoy.bazel import bazel_environment
from convoy.config import Config, StageSpec
from convoy.lab import pools as lab_pools
from convoy.manifest import Manifest
from convoy.models import Build, Request, Stage, StageState, Task, TaskState, TargetOutcome
from convoy.store import Store, Transaction, now
from convoy.timing import Meter

log = logging.getLogger("convoy.pipeline")

SLOTS_DIR = Path(".convoy") / "bazel"
LOGS_DIR = Path(".convoy") / "logs"
CONFIGURATION_ENV = "CONVOY_CONFIGURATION"


class InfraError(Exception):
    """Not the candidate's fault: Bazel crashed or timed out, git or a pool
    is unreachable. The request goes back to the queue."""


@dataclass(frozen=True)
class StagePlan:
    spec: StageSpec
    configurations: tuple[str, ...]


def affected_configurations(manifest: Manifest, component: str, scope: Optional[str]) -> tuple[str, ...]:
    """The configurations a bump of `component` changes: `scope` alone, or
    every configuration that includes the component (sorted)."""
    if scope is not None:
        return (scope,)
    return tuple(sorted(name for name, c in manifest.configurations.items() if component in c.components))


def construction_plan(stages: Sequence[StageSpec], manifest: Manifest, request: Request) -> tuple[StagePlan, ...]:
    affected = affected_configurations(manifest, request.component, request.configuration)
    if not affected:
        affected = (manifest.default_configuration,)
    return tuple(
        StagePlan(spec, affected if spec.per_configuration else (manifest.default_configuration,))
        for spec in stages
    )


def create_build(tx: Transaction, request: Request, base_commit: str, candidate_commit: str,
                 plan: Sequence[StagePlan], *, reason: Optional[str] = None) -> Build:
    """Persists a build of `request` with its stages and tasks, and
    BUILD_START (`reason`: why this is not the request's first build)."""
    build = tx.insert_build(request.id, base_commit, candidate_commit)
    for position, stage in enumerate(plan):
        row = tx.insert_stage(build.id, position, stage.spec.name, stage.spec.command)
        for configuration in stage.configurations:
            tx.insert_task(row.id, build.id, configuration)
    configurations = sorted({c for stage in plan for c in stage.configurations})
    tx.add_event(
        models.BUILD_START, request_id=request.id, build_id=build.id,
        data={
            "number": build.number, "component": request.component, "version": request.version,
            "base_commit": base_commit, "candidate_commit": candidate_commit,
            "stages": [stage.spec.name for stage in plan], "configurations": configurations,
            **({"reason": reason} if reason else {}),
        },
    )
    return build


_RULE = re.compile(r"^\w+\(\n(?P<body>.*?)^\)$", re.MULTILINE | re.DOTALL)
_NAME = re.compile(r'^  name = "(?P<name>[^"]+)"', re.MULTILINE)
_TAGS = re.compile(r"^  tags = \[(?P<tags>[^\]]*)\]", re.MULTILINE)


def pools_in_query(build_output: str, tag_filter: Optional[str]) -> set[str]:
    """The pools (`convoy-pool=<pool>` tags) of the tests in `bazel query
    --output=build` output that `tag_filter` (Bazel's --test_tag_filters
    syntax) selects; tests incompatible with the configuration are left out."""
    wanted = [t for t in (tag_filter or "").split(",") if t and not t.startswith("-")]
    unwanted = [t[1:] for t in (tag_filter or "").split(",") if t.startswith("-")]
    pools = set()
    for rule in _RULE.finditer(build_output):
        body = rule.group("body")
        if "@platforms//:incompatible" in body:
            continue
        match = _TAGS.search(body)
        tags = re.findall(r'"([^"]*)"', match.group("tags")) if match else []
        if wanted and not any(t in tags for t in wanted) or any(t in tags for t in unwanted):
            continue
        pools |= lab_pools.pools_from_tags(tags)
    return pools


def needed_pools(workspace: Path, stage: StageSpec, configuration: str, config: Config, output_base: Path) -> set[str]:
    """The hardware pools the stage's tests need in `configuration` (one `bazel query`)."""
    expression = "tests(" + " + ".join(stage.targets) + ")"
    argv = ["bazel", *config.bazel_startup_flags, f"--output_base={output_base}", "query",
            f"--repo_env={CONFIGURATION_ENV}={configuration}", "--output=build", expression]
    try:
        proc = subprocess.run(argv, cwd=workspace, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=stage.timeout,
                              env=bazel_environment(os.environ, secret_env=config.secret_env,
                                                    pass_env=config.bazel_pass_env))
    except (OSError, subprocess.TimeoutExpired) as e:
        raise InfraError(f"bazel query for the pools of stage {stage.name} failed: {e}") from None
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise InfraError(f"bazel query for the pools of stage {stage.name} in {configuration} failed "
                         f"(exit {proc.returncode}): {last}")
    return pools_in_query(proc.stdout, stage.tag_filter)


def lab_pool_check(workspace: Path, stage: StageSpec, configurations: Sequence[str], config: Config,
                   output_base: Path) -> None:
    """The default pool check (the seam for the hardware lab): finds the
    pools the stage's tests need in each configuration (`bazel query`, the
    `convoy-pool=<pool>` tags) and asks `convoy.lab.pools.check_pools(pools)`,
    which raises (NoHealthyWorker: "no healthy worker in pool X") when one
    has no healthy worker; the stage then fails as an infrastructure error."""
    needed: set[str] = set()
    for configuration in configurations:
        needed |= needed_pools(workspace, stage, configuration, config, output_base)
    if needed:
        lab_pools.check_pools(sorted(needed), lab_address(task_flags(config, stage)))


def lab_address(flags: Sequence[str]) -> lab_pools.LabAddress:
    """The lab that Bazel run with `flags` executes on, as a
    convoy.lab.pools.LabAddress: the last `--remote_executor=grpc://host:port`
    and `--remote_instance_name=<name>` in `flags`, else the local lab's (the
    `hil` config's 127.0.0.1:50051, instance convoy). Taken from the flags so
    that the pool check and the cancel ask the server the run queues on; an
    executor set only in a bazelrc is not seen (name it in the stage's flags,
    after --config=hil)."""
    local = lab_pools.LabAddress.local()
    server, instance = local.server, local.instance
    for flag in flags:
        name, _, value = flag.partition("=")
        if name == "--remote_executor" and value:
            server = value.split("://", 1)[1] if "://" in value else value
        elif name == "--remote_instance_name":
            instance = value
    return lab_pools.LabAddress.local(server=server, instance=instance)


@contextlib.contextmanager
def lab_invocation(flags: Sequence[str], ledger: Path) -> Iterator[tuple[str, ...]]:
    """The lab's side of one task's Bazel run (a stage with `check_pools:
    true`): yields the flags to add, `--invocation_id=<id>`; on exit
    `convoy.lab.pools.invocation` cancels whatever the run left unfinished on
    the lab (Bazel 4.2 leaves its queued actions there when it is
    interrupted or times out, and a rig would run them later for nobody).

    A driver that is killed cancels nothing on exit: `ledger` (beside the
    task's log) holds the id and the lab while the run is under way, and the
    next run of the same stage and configuration, in any build, cancels
    every ledger a killed run left (`<stage>-<configuration>.invocation`
    under .convoy/logs) before it starts."""
    logs = ledger.parents[2]  # log_paths: <logs>/request-<n>/build-<m>/<stage>-<configuration>.log
    for left in sorted(logs.glob(f"request-*/build-*/{ledger.name}")):
        try:
            entry = json.loads(left.read_text())
        except (OSError, ValueError):  # half-written: the run had not started Bazel
            left.unlink(missing_ok=True)
            continue
        stale = entry["invocation_id"]
        try:
            cancelled = lab_pools.cancel_invocation(
                lab_pools.LabAddress.local(server=entry["server"], instance=entry["instance"]), stale)
        except Exception as e:  # the lab did not answer: the stale actions may still be queued there
            raise InfraError(f"{e}; it may still hold the queued actions of an interrupted run: cancel them "
                             f"(convoy lab cancel --invocation_id={stale}) or, if that lab is gone, delete {left}"
                             ) from None
        log.info("cancelled %d operation(s) that interrupted run %s left on the lab", len(cancelled), stale)
        left.unlink(missing_ok=True)
    lab = lab_address(flags)
    with lab_pools.invocation(lab) as invocation_id:
        ledger.parent.mkdir(parents=True, exist_ok=True)
        ledger.write_text(json.dumps({"invocation_id": invocation_id, "server": lab.server,
                                      "instance": lab.instance}) + "\n")
        yield (f"--invocation_id={invocation_id}",)
    ledger.unlink(missing_ok=True)  # only once the cancel on exit has answered


PoolCheck = Callable[[Path, StageSpec, Sequence[str], Config, Path], None]
LabRun = Callable[[Sequence[str], Path], ContextManager[tuple[str, ...]]]


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

    def bazel(self) -> Callable[..., Any]:
        if self.run_bazel is None:
            from convoy.bazel import run_bazel

            self.run_bazel = run_bazel
        return self.run_bazel


@dataclass(frozen=True)
class BuildOutcome:
    """How a build run ended: `succeeded`, `failed` (a stage failed: reject),
    `infra` (re-queue), `cancelled` (the request was cancelled) or `stopped`
    (the driver is shutting down; the build resumes at the next start)."""

    state: str
    stage: Optional[str] = None
    failures: tuple[dict, ...] = ()
    reason: str = ""


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

    def acquire(self, configuration: str) -> int:
        with self.cond:
            while not self.free:
                self.cond.wait()
            slot = self.preferred(configuration)
            if slot not in self.free:
                slot = min(self.free)
            self.free.remove(slot)
            return slot

    def release(self, slot: int) -> None:
        with self.cond:
            self.free.add(slot)
            self.cond.notify()


def slot_output_base(checkout: Path, slot: int) -> Path:
    return checkout / SLOTS_DIR / f"slot-{slot}"


def log_paths(checkout: Path, request_id: int, build_number: int, stage: str, configuration: str) -> tuple[Path, Path]:
    directory = checkout / LOGS_DIR / f"request-{request_id}" / f"build-{build_number}"
    return directory / f"{stage}-{configuration}.log", directory / f"{stage}-{configuration}.bep.json"


def task_flags(config: Config, spec: StageSpec) -> tuple[str, ...]:
    """Bazel flags of a task: convoy.yaml's, then the stage's (tag filter, flags)."""
    flags = tuple(config.bazel_flags) + tuple(spec.bazel_flags())
    if not any(f.startswith("--symlink_prefix") for f in flags):
        flags = ("--symlink_prefix=/",) + flags  # no bazel-* symlinks in the worktree
    return flags


def is_bazel_client(pid: int, marker: Optional[str] = None) -> bool:
    """Whether `pid` is a live Bazel client (and, with `marker`, one whose
    command line has it: the task's own build event file)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read().decode("utf-8", "replace")
        with open(f"/proc/{pid}/stat", "rb") as f:
            if f.read().rsplit(b")", 1)[-1].split()[0] == b"Z":
                return False  # a zombie: it is gone already
    except (OSError, IndexError):
        return False
    return "bazel" in cmdline and (marker is None or marker in cmdline)


def kill_leftover_client(pid: int, marker: Optional[str]) -> bool:
    """Stops a Bazel client that a killed driver left running; returns
    whether there was one. SIGINT first (the client asks its server to stop
    the command, in about a second), SIGKILL if that does not do it: a
    client killed outright leaves its server busy for about a minute."""
    import signal

    if not is_bazel_client(pid, marker):
        return False
    for sig, wait in ((signal.SIGINT, 20.0), (signal.SIGKILL, 10.0)):
        try:
            if os.getpgid(pid) == pid:
                os.killpg(pid, sig)
            else:
                os.kill(pid, sig)
        except ProcessLookupError:
            return True
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not is_bazel_client(pid, marker):
                return True
            time.sleep(0.1)
    return True


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


def _summary(t: TargetOutcome) -> dict:
    return {"label": t.label, "status": t.status, "log_paths": list(t.log_paths)}


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
        self.abort = threading.Event()  # stops the Bazel runs of the stage under way
        self.abort_reason: Optional[str] = None
        self._abort_lock = threading.Lock()
        self._watcher_done = threading.Event()

    # -- the build -------------------------------------------------------------

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
                self._abort("stop")
            elif self.cancel.is_set():
                self._abort("cancel")
            self._watcher_done.wait(0.2)

    def _abort(self, reason: str) -> None:
        with self._abort_lock:
            if self.abort_reason is None:
                self.abort_reason = reason
            self.abort.set()

    def _run(self) -> BuildOutcome:
        with self.ctx.store.read() as tx:
            stages = tx.stages(self.build.id)
        all_configurations = sorted({
            t.configuration for t in self._tasks_of_build()
        })
        slots = Slots(self.ctx.config.parallelism, all_configurations)
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
            stage = self._start_stage(stage)
            outcome = self._run_stage(stage, spec, slots)
            if outcome is not None:
                if outcome.state == "stopped":
                    return outcome
                later = stages[index + 1:]
                self._skip(later)
                return outcome
        return BuildOutcome("succeeded")

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
                                    slot_output_base(self.ctx.checkout, 0))
            except Exception as e:  # the lab's check failed: not the candidate's fault
                reason = f"pool check before stage {stage.name} failed: {str(e) or type(e).__name__}"
                for task in pending:
                    self._finish_task(stage, task, state=TaskState.FAILED, outcome="INFRA_ERROR", exit_code=None,
                                      targets=(), detail=reason, duration=0.0)
                return self._complete_stage(stage, infra_reason=reason)
        if pending:
            workers = min(len(pending), self.ctx.config.parallelism)
            with concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="task") as pool:
                futures = [pool.submit(self._run_task, stage, spec, task, slots) for task in pending]
                for future in futures:
                    future.result()
        if self.abort_reason == "stop":
            return BuildOutcome("stopped", stage=stage.name, reason="the driver is shutting down")
        return self._complete_stage(stage)

    def _complete_stage(self, stage: Stage, infra_reason: Optional[str] = None) -> Optional[BuildOutcome]:
        with self.ctx.store.transaction() as tx:
            tasks = tx.tasks(stage_id=stage.id)
            infra = [t for t in tasks if t.outcome is not None and _is_infra(t.outcome)]
            failed = [t for t in tasks if t.state != TaskState.SUCCEEDED]
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
        if self.abort_reason == "cancel":
            return BuildOutcome("cancelled", stage=stage.name, reason="cancelled by request")
        if infra_reason is not None or infra:
            reason = infra_reason or "; ".join(
                f"{stage.name}/{t.configuration}: {t.outcome}" + (f" ({t.detail})" if t.detail else "")
                for t in infra
            )
            return BuildOutcome("infra", stage=stage.name, reason=reason)
        return BuildOutcome("failed", stage=stage.name, failures=self._failures(stage),
                            reason=f"stage {stage.name} failed")

    def _failures(self, stage: Stage) -> tuple[dict, ...]:
        with self.ctx.store.read() as tx:
            tasks = tx.tasks(stage_id=stage.id)
        return tuple(
            {
                "configuration": t.configuration, "outcome": t.outcome, "exit_code": t.exit_code,
                "targets": [_summary(x) for x in t.failing_targets], "log_path": t.log_path,
                "detail": t.detail,
            }
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
        return BuildOutcome("failed", stage=failed.name, failures=tuple(failures),
                            reason=reason or f"stage {failed.name} failed")

    def _infra(self, stages: Sequence[Stage], stage: Stage, reason: str) -> BuildOutcome:
        with self.ctx.store.transaction() as tx:
            tx.update_stage(stage.id, state=StageState.FAILED, finished_at=now())
        self._skip([s for s in stages if s.id != stage.id])
        return BuildOutcome("infra", stage=stage.name, reason=reason)

    def _aborted(self, stages: Sequence[Stage], stage: Stage) -> BuildOutcome:
        if self.ctx.stop.is_set():
            return BuildOutcome("stopped", stage=stage.name, reason="the driver is shutting down")
        self._skip(stages)
        return BuildOutcome("cancelled", stage=stage.name, reason="cancelled by request")

    # -- one task ------------------------------------------------------------------

    def _run_task(self, stage: Stage, spec: StageSpec, task: Task, slots: Slots) -> None:
        if self.abort.is_set():
            self._interrupted(stage, task, "not started: " + (self.abort_reason or "aborted"))
            return
        slot = slots.acquire(task.configuration)
        try:
            self._run_task_on(stage, spec, task, slot)
        except Exception as e:  # a bug or an OS failure: an infrastructure error, never a hang
            log.exception("task %s/%s failed to run", stage.name, task.configuration)
            self._finish_task(stage, task, state=TaskState.FAILED, outcome="INFRA_ERROR", exit_code=None,
                              targets=(), detail=f"convoy could not run the task: {e}", duration=0.0)
            self._abort("infra")
        finally:
            slots.release(slot)

    def _run_task_on(self, stage: Stage, spec: StageSpec, task: Task, slot: int) -> None:
        log_path, bep_path = log_paths(self.ctx.checkout, self.request.id, self.build.number, stage.name,
                                       task.configuration)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.ctx.store.transaction() as tx:
            tx.update_task(task.id, state=TaskState.SCHEDULED, slot=slot, pid=None)
        started = now()
        with self.ctx.store.transaction() as tx:
            task = tx.update_task(task.id, state=TaskState.BUILDING, started_at=started, finished_at=None,
                                  runs=task.runs + 1, log_path=str(log_path), bep_path=str(bep_path))
            tx.add_event(
                models.TASK_START, request_id=self.request.id, build_id=self.build.id, stage_id=stage.id,
                task_id=task.id,
                data={"stage": stage.name, "configuration": task.configuration, "slot": slot, "run": task.runs,
                      "log_path": str(log_path)},
            )
        run_bazel = self.ctx.bazel()

        def started_client(pid: int) -> None:
            with self.ctx.store.transaction() as tx:
                tx.update_task(task.id, pid=pid)
            failpoints.hit("task_running")

        flags = task_flags(self.ctx.config, spec)
        on_lab = spec.check_pools and self.ctx.pool_check is not None
        lab = self.ctx.lab_run(flags, log_path.with_suffix(".invocation")) if on_lab else contextlib.nullcontext(())
        with self.ctx.meter.measure("bazel"), lab as lab_flags:
            result = run_bazel(
                self.worktree, spec.command, tuple(spec.targets), log_path=log_path, bep_path=bep_path,
                flags=flags + tuple(lab_flags), startup_flags=tuple(self.ctx.config.bazel_startup_flags),
                output_base=slot_output_base(self.ctx.checkout, slot),
                repo_env={CONFIGURATION_ENV: task.configuration}, timeout=spec.timeout, cancel=self.abort,
                on_start=started_client,
                secret_env=self.ctx.config.secret_env, pass_env=self.ctx.config.bazel_pass_env,
            )
        outcome = result.outcome
        if outcome.name == "INTERRUPTED" and self.abort_reason == "stop":
            with self.ctx.store.transaction() as tx:  # runs again at the next start
                tx.update_task(task.id, state=TaskState.READY, pid=None)
            return
        targets = tuple(
            TargetOutcome(label=t.label, status=t.status, cached=t.cached, duration_ms=t.duration_ms,
                          log_paths=keep_test_logs(t.label, t.log_paths, log_path) if t.failing else tuple(t.log_paths))
            for t in result.targets
        )
        success = bool(outcome.is_success)
        self._finish_task(
            stage, task, state=TaskState.SUCCEEDED if success else TaskState.FAILED, outcome=outcome.name,
            exit_code=result.exit_code, targets=targets, detail=result.detail, duration=result.duration,
        )
        if outcome.is_infrastructure:
            self._abort("infra")

    def _interrupted(self, stage: Stage, task: Task, detail: str) -> None:
        if self.abort_reason == "stop":
            return  # stays ready; runs at the next start
        self._finish_task(stage, task, state=TaskState.FAILED, outcome="INTERRUPTED", exit_code=None, targets=(),
                          detail=detail, duration=0.0)

    def _finish_task(self, stage: Stage, task: Task, *, state: TaskState, outcome: str, exit_code: Optional[int],
                     targets: Sequence[TargetOutcome], detail: Optional[str], duration: Optional[float]) -> None:
        finished = now()
        with self.ctx.store.transaction() as tx:
            task = tx.update_task(task.id, state=state, outcome=outcome, exit_code=exit_code, targets=tuple(targets),
                                  detail=detail, finished_at=finished, pid=None)
            failing = [_summary(t) for t in task.failing_targets]
            data = {
                "stage": stage.name, "configuration": task.configuration, "outcome": outcome,
                "exit_code": exit_code, "duration": duration if duration is not None else 0.0,
                "targets": len(targets), "failing_targets": failing, "log_path": task.log_path,
                "detail": detail,
            }
            ids = dict(request_id=self.request.id, build_id=self.build.id, stage_id=stage.id, task_id=task.id)
            tx.add_event(models.TASK_COMPLETE, data=data, **ids)
            tx.add_event(models.TASK_SUCCESS if state == TaskState.SUCCEEDED else models.TASK_FAIL, data=data, **ids)


def _is_infra(outcome_name: str) -> bool:
    from convoy.bazel import Outcome

    try:
        return bool(Outcome[outcome_name].is_infrastructure)
    except KeyError:
        return outcome_name == "INFRA_ERROR"
