"""Groups and batches in the candidate, the construction plan and the
release: several bumps tested, merged and tagged as one.

- The candidate of a group, or of a batch of requests, applies every bump
  in order, re-locks once and makes one commit ("Bump messages to v1.5.0,
  planner to v2.2.0 (request 7)" / "(requests 3, 4)"), kept under each
  request's ref; a bump that does not apply rejects the whole candidate.
- The construction plan runs the union of the bumps' configurations.
- End to end (real Bazel, `convoy process` as a real process, the serial
  queue): a group merges as ONE commit with ONE tag whose notes name both
  bumps; a group with one bad bump (planner v2.4.0: its build fails) is
  rejected as a whole and main does not move.
"""

from __future__ import annotations

import dataclasses
import json

import pytest

from convoy import candidate as cand
from convoy import models
from convoy.config import parse_config
from convoy.manifest import load_manifest
from convoy.models import RequestState
from convoy.pipeline import affected_configurations, construction_plan
from convoy.release import release_notes

from tests.support.integration import Integration, config_text

FAST_STAGES = """\
stages:
  - {name: build, command: build, timeout: 300}
  - {name: integration, command: test, tag_filter: convoy-integration, timeout: 300}
"""


@pytest.fixture(scope="module")
def it(make_integration) -> Integration:
    return make_integration("groups-queue", config_text(stages=FAST_STAGES))


def cancel_queued(it: Integration, *ids: int) -> None:
    for request_id in ids:
        if it.request(request_id).state == RequestState.QUEUED:
            assert it.convoy("cancel", str(request_id)).code == 0


def pins(worktree) -> dict[str, str]:
    manifest = load_manifest(worktree / cand.MANIFEST)
    return {c: manifest.resolved("rover")[c].version for c in ("messages", "planner", "controller")}


def git(it: Integration, *args: str) -> str:
    return it.git(*args)


def test_the_candidate_of_a_group_and_of_a_batch(it):
    tip = cand.fetch_branch(it.checkout, "origin", "main")
    group_id = it.submit("--bump=messages=v1.5.0", "--component=planner", "--version=v2.2.0",
                         "--requested_by=ci@release")
    group = it.request(group_id)
    assert group.components == ("planner", "messages")
    made = cand.make_candidate(it.checkout, group, tip)
    subject, body = git(it, "log", "-1", "--format=%s%n%b", made.commit).split("\n", 1)
    assert subject == f"Bump planner to v2.2.0, messages to v1.5.0 (request {group_id})"
    assert body.strip().splitlines() == [
        f"planner v2.2.0 at {it.tag_commit('planner', 'v2.2.0')} (request {group_id}, by ci@release)",
        f"messages v1.5.0 at {it.tag_commit('messages', 'v1.5.0')} (request {group_id}, by ci@release)",
    ]
    assert pins(made.worktree) == {"messages": "v1.5.0", "planner": "v2.2.0", "controller": "v1.2.0"}
    assert git(it, "rev-parse", f"refs/convoy/requests/{group_id}") == made.commit
    assert git(it, "rev-parse", f"{made.commit}^") == tip  # one commit
    cancel_queued(it, group_id)

    # A batch: two requests (one of them a group) in one candidate.
    first = it.request(it.submit("--component=controller", "--version=v1.3.0", "--requested_by=a"))
    second = it.request(it.submit("--bump=messages=v1.5.0", "--bump=planner=v2.3.0", "--requested_by=b"))
    batch = cand.make_candidate(it.checkout, [first, second], tip, lane=1)
    assert batch.worktree == cand.worktree_path(it.checkout, 1)
    subject, body = git(it, "log", "-1", "--format=%s%n%b", batch.commit).split("\n", 1)
    assert subject == (f"Bump controller to v1.3.0, messages to v1.5.0, planner to v2.3.0 "
                       f"(requests {first.id}, {second.id})")
    assert [line.split(" at ")[0] for line in body.strip().splitlines()] == [
        "controller v1.3.0", "messages v1.5.0", "planner v2.3.0"]
    assert pins(batch.worktree) == {"messages": "v1.5.0", "planner": "v2.3.0", "controller": "v1.3.0"}
    for request in (first, second):
        assert git(it, "rev-parse", f"refs/convoy/requests/{request.id}") == batch.commit
    # One request of one bump: the message as it always was.
    single = cand.make_candidate(it.checkout, [first], tip)
    assert git(it, "log", "-1", "--format=%s", single.commit) == f"Bump controller to v1.3.0 (request {first.id})"
    cancel_queued(it, first.id, second.id)


def test_a_bump_that_does_not_apply_rejects_the_whole_candidate(it):
    tip = cand.fetch_branch(it.checkout, "origin", "main")
    group_id = it.submit("--bump=messages=v1.5.0", "--bump=planner=v2.2.0")
    group = it.request(group_id)
    broken = models.RequestBump("planner", "v2.2.0", configuration="drone")  # drone has no planner
    with pytest.raises(cand.CandidateRejected) as rejected:
        cand.make_candidate(it.checkout, dataclasses.replace(group, bumps=(broken,)), tip)
    assert str(rejected.value).startswith(
        f"the bump of planner v2.2.0 [drone] (request {group_id}) does not apply to manifests/manifest.yaml: ")
    # Nothing to change only if the whole edit changes nothing.
    pinned = dataclasses.replace(group, version="v1.4.0", commit=None,
                                 bumps=(models.RequestBump("planner", "v2.1.0"),))
    with pytest.raises(cand.CandidateRejected, match=(
            "nothing to change: manifests/manifest.yaml at .* already pins messages v1.4.0 \\+ planner v2.1.0")):
        cand.make_candidate(it.checkout, pinned, tip)
    half = dataclasses.replace(group, version="v1.4.0", commit=None)
    assert pins(cand.make_candidate(it.checkout, half, tip).worktree)["planner"] == "v2.2.0"
    cancel_queued(it, group_id)


def test_the_plan_of_a_group_or_a_batch_is_the_union_of_its_bumps(it):
    manifest = load_manifest(it.checkout / "manifests" / "manifest.yaml")
    config = parse_config(FAST_STAGES, str(it.checkout / "convoy.yaml"))
    planner = it.request(it.submit("--component=planner", "--version=v2.2.0"))
    assert affected_configurations(manifest, planner) == ("rover",)
    assert affected_configurations(manifest, "planner", None) == ("rover",)  # the old call, as it was
    assert affected_configurations(manifest, "messages", "drone") == ("drone",)
    scoped = it.request(it.submit("--component=firmware", "--version=v2.9.4", "--configuration=drone",
                                  "--bump=planner=v2.3.0"))
    assert affected_configurations(manifest, scoped) == ("drone", "rover")
    controller = it.request(it.submit("--component=controller", "--version=v1.3.0"))
    assert affected_configurations(manifest, [planner, controller]) == ("drone", "rover")
    plan = construction_plan(config.stages, manifest, [planner], changed=frozenset({"rover"}))
    assert [(p.configurations, p.unchanged) for p in plan] == [(("rover",), ())] * 2
    plan = construction_plan(config.stages, manifest, scoped, changed=frozenset({"rover"}))
    assert [(p.configurations, p.unchanged) for p in plan] == [(("rover",), ("drone",))] * 2
    cancel_queued(it, planner.id, scoped.id, controller.id)


def test_release_notes_list_the_requests_only_when_given():
    single = release_notes("v1", [], request_line="x (request 1)", test_summary=["build: ok"])
    assert single == ("v1: x (request 1)\n\nComponents changed since the start:\n  (none)\n\nTests:\n"
                      "  build: ok\n")
    group = release_notes("v1", [], request_line="a + b (request 1)", test_summary=[],
                          request_lines=["request 1 by ci:", "  a", "  b"])
    assert group.splitlines()[:6] == ["v1: a + b (request 1)", "", "Requests:", "  request 1 by ci:", "    a",
                                      "    b"]


@pytest.mark.bazel
@pytest.mark.slow
def test_a_group_merges_as_one_commit_and_one_tag_and_a_bad_group_is_rejected_whole(it):
    before_main, before_tags = it.origin("rev-parse", "main"), it.origin_tags()
    good = it.submit("--bump=messages=v1.5.0", "--bump=planner=v2.2.0", "--requested_by=ci@release")
    run = it.process("--all")
    assert run.code == 0, run
    request = it.request(good)
    assert (request.state, request.phase) == (models.RequestState.MERGED, models.Phase.TAGGED), run
    assert it.origin("rev-list", f"{before_main}..main").split() == [request.candidate_commit]  # ONE commit
    assert it.origin("log", "-1", "--format=%s", "main") == (
        f"Bump messages to v1.5.0, planner to v2.2.0 (request {good})")
    new_tags = {t: c for t, c in it.origin_tags().items() if t not in before_tags}
    assert new_tags == {request.tag: request.candidate_commit}  # ONE tag
    assert (it.origin_pin("rover", "messages"), it.origin_pin("rover", "planner"),
            it.origin_pin("drone", "messages")) == ("v1.5.0", "v2.2.0", "v1.5.0")
    [release] = it.show(good)["releases"]
    notes = release["notes"].splitlines()
    assert notes[0] == (f"{request.tag}: messages v1.4.0 -> v1.5.0 + planner v2.1.0 -> v2.2.0 "
                        f"(request {good}, by ci@release)")
    assert notes[2:6] == [
        "Requests:", f"  request {good} by ci@release:",
        f"    messages v1.4.0 -> v1.5.0, commit {it.tag_commit('messages', 'v1.5.0')[:12]}",
        f"    planner v2.1.0 -> v2.2.0, commit {it.tag_commit('planner', 'v2.2.0')[:12]}",
    ]
    assert "  rover/planner: v2.1.0" in release["notes"] and "  drone/messages: v1.4.0" in release["notes"]
    assert it.origin("tag", "-l", "--format=%(contents)", request.tag).splitlines()[0] == notes[0]
    [tagged] = [e for e in it.events(good) if e.type == models.RELEASE_TAGGED]
    assert [b["component"] for b in tagged.data["bumps"]] == ["planner"]

    # One bad bump (planner v2.4.0's BUILD needs a missing target) rejects the whole group.
    merged_main, merged_tags = it.origin("rev-parse", "main"), it.origin_tags()
    bad = it.submit("--bump=controller=v1.3.0", "--bump=planner=v2.4.0")
    run = it.process("--all")
    assert run.code == 0, run
    rejected = it.request(bad)
    assert rejected.state == models.RequestState.REJECTED, run
    assert (it.origin("rev-parse", "main"), it.origin_tags()) == (merged_main, merged_tags)
    [event] = [e for e in it.events(bad) if e.type == models.REQUEST_REJECTED]
    assert event.data["stage"] == "build" and event.data["component"] == "controller"
    assert [(b["component"], b["version"]) for b in event.data["bumps"]] == [("planner", "v2.4.0")]
    assert [f["configuration"] for f in event.data["failures"]] == ["rover"]
    [build] = it.show(bad)["builds"]
    assert {t["configuration"] for s in build["stages"] for t in s["tasks"]} == {"drone", "rover"}
    status = json.loads(it.convoy("status", "--json").out)
    assert [r["state"] for r in status if r["id"] in (good, bad)] == ["merged", "rejected"]
