"""Only what a bump changes runs: the end-to-end proof of issue 10.

One integration repository, the real Bazel, real git, `convoy process` as a
real process, four bumps in turn through the serial queue, on one slot
(parallelism 1: both configurations share one Bazel output base):

    #1 planner v2.2.0           only rover includes planner -> drone gets no task at all
    #2 messages v1.5.0          drone pins messages v1.4.0  -> drone's tasks are "unchanged: skipped"
    #3 messages v1.5.0 in drone drone only, on rover's slot
    #4 planner v2.3.0           one test of rover's three needs it -> that test runs; the other two,
                                the hardware one included, come from the cache, although drone ran
                                in the same output base in between

The repository's stages are build, integration and hardware, so rover has
three tests: plan_to_motion_test (planner, controller, messages),
telemetry_roundtrip_test (controller, messages) and the hardware test
flash_and_drive_test (controller, firmware, messages). The ran/cached
counts are read from the build event files Bazel wrote.
"""

from __future__ import annotations

import pytest

from convoy import bep
from convoy.models import RequestState

from tests.support.integration import Integration, config_text

pytestmark = [pytest.mark.bazel, pytest.mark.slow]

STAGES = """\
stages:
  - {name: build, command: build, timeout: 300}
  - {name: integration, command: test, tag_filter: convoy-integration, timeout: 300}
  - {name: hardware, command: test, tag_filter: convoy-hardware, timeout: 300}
"""
PLAN, TELEMETRY, HARDWARE = (f"//integration:{name}" for name in
                             ("plan_to_motion_test", "telemetry_roundtrip_test", "flash_and_drive_test"))


@pytest.fixture(scope="module")
def it(make_integration) -> Integration:
    config = config_text(stages=STAGES)
    assert "parallelism: 2\n" in config
    it = make_integration("only-changed", config=config.replace("parallelism: 2\n", "parallelism: 1\n"))
    manifest = it.checkout / "manifests" / "manifest.yaml"
    text = manifest.read_text()
    pinned = "      firmware: v2.9.4"
    assert pinned in text
    manifest.write_text(text.replace(pinned, pinned + "\n      messages: v1.4.0   # drone stays on messages 1.4"))
    locked = it.convoy("lock")
    assert locked.code == 0, locked
    it.git("add", "manifests")
    it.git("commit", "-q", "-m", "drone pins messages v1.4.0")
    it.git("push", "-q", "origin", "HEAD:main")
    return it


def tasks_of(it: Integration, request_id: int) -> list[dict]:
    """(stage name, task) of the request's only build."""
    builds = it.show(request_id)["builds"]
    assert len(builds) == 1, builds
    return [dict(task, stage=stage["name"]) for stage in builds[0]["stages"] for task in stage["tasks"]]


def bep_tests(tasks: list[dict]) -> dict[str, bool]:
    """Test label -> cached, from the build event files of the tasks that ran."""
    seen: dict[str, bool] = {}
    for task in tasks:
        if task["bep_path"] is None:
            continue
        for target in bep.read_bep(task["bep_path"]).targets:
            if target.status in (bep.PASSED, bep.FAILED, bep.FLAKY, bep.TIMEOUT):
                assert target.label not in seen, target.label  # each test runs in one stage only
                seen[target.label] = target.cached
    return seen


def process_one(it: Integration, component: str, version: str, *scope: str) -> int:
    request_id = it.submit(f"--component={component}", f"--version={version}", "--requested_by=issue-10", *scope)
    run = it.process("--all")
    assert run.code == 0, run
    assert it.request(request_id).state == RequestState.MERGED, it.show(request_id)
    return request_id


def test_only_what_a_bump_changes_runs(it):
    # 1: only rover includes planner: drone gets no task, not even a skipped one.
    first = tasks_of(it, process_one(it, "planner", "v2.2.0"))
    assert {t["configuration"] for t in first} == {"rover"}
    assert {t["state"] for t in first} == {"succeeded"}
    rover_slots = {t["slot"] for t in first}
    assert len(rover_slots) == 1, rover_slots
    assert set(bep_tests(first)) == {PLAN, TELEMETRY, HARDWARE}

    # 2: drone pins messages: its tasks exist only to say so, and no Bazel ran for drone.
    request_id = process_one(it, "messages", "v1.5.0")
    second = tasks_of(it, request_id)
    drone = [t for t in second if t["configuration"] == "drone"]
    assert [t["stage"] for t in drone] == ["build", "integration", "hardware"]
    for task in drone:
        assert (task["state"], task["outcome"], task["runs"], task["bep_path"]) == ("skipped", "UNCHANGED", 0, None)
    build_start = next(e for e in it.events(request_id) if e.type == "BUILD_START")
    assert build_start.data["configurations"] == ["rover"] and build_start.data["unchanged"] == ["drone"]
    assert not [e for e in it.events(request_id) if e.type == "TASK_START" and e.data["configuration"] == "drone"]
    shown = it.convoy("show", str(request_id))
    assert shown.out.count("\n      drone: unchanged: skipped") == 3, shown  # one per stage (and 3 in the notes)
    notes = it.show(request_id)["releases"][0]["notes"]
    assert "hardware / drone: unchanged: skipped" in notes, notes
    rover = [t for t in second if t["configuration"] == "rover"]
    assert bep_tests(rover) == {PLAN: False, TELEMETRY: False, HARDWARE: False}  # messages is in all three
    assert {t["slot"] for t in rover} == rover_slots

    # 3: drone alone, on the same output base as rover.
    third = tasks_of(it, process_one(it, "messages", "v1.5.0", "--configuration=drone"))
    assert {t["configuration"] for t in third} == {"drone"} and {t["slot"] for t in third} == rover_slots
    assert bep_tests(third) == {TELEMETRY: False, HARDWARE: False}  # plan_to_motion_test is rover's only

    # 4: planner again: only plan_to_motion_test runs; the other two come from the cache.
    request_id = process_one(it, "planner", "v2.3.0")
    fourth = tasks_of(it, request_id)
    assert {t["configuration"] for t in fourth} == {"rover"} and {t["slot"] for t in fourth} == rover_slots
    assert bep_tests(fourth) == {PLAN: False, TELEMETRY: True, HARDWARE: True}
    by_stage = {t["stage"]: t["tests"] for t in fourth}
    assert by_stage == {"build": {"ran": 0, "cached": 0}, "integration": {"ran": 1, "cached": 1},
                        "hardware": {"ran": 0, "cached": 1}}
    shown = it.convoy("show", str(request_id)).out
    assert f"{HARDWARE} PASSED (cached)" in shown and f"{TELEMETRY} PASSED (cached)" in shown, shown
    assert f"{PLAN} PASSED (ran " in shown, shown
    notes = it.show(request_id)["releases"][0]["notes"]
    assert "hardware / rover: passed (0 ran, 1 cached)" in notes and f"  {HARDWARE}: passed, cached" in notes, notes
