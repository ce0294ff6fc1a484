"""The speculative window's rig gate on the real lab.

One integration repository (real git, the real Bazel) whose only stage is
the hardware stage on the session's lab (tests/lab/conftest.py), with
`check_pools: true` and `affected_only: true`; queue.mode speculative with a
window of 2 and one rig in each pool (`pools:`). The head's hardware test
is held (tests/support/window.py's `held_hardware`: the `bazel test` of the
hardware stage waits while a file exists), so the head keeps both rigs.

A planner bump behind it moves nothing the hardware test depends on: at
the gate (convoy.queue.rigs) its rover task needs no rig, so it passes its
hardware stage while the head still holds the rover rig (it is submitted
once the head's tests hold both rigs, so it meets the gate after the head). Were it counted as
needing a rig, it would wait behind the head until the hold is lifted, and
the test would time out. Both then merge in order, each tested exactly as
pushed.
"""

from __future__ import annotations

import pytest

from convoy.models import RequestState

from tests.support.integration import Integration, config_text
from tests.support.lab import LabHandle
from tests.support.window import assert_green, held_hardware, start_process, submit, tip, wait_for

pytestmark = [pytest.mark.bazel, pytest.mark.slow]

STAGES = """\
stages:
  - name: hardware
    command: test
    tag_filter: convoy-hardware
    timeout: 300
    check_pools: true
    affected_only: true
    flags: [--config=hil, "--remote_executor=grpc://127.0.0.1:{port}", --remote_instance_name=convoy]
"""


@pytest.fixture(scope="module")
def it(lab: LabHandle, make_integration) -> Integration:
    text = config_text(stages=STAGES.format(port=lab.port))
    serial = "queue: {mode: serial, poll_interval: 0.1}\n"
    assert serial in text
    text = text.replace(serial, "queue: {mode: speculative, poll_interval: 0.1, window: 2}\n"
                                "pools: {rover-rigs: 1, drone-rigs: 1}\n")
    return make_integration("hil-window", text)


def held_tasks(it: Integration, request_id: int) -> int:
    """The request's hardware tasks that are running (their `bazel test` held)."""
    build = last_build(it, request_id)
    stage = next((s for s in build.get("stages", ()) if s["name"] == "hardware"), {"tasks": ()})
    return sum(1 for t in stage["tasks"] if t["state"] in ("scheduled", "building"))


def last_build(it: Integration, request_id: int) -> dict:
    return it.show(request_id)["builds"][-1] if it.show(request_id)["builds"] else {}


def test_a_candidate_whose_rig_tests_did_not_move_takes_no_rig(it: Integration, tmp_path):
    since = tip(it)
    head = submit(it, "messages", "v1.5.3")  # both configurations: the hardware test depends on it
    env, hold = held_hardware(tmp_path)
    proc = start_process(it, "--all", env=env)  # behind is queued before the window drains
    try:
        wait_for(lambda: held_tasks(it, head) == 2, "the head's hardware tests to hold both rigs", timeout=180)
        behind = submit(it, "planner", "v2.2.3")  # rover only; no hardware test depends on the planner
        wait_for(lambda: last_build(it, behind).get("state") == "succeeded",
                 "the planner's candidate to pass its hardware stage while the head holds the rigs", timeout=180)
        assert hold.exists() and it.request(head).state == RequestState.TESTING  # the head still holds them
        hold.unlink()
        out, _ = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    assert_green(it, since, [[head], [behind]])
    stage = next(s for s in last_build(it, behind)["stages"] if s["name"] == "hardware")
    rover = next(t for t in stage["tasks"] if t["configuration"] == "rover")
    assert "no test depends on planner" in rover["detail"], rover
    assert f"#{behind} hardware (waiting)" not in out  # it never waited at the gate for a rig
