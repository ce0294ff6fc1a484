"""The construction plan and its run, with a stand-in for Bazel: stage order, tasks
in parallel on their preferred slots, a failed stage skips the rest, an
infrastructure error stops the siblings, a resumed build keeps what finished,
the pool check seam. (Which pools a stage needs: tests/lab/test_stage.py.)"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from convoy import models
from convoy.bazel import BazelResult, Outcome
from convoy.bep import TargetResult
from convoy.config import parse_config
from convoy.manifest import load_manifest
from convoy.models import StageState, TaskState
from convoy.pipeline import BuildResult, BuildRunner, RunContext, construction_plan, create_build
from convoy.store import SQLiteStore
from convoy.timing import Meter

MANIFEST = """\
default_configuration: rover
components:
  messages: {source: local, path: m, version: v1.4.0}
  planner: {source: local, path: p, version: v2.1.0}
configurations:
  rover: {components: [messages, planner]}
  drone: {components: [messages]}
  boat: {components: [messages]}
"""

CONFIG = """\
parallelism: 2
bazel: {flags: [--keep_going]}
stages:
  - {name: build, command: build}
  - {name: integration, command: test, tag_filter: convoy-integration}
  - {name: hardware, command: test, tag_filter: convoy-hardware, check_pools: true, flags: [--config=hil]}
  - {name: lint, command: test, tag_filter: lint, per_configuration: false}
"""


class FakeBazel:
    """run_bazel's stand-in: outcome per (stage tag or command, configuration)."""

    def __init__(self, outcomes=None, delay=0.05):
        self.outcomes = outcomes or {}
        self.delay = delay
        self.calls = []
        self.lock = threading.Lock()
        self.running = 0
        self.most = 0

    def __call__(self, workspace, command, targets, *, log_path, bep_path, flags, startup_flags, output_base,
                 repo_env, timeout, cancel, on_start, secret_env=(), pass_env=()):
        configuration = repo_env["CONVOY_CONFIGURATION"]
        stage = next((f.split("=")[1] for f in flags if f.startswith("--test_tag_filters=")), command)
        with self.lock:
            self.calls.append({"stage": stage, "configuration": configuration, "flags": tuple(flags),
                               "output_base": Path(output_base), "workspace": workspace, "targets": targets})
            self.running += 1
            self.most = max(self.most, self.running)
        on_start(4242)
        outcome = self.outcomes.get((stage, configuration), Outcome.PASSED)
        deadline = time.monotonic() + getattr(self, "delays", {}).get((stage, configuration), self.delay)
        while time.monotonic() < deadline:
            if cancel.is_set():
                outcome = Outcome.INTERRUPTED
                break
            time.sleep(0.005)
        with self.lock:
            self.running -= 1
        targets = ()
        if outcome == Outcome.TESTS_FAILED:
            targets = (TargetResult("//integration:t", "failed", log_paths=("/nowhere/test.log",)),)
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        Path(log_path).write_text("log\n")
        return BazelResult(outcome=outcome, exit_code=0, duration=self.delay, log_path=Path(log_path),
                           bep_path=Path(bep_path), targets=targets, detail=f"{outcome.name.lower()} detail")


@pytest.fixture
def world(tmp_path):
    (tmp_path / "manifest.yaml").write_text(MANIFEST)
    manifest = load_manifest(tmp_path / "manifest.yaml")
    store = SQLiteStore(tmp_path / ".convoy" / "state.db")
    yield tmp_path, manifest, store
    store.close()


def start_build(world, component="messages", scope=None, config_text=CONFIG):
    root, manifest, store = world
    config = parse_config(config_text, str(root / "convoy.yaml"))
    with store.transaction() as tx:
        request = tx.insert_request(component=component, version="v9.0.0", requested_by="t", configuration=scope)
        plan = construction_plan(config.stages, manifest, request)
        build = create_build(tx, request, "b" * 40, "c" * 40, plan)
    return config, request, build


def run(world, config, request, build, bazel, pool_check=None):
    root, _, store = world
    ctx = RunContext(checkout=root, config=config, store=store, meter=Meter(), pool_check=pool_check,
                     run_bazel=bazel)
    return BuildRunner(ctx, request, build, root / "worktree").run()


def task_states(store, build):
    with store.read() as tx:
        return {(s.name, t.configuration): t.state for s in tx.stages(build.id) for t in tx.tasks(stage_id=s.id)}


def test_plan_has_a_task_per_affected_configuration(world):
    root, manifest, store = world
    _, _, build = start_build(world)
    assert set(task_states(store, build)) == {
        (stage, cfg) for stage in ("build", "integration", "hardware") for cfg in ("boat", "drone", "rover")
    } | {("lint", "rover")}  # per_configuration: false runs once, in the default configuration
    _, _, planner = start_build(world, component="planner")
    assert {cfg for _, cfg in task_states(store, planner)} == {"rover"}
    _, _, scoped = start_build(world, scope="drone")
    assert {cfg for stage, cfg in task_states(store, scoped) if stage != "lint"} == {"drone"}


def test_all_pass_in_order_on_preferred_slots(world):
    config, request, build = start_build(world)
    bazel = FakeBazel(delay=0.1)
    outcome = run(world, config, request, build, bazel)
    assert outcome.result == BuildResult.SUCCEEDED
    stages = [c["stage"] for c in bazel.calls]
    assert stages == sorted(stages, key=["build", "convoy-integration", "convoy-hardware", "lint"].index)
    assert bazel.most == 2  # two slots
    root = world[0]
    for call in bazel.calls:
        assert call["workspace"] == root / "worktree" and call["targets"] == ("//integration/...",)
    slots = {(c["stage"], c["configuration"]): c["output_base"].name for c in bazel.calls}
    # sorted configurations boat, drone, rover -> slots 0, 1, 0; a busy preferred slot gives way
    assert slots[("build", "drone")] == "slot-1"
    assert set(slots.values()) == {"slot-0", "slot-1"}
    disk_cache = f"--disk_cache={root / '.convoy/cache/bazel-disk'}"
    hardware = next(c for c in bazel.calls if c["stage"] == "convoy-hardware")
    assert hardware["flags"] == ("--symlink_prefix=/", "--keep_going", "--test_tag_filters=convoy-hardware",
                                 "--config=hil", f"--platform_suffix={hardware['configuration']}", disk_cache)
    build_call = next(c for c in bazel.calls if c["stage"] == "build")
    assert build_call["flags"] == ("--symlink_prefix=/", "--keep_going",
                                   f"--platform_suffix={build_call['configuration']}", disk_cache)
    assert set(task_states(world[2], build).values()) == {TaskState.SUCCEEDED}
    with world[2].read() as tx:
        assert {t.pid for t in tx.tasks(build_id=build.id)} == {None}  # recorded while running, cleared after


def test_a_failed_stage_ends_the_build_and_skips_the_rest(world):
    config, request, build = start_build(world)
    bazel = FakeBazel({("convoy-integration", "drone"): Outcome.TESTS_FAILED})
    outcome = run(world, config, request, build, bazel)
    assert (outcome.result, outcome.stage) == (BuildResult.FAILED, "integration")
    [failure] = outcome.failures
    assert failure.configuration == "drone" and failure.targets[0]["label"] == "//integration:t"
    states = task_states(world[2], build)
    assert states[("integration", "drone")] == TaskState.FAILED
    assert states[("integration", "boat")] == states[("integration", "rover")] == TaskState.SUCCEEDED
    assert {states[k] for k in states if k[0] in ("hardware", "lint")} == {TaskState.SKIPPED}
    with world[2].read() as tx:
        assert [s.state for s in tx.stages(build.id)] == [
            StageState.SUCCEEDED, StageState.FAILED, StageState.SKIPPED, StageState.SKIPPED]
        assert models.STAGE_START not in [e.type for e in tx.events() if e.stage_id == tx.stages(build.id)[2].id]


def test_an_infrastructure_error_stops_the_siblings(world):
    config, request, build = start_build(world, config_text=CONFIG.replace("parallelism: 2", "parallelism: 3"))
    bazel = FakeBazel({("build", "boat"): Outcome.INFRA_ERROR}, delay=10)
    bazel.delays = {("build", "boat"): 0.05}
    started = time.monotonic()
    outcome = run(world, config, request, build, bazel)
    assert time.monotonic() - started < 5  # the siblings did not run their 10 s
    assert (outcome.result, outcome.stage) == (BuildResult.INFRA, "build")
    assert outcome.reason.startswith("build/boat: INFRA_ERROR (infra_error detail)")
    with world[2].read() as tx:
        outcomes = {t.configuration: t.outcome for t in tx.tasks(build_id=build.id) if t.outcome}
    assert outcomes == {"boat": "INFRA_ERROR", "drone": "INTERRUPTED", "rover": "INTERRUPTED"}


def test_a_resumed_build_keeps_finished_tasks(world):
    config, request, build = start_build(world)
    store = world[2]
    with store.transaction() as tx:  # as a killed driver left it: build done, integration half done
        build_stage, integration = tx.stages(build.id)[:2]
        tx.update_stage(build_stage.id, state=StageState.SUCCEEDED)
        for task in tx.tasks(stage_id=build_stage.id):
            tx.update_task(task.id, state=TaskState.SUCCEEDED, outcome="PASSED")
        tx.update_stage(integration.id, state=StageState.BUILDING)
        done, *rest = tx.tasks(stage_id=integration.id)
        tx.update_task(done.id, state=TaskState.SUCCEEDED, outcome="PASSED")
        for task in rest:
            tx.update_task(task.id, state=TaskState.READY)
    bazel = FakeBazel()
    assert run(world, config, request, build, bazel).result == BuildResult.SUCCEEDED
    ran = {(c["stage"], c["configuration"]) for c in bazel.calls}
    assert not any(stage == "build" for stage, _ in ran)
    assert ("convoy-integration", done.configuration) not in ran
    assert {("convoy-integration", t.configuration) for t in rest} <= ran


def test_the_pool_check_runs_before_its_stage_and_its_failure_is_infrastructure(world):
    scope, slot = "drone", "slot-0"
    config, request, build = start_build(world, scope=scope)
    calls = []

    def pool_check(workspace, stage, configurations, cfg, output_bases):
        calls.append((stage.name, tuple(configurations), {c: p.name for c, p in output_bases.items()}))
        raise RuntimeError("no healthy worker in pool rigs")

    bazel = FakeBazel()
    outcome = run(world, config, request, build, bazel, pool_check=pool_check)
    assert calls == [("hardware", (scope,), {scope: slot})]  # the output base of the configuration's own slot
    assert outcome.result == BuildResult.INFRA
    assert outcome.reason == "pool check before stage hardware failed: no healthy worker in pool rigs"
    assert not any(c["stage"] == "convoy-hardware" for c in bazel.calls)


def test_a_configuration_gets_the_same_slot_in_every_build(world):
    """Slots are given by the manifest's configurations (boat, drone, rover ->
    slots 0, 1, 0), not by the build's: drone's tasks land on slot 1 in a
    build of drone alone as in one of every configuration, so its output
    base keeps its cached results. Without a readable manifest in the
    worktree, the build's own configurations decide (drone, and rover for the
    lint stage's default configuration -> drone on slot 0)."""
    root, manifest, store = world
    alone = FakeBazel()
    config, request, build = start_build(world, component="messages", scope="drone")
    assert run(world, config, request, build, alone).result == BuildResult.SUCCEEDED
    assert {c["output_base"].name for c in alone.calls if c["configuration"] == "drone"} == {"slot-0"}

    (root / "worktree" / "manifests").mkdir(parents=True)
    (root / "worktree" / "manifests" / "manifest.yaml").write_text(MANIFEST)
    for scope in ("drone", None):
        bazel = FakeBazel()
        config, request, build = start_build(world, component="messages", scope=scope)
        assert run(world, config, request, build, bazel).result == BuildResult.SUCCEEDED
        drone = {c["output_base"].name for c in bazel.calls if c["configuration"] == "drone"}
        assert drone == {"slot-1"}, (scope, bazel.calls)


def test_a_configuration_whose_pins_did_not_move_gets_a_skipped_task_that_never_runs(world):
    root, manifest, store = world
    config = parse_config(CONFIG, str(root / "convoy.yaml"))
    with store.transaction() as tx:
        request = tx.insert_request(component="messages", version="v9.0.0", requested_by="t", configuration=None)
        plan = construction_plan(config.stages, manifest, request, changed=frozenset({"drone"}))
        build = create_build(tx, request, "b" * 40, "c" * 40, plan)
        start = tx.events(request_id=request.id)[-1]
    assert [(p.spec.name, p.configurations, p.unchanged) for p in plan] == [
        ("build", ("drone",), ("boat", "rover")), ("integration", ("drone",), ("boat", "rover")),
        ("hardware", ("drone",), ("boat", "rover")), ("lint", (), ("rover",)),  # the default configuration
    ]
    assert (start.data["configurations"], start.data["unchanged"]) == (["drone"], ["boat", "rover"])
    bazel = FakeBazel(delay=0.01)
    assert run(world, config, request, build, bazel).result == BuildResult.SUCCEEDED
    assert {c["configuration"] for c in bazel.calls} == {"drone"}
    with store.read() as tx:
        tasks = tx.tasks(build_id=build.id)
        stages = tx.stages(build.id)
    assert {t.configuration for t in tasks if t.is_unchanged} == {"boat", "rover"}
    assert all(t.runs == 0 and t.detail == models.UNCHANGED_DETAIL for t in tasks if t.is_unchanged)
    assert {s.name: s.state for s in stages} == dict.fromkeys(["build", "integration", "hardware", "lint"],
                                                              StageState.SUCCEEDED)  # lint: no task ran


def test_without_a_previous_lock_every_affected_configuration_runs(world):
    root, manifest, store = world
    config = parse_config(CONFIG, str(root / "convoy.yaml"))
    with store.transaction() as tx:
        request = tx.insert_request(component="messages", version="v9.0.0", requested_by="t", configuration=None)
    plan = construction_plan(config.stages, manifest, request, changed=None)
    assert [(p.configurations, p.unchanged) for p in plan][0] == (("boat", "drone", "rover"), ())
