"""Steering the queue over HTTP (a real `convoy serve`, one per module, tests in order; no Bazel):
pause, resume, drain and promote need an admin token and are done by its
name; /api/status and the status page say the queue is paused, why, by
whom and since when; a refusal is the CLI's one line.
"""

from __future__ import annotations

from convoy.models import RequestState
from convoy.store import SQLiteStore

from tests.serve.conftest import SECRETS

MESSAGES = SECRETS["CONVOY_TOKEN_MESSAGES"]
ADMIN = SECRETS["CONVOY_TOKEN_ADMIN"]


def steering_events(server) -> list[tuple[str, object, object]]:
    found = server.call("GET", "/api/events?after=0").json["events"]
    return [(e["type"], e["request_id"], e["data"].get("by")) for e in found
            if e["type"].startswith("QUEUE_") or e["type"] == "REQUEST_PROMOTED"]


def test_pause_resume_and_drain_need_an_admin_token_and_are_done_by_its_name(server):
    assert server.call("POST", "/api/queue/pause").status == 401
    refused = server.call("POST", "/api/queue/pause", token=MESSAGES)
    assert refused.status == 403 and "only an admin token" in refused.json["error"]
    assert server.call("GET", "/api/status").json["queues"][0]["control"]["state"] == "running"

    paused = server.call("POST", "/api/queue/pause", {"reason": "upgrading Bazel"}, token=ADMIN)
    assert paused.status == 200, paused.text
    control = paused.json["control"]
    assert (control["state"], control["reason"], control["by"]) == ("paused", "upgrading Bazel", "ops")
    assert server.call("GET", "/api/status").json["queues"][0]["control"] == control
    page = server.call("GET", "/").text
    assert 'id="queue-control"' in page and "Queue paused by ops since " in page and ": upgrading Bazel;" in page
    assert server.cli("status").stdout.splitlines()[0].endswith(
        "by ops: upgrading Bazel; nothing new starts until: convoy resume")

    bad = server.call("POST", "/api/queue/pause", {"by": "mallory"}, token=ADMIN)
    assert (bad.status, bad.json["error"]) == (400, "unknown field by (known: reason)")
    drained = server.call("POST", "/api/queue/drain", token=ADMIN)
    assert drained.status == 200 and drained.json["control"]["state"] == "draining"
    resumed = server.call("POST", "/api/queue/resume", token=ADMIN)
    assert resumed.status == 200 and resumed.json["control"]["state"] == "running"
    again = server.call("POST", "/api/queue/resume", token=ADMIN)
    assert (again.status, again.json["message"]) == (200, "the queue is not paused; nothing to resume")
    assert steering_events(server) == [("QUEUE_PAUSED", None, "ops"), ("QUEUE_DRAINING", None, "ops"),
                                       ("QUEUE_RESUMED", None, "ops")]
    assert 'hidden' in server.call("GET", "/").text.split('id="queue-control"', 1)[1].split(">", 1)[0]
    assert "pause by token ops" in server.log_text()


def test_promote_over_http(server):
    queued = server.call("POST", "/api/requests", {"component": "messages", "version": "v1.1.0"}, token=MESSAGES)
    assert queued.status == 201, queued.text
    rid = queued.json["id"]
    assert server.call("POST", f"/api/requests/{rid}/promote", token=MESSAGES).status == 403
    done = server.call("POST", f"/api/requests/{rid}/promote", token=ADMIN)
    assert done.status == 200, done.text
    assert done.json["message"] == (f"request #{rid} (messages v1.1.0) is high priority: it goes first; run: "
                                    "convoy process")
    [item] = [i for i in server.call("GET", "/api/status").json["queues"][0]["items"] if i["id"] == rid]
    assert item["priority"] == "high"
    assert steering_events(server)[-1] == ("REQUEST_PROMOTED", rid, "ops")
    assert 'class="priority"' in server.call("GET", "/").text

    assert server.call("POST", "/api/requests/99999/promote", token=ADMIN).status == 404
    with SQLiteStore(server.root / ".convoy" / "state.db") as store, store.transaction() as tx:
        merged = tx.insert_request(component="planner", version="v1.0.0", requested_by="ci",
                                   state=RequestState.MERGED)
    refused = server.call("POST", f"/api/requests/{merged.id}/promote", token=ADMIN)
    assert refused.status == 409
    assert refused.json["error"] == (f"request #{merged.id} (planner v1.0.0) is already merged; only a queued request "
                                     "can be promoted; see the queue with: convoy status")
    cancelled = server.call("POST", f"/api/requests/{rid}/cancel", token=ADMIN)
    assert cancelled.status == 200
    events = server.call("GET", f"/api/events?request={rid}").json["events"]
    assert events[-1]["type"] == "REQUEST_CANCELLED" and events[-1]["data"]["by"] == "ops"
