"""convoy.affected: which tests of a stage depend on a component whose pin moved.

- the pure parts: the changed components of a configuration between two
  locks, the stage's target patterns as a query, the tag filter, the detail;
- the query's failures, with a stand-in `bazel` (it hangs, it prints
  something that is not a label);
- the selection by the real Bazel on a copy of the sample (local components):
  planner in rover, firmware in rover and drone, the tag filter, a negative
  pattern, a component without a repository;
- the hook in convoy.tasks, with run_bazel's stand-in: the selected labels
  run, none selected runs nothing (NO_TESTS), a fallback runs the stage's
  targets, and the detail and TASK_START say so.
"""

from __future__ import annotations

import dataclasses
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from convoy import affected, models
from convoy.affected import Changed, QuerySettings, Selection
from convoy.bazel import BazelResult, Outcome
from convoy.config import StageSpec, parse_config
from convoy.manifest import load_manifest
from convoy.models import TaskState
from convoy.pipeline import BuildResult, BuildRunner, RunContext, construction_plan, create_build
from convoy.store import SQLiteStore
from convoy.timing import Meter

from tests.support import REPO
from tests.support.bazel import OUTPUT_USER_ROOT, make_workspace

PLAN, TELEMETRY, COMPAT, HARDWARE = (f"//integration:{name}" for name in (
    "plan_to_motion_test", "telemetry_roundtrip_test", "protocol_compat_test", "flash_and_drive_test"))
STAGE = StageSpec(name="tests", command="test")  # //integration/..., every tag


def lock(**configurations: dict[str, str]) -> dict:
    """A parsed lock: configuration -> {component: version} (local pins)."""
    return {"configurations": {
        name: {"components": {c: {"source": "local", "version": v, "path": f"c/{c}/{v}"} for c, v in pins.items()}}
        for name, pins in configurations.items()
    }}


BASE = lock(rover={"messages": "v1.4.0", "planner": "v2.1.0"}, drone={"messages": "v1.4.0"})


# --- the pure parts ---------------------------------------------------------------


def test_changed_components_of_one_configuration():
    moved = lock(rover={"messages": "v1.4.0", "planner": "v2.2.0"}, drone={"messages": "v1.4.0"})
    assert affected.changed_in(BASE, moved, "rover") == Changed(("planner",))
    # drone has no planner: nothing of its own moved, so everything is tested and the reason says why
    assert affected.changed_in(BASE, moved, "drone") == Changed((), "no component's pin moved in configuration drone")
    both = lock(rover={"messages": "v1.5.0", "planner": "v2.2.0"}, drone={"messages": "v1.5.0"})
    assert affected.changed_in(BASE, both, "rover").components == ("messages", "planner")
    added = lock(rover={"messages": "v1.4.0", "planner": "v2.1.0"}, drone={"messages": "v1.4.0", "planner": "v2.1.0"})
    assert affected.changed_in(BASE, added, "drone") == Changed(("planner",))  # new in drone: its repository is there


def test_unknown_changes_test_everything():
    assert affected.changed_in(None, BASE, "rover").reason == "the base commit's lock is unreadable"
    assert affected.changed_in(BASE, None, "rover").reason == "the candidate's lock is unreadable"
    gone = lock(rover={"messages": "v1.4.0"}, drone={"messages": "v1.4.0"})
    assert affected.changed_in(BASE, gone, "rover").reason == "planner left configuration rover"
    assert affected.changed_in(BASE, ["not", "a", "lock"], "rover").reason.startswith("the locks cannot be compared")
    selection = affected.select_tests(Path("/nowhere"), STAGE, "rover", Changed((), "the base commit's lock is "
                                                                              "unreadable"), QuerySettings(None))
    assert selection.targets(STAGE) == ("//integration/...",)
    assert selection.detail() == "affected only: the base commit's lock is unreadable; tested everything"
    assert selection.event_data()["selected"] is None and not selection.nothing_to_run


def test_target_patterns_as_a_query():
    assert affected._target_expression(["//integration/..."]) == '"//integration/..."'
    assert affected._target_expression(["//a/...", "-//a/b/...", "//c:d"]) == \
        '(("//a/..." except "//a/b/...") + "//c:d")'
    for bad in ([], ["-//a/..."], ['//a:"x"']):
        with pytest.raises(affected._QueryFailed):
            affected._target_expression(bad)


XML = """<?xml version="1.1" encoding="UTF-8" standalone="no"?>
<query version="2">
  <rule class="py_test" name="//i:a"><list name="tags"><string value="convoy-integration"/></list></rule>
  <rule class="py_test" name="//i:b"><list name="tags"><string value="convoy-integration"/>
    <string value="slow"/></list></rule>
  <rule class="py_test" name="//i:c"><list name="tags"><string value="convoy-hardware"/></list></rule>
  <rule class="py_test" name="//i:m"><list name="tags"><string value="manual"/></list></rule>
  <rule class="py_test" name="//i:n"/>
</query>
"""


def test_the_stage_tag_filter_and_manual_tests():
    assert affected._stage_tests(XML, None, ["//i/..."]) == {"//i:a", "//i:b", "//i:c", "//i:n"}
    assert affected._stage_tests(XML, "convoy-integration", ["//i/..."]) == {"//i:a", "//i:b"}
    assert affected._stage_tests(XML, "convoy-integration,-slow", ["//i/..."]) == {"//i:a"}
    assert affected._stage_tests(XML, "-slow,-convoy-hardware", ["//i/..."]) == {"//i:a", "//i:n"}
    assert affected._stage_tests(XML, "+convoy-hardware,manual", ["//i/..."]) == {"//i:c"}
    assert "//i:m" in affected._stage_tests(XML, None, ["//i/...", "//i:m"])  # named: Bazel runs it
    assert affected._tag_filter(("--keep_going", "--test_tag_filters=a", "--test_tag_filters=b")) == "b"
    with pytest.raises(affected._QueryFailed, match="does not parse"):
        affected._stage_tests("not xml", None, [])


def test_detail_and_event_data():
    some = Selection((PLAN,), 2, 0.31, ("planner",))
    assert some.detail() == "affected only: 1 of 2 test targets (query 0.3 s)"
    assert some.targets(STAGE) == (PLAN,) and not some.nothing_to_run
    assert some.event_data() == {"selected": 1, "total": 2, "query_seconds": 0.31, "components": ["planner"],
                                 "targets": [PLAN], "fallback": None}
    none = Selection((), 1, 0.25, ("controller", "planner"))
    assert none.nothing_to_run
    assert none.detail() == "affected only: no test depends on controller, planner (0 of 1 test targets, query 0.2 s)"
    failed = Selection((), 0, 1.0, ("planner",), "query failed (exit 7: boom)")
    assert failed.detail() == "affected only: query failed (exit 7: boom); tested everything"
    assert failed.targets(STAGE) == ("//integration/...",) and not failed.nothing_to_run


# --- the query's failures, with a stand-in bazel ------------------------------------


def fake_bazel(tmp_path: Path, body: str) -> str:
    path = tmp_path / "bazel"
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def test_a_query_that_hangs_is_cut_off(tmp_path):
    settings = QuerySettings(None, timeout=0.5, bazel=fake_bazel(tmp_path, "exec sleep 30"),
                             log_path=tmp_path / "t.query.log")
    selection = affected.select_tests(tmp_path, STAGE, "rover", Changed(("planner",)), settings)
    assert selection.fallback == "query failed (timed out after 0.5 s)"
    assert selection.targets(STAGE) == STAGE.targets and selection.components == ("planner",)
    assert 0.4 < selection.seconds < 10
    assert "query --noshow_progress --repo_env=CONVOY_CONFIGURATION=rover" in (tmp_path / "t.query.log").read_text()


def test_output_that_is_not_labels_is_not_trusted(tmp_path):
    # the first query (xml) answers one test; the second prints something else
    xml = XML.replace("\n", " ")
    script = f"""case "$*" in *--output=xml*) echo '{xml}' ;; *) echo 'Loading: 3 packages' ;; esac"""
    settings = QuerySettings(None, bazel=fake_bazel(tmp_path, script))
    selection = affected.select_tests(tmp_path, STAGE, "rover", Changed(("planner",)), settings)
    assert selection.fallback == "query failed (it printed 'Loading: 3 packages', not a label)"
    missing = QuerySettings(None, bazel=str(tmp_path / "no-such-bazel"))
    assert affected.select_tests(tmp_path, STAGE, "rover", Changed(("planner",)), missing).fallback.startswith(
        "query failed (")


def test_a_build_file_that_loads_a_changed_component_tests_everything(tmp_path):
    xml = XML.replace("\n", " ")
    script = f"""case "$*" in *--output=xml*) echo '{xml}' ;; *) printf '//i:a\\n@planner//:defs.bzl\\n' ;; esac"""
    settings = QuerySettings(None, bazel=fake_bazel(tmp_path, script))
    selection = affected.select_tests(tmp_path, STAGE, "rover", Changed(("planner",)), settings)
    assert selection.fallback == "a BUILD file of the tests loads @planner//:defs.bzl, which rdeps does not follow"
    assert selection.detail().endswith("which rdeps does not follow; tested everything")
    assert selection.targets(STAGE) == STAGE.targets


def test_the_same_question_on_the_same_commit_asks_bazel_once(tmp_path):
    # the rig gate asks, then the task asks again (convoy.queue.rigs); a third asks about another commit
    xml = XML.replace("\n", " ")
    script = (f"""echo x >> "$(dirname "$0")/calls"; """
              f"""case "$*" in *--output=xml*) echo '{xml}' ;; *) echo '//i:a' ;; esac""")
    settings = QuerySettings(None, bazel=fake_bazel(tmp_path, script), log_path=tmp_path / "task.query.log")
    calls = tmp_path / "calls"
    first = affected.select_tests(tmp_path, STAGE, "rover", Changed(("planner",)), settings, commit="c1" * 20)
    assert first.fallback is None and len(calls.read_text().split()) == 2
    # the task adds flags that do not reach the queries (the disk cache, its platform suffix)
    task = dataclasses.replace(settings, flags=settings.flags + ("--disk_cache=/c", "--platform_suffix=rover"))
    again = affected.select_tests(tmp_path, STAGE, "rover", Changed(("planner",)), task, commit="c1" * 20)
    assert (again.labels, again.total, again.fallback) == (first.labels, first.total, None)
    assert len(calls.read_text().split()) == 2  # not asked again
    assert "answered by the same queries on c1c1c1c1c1" in (tmp_path / "task.query.log").read_text()
    for other in ({"commit": "c2" * 20}, {}):  # another commit; no commit: always asked
        affected.select_tests(tmp_path, STAGE, "rover", Changed(("planner",)), settings, **other)
    affected.select_tests(tmp_path, STAGE, "drone", Changed(("planner",)), settings, commit="c1" * 20)
    affected.select_tests(tmp_path, STAGE, "rover", Changed(("messages",)), settings, commit="c1" * 20)
    other_repositories = dataclasses.replace(settings, flags=("--repo_env=X=1",))  # reaches the queries
    affected.select_tests(tmp_path, STAGE, "rover", Changed(("planner",)), other_repositories, commit="c1" * 20)
    assert len(calls.read_text().split()) == 12


def test_the_task_flags_that_reach_the_query(tmp_path):
    script = 'echo "$@" >> "$(dirname "$0")/args"; exit 2'
    flags = ("--symlink_prefix=/", "--config=hil", "--repo_env=CONVOY_HARDWARE_REMOTE=1",
             "--override_repository=x=/x", "--platform_suffix=rover", "--test_tag_filters=convoy-hardware")
    settings = QuerySettings(tmp_path / "ob", startup_flags=("--max_idle_secs=5",), flags=flags,
                             bazel=fake_bazel(tmp_path, script), secret_env=("X_TOKEN",))
    selection = affected.select_tests(tmp_path, STAGE, "rover", Changed(("planner",)), settings)
    assert selection.fallback == "query failed (exit 2: no message)"
    args = (tmp_path / "args").read_text().split()
    # only what decides the repositories: --config (build: lines) or build options are an error for a query
    assert args[:6] == ["--max_idle_secs=5", f"--output_base={tmp_path / 'ob'}", "query", "--noshow_progress",
                        "--repo_env=CONVOY_CONFIGURATION=rover", "--repo_env=CONVOY_HARDWARE_REMOTE=1"]
    assert "--override_repository=x=/x" in args and "--config=hil" not in args
    assert not [a for a in args if a.startswith(("--symlink_prefix", "--platform_suffix", "--test_tag"))]


# --- the real Bazel on the sample ------------------------------------------------------


@pytest.fixture(scope="module")
def sample_ws(tmp_path_factory):
    """A copy of the sample (local components) and a query on its own output base."""
    base = tmp_path_factory.mktemp("affected-sample")
    ws = make_workspace(base / "ws")
    for name in ("manifest.yaml", "manifest.lock.json", "configurations.bazelrc"):
        shutil.copy2(REPO / "manifests" / name, ws / "manifests" / name)
    shutil.copytree(REPO / "examples" / "components", ws / "examples" / "components",
                    ignore=shutil.ignore_patterns("__pycache__", "bazel-*"))
    startup = (f"--output_user_root={OUTPUT_USER_ROOT}", "--max_idle_secs=120")
    output_base = base / "output-base"
    yield ws, startup, output_base
    subprocess.run(["bazel", *startup, f"--output_base={output_base}", "shutdown"], cwd=ws, capture_output=True,
                   timeout=120, check=False)


def select(sample_ws, configuration: str, components: tuple[str, ...], *, tag_filter=None,
           targets=("//integration/...",)) -> Selection:
    ws, startup, output_base = sample_ws
    flags = ("--keep_going",) + ((f"--test_tag_filters={tag_filter}",) if tag_filter else ())
    settings = QuerySettings(output_base, startup_flags=startup, flags=flags, timeout=300,
                             log_path=output_base.parent / "query.log")
    spec = StageSpec(name="tests", command="test", targets=tuple(targets), tag_filter=tag_filter)
    return affected.select_tests(ws, spec, configuration, Changed(components), settings)


@pytest.mark.bazel
def test_planner_in_rover(sample_ws):
    selection = select(sample_ws, "rover", ("planner",))
    assert selection.fallback is None, (sample_ws[2].parent / "query.log").read_text()
    assert selection.labels == (PLAN, COMPAT) and selection.total == 4  # not telemetry_roundtrip_test, not hardware
    assert selection.detail().startswith("affected only: 2 of 4 test targets (query ")
    assert 0 < selection.seconds < 120


@pytest.mark.bazel
def test_firmware_in_rover_and_drone(sample_ws):
    assert select(sample_ws, "rover", ("firmware",)).labels == (HARDWARE, COMPAT)
    assert select(sample_ws, "drone", ("firmware",)).labels == (HARDWARE, COMPAT)
    # messages reaches every test; two components at once are one query
    assert select(sample_ws, "rover", ("messages",)).labels == (HARDWARE, PLAN, COMPAT, TELEMETRY)
    assert select(sample_ws, "rover", ("controller", "planner")).labels == (HARDWARE, PLAN, COMPAT, TELEMETRY)


@pytest.mark.bazel
def test_the_stage_tag_filter_counts(sample_ws):
    integration = select(sample_ws, "rover", ("planner",), tag_filter="convoy-integration")
    assert (integration.labels, integration.total) == ((PLAN,), 2)
    assert integration.detail().startswith("affected only: 1 of 2 test targets")
    # drone skips plan_to_motion_test (no planner on board): its deps are dropped, so firmware does not reach it
    drone = select(sample_ws, "drone", ("controller",), tag_filter="convoy-integration")
    assert (drone.labels, drone.total) == ((TELEMETRY,), 2)
    without = select(sample_ws, "rover", ("planner",), tag_filter="convoy-integration",
                     targets=("//integration/...", "-" + PLAN))
    assert without.nothing_to_run and without.total == 1
    assert without.detail().startswith("affected only: no test depends on planner (0 of 1 test targets, query ")


@pytest.mark.bazel
def test_a_component_without_a_repository_tests_everything(sample_ws):
    selection = select(sample_ws, "rover", ("nosuch",))
    assert selection.fallback == "query failed (exit 7: No such repository '@nosuch')"
    assert selection.targets(StageSpec(name="t", command="test")) == ("//integration/...",)
    assert selection.detail() == ("affected only: query failed (exit 7: No such repository '@nosuch'); "
                                  "tested everything")
    assert "# exit: 7" in (sample_ws[2].parent / "query.log").read_text()


# --- the hook in convoy.tasks ------------------------------------------------------------

MANIFEST = """\
default_configuration: rover
components:
  messages: {source: local, path: m, version: v1.4.0}
  planner: {source: local, path: p, version: v2.1.0}
configurations:
  rover: {components: [messages, planner]}
"""
CONFIG = """\
parallelism: 1
stages:
  - {name: build, command: build}
  - {name: integration, command: test, tag_filter: convoy-integration, affected_only: true}
"""


class StandIn:
    """run_bazel's stand-in: records the targets, passes or fails."""

    def __init__(self, outcome=Outcome.PASSED):
        self.outcome = outcome
        self.calls = []

    def __call__(self, workspace, command, targets, *, log_path, bep_path, on_start, **kwargs):
        self.calls.append((command, tuple(targets)))
        on_start(4242)
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        Path(log_path).write_text("log\n")
        outcome = self.outcome if command == "test" else Outcome.PASSED
        return BazelResult(outcome=outcome, exit_code=0 if outcome.is_success else 3, duration=0.1,
                           log_path=Path(log_path), bep_path=Path(bep_path), targets=(),
                           detail="2 tests failed: x, y" if not outcome.is_success else "1 test passed")


def run_build(tmp_path, monkeypatch, selection: Selection, bazel: StandIn):
    seen = {}

    def select_tests(worktree, spec, configuration, changed, settings, *, commit=None):
        seen.update(spec=spec, configuration=configuration, changed=changed, settings=settings, commit=commit)
        return selection

    monkeypatch.setattr(affected, "changed_components", lambda checkout, build, c: Changed(("planner",)))
    monkeypatch.setattr(affected, "select_tests", select_tests)
    (tmp_path / "manifest.yaml").write_text(MANIFEST)
    manifest = load_manifest(tmp_path / "manifest.yaml")
    config = parse_config(CONFIG, str(tmp_path / "convoy.yaml"))
    store = SQLiteStore(tmp_path / ".convoy" / "state.db")
    try:
        with store.transaction() as tx:
            request = tx.insert_request(component="planner", version="v2.2.0", requested_by="t")
            build = create_build(tx, request, "b" * 40, "c" * 40, construction_plan(config.stages, manifest, request))
        ctx = RunContext(checkout=tmp_path, config=config, store=store, meter=Meter(), pool_check=None,
                         run_bazel=bazel)
        outcome = BuildRunner(ctx, request, build, tmp_path / "worktree").run()
        with store.read() as tx:
            stage = next(s for s in tx.stages(build.id) if s.name == "integration")
            task = tx.tasks(stage_id=stage.id)[0]
            start = next(e for e in tx.events(request_id=request.id)
                         if e.type == models.TASK_START and e.data["stage"] == "integration")
    finally:
        store.close()
    return outcome, task, start, seen


def test_the_task_runs_the_selected_tests(tmp_path, monkeypatch):
    bazel = StandIn()
    outcome, task, start, seen = run_build(tmp_path, monkeypatch, Selection((PLAN,), 2, 0.4, ("planner",)), bazel)
    assert outcome.result == BuildResult.SUCCEEDED
    assert bazel.calls == [("build", ("//integration/...",)), ("test", (PLAN,))]  # the build stage: everything
    assert task.detail == "1 test passed; affected only: 1 of 2 test targets (query 0.4 s)"
    assert start.data["affected"] == {"selected": 1, "total": 2, "query_seconds": 0.4, "components": ["planner"],
                                      "targets": [PLAN], "fallback": None}
    settings = seen["settings"]
    assert seen["configuration"] == "rover" and seen["changed"] == Changed(("planner",))
    assert seen["commit"] == "c" * 40  # the candidate: an answer the rig gate got for it is reused
    assert settings.output_base == tmp_path / ".convoy" / "bazel" / "slot-0"
    assert "--test_tag_filters=convoy-integration" in settings.flags and settings.timeout == 600
    assert settings.log_path.name == "integration-rover.query.log"


def test_no_selected_test_runs_no_bazel(tmp_path, monkeypatch):
    bazel = StandIn()
    outcome, task, start, _ = run_build(tmp_path, monkeypatch, Selection((), 2, 0.3, ("planner",)), bazel)
    assert outcome.result == BuildResult.SUCCEEDED
    assert bazel.calls == [("build", ("//integration/...",))]
    assert (task.state, task.outcome, task.exit_code) == (TaskState.SUCCEEDED, "NO_TESTS", None)
    assert task.detail == "affected only: no test depends on planner (0 of 2 test targets, query 0.3 s)"
    assert start.data["affected"]["selected"] == 0
    assert "Bazel did not run" in Path(task.log_path).read_text()


def test_a_fallback_tests_everything_and_a_failure_keeps_bazels_detail(tmp_path, monkeypatch):
    bazel = StandIn(Outcome.TESTS_FAILED)
    reason = "query failed (exit 7: No such repository '@planner')"
    outcome, task, start, _ = run_build(tmp_path, monkeypatch, Selection((), 0, 0.5, ("planner",), reason), bazel)
    assert outcome.result == BuildResult.FAILED
    assert bazel.calls[-1] == ("test", ("//integration/...",))
    assert task.detail == f"2 tests failed: x, y; affected only: {reason}; tested everything"
    assert start.data["affected"]["fallback"] == reason and start.data["affected"]["selected"] is None
