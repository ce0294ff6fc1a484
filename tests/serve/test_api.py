"""The JSON API of a real `convoy serve` (one per module, tests in order):
a submit over HTTP is a CLI submit (the CLI sees it, its refusals are the
CLI's lines), tokens decide who may do what, status and releases tell the
queue, the event stream delivers events in order, and bodies are bounded.
Nothing here runs Bazel: requests stay queued, and the states the queue
would write (rejected, merged with a build) are written to the store directly.
"""

from __future__ import annotations

import json
import time

import pytest

from convoy import requests
from convoy.models import BuildState, RequestState, StageState
from convoy.store import SQLiteStore

from tests.serve.conftest import PLANNER_TOKEN, SECRETS, git

MESSAGES = SECRETS["CONVOY_TOKEN_MESSAGES"]
ADMIN = SECRETS["CONVOY_TOKEN_ADMIN"]


def cli_error(server, *args: str) -> str:
    """The one line `convoy <args>` refuses with, without its `convoy: error: `."""
    done = server.cli(*args)
    assert done.returncode == 2 and len(done.stderr.splitlines()) == 1, done.stderr
    return done.stderr.strip().removeprefix("convoy: error: ")


def count(server) -> int:
    return len(server.cli_json("status"))


def test_a_submit_over_http_is_a_cli_submit(server, forge):
    reply = server.call("POST", "/api/requests", {"component": "messages", "version": "v1.1.0"}, token=MESSAGES)
    assert reply.status == 201, reply.text
    data = reply.json
    assert (data["existing"], data["superseded"], data["state"]) == (False, [], "queued")
    rid = data["id"]
    (row,) = [r for r in server.cli_json("status") if r["id"] == rid]
    assert (row["component"], row["version"], row["state"], row["requested_by"]) == (
        "messages", "v1.1.0", "queued", "ci-messages")
    assert row["commit"] == git(forge.repos["messages"], "rev-parse", "v1.1.0^{commit}")  # resolved on the remote
    shown = server.cli_json("show", str(rid))
    assert server.call("GET", f"/api/requests/{rid}").json == shown  # GET = convoy show --json
    assert data["request"] == shown["request"]
    events = server.call("GET", "/api/events?after=0").json["events"]
    assert [(e["type"], e["request_id"]) for e in events][-1] == ("REQUEST_QUEUED", rid)


def test_the_same_submit_again_is_200_with_the_existing_request(server):
    first = server.cli_json("status")[-1]
    reply = server.call("POST", "/api/requests", {"component": "messages", "version": "v1.1.0"}, token=MESSAGES)
    assert reply.status == 200, reply.text
    assert (reply.json["id"], reply.json["existing"]) == (first["id"], True)
    assert count(server) == 1


def test_a_submit_is_attributed_to_its_token_by_name(server):
    reply = server.call("POST", "/api/requests", {"component": "planner", "version": "v1.1.0",
                                                  "requested_by": "alice"}, token=PLANNER_TOKEN)
    assert reply.status == 201, reply.text
    assert reply.json["request"]["requested_by"] == "alice via ci-planner"  # a tokens-file token
    assert server.cli_json("show", str(reply.json["id"]))["request"]["requested_by"] == "alice via ci-planner"


@pytest.mark.parametrize("body, cli", [
    ({"component": "nosuch", "version": "v1.0.0"}, ("submit", "--component=nosuch", "--version=v1.0.0")),
    ({"component": "messages", "version": "v9.9.9"}, ("submit", "--component=messages", "--version=v9.9.9")),
    ({"component": "messages", "version": "1.2"}, ("submit", "--component=messages", "--version=1.2")),
    ({"component": "messages", "version": "v1.1.0", "commit": "abc"},
     ("submit", "--component=messages", "--version=v1.1.0", "--commit=abc")),
])
def test_what_the_cli_refuses_is_422_with_the_cli_line(server, body, cli):
    before = count(server)
    reply = server.call("POST", "/api/requests", body, token=ADMIN)
    assert reply.status == 422, reply.text
    assert reply.json == {"error": cli_error(server, *cli)}
    assert count(server) == before


def test_who_may_submit(server):
    before = count(server)
    body = {"component": "planner", "version": "v1.2.0"}
    none = server.call("POST", "/api/requests", body)
    assert none.status == 401 and none.headers["www-authenticate"].startswith("Bearer")
    assert "no token" in none.json["error"]
    wrong = server.call("POST", "/api/requests", body, token="not-a-token-of-this-server")
    assert wrong.status == 401 and "not valid" in wrong.json["error"]
    basic = server.call("POST", "/api/requests", body, headers={"Authorization": f"Basic {MESSAGES}"})
    assert basic.status == 401
    other = server.call("POST", "/api/requests", body, token=MESSAGES)
    assert other.status == 403, other.text
    assert other.json["error"] == "token ci-messages may not submit for planner (it may for: messages)"
    group = server.call("POST", "/api/requests", {"component": "messages", "version": "v1.2.0",
                                                  "bumps": ["planner=v1.2.0"]}, token=MESSAGES)
    assert group.status == 403 and "planner" in group.json["error"]
    assert count(server) == before


def test_cancel_and_retry_need_an_admin_token(server):
    rid = server.cli_json("status")[0]["id"]  # messages v1.1.0, queued
    assert server.call("POST", f"/api/requests/{rid}/cancel").status == 401
    refused = server.call("POST", f"/api/requests/{rid}/cancel", token=MESSAGES)
    assert refused.status == 403 and "only an admin token" in refused.json["error"]
    assert server.cli_json("show", str(rid))["request"]["state"] == "queued"

    done = server.call("POST", f"/api/requests/{rid}/cancel", token=ADMIN)
    assert done.status == 200, done.text
    assert done.json["message"] == f"request #{rid} (messages v1.1.0) cancelled"
    assert server.cli_json("show", str(rid))["request"]["state"] == "cancelled"
    again = server.call("POST", f"/api/requests/{rid}/retry", token=ADMIN)
    assert again.status == 409 and again.json["error"] == cli_error(server, "retry", str(rid))
    assert server.call("POST", "/api/requests/99999/cancel", token=ADMIN).status == 404
    assert server.call("POST", "/api/requests/x1/cancel", token=ADMIN).status == 400

    with SQLiteStore(server.root / ".convoy" / "state.db") as store, store.transaction() as tx:
        rejected = tx.insert_request(component="messages", version="v1.0.0", requested_by="ci",
                                     state=RequestState.REJECTED, detail="stage build failed in main")
    assert server.call("POST", f"/api/requests/{rejected.id}/retry", token=PLANNER_TOKEN).status == 403
    retried = server.call("POST", f"/api/requests/{rejected.id}/retry", token=ADMIN)
    assert retried.status == 200, retried.text
    assert retried.json["request"]["state"] == "queued"
    assert server.cli_json("show", str(rejected.id))["request"]["state"] == "queued"
    assert "cancel by token ops" in server.log_text() and "retry by token ops" in server.log_text()


def test_status_has_every_item_in_order_with_stages_and_estimates(server):
    root = server.root
    with SQLiteStore(root / ".convoy" / "state.db") as store, store.transaction() as tx:
        merged = tx.insert_request(component="planner", version="v1.0.0", requested_by="ci",
                                   state=RequestState.MERGED)
        build = tx.insert_build(merged.id, "a" * 40, "b" * 40)
        tx.update_build(build.id, state=BuildState.SUCCEEDED, finished_at=time.time())
        for position, (name, seconds) in enumerate((("build", 10), ("integration", 20), ("configuration", 30),
                                                    ("hardware", 40))):
            stage = tx.insert_stage(build.id, position, name, "test")
            tx.update_stage(stage.id, state=StageState.SUCCEEDED, started_at=100.0, finished_at=100.0 + seconds)
        rejected = tx.insert_request(component="planner", version="v0.9.0", requested_by="ci",
                                     state=RequestState.REJECTED, detail="stage integration failed in main")
        requests.record_release(tx, merged, build, tag="v2026.12.1", commit="b" * 40, notes="planner v1.0.0\n")
    data = server.call("GET", "/api/status").json
    (queue,) = data["queues"]
    assert (queue["name"], queue["mode"], queue["window"]) == ("main", "serial", None)
    items = queue["items"]
    cli_queued = [r["id"] for r in server.cli_json("status") if r["state"] == "queued"]
    assert [i["id"] for i in items] == cli_queued and len(items) == 2
    first, second = items
    assert [s["name"] for s in first["stages"]] == ["build", "integration", "configuration", "hardware"]
    assert [s["estimate_seconds"] for s in first["stages"]] == [10, 20, 30, 40]
    assert first["estimate_seconds_left"] == 100 and second["estimate_seconds_left"] == 200
    assert second["ahead"] == [first["id"]] and first["elapsed_seconds"] >= 0
    failed = next(r for r in data["recent"] if r["id"] == rejected.id)
    assert failed["failure"]["reason"] == "stage integration failed in main"
    assert data["last_event_id"] == server.call("GET", "/api/events").json["last_id"]


def test_releases_name_the_request_behind_each(server):
    data = server.call("GET", "/api/releases").json
    (release,) = data["releases"]
    assert (release["tag"], release["commit"], release["notes"]) == ("v2026.12.1", "b" * 40, "planner v1.0.0\n")
    assert (release["request"]["component"], release["request"]["version"]) == ("planner", "v1.0.0")
    assert server.call("GET", "/api/releases?limit=0").status == 400


def test_events_after_an_id(server):
    everything = server.call("GET", "/api/events").json
    ids = [e["id"] for e in everything["events"]]
    assert ids == sorted(ids) and everything["last_id"] == ids[-1]
    later = server.call("GET", f"/api/events?after={ids[1]}").json["events"]
    assert [e["id"] for e in later] == ids[2:]
    assert server.call("GET", f"/api/events?after={ids[-1]}").json == {"events": [], "last_id": ids[-1]}
    assert server.call("GET", "/api/events?after=-1").status == 400
    assert server.call("GET", "/api/events?request=99999").status == 404


def read_sse(response, count: int, timeout: float = 10) -> list[dict]:
    """The next `count` events of an SSE response (each: id, event, data)."""
    found, current = [], {}
    deadline = time.monotonic() + timeout
    while len(found) < count:
        assert time.monotonic() < deadline, f"only {len(found)} events: {found}"
        line = response.fp.readline().decode()
        assert line, "the stream ended"
        line = line.rstrip("\n")
        if not line:
            if "id" in current:
                found.append(current)
            current = {}
        elif not line.startswith(":"):
            key, _, value = line.partition(": ")
            current[key] = value
    return found


def test_the_event_stream_delivers_events_in_order_and_resumes(server):
    known = server.call("GET", "/api/events").json["events"]
    conn = server.connection(timeout=10)
    conn.request("GET", "/api/events/stream", headers={"Last-Event-ID": "0"})
    response = conn.getresponse()
    assert response.status == 200 and response.getheader("content-type").startswith("text/event-stream")
    got = read_sse(response, len(known))
    assert [int(e["id"]) for e in got] == [e["id"] for e in known]
    assert [e["event"] for e in got] == [e["type"] for e in known]
    assert [json.loads(e["data"]) for e in got] == known

    submitted = server.call("POST", "/api/requests", {"component": "planner", "version": "v1.2.0"},
                            token=PLANNER_TOKEN)
    assert submitted.status == 201
    new = read_sse(response, 2)  # the new request, and the older planner request it superseded
    assert [e["event"] for e in new] == ["REQUEST_QUEUED", "REQUEST_SUPERSEDED"]
    assert json.loads(new[0]["data"])["request_id"] == submitted.json["id"]
    assert int(new[0]["id"]) > known[-1]["id"]
    conn.close()

    conn = server.connection(timeout=10)
    conn.request("GET", "/api/events/stream", headers={"Last-Event-ID": new[0]["id"]})
    (resumed,) = read_sse(conn.getresponse(), 1)
    assert resumed == new[1]
    conn.close()
    conn = server.connection(timeout=10)
    conn.request("GET", "/api/events/stream?after=abc")
    assert conn.getresponse().status == 400
    conn.close()
    deadline = time.monotonic() + 10  # the server ends a stream whose client went away
    while server.log_text().count("GET /api/events/stream 200") < 2:
        assert time.monotonic() < deadline, server.log_text()
        time.sleep(0.1)


def test_bodies_are_bounded_and_json_only(server):
    before = count(server)
    big = server.call("POST", "/api/requests", raw=b'{"component": "' + b"x" * 70_000 + b'"}', token=MESSAGES,
                      headers={"Content-Type": "application/json"})
    assert big.status == 413 and "larger than 65536 bytes" in big.json["error"]
    text = server.call("POST", "/api/requests", raw=b"component=messages", token=MESSAGES,
                       headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert text.status == 415 and "application/json" in text.json["error"]
    broken = server.call("POST", "/api/requests", raw=b'{"component": ', token=MESSAGES,
                         headers={"Content-Type": "application/json"})
    assert broken.status == 400 and "not JSON" in broken.json["error"]
    nan = server.call("POST", "/api/requests", raw=b'{"component": NaN}', token=MESSAGES,
                      headers={"Content-Type": "application/json"})
    assert nan.status == 400
    listed = server.call("POST", "/api/requests", ["messages"], token=MESSAGES)
    assert listed.status == 400 and "JSON object" in listed.json["error"]
    unknown = server.call("POST", "/api/requests", {"component": "messages", "colour": "red"}, token=MESSAGES)
    assert unknown.status == 400 and "colour" in unknown.json["error"]
    typed = server.call("POST", "/api/requests", {"component": "messages", "version": 1}, token=MESSAGES)
    assert typed.status == 400 and "version must be a string" in typed.json["error"]
    control = server.call("POST", "/api/requests", {"component": "messages", "version": "v1.2.0",
                                                    "requested_by": "a\nconvoy: error: forged"}, token=MESSAGES)
    assert control.status == 422 and "control characters" in control.json["error"]
    assert server.call("GET", "/nowhere").json == {"error": "no such endpoint; see docs/api.md"}
    assert server.call("GET", "/api/requests").status == 405
    assert count(server) == before


def test_a_group_is_gathered_and_closed_by_tokens_for_all_its_components(server):
    added = server.call("POST", "/api/requests", {"component": "messages", "version": "v1.2.0", "group": "g1"},
                        token=MESSAGES)
    assert added.status == 202 and added.json["state"] == "open", added.text
    more = server.call("POST", "/api/requests", {"bumps": ["planner=v1.1.0"], "group": "g1"}, token=PLANNER_TOKEN)
    assert more.status == 202 and [b["component"] for b in more.json["bumps"]] == ["messages", "planner"]
    refused = server.call("POST", "/api/requests", {"group": "g1", "close": True}, token=MESSAGES)
    assert refused.status == 403 and refused.json["error"] == (
        "token ci-messages may not close group 'g1': it bumps planner")
    closed = server.call("POST", "/api/requests", {"group": "g1", "close": True}, token=ADMIN)
    assert closed.status == 201, closed.text
    assert [b["component"] for b in closed.json["request"]["all_bumps"]] == ["messages", "planner"]
    assert closed.json["request"]["requested_by"] == "ops"
    assert [r["state"] for r in server.cli_json("status") if r["state"] == "queued"] == ["queued"]


def test_no_token_or_secret_in_the_log_the_store_or_a_response(server):
    assert len(server.replies) > 20
    log, store = server.log_text(), server.store_bytes()
    assert "POST /api/requests 201" in log
    for secret in [*SECRETS.values(), PLANNER_TOKEN]:
        assert secret not in log
        assert secret.encode() not in store
        for reply in server.replies:
            assert secret not in reply.text and secret not in json.dumps(reply.headers)
