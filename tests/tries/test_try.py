"""`convoy try` end to end: real git, the real Bazel, one integration repository for the module
(tests in order; stages build and integration only, tests/serve/e2e_support.py's convoy.yaml with
its tokens).

- bad inputs (an unknown component, a commit that is not the component's, a malformed commit, an
  id that is not a try) are the CLI's one-line errors, and queue nothing;
- a try of a breaking commit (messages v1.6.0's: rover's plan_to_motion_test fails) reports failure
  with the failing target, and main, its manifest, its lock and the tags do not move; nothing is
  queued as a request;
- a try of a good commit (messages v1.5.1's, without --version) reports passed; main does not move;
- a queued request goes first: `convoy process --all` merges it, then runs the try on the new main;
- over HTTP: POST /api/tries with the component's token (another component's token: 403), then
  GET /api/tries/{id} shows the result;
- a request submitted while a try runs stops the try (its held Bazel run cancelled), the request is
  merged, then the try runs again and passes.
"""

from __future__ import annotations

import json
import signal
import subprocess

import pytest

from convoy import models
from convoy.models import RequestState

from tests.serve.conftest import start_server, stop_server
from tests.serve.e2e_support import MESSAGES, PLANNER, e2e_config, serve_env
from tests.support.env import isolated_env
from tests.support.integration import Integration
from tests.support.window import held_stage, start_process, wait_for

pytestmark = [pytest.mark.bazel, pytest.mark.slow]

BREAKS = ("messages", "v1.6.0")  # rover's integration test fails
FAILING_TARGET = "//integration:plan_to_motion_test"


@pytest.fixture(scope="module")
def it(make_integration) -> Integration:
    return make_integration("tries", e2e_config())


def frozen(it: Integration) -> dict:
    """What a try must never change: main (origin's and the checkout's), its manifest and lock, the tags."""
    return {"origin": it.origin("rev-parse", "main"), "checkout": it.git("rev-parse", "HEAD"),
            "manifest": it.origin_file("manifests/manifest.yaml"),
            "lock": it.origin_file("manifests/manifest.lock.json"), "tags": it.origin_tags(),
            "local_tags": it.git("tag", "--list")}


def try_(it: Integration, *args: str) -> int:
    run = it.convoy("try", "--json", *args)
    assert run.code == 0, run
    return json.loads(run.out)["id"]


def report(it: Integration, try_id: int) -> dict:
    run = it.convoy("try", f"--show={try_id}", "--json")
    assert run.code == 0, run
    return json.loads(run.out)


def types(it: Integration, request_id: int) -> list[str]:
    return [e.type for e in it.events(request_id)]


def test_bad_inputs_are_one_line_errors_and_queue_nothing(it):
    good = it.tag_commit("messages", "v1.5.0")
    cases = [
        (("--component=nope", f"--commit={good}"), "--component=nope: no such component in "),
        (("--component=messages", "--commit=abc123"),
         "--commit=abc123 is not a commit id (40 lowercase hex digits); pass the full id (git rev-parse <ref>)"),
        (("--component=messages", f"--commit={'0' * 40}"),
         f"component 'messages': commit {'0' * 40} does not exist in "),
        (("--component=planner", f"--commit={good}"), "does not exist in "),  # messages' commit, not planner's
        (("--component=messages",), "--commit is required"),
        (("--component=messages", f"--commit={good}", "--version=1.2"), "--version=1.2 is not a version"),
        (("--component=messages", f"--commit={good}", "--configuration=rover"), "--configuration: a try tests"),
        (("--show=999",), "no try #999 in this checkout"),
    ]
    for args, message in cases:
        run = it.convoy("try", *args)
        assert run.code == 2, (args, run)
        assert message in run.err and run.err.count("\n") == 1, (args, run.err)
    assert it.convoy("status", "--json").out.strip() in ("", "[]")


def test_a_breaking_commit_fails_and_changes_nothing(it):
    before = frozen(it)
    bad = it.tag_commit(*BREAKS)
    tid = try_(it, f"--component={BREAKS[0]}", f"--commit={bad}", f"--version={BREAKS[1]}", "--requested_by=ci@m")
    assert try_(it, f"--component={BREAKS[0]}", f"--commit={bad}", f"--version={BREAKS[1]}") == tid  # the same
    assert json.loads(it.convoy("status", "--json").out) == []  # not a request of the merge queue
    assert report(it, tid)["state"] == "queued"

    run = it.process("--all")
    assert run.code == 0, run
    data = report(it, tid)
    assert (data["state"], data["passed"], data["kind"]) == ("failed", False, "try"), data
    assert data["summary"].startswith("stage integration failed in ")
    failing = {(t["stage"], t["configuration"], t["label"], t["status"]) for t in data["failing_targets"]}
    assert ("integration", "rover", FAILING_TARGET, "failed") in failing
    assert data["request"]["candidate_commit"] and data["request"]["tag"] is None
    assert frozen(it) == before
    assert json.loads(it.convoy("status", "--json").out) == []
    seen = types(it, tid)
    assert seen[:3] == [models.TRY_QUEUED, models.TRY_START, models.BUILD_START] and seen[-1] == models.TRY_FAILED
    assert not {models.REQUEST_REJECTED, models.MANIFEST_UPDATED, models.RELEASE_TAGGED} & set(seen)
    text = it.convoy("try", f"--show={tid}")
    assert text.out.startswith(f"try #{tid}: messages v1.6.0 @ {bad} (a try: nothing is merged or tagged)")
    assert f"{FAILING_TARGET} FAILED" in text.out
    assert it.convoy("show", str(tid)).out.startswith(f"try #{tid}: ")  # convoy show knows a try too


def test_a_good_commit_passes_and_main_does_not_move(it):
    before = frozen(it)
    good = it.tag_commit("messages", "v1.5.1")
    tid = try_(it, "--component=messages", f"--commit={good}")  # no --version: v<current>-try.<commit>
    run = it.process("--all")
    assert run.code == 0, run
    data = report(it, tid)
    assert (data["state"], data["passed"], data["failing_targets"]) == ("passed", True, []), data
    assert data["request"]["version"].endswith(f"-try.{good[:12]}")
    [build] = data["builds"]
    assert build["base_commit"] == before["origin"] and build["state"] == "succeeded"
    assert {s["state"] for s in build["stages"]} == {"succeeded"}
    assert frozen(it) == before
    assert types(it, tid)[-1] == models.TRY_PASSED


def test_a_queued_request_goes_first_then_the_try_runs_on_the_new_main(it):
    good = it.tag_commit("messages", "v1.5.2")
    tid = try_(it, "--component=messages", f"--commit={good}")  # asked first
    rid = it.submit("--component=planner", "--version=v2.2.1")
    run = it.process("--all")
    assert run.code == 0, run
    request = it.request(rid)
    assert request.state == RequestState.MERGED, run
    data = report(it, tid)
    assert data["state"] == "passed", data
    assert data["builds"][-1]["base_commit"] == it.origin("rev-parse", "main") == request.candidate_commit
    events = it.events()
    merged = next(e.id for e in events if e.type == models.MANIFEST_UPDATED and e.request_id == rid)
    started = [e.id for e in events if e.type == models.TRY_START and e.request_id == tid]
    assert len(started) == 1 and merged < started[0]  # the request was merged before the try started
    assert json.loads(it.convoy("show", str(rid), "--json").out)["request"]["kind"] == "request"
    not_a_try = it.convoy("try", f"--show={rid}")
    assert (not_a_try.code, not_a_try.err) == (2, f"convoy: error: #{rid} is a request, not a try; see it with: "
                                                   f"convoy show {rid}\n"), not_a_try


def test_a_try_over_http(it, tmp_path):
    with isolated_env(tmp_path / "home"):
        served = start_server(it.checkout, serve_env(), tmp_path / "serve.log")
    try:
        good = it.tag_commit("messages", "v1.5.3")
        refused = served.call("POST", "/api/tries", {"component": "messages", "commit": good}, token=PLANNER)
        assert refused.status == 403, refused.text
        bad = served.call("POST", "/api/tries", {"component": "messages", "commit": "0" * 40}, token=MESSAGES)
        assert bad.status == 422 and "does not exist in" in bad.json["error"], bad.text
        reply = served.call("POST", "/api/tries", {"component": "messages", "commit": good}, token=MESSAGES)
        assert reply.status == 201, reply.text
        tid = reply.json["id"]
        assert reply.json["try"]["request"]["requested_by"] == "ci-messages"
        assert served.call("GET", f"/api/tries/{tid}").json["state"] == "queued"
        assert served.call("GET", "/api/tries/999").status == 404
        run = it.process("--all")
        assert run.code == 0, run
        shown = served.call("GET", f"/api/tries/{tid}")
        assert shown.status == 200, shown.text
        assert (shown.json["state"], shown.json["passed"]) == ("passed", True)
        assert shown.json == report(it, tid)  # exactly `convoy try --show --json`
    finally:
        stop_server(served.proc)


def test_a_request_stops_a_running_try_which_runs_again_after_it(it, tmp_path):
    good = it.tag_commit("messages", "v1.5.4")
    tid = try_(it, "--component=messages", f"--commit={good}")
    env, hold = held_stage(tmp_path, "convoy-integration")
    proc = start_process(it, "--forever", env=env)
    try:
        def integration_started() -> bool:
            return any(e.type == models.TASK_START and e.data.get("stage") == "integration" for e in it.events(tid))

        wait_for(integration_started, "the try's integration stage to start", timeout=120)
        rid = it.submit("--component=planner", "--version=v2.2.2")
        wait_for(lambda: it.request(tid).state == RequestState.QUEUED, "the try to yield", timeout=60)
        hold.unlink()
        wait_for(lambda: it.request(tid).state == RequestState.PASSED, "the try to pass", timeout=240)
    finally:
        hold.unlink(missing_ok=True)
        proc.send_signal(signal.SIGTERM)
        try:
            out, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
    request = it.request(rid)
    assert request.state == RequestState.MERGED, out
    data = report(it, tid)
    first, second = data["builds"]
    assert first["state"] == "failed" and first["detail"].startswith(f"stopped for request #{rid}"), first
    assert second["base_commit"] == request.candidate_commit and second["state"] == "succeeded"
    seen = [e for e in it.events() if e.request_id in (tid, rid)]
    requeued = next(e.id for e in seen if e.type == models.TRY_QUEUED and e.data.get("again"))
    merged = next(e.id for e in seen if e.type == models.MANIFEST_UPDATED)
    restarted = [e.id for e in seen if e.type == models.TRY_START][-1]
    assert requeued < merged < restarted
    assert "stopped for request" in out
