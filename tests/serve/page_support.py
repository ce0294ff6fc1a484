"""A request's build, written into a real store the way `convoy process` writes it, for the page tests.

Running Bazel here would take minutes, so the tests put the store into the
state a build reaches through the same code the queue runs, in the same
transactions, with the same events: requests.queue / start / building /
reject, pipeline.create_build, and a pipeline.BuildRunner's stage start and
end and its TaskRunner's `finish` (which writes TASK_COMPLETE and
TASK_SUCCESS or TASK_FAIL). Only the Bazel run itself is left out:
`start_task` writes what tasks.TaskRunner writes when Bazel starts (the
task BUILDING with its log, TASK_START).

    build = Build.start(root, version="v1.1.0")          # queued, taken, its build created
    build.pass_stage("build")                            # started, its tasks succeeded, ended
    task = build.start_task("hardware")                  # the hardware stage runs, its task is building
    build.finish_task("hardware", passed=True)           # the task ends: the page's stream sees it
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from convoy import models, pipeline, requests
from convoy.config import DEFAULT_STAGES, load_config
from convoy.models import Request, Stage, Task, TaskState, TargetOutcome
from convoy.pipeline import BuildRunner, RunContext, StagePlan
from convoy.store import SQLiteStore, now
from convoy.tasks import log_paths
from convoy.timing import Meter

BASE, CANDIDATE = "b" * 40, "c" * 40


def open_store(root: Path) -> SQLiteStore:
    return SQLiteStore(root / ".convoy" / "state.db")


@dataclass
class Build:
    """One request's build in the store of the checkout `root`, moved on stage by stage."""

    root: Path
    store: SQLiteStore
    request: Request
    runner: BuildRunner

    @classmethod
    def start(cls, root: Path, *, component: str = "messages", version: str, requested_by: str = "ci-messages",
              configurations: Sequence[str] = ("main",)) -> "Build":
        """A request for `version` of `component` (written as it arrived: no check), taken by the queue,
        with a build of the default stages in `configurations`."""
        store = open_store(root)
        submission = requests.Submission(component=component, version=version, commit="a" * 40, commit_given=True,
                                         archive_url=None, strip_prefix=None, configuration=None,
                                         requested_by=requested_by)
        plan = [StagePlan(spec, tuple(configurations)) for spec in DEFAULT_STAGES]
        with store.transaction() as tx:
            request, _, _ = requests.queue(tx, submission)
            request = requests.start(tx, request)
            requests.building(tx, request, base_commit=BASE, candidate_commit=CANDIDATE)
            build = pipeline.create_build(tx, request, BASE, CANDIDATE, plan)
            request = tx.request(request.id)
        ctx = RunContext(checkout=root, config=load_config(root / "convoy.yaml"), store=store, meter=Meter(), pool_check=None)
        return cls(root, store, request, BuildRunner(ctx, request, build, root))

    def stage(self, name: str) -> Stage:
        with self.store.read() as tx:
            return next(s for s in tx.stages(self.runner.build.id) if s.name == name)

    def tasks(self, name: str) -> list[Task]:
        with self.store.read() as tx:
            return tx.tasks(stage_id=self.stage(name).id)

    def start_task(self, name: str) -> Task:
        """Stage `name` starts (STAGE_START), and its first task runs: BUILDING, its log, TASK_START."""
        stage = self.runner._start_stage(self.stage(name))
        task = self.tasks(name)[0]
        log_path, bep_path = log_paths(self.root, self.request.id, self.runner.build.number, name, task.configuration)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_path.write_text(f"INFO: running {name} for {task.configuration}\n")
        with self.store.transaction() as tx:  # what tasks.TaskRunner writes as Bazel starts
            task = tx.update_task(task.id, state=TaskState.BUILDING, slot=0, started_at=now() - 12.0, runs=1,
                                  log_path=str(log_path), bep_path=str(bep_path))
            tx.add_event(models.TASK_START, request_id=self.request.id, build_id=self.runner.build.id,
                         stage_id=stage.id, task_id=task.id,
                         data={"stage": name, "configuration": task.configuration, "slot": 0, "run": 1,
                               "log_path": str(log_path)})
        return task

    def finish_task(self, name: str, *, passed: bool, targets: Sequence[TargetOutcome] = (),
                    detail: Optional[str] = None) -> None:
        """The running task of stage `name` ends (TaskRunner.finish), then the stage (STAGE_COMPLETE)."""
        stage = self.stage(name)
        for task in self.tasks(name):
            if task.state == TaskState.BUILDING:
                self.runner.tasks.finish(stage, task, state=TaskState.SUCCEEDED if passed else TaskState.FAILED,
                                         outcome="PASSED" if passed else "TESTS_FAILED", exit_code=0 if passed else 3,
                                         targets=targets, detail=detail, duration=12.0)
        self.runner._complete_stage(self.stage(name))

    def pass_stage(self, name: str) -> None:
        self.start_task(name)
        self.finish_task(name, passed=True)

    def reject(self, stage: str, summary: str) -> None:
        """The build failed `stage`: the build ends and the request is rejected (requests.reject)."""
        with self.store.transaction() as tx:
            request = tx.request(self.request.id)
            build = tx.build(self.runner.build.id)
            requests.end_build(tx, request, build, models.BuildState.FAILED, reason=summary, stage=stage)
            requests.reject(tx, request, stage=stage, build=build, summary=summary,
                            logs=self.root / ".convoy" / "logs" / f"request-{request.id}")

    def close(self) -> None:
        self.store.close()
