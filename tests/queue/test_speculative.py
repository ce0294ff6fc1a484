"""The speculative queue end to end: real git, the real Bazel, `convoy process` as a real process.

One integration repository (`window_it`, shared with test_batch), queue.mode
speculative with a window of 3, the stages build, integration and hardware.
Each test submits its requests,
runs the queue and checks with `assert_green` that main only moved to
candidates that passed, each built on the commit main was at before it:

- all pass: three requests in flight at once, each built on the one ahead;
- the head fails: controller v1.3.0 (drone's hardware test) is rejected and
  the two behind it, built on its candidate, are built again without it;
- a middle item fails: only what is behind it is built again; what is
  behind it is a group (planner + firmware), merged as one tag;
- a cancel in the middle: the request ends cancelled, the one behind it is
  built again on the head's candidate;
- kills with the window full: `convoy process` is killed (SIGKILL) with
  every item in flight, then right after the head's push, then after its
  tag; each next process resumes, and nothing merges or tags twice.
"""

from __future__ import annotations

import pytest

from convoy.models import RequestState

from tests.support.integration import Integration
from tests.support.window import assert_green, cancel_while_held, kill_with_the_window_full, submit, tip, use_mode

pytestmark = [pytest.mark.bazel, pytest.mark.slow]

BREAKS_HARDWARE = ("controller", "v1.3.0")  # drone's flash_and_drive_test fails


@pytest.fixture(scope="module")
def it(window_it) -> Integration:
    return use_mode(window_it, "speculative", window=3)


def builds(it: Integration, request_id: int) -> list[dict]:
    return it.show(request_id)["builds"]


def test_all_pass_three_in_flight(it):
    since = tip(it)
    ids = [submit(it, "messages", "v1.5.1"), submit(it, "planner", "v2.2.1"), submit(it, "controller", "v1.2.1")]
    run = it.process("--all")
    assert run.code == 0, run
    assert "window 3/3:" in run.out  # three candidates were in flight at once
    assert_green(it, since, [[i] for i in ids])
    for request_id in ids:
        assert len(builds(it, request_id)) == 1  # nothing was built twice


def test_the_head_fails_and_those_behind_are_built_again(it):
    since = tip(it)
    bad = submit(it, *BREAKS_HARDWARE)
    good = [submit(it, "messages", "v1.5.2"), submit(it, "planner", "v2.2.2")]
    run = it.process("--all")
    assert run.code == 0, run
    rejected = it.request(bad)
    assert rejected.state == RequestState.REJECTED and "stage hardware failed in drone" in rejected.detail
    assert_green(it, since, [[i] for i in good])
    first = builds(it, good[0])
    assert first[0]["base_commit"] == rejected.candidate_commit  # first built on the head's candidate
    assert first[-1]["base_commit"] == since  # then again without it


def test_a_middle_item_fails_and_a_group_behind_it_merges_as_one_tag(it):
    since = tip(it)
    head = submit(it, "messages", "v1.5.3")
    bad = submit(it, *BREAKS_HARDWARE)
    tail = it.submit("--bump=planner=v2.2.3", "--bump=firmware=v3.0.2")  # a group: one request
    run = it.process("--all")
    assert run.code == 0, run
    assert it.request(bad).state == RequestState.REJECTED
    assert_green(it, since, [[head], [tail]])
    assert len(builds(it, head)) == 1  # the item ahead of the failure is never rebuilt
    assert builds(it, tail)[-1]["base_commit"] == it.request(head).candidate_commit
    notes = [e for e in it.events(tail) if e.type == "RELEASE_TAGGED"][0].data["notes"]
    assert "planner" in notes and "v2.2.3" in notes and "firmware" in notes and "v3.0.2" in notes


def test_a_cancel_in_the_middle_builds_again_what_was_behind(it, tmp_path):
    since = tip(it)
    head, middle, tail = (submit(it, "messages", "v1.5.4"), submit(it, "planner", "v2.2.4"),
                          submit(it, "controller", "v1.2.2"))
    # the head cannot merge until the middle is cancelled
    out = cancel_while_held(it, tmp_path, middle, lambda: any(b["state"] == "building" for b in builds(it, tail)),
                            "the tail's build")
    assert "cancelled; what was behind it is built again" in out
    assert_green(it, since, [[head], [tail]])
    tail_builds = builds(it, tail)
    assert tail_builds[0]["base_commit"] == it.request(middle).candidate_commit
    assert tail_builds[-1]["base_commit"] == it.request(head).candidate_commit


def test_kills_with_the_window_full_resume_and_nothing_lands_twice(it, tmp_path):
    since = tip(it)
    ids = [submit(it, "messages", "v1.5.0"), submit(it, "planner", "v2.2.0"), submit(it, "controller", "v1.2.3")]
    kill_with_the_window_full(it, tmp_path)
    assert all(it.request(i).state == RequestState.TESTING for i in ids)  # all three were in flight
    for failpoint in ("after_push", "after_tag"):
        killed = it.process("--all", failpoint=failpoint)
        assert killed.code == -9, (failpoint, killed)
        assert any(it.request(i).state == RequestState.TESTING for i in ids), failpoint
    run = it.process("--all")
    assert run.code == 0, run
    assert "resuming request" in run.out or all(it.request(i).state == RequestState.MERGED for i in ids)
    assert_green(it, since, [[i] for i in ids])
    released = [e for e in it.events() if e.type == "RELEASE_TAGGED" and e.request_id in ids]
    assert sorted(e.request_id for e in released) == sorted(ids)  # one release each, never two
