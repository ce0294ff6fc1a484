"""`affected_only: true` through the real queue: the real Bazel, real git,
`convoy process` as a real process.

A planner bump (rover only) in an integration repository whose stages are
build and integration (affected_only): the build stage builds everything,
the integration task runs plan_to_motion_test alone (telemetry_roundtrip_test
does not depend on the planner), and says so; the query asks the slot's warm
server, which fetches nothing again.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from convoy.models import RequestState

from tests.support.integration import config_text

pytestmark = [pytest.mark.bazel, pytest.mark.slow]

STAGES = """\
stages:
  - {name: build, command: build, timeout: 300}
  - {name: integration, command: test, tag_filter: convoy-integration, affected_only: true, timeout: 300}
"""
PLAN = "//integration:plan_to_motion_test"
HUB_FETCHED = "SHA256 (file:"  # what the hub's repository rule prints each time it runs


def test_a_planner_bump_runs_only_the_test_that_needs_the_planner(make_integration):
    it = make_integration("affected-only", config=config_text(stages=STAGES))
    request_id = it.submit("--component=planner", "--version=v2.2.0", "--requested_by=issue-10")
    run = it.process("--all")
    assert run.code == 0, run
    shown = it.show(request_id)
    assert it.request(request_id).state == RequestState.MERGED, shown
    (build,) = shown["builds"]
    tasks = {stage["name"]: stage["tasks"] for stage in build["stages"]}
    assert [t["configuration"] for t in tasks["integration"]] == ["rover"]  # only rover has a planner
    (task,) = tasks["integration"]
    assert [t["label"] for t in task["targets"]] == [PLAN], task
    assert task["outcome"] == "PASSED"
    assert task["detail"].startswith("1 test passed; affected only: 1 of 2 test targets (query "), task["detail"]
    assert build["stages"][0]["tasks"][0]["detail"].startswith("built "), build  # the build stage: everything

    start = next(e for e in it.events(request_id) if e.type == "TASK_START" and e.data["stage"] == "integration")
    assert start.data["affected"]["targets"] == [PLAN] and start.data["affected"]["components"] == ["planner"]
    assert start.data["affected"]["total"] == 2 and start.data["affected"]["fallback"] is None
    # the build task ran on the same slot with the same repository environment: nothing is fetched again
    (build_task,) = tasks["build"]
    assert build_task["slot"] == task["slot"]
    assert HUB_FETCHED in Path(build_task["log_path"]).read_text()  # the first command of the slot fetched it
    query_log = Path(task["log_path"]).with_suffix(".query.log").read_text()
    assert "# exit: 0" in query_log and HUB_FETCHED not in query_log, query_log
    assert HUB_FETCHED not in Path(task["log_path"]).read_text()
