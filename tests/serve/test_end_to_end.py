"""`convoy serve` end to end: a real server on 127.0.0.1 over a real integration repository (the
sample's components as git repositories with file:// remotes), real git, the real Bazel, and `convoy
process --all` as a real process beside the server. One repository and one server for the module
(tests in order), stages build and integration only (tests/serve/e2e_support.py):

- a submit over HTTP (a component token; another component's token is refused) is built, merged and
  tagged: GET /api/requests/{id} shows it merged with its tag, GET /api/releases lists the tag;
- a GitHub tag push, signed, submits the version: the repository is found by the file:// URL of the
  component's remote (the mapping compares local paths too); a bad signature is 401 and submits
  nothing; the same X-GitHub-Delivery again submits nothing more;
- the event stream, opened before `convoy process` starts, delivers that request's build while it
  runs, in the order the build writes it, ids increasing, up to its last event (RELEASE_TAGGED:
  convoy has no REQUEST_MERGED event; the release tag is what a merge ends with);
- a real rejected request (messages v1.6.0 breaks rover's integration test) is retried and cancelled
  with the admin token, and not with a component token;
- `convoy serve --process` processes what it is sent (a child `convoy process --forever`) and stops
  it when it stops;
- a GitLab tag push (X-Gitlab-Token; a wrong token is 401, the same X-Gitlab-Event-UUID again submits
  nothing more) submits the version, and it is merged.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import pytest

from tests.serve.conftest import Server, start_server, stop_server
from tests.serve.e2e_support import (
    ADMIN, GITHUB_SECRET, MESSAGES, PLANNER, EventStream, e2e_config, finish, github_tag_push, gitlab_headers,
    gitlab_tag_push, requests_for, serve_env, signed, start_process, store_events,
)
from tests.support.env import isolated_env
from tests.support.integration import Integration

pytestmark = [pytest.mark.bazel, pytest.mark.slow]

MERGES = ("planner", "v2.2.1")  # rover only: the drone has no planner
PUSHED = ("planner", "v2.2.2")  # the tag the webhook says was pushed
BREAKS_INTEGRATION = ("messages", "v1.6.0")  # rover's integration test fails


@pytest.fixture(scope="module")
def it(make_integration) -> Integration:
    return make_integration("serve-end-to-end", e2e_config())


@pytest.fixture(scope="module")
def served(it, tmp_path_factory):
    base = tmp_path_factory.mktemp("serve-end-to-end")
    with isolated_env(base / "home"):
        running = start_server(it.checkout, serve_env(), base / "serve.log")
    yield running
    stop_server(running.proc)


def submit(served, component: str, version: str, token: str) -> int:
    reply = served.call("POST", "/api/requests", {"component": component, "version": version}, token=token)
    assert reply.status == 201, reply.text
    return reply.json["id"]


def test_a_submit_over_http_is_merged_and_tagged(it, served):
    refused = served.call("POST", "/api/requests", {"component": MERGES[0], "version": MERGES[1]}, token=MESSAGES)
    assert refused.status == 403, refused.text
    assert refused.json == {"error": "token ci-messages may not submit for planner (it may for: messages)"}
    assert served.cli_json("status") == []

    rid = submit(served, *MERGES, token=PLANNER)
    assert served.cli_json("status")[0]["requested_by"] == "ci-planner"
    run = it.process("--all")
    assert run.code == 0, run

    shown = served.call("GET", f"/api/requests/{rid}")
    assert shown.status == 200, shown.text
    request = shown.json["request"]
    assert (request["state"], request["detail"]) == ("merged", f"merged to main and tagged {request['tag']}")
    assert it.origin_tags()[request["tag"]] == request["candidate_commit"]
    assert it.origin_pin("rover", "planner") == MERGES[1]
    assert shown.json == it.show(rid)  # exactly `convoy show --json`
    (build,) = shown.json["builds"]
    assert [(s["name"], s["state"]) for s in build["stages"]] == [("build", "succeeded"),
                                                                  ("integration", "succeeded")]

    releases = served.call("GET", "/api/releases")
    assert releases.status == 200, releases.text
    newest = releases.json["releases"][0]
    assert (newest["tag"], newest["commit"]) == (request["tag"], request["candidate_commit"])
    assert (newest["request"]["id"], newest["request"]["requested_by"]) == (rid, "ci-planner")


def test_a_signed_github_tag_push_submits_once(it, served):
    body = json.dumps(github_tag_push(it.remotes["planner"], PUSHED[1], pusher="alice")).encode()
    forged = served.call("POST", "/webhooks/github", raw=body, headers=signed(body, "e2e-1", secret=b"not-the-secret"))
    assert forged.status == 401, forged.text
    assert requests_for(served, *PUSHED) == []

    # a refused delivery is not recorded: the genuine one of the same id submits
    first = served.call("POST", "/webhooks/github", raw=body, headers=signed(body, "e2e-1"))
    assert first.status == 201, first.text
    assert (first.json["component"], first.json["version"], first.json["requested_by"]) == (
        "planner", PUSHED[1], "github:alice")
    replayed = served.call("POST", "/webhooks/github", raw=body, headers=signed(body, "e2e-1"))
    assert replayed.status == 200, replayed.text
    assert replayed.json == {"duplicate": True, "outcome": "submitted", "request_id": first.json["id"]}

    (row,) = requests_for(served, *PUSHED)
    assert (row["id"], row["state"], row["commit"]) == (first.json["id"], "queued", it.tag_commit(*PUSHED))
    log = served.log_text()
    assert "github delivery -: refused: missing or wrong X-Hub-Signature-256" in log  # its id is not trusted
    assert f"github delivery e2e-1: request #{row['id']} (submitted)" in log
    assert f"github delivery e2e-1: duplicate of request #{row['id']}" in log
    assert GITHUB_SECRET.decode() not in log


def test_the_event_stream_delivers_a_build_in_order_while_it_runs(it, served):
    (row,) = requests_for(served, *PUSHED)  # queued by the webhook
    rid = row["id"]
    (queued,) = [e for e in store_events(served, rid) if e["type"] == "REQUEST_QUEUED"]
    stream = EventStream(served.port, after=queued["id"] - 1)
    try:
        proc = start_process(it, "--all")
        try:
            got = stream.until(lambda m: m.type == "BUILD_START", timeout=120)
            running_at_build_start = proc.poll() is None  # delivered while the build runs, not afterwards
            got += stream.until(lambda m: m.type == "RELEASE_TAGGED" and m.event["request_id"] == rid, timeout=300)
        finally:
            out = finish(proc)
    finally:
        stream.close()

    ids = [m.id for m in got]
    assert ids == sorted(set(ids)) and ids[0] == queued["id"], ids
    assert all(m.event["id"] == m.id and m.event["type"] == m.type for m in got)
    mine = [m for m in got if m.event["request_id"] == rid]
    assert [m.event for m in mine] == store_events(served, rid)  # every event of the build, as stored
    assert running_at_build_start, f"the stream delivered nothing before convoy process ended:\n{out}"

    types = [m.type for m in mine]
    assert types[:2] == ["REQUEST_QUEUED", "BUILD_START"], types
    assert types[-3:] == ["BUILD_SUCCESS", "MANIFEST_UPDATED", "RELEASE_TAGGED"], types
    stage_events = [(m.type, m.event["data"].get("stage")) for m in mine if m.type.startswith("STAGE_")]
    assert stage_events == [("STAGE_START", "build"), ("STAGE_COMPLETE", "build"),
                            ("STAGE_START", "integration"), ("STAGE_COMPLETE", "integration")], stage_events
    complete = types.index("BUILD_COMPLETE")
    assert types.index("STAGE_COMPLETE") < complete < types.index("BUILD_SUCCESS")
    for m in mine:  # each task's events inside its stage's start and completion
        if m.type.startswith("TASK_"):
            start = next(s for s in mine if s.type == "STAGE_START" and s.event["stage_id"] == m.event["stage_id"])
            end = next(s for s in mine if s.type == "STAGE_COMPLETE" and s.event["stage_id"] == m.event["stage_id"])
            assert start.id < m.id < end.id, (m.type, m.event["data"])
    rover = [m.type for m in mine if m.type.startswith("TASK_") and m.event["data"].get("configuration") == "rover"]
    assert rover == ["TASK_START", "TASK_COMPLETE", "TASK_SUCCESS"] * 2, rover

    shown = served.call("GET", f"/api/requests/{rid}").json["request"]
    assert shown["state"] == "merged" and shown["tag"] == got[-1].event["data"]["tag"]


def test_cancel_and_retry_of_a_rejected_request_with_the_admin_token(it, served):
    rid = submit(served, *BREAKS_INTEGRATION, token=MESSAGES)
    run = it.process("--all")
    assert run.code == 0, run
    rejected = served.call("GET", f"/api/requests/{rid}").json["request"]
    assert rejected["state"] == "rejected" and rejected["detail"].startswith("stage integration failed in rover"), \
        rejected
    recent = next(i for i in served.call("GET", "/api/status").json["recent"] if i["id"] == rid)
    assert recent["failure"]["stage"] == "integration"
    assert {f["configuration"] for f in recent["failure"]["failing"]} == {"rover"}

    refused = served.call("POST", f"/api/requests/{rid}/retry", token=MESSAGES)
    assert refused.status == 403, refused.text
    assert served.call("GET", f"/api/requests/{rid}").json["request"]["state"] == "rejected"
    retried = served.call("POST", f"/api/requests/{rid}/retry", token=ADMIN)
    assert retried.status == 200, retried.text
    assert retried.json["request"]["state"] == "queued"
    assert [r["id"] for r in served.cli_json("status") if r["state"] == "queued"] == [rid]
    again = served.call("POST", f"/api/requests/{rid}/retry", token=ADMIN)
    assert again.status == 409, again.text  # a queued request is not retried

    cancelled = served.call("POST", f"/api/requests/{rid}/cancel", token=ADMIN)
    assert cancelled.status == 200, cancelled.text
    assert cancelled.json["message"] == f"request #{rid} (messages v1.6.0) cancelled"
    assert cancelled.json["request"]["state"] == "cancelled"
    assert served.call("GET", "/api/status").json["queues"][0]["items"] == []
    events = store_events(served, rid)
    assert [e["type"] for e in events[-2:]] == ["REQUEST_QUEUED", "REQUEST_CANCELLED"], events[-2:]
    assert events[-2]["data"]["retry_of"] == "rejected"
    assert events[-1]["data"]["reason"] == "cancelled while queued"
    assert it.process("--all").code == 0  # nothing left to build
    assert served.call("GET", f"/api/requests/{rid}").json["request"]["state"] == "cancelled"
    log = served.log_text()
    assert f"retry by token ops: request #{rid}" in log and f"cancel by token ops: request #{rid}" in log


def test_serve_with_process_merges_what_it_is_sent(it, tmp_path):
    """`convoy serve --process`: the queue processed inside the service (a child `convoy process
    --forever`), stopped with it."""
    log = tmp_path / "serve-process.log"
    with isolated_env(tmp_path / "home"), open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "convoy", "serve", "--listen=127.0.0.1:0", "--process",
                                 f"--repo={it.checkout}"], stdout=out, stderr=subprocess.STDOUT, env=serve_env(),
                                cwd=it.checkout)
    try:
        found = None
        deadline = time.monotonic() + 30
        while found is None and time.monotonic() < deadline and proc.poll() is None:
            found = re.search(r"listening on http://127\.0\.0\.1:(\d+)", log.read_text())
            time.sleep(0.05)
        assert found, log.read_text()
        server = Server(it.checkout, log, proc, int(found.group(1)), serve_env())
        rid = submit(server, "planner", "v2.2.3", token=PLANNER)
        deadline = time.monotonic() + 240
        while server.call("GET", f"/api/requests/{rid}").json["request"]["state"] not in ("merged", "rejected"):
            assert time.monotonic() < deadline and proc.poll() is None, log.read_text()
            time.sleep(0.5)
        assert server.call("GET", f"/api/requests/{rid}").json["request"]["state"] == "merged", log.read_text()
        assert it.origin_pin("rover", "planner") == "v2.2.3"
    finally:
        stop_server(proc)
    text = log.read_text()
    assert "processing the queue: convoy process --forever" in text and "convoy process stopped" in text, text
    assert "ended by itself" not in text, text


def test_a_gitlab_tag_push_submits_and_is_merged(it, served):
    body = json.dumps(gitlab_tag_push(it.remotes["controller"], "v1.2.2", user="carol")).encode()
    wrong = served.call("POST", "/webhooks/gitlab", raw=body, headers=gitlab_headers("gl-e2e-1", token="x" * 24))
    assert wrong.status == 401, wrong.text
    reply = served.call("POST", "/webhooks/gitlab", raw=body, headers=gitlab_headers("gl-e2e-1"))
    assert reply.status == 201, reply.text
    again = served.call("POST", "/webhooks/gitlab", raw=body, headers=gitlab_headers("gl-e2e-1"))
    assert again.status == 200 and again.json["duplicate"] is True, again.text
    rid = reply.json["id"]
    assert it.request(rid).requested_by == "gitlab:carol"
    run = it.process("--all")
    assert run.code == 0, run
    assert it.request(rid).state.value == "merged", run
    assert it.origin_pin("rover", "controller") == it.origin_pin("drone", "controller") == "v1.2.2"
