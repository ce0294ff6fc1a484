"""The batch queue end to end: real git, the real Bazel, `convoy process` as a real process.

The integration repository of test_speculative (`window_it`), in batch mode
(each test sets batch_size and window in the checkout's convoy.yaml), the
stages build, integration and hardware. controller v1.3.0 breaks drone's
hardware test, flash_and_drive_test, which depends on controller, firmware
and messages (not on planner). Each test checks with `assert_green` that
main moved only to candidates that passed, built on main as it was:

- all pass: three requests, one candidate, one commit, one tag, notes naming each;
- the build graph names the culprit in one step: a batch of controller
  v1.3.0 and planner is split into controller alone and planner; the batch
  behind it is built again on what merged;
- a middle request fails, found by bisection: messages, controller and
  planner; the graph clears planner, and [messages, controller] is bisected;
- a group (messages + planner, one request) in a batch with controller
  v1.3.0: the group is never split, and merges as one tag;
- a cancel in the middle of a batch: the batch is made again without it;
- kills with the window full (two batches in flight), after the push and
  after the tag: each next process resumes; nothing merges or tags twice.
"""

from __future__ import annotations

import json

import pytest

from convoy.models import RequestState

from tests.support.integration import Integration
from tests.support.window import assert_green, cancel_while_held, kill_with_the_window_full, submit, tip, use_mode

pytestmark = [pytest.mark.bazel, pytest.mark.slow]

BAD = ("controller", "v1.3.0")


@pytest.fixture(scope="module")
def it(window_it) -> Integration:
    return use_mode(window_it, "batch", window=2, batch_size=3)


def process(it: Integration):
    run = it.process("--all")
    assert run.code == 0, run
    return run


def test_all_pass_one_commit_one_tag(it):
    use_mode(it, "batch", window=2, batch_size=3)
    since = tip(it)
    ids = [submit(it, "messages", "v1.5.5"), submit(it, "planner", "v2.2.5"), submit(it, "controller", "v1.2.4")]
    process(it)
    assert_green(it, since, [ids])
    release = [e for e in it.events(ids[0]) if e.type == "RELEASE_TAGGED"]
    assert len(release) == 1
    for request_id in ids:  # the notes name every request
        assert f"#{request_id}" in release[0].data["notes"] or f"request {request_id}" in release[0].data["notes"]
    # so do the release's NOTES.md and its provenance statement (every release has them)
    published = it.checkout / ".convoy" / "releases" / release[0].data["tag"]
    statement = json.loads((published / "provenance.intoto.json").read_text())
    assert [r["id"] for r in statement["predicate"]["buildDefinition"]["externalParameters"]["requests"]] == ids
    notes = (published / "NOTES.md").read_text()
    assert all(f"request {request_id} by" in notes for request_id in ids), notes


def test_the_build_graph_names_the_culprit_in_one_step(it):
    use_mode(it, "batch", window=2, batch_size=2)
    since = tip(it)
    bad, planner, messages = submit(it, *BAD), submit(it, "planner", "v2.2.6"), submit(it, "messages", "v1.5.6")
    run = process(it)
    assert "split: build graph: //integration:flash_and_drive_test depends on controller" in run.out
    rejected = it.request(bad)
    assert rejected.state == RequestState.REJECTED
    assert "found by build graph" in rejected.detail and "stage hardware failed in drone" in rejected.detail
    assert it.show(bad)["request"]["detail"] == rejected.detail  # convoy show says how it was found
    assert "bisection" not in run.out  # one step: no halves were tested
    assert_green(it, since, [[planner], [messages]])
    assert len(it.show(messages)["builds"]) >= 2  # built on the failed batch first, then again


def test_a_middle_request_fails_found_by_bisection(it):
    use_mode(it, "batch", window=2, batch_size=3)
    since = tip(it)
    messages, bad, planner = submit(it, "messages", "v1.5.7"), submit(it, *BAD), submit(it, "planner", "v2.2.7")
    run = process(it)
    assert "bisection" in run.out
    rejected = it.request(bad)
    assert rejected.state == RequestState.REJECTED and "found by bisection" in rejected.detail
    assert it.request(messages).state == it.request(planner).state == RequestState.MERGED
    merged_first = [planner, messages] if it.request(planner).tag < it.request(messages).tag else [messages, planner]
    assert_green(it, since, [[r] for r in merged_first])


def test_a_group_is_never_split_and_merges_as_one_tag(it):
    use_mode(it, "batch", window=2, batch_size=2)
    since = tip(it)
    group = it.submit("--bump=messages=v1.5.8", "--bump=planner=v2.2.8")
    bad = submit(it, *BAD)
    process(it)
    assert it.request(bad).state == RequestState.REJECTED
    assert_green(it, since, [[group]])
    notes = [e for e in it.events(group) if e.type == "RELEASE_TAGGED"][0].data["notes"]
    assert "messages" in notes and "v1.5.8" in notes and "planner" in notes and "v2.2.8" in notes
    tag = it.request(group).tag
    statement = json.loads((it.checkout / ".convoy" / "releases" / tag / "provenance.intoto.json").read_text())
    [request] = statement["predicate"]["buildDefinition"]["externalParameters"]["requests"]
    assert [(b["component"], b["version"]) for b in request["bumps"]] == [("messages", "v1.5.8"),
                                                                          ("planner", "v2.2.8")]


def test_a_cancel_in_the_middle_of_a_batch(it, tmp_path):
    use_mode(it, "batch", window=2, batch_size=3)
    since = tip(it)
    first, middle, last = (submit(it, "messages", "v1.5.9"), submit(it, "planner", "v2.2.9"),
                           submit(it, "controller", "v1.2.5"))
    cancel_while_held(it, tmp_path, middle,
                      lambda: it.request(first).phase is not None and it.request(first).phase.value == "building",
                      "the batch's build")
    assert_green(it, since, [[first, last]])


def test_kills_with_two_batches_in_flight(it, tmp_path):
    use_mode(it, "batch", window=2, batch_size=2)
    since = tip(it)
    ids = [submit(it, "messages", "v1.5.0"), submit(it, "planner", "v2.2.0"), submit(it, "controller", "v1.2.6")]
    kill_with_the_window_full(it, tmp_path)
    for failpoint in ("after_push", "after_tag"):
        killed = it.process("--all", failpoint=failpoint)
        assert killed.code == -9, (failpoint, killed)
    process(it)
    assert_green(it, since, [ids[:2], ids[2:]])
    released = [e for e in it.events() if e.type == "RELEASE_TAGGED" and e.request_id in ids]
    assert len(released) == 2  # one release per batch, never two
