"""A day of the queue, end to end: real component repositories, a real integration
repository and origin, the real Bazel, `convoy process` as a real process.

The day (one integration repository, three rounds of `convoy process --all`):

    round 1   #1 messages v1.5.0      good                        -> merged, tag vYYYY.M.1
              #2 controller v1.3.0    breaks drone's hardware test -> rejected at hardware (drone only)
              #3 planner v2.2.0       superseded by #4
              #4 planner v2.3.0       rover only                  -> merged, tag vYYYY.M.2
              #5 firmware v3.1.0      speaks protocol 3 only      -> rejected at configuration (rover)
    round 2   #6 messages v1.6.0      breaks plan_to_motion_test  -> rejected at integration
              #7 planner v2.4.0       BUILD needs a missing target -> rejected at build
    round 3   #8 messages v1.5.0      as a prebuilt archive        -> merged, tag vYYYY.M.3

Plugins on the same run: a signed webhook to a local HTTP server, a webhook to
a closed port, a command that exits 1, one that hangs, one that records what
it is given (PLUGIN_ERROR and REQUEST_REJECTED), one that fails on
PLUGIN_ERROR (no loop), and the JSON-lines log.
"""

from __future__ import annotations

import datetime
import http.server
import json
import socket
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

from convoy import models
from convoy.plugins import verify
from convoy.untrusted import printable

from tests.support.env import isolated_env
from tests.support.integration import Integration, Run, config_text, write_script

pytestmark = [pytest.mark.bazel, pytest.mark.slow]

SECRET = "day-secret"
TODAY = datetime.date.today()


def tag(n: int) -> str:
    return f"v{TODAY.year}.{TODAY.month}.{n}"


class HookServer:
    """A local webhook receiver that checks each delivery's signature."""

    def __init__(self) -> None:
        received = self.received = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (the http.server API)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                signature = self.headers.get("X-Convoy-Signature", "")
                received.append({"event": json.loads(body), "signed": verify(SECRET.encode(), body, signature),
                                 "type_header": self.headers.get("X-Convoy-Event")})
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Day:
    integration: Integration
    ids: dict[str, int]
    rounds: list[Run]
    hook: HookServer
    recorded: Path

    def request(self, name: str) -> models.Request:
        return self.integration.request(self.ids[name])

    def rejection(self, name: str) -> dict:
        events = [e for e in self.integration.events(self.ids[name]) if e.type == models.REQUEST_REJECTED]
        assert len(events) == 1, events
        return dict(events[0].data)


@pytest.fixture(scope="module")
def day(make_integration, tmp_path_factory) -> Day:
    base = tmp_path_factory.mktemp("day")
    hook = HookServer()
    recorded = base / "recorded.jsonl"
    recorder = write_script(base / "record.py", """
        import sys
        with open(sys.argv[1], "a") as f:
            f.write(sys.stdin.read().strip() + "\\n")
    """)
    py = sys.executable
    plugins = f"""\
  - {{name: hook, type: webhook, url: "{hook.url}", secret_env: CONVOY_DAY_SECRET, timeout: 5, retries: 1,
      events: [REQUEST_REJECTED, RELEASE_TAGGED, MANIFEST_UPDATED]}}
  - {{name: hook-down, type: webhook, url: "http://127.0.0.1:{_closed_port()}/hook", secret_env: CONVOY_DAY_SECRET,
      timeout: 1, retries: 1, events: [RELEASE_TAGGED]}}
  - {{name: fails, type: command, command: ["{py}", "-c", "import sys; sys.exit(1)"], events: [REQUEST_REJECTED]}}
  - {{name: hangs, type: command, command: ["sleep", "30"], timeout: 1, events: [BUILD_START]}}
  - {{name: recorder, type: command, command: ["{py}", "{recorder}", "{recorded}"],
      events: [PLUGIN_ERROR, REQUEST_REJECTED]}}
  - {{name: errors-on-errors, type: command, command: ["{py}", "-c", "import sys; sys.exit(3)"],
      events: [PLUGIN_ERROR]}}
"""
    integration = make_integration("day", config_text(plugins=plugins))
    ids, rounds = {}, []
    with isolated_env(base / "home") as env:
        env.setenv("CONVOY_DAY_SECRET", SECRET)
        ids["good"] = integration.submit("--component=messages", "--version=v1.5.0", "--requested_by=ci@messages")
        ids["hardware"] = integration.submit("--component=controller", "--version=v1.3.0")
        ids["planner_old"] = integration.submit("--component=planner", "--version=v2.2.0")
        ids["planner"] = integration.submit("--component=planner", "--version=v2.3.0")
        ids["configuration"] = integration.submit("--component=firmware", "--version=v3.1.0")
        rounds.append(integration.process("--all"))
        ids["integration"] = integration.submit("--component=messages", "--version=v1.6.0")
        ids["build"] = integration.submit("--component=planner", "--version=v2.4.0")
        rounds.append(integration.process("--all"))
        # round 3: the same version as a prebuilt archive (a source override)
        archive = base / "messages-1.5.0.tar.gz"
        integration.git("archive", "--format=tar.gz", "--prefix=messages-1.5.0/", f"--output={archive}", "v1.5.0",
                        cwd=Path(integration.remotes["messages"].removeprefix("file://")))
        ids["archive"] = integration.submit("--component=messages", "--version=v1.5.0",
                                            f"--archive_url={archive.as_uri()}", "--strip_prefix=messages-1.5.0")
        rounds.append(integration.process("--all"))
    yield Day(integration, ids, rounds, hook, recorded)
    hook.stop()
    integration.shutdown_bazel()


@pytest.mark.parametrize("round_", [1, 2, 3])
def test_every_round_exits_zero(day, round_):
    run = day.rounds[round_ - 1]
    assert run.code == 0, run
    assert run.err == "", run


def test_good_bump_is_merged_with_its_lock_and_tagged_with_notes(day):
    it = day.integration
    request = day.request("good")
    assert (request.state, request.phase, request.tag) == (models.RequestState.MERGED, models.Phase.TAGGED, tag(1))
    messages_commit = it.tag_commit("messages", "v1.5.0")
    assert request.commit == messages_commit
    # The merged commit is exactly the tested candidate, fast-forwarded.
    assert it.origin("rev-parse", f"{tag(1)}^{{commit}}") == request.candidate_commit
    assert it.origin("log", "--format=%B", "-1", request.candidate_commit).splitlines()[:3] == [
        f"Bump messages to v1.5.0 (request {request.id})", "", "Requested by: ci@messages"]
    manifest = it.origin_file("manifests/manifest.yaml", request.candidate_commit)
    assert "    version: v1.5.0\n" in manifest
    assert "# wire format shared by every service and the firmware" in manifest  # comments kept
    lock = json.loads(it.origin_file("manifests/manifest.lock.json", request.candidate_commit))
    for configuration in ("drone", "rover"):
        pin = lock["configurations"][configuration]["components"]["messages"]
        assert (pin["version"], pin["commit"]) == ("v1.5.0", messages_commit)
    # An annotated tag whose message is the release notes.
    assert it.origin("cat-file", "-t", tag(1)) == "tag"
    notes = it.origin("tag", "-l", "--format=%(contents)", tag(1))
    old = it.tag_commit("messages", "v1.4.0")[:8]
    assert notes.startswith(f"{tag(1)}: messages v1.4.0 -> v1.5.0 (request {request.id}, by ci@messages")
    assert f"  drone/messages: v1.4.0 ({old}) -> v1.5.0 ({messages_commit[:8]})" in notes
    assert f"  rover/messages: v1.4.0 ({old}) -> v1.5.0 ({messages_commit[:8]})" in notes
    assert "planner" not in notes.split("Tests:")[0]
    assert ("  hardware / drone: passed (1 ran, 0 cached): 1 test passed (1 skipped)\n"
            "    //integration:flash_and_drive_test: passed, ran\n") in notes
    [release] = it.show(request.id)["releases"]
    assert release == {"tag": tag(1), "commit": request.candidate_commit, "notes": notes + "\n"}


def test_component_of_one_configuration_is_tested_there_only(day):
    it = day.integration
    request = day.request("planner")
    assert (request.state, request.tag) == (models.RequestState.MERGED, tag(2))
    [build] = it.show(request.id)["builds"]
    assert {task["configuration"] for stage in build["stages"] for task in stage["tasks"]} == {"rover"}
    notes = it.origin("tag", "-l", "--format=%(contents)", tag(2))
    assert f"Components changed since {tag(1)}:\n  rover/planner: v2.1.0 (" in notes
    assert notes.count("/planner:") == 1 and "messages:" not in notes


def test_only_passing_candidates_reach_the_branch(day):
    it = day.integration
    subjects = it.origin("log", "--format=%s", "main").splitlines()
    assert subjects == [
        f"Bump messages to v1.5.0 (request {day.ids['archive']})",
        f"Bump planner to v2.3.0 (request {day.ids['planner']})",
        f"Bump messages to v1.5.0 (request {day.ids['good']})",
        "Integration repository of the sample system",
    ]
    assert it.origin_tags() == {tag(1): day.request("good").candidate_commit,
                                tag(2): day.request("planner").candidate_commit,
                                tag(3): day.request("archive").candidate_commit}


def test_a_prebuilt_archive_overrides_the_source(day):
    import hashlib

    it = day.integration
    request = day.request("archive")
    assert (request.state, request.tag, request.commit) == (models.RequestState.MERGED, tag(3), None)
    url = request.archive_url
    manifest = it.origin_file("manifests/manifest.yaml")
    assert f"    source: archive\n    version: v1.5.0\n    url: {url}\n    strip_prefix: messages-1.5.0\n" in manifest
    sha256 = hashlib.sha256(Path(url.removeprefix("file://")).read_bytes()).hexdigest()
    lock = json.loads(it.origin_file("manifests/manifest.lock.json"))
    assert lock["configurations"]["rover"]["components"]["messages"]["sha256"] == sha256
    notes = it.origin("tag", "-l", "--format=%(contents)", tag(3))
    assert f"  rover/messages: v1.5.0 ({it.tag_commit('messages', 'v1.5.0')[:8]}) -> v1.5.0 ({sha256[:8]})" in notes


def test_hardware_failure_in_one_configuration_names_it(day):
    request = day.request("hardware")
    assert request.state == models.RequestState.REJECTED
    data = day.rejection("hardware")
    assert data["stage"] == "hardware"
    assert [f["configuration"] for f in data["failures"]] == ["drone"]
    [target] = data["failures"][0]["targets"]
    assert (target["label"], target["status"]) == ("//integration:flash_and_drive_test", "failed")
    log = Path(target["log_paths"][-1])
    assert log.is_file() and "flash_and_drive_test" in str(log)
    assert "FAIL" in log.read_text()
    assert data["summary"].startswith("stage hardware failed in drone: //integration:flash_and_drive_test failed")
    assert str(log) in data["summary"] and str(log) in request.detail
    # Every other stage passed in both configurations, and hardware passed in rover.
    [build] = day.integration.show(request.id)["builds"]
    states = {(s["name"], t["configuration"]): t["state"] for s in build["stages"] for t in s["tasks"]}
    assert states.pop(("hardware", "drone")) == "failed"
    assert set(states.values()) == {"succeeded"}
    text = day.integration.convoy("show", str(request.id))
    # It passed on main (in drone too): convoy ran it once more before it rejected (convoy.flaky).
    assert (f"//integration:flash_and_drive_test FAILED; 2 runs; failed here but passed on main: it ran again "
            f"(1 of 1, retry_failed): {log}") in text.out


def test_configuration_stage_rejects_and_later_stages_never_start(day):
    data = day.rejection("configuration")
    assert data["stage"] == "configuration"
    assert [f["configuration"] for f in data["failures"]] == ["rover"]  # drone pins firmware v2.9.4
    assert [t["label"] for t in data["failures"][0]["targets"]] == ["//integration:protocol_compat_test"]
    [build] = day.integration.show(day.ids["configuration"])["builds"]
    stages = {s["name"]: (s["state"], {t["configuration"]: t["state"] for t in s["tasks"]}) for s in build["stages"]}
    assert stages == {  # drone's pins did not move: its tasks never ran
        "build": ("succeeded", {"rover": "succeeded", "drone": "skipped"}),
        "integration": ("succeeded", {"rover": "succeeded", "drone": "skipped"}),
        "configuration": ("failed", {"rover": "failed", "drone": "skipped"}),
        "hardware": ("skipped", {"rover": "skipped", "drone": "skipped"}),
    }
    assert {t["outcome"] for s in build["stages"] for t in s["tasks"] if t["configuration"] == "drone"} == {
        "UNCHANGED"}
    types = [e.type for e in day.integration.events(day.ids["configuration"])]
    assert types.count(models.STAGE_START) == 3


def test_integration_stage_rejects(day):
    data = day.rejection("integration")
    assert data["stage"] == "integration"
    rover = next(f for f in data["failures"] if f["configuration"] == "rover")
    assert "//integration:plan_to_motion_test" in [t["label"] for t in rover["targets"]]
    assert day.request("integration").state == models.RequestState.REJECTED


def test_build_stage_rejects(day):
    data = day.rejection("build")
    assert data["stage"] == "build"
    [failure] = data["failures"]
    assert (failure["configuration"], failure["outcome"]) == ("rover", "BUILD_FAILED")
    assert failure["detail"].startswith("build failed: //integration:")
    assert ":route_tables" in Path(failure["log_path"]).read_text()
    [build] = day.integration.show(day.ids["build"])["builds"]
    assert [s["state"] for s in build["stages"]] == ["failed", "skipped", "skipped", "skipped"]


def test_a_task_log_is_copied_to_logs_url_and_its_tail_kept_in_the_store(make_integration, tmp_path):
    """logs_url (convoy.task_logs): the build stage's failing task's log, copied byte for byte at the
    task's end, its tail in the store; `convoy show` in a clone without the file names the copy and
    prints the tail (issue 24, "Logs")."""
    shared = tmp_path / "shared-logs"
    stages = "stages:\n  - {name: build, command: build, timeout: 300}\n"
    it = make_integration("shared-logs", config_text(stages=stages) + f"logs_url: {shared}\n")
    with isolated_env(tmp_path / "home"):
        request_id = it.submit("--component=planner", "--version=v2.4.0")  # BUILD needs a missing target
        run = it.process("--all")
    assert run.code == 0, run
    assert it.request(request_id).state == models.RequestState.REJECTED
    [task] = it.show(request_id)["builds"][0]["stages"][0]["tasks"]
    local = Path(task["log_path"])
    copy = shared / f"request-{request_id}" / "build-1" / local.name
    assert task["state"] == "failed" and task["log_readable"] and task["shared_log"] == str(copy)
    assert copy.read_bytes() == local.read_bytes() and ":route_tables" in copy.read_text()
    assert not list(shared.rglob("*.partial")) and not list(shared.rglob("*.bep.json"))  # only the log
    tail = task["log_tail"]
    assert tail and len(tail) <= 16384 and local.read_bytes().decode("utf-8", errors="replace").endswith(tail)
    local.unlink()  # as on another worker's machine: the file is not here
    shown = it.convoy("show", str(request_id))
    assert shown.code == 0, shown
    assert f"Bazel log: {copy} (the shared copy; {local} is in the clone that ran it)" in shown.out
    last = tail.removesuffix("\n").split("\n")[-20:]
    assert f"the log's last {len(last)} lines:\n" in shown.out and f"          {printable(last[-1])}\n" in shown.out


def test_newer_request_supersedes_a_queued_one(day):
    old = day.request("planner_old")
    assert (old.state, old.superseded_by) == (models.RequestState.SUPERSEDED, day.ids["planner"])
    assert [e.type for e in day.integration.events(old.id)] == [models.REQUEST_QUEUED, models.REQUEST_SUPERSEDED]


def test_events_are_in_order_and_progress_is_printed(day):
    events = day.integration.events(day.ids["good"])
    types = [e.type for e in events if e.type != models.PLUGIN_ERROR]  # those come whenever a plugin fails
    assert types[:4] == [models.REQUEST_QUEUED, models.BUILD_START, models.STAGE_START, models.TASK_START]
    assert types[-4:] == [models.BUILD_COMPLETE, models.BUILD_SUCCESS, models.MANIFEST_UPDATED,
                          models.RELEASE_TAGGED]
    assert types.count(models.TASK_COMPLETE) == types.count(models.TASK_START) == 8
    assert [e.id for e in events] == sorted(e.id for e in events)
    out = day.rounds[0].out
    assert f"#{day.ids['good']} task hardware/drone PASSED in " in out
    assert f"#{day.ids['hardware']} task hardware/drone TESTS_FAILED in " in out
    assert f"#{day.ids['good']} released: tag {tag(1)}" in out
    listed = day.integration.convoy("events", f"--request={day.ids['good']}")
    assert listed.code == 0 and len(listed.out.splitlines()) == len(events)


def test_plugins_get_their_events_and_failures_are_recorded(day):
    it = day.integration
    errors = [e for e in it.events() if e.type == models.PLUGIN_ERROR]
    by_plugin = {}
    for e in errors:
        by_plugin.setdefault(e.data["plugin"], []).append(e.data)
    assert set(by_plugin) == {"fails", "hangs", "hook-down"}  # never errors-on-errors: no loops
    assert {d["error"] for d in by_plugin["fails"]} == {"exit 1"}
    assert len(by_plugin["fails"]) == 4  # one per rejection
    assert {d["error"] for d in by_plugin["hangs"]} == {"timed out after 1 s"}
    assert len(by_plugin["hangs"]) == 7  # one per build
    assert len(by_plugin["hook-down"]) == 3 and all(" in 1 s)" in d["error"] for d in by_plugin["hook-down"])
    # The signed webhook got every event it asked for, each correctly signed.
    received = day.hook.received
    assert received and all(r["signed"] for r in received)
    assert sorted(r["event"]["type"] for r in received) == sorted(
        e.type for e in it.events() if e.type in ("REQUEST_REJECTED", "RELEASE_TAGGED", "MANIFEST_UPDATED"))
    assert all(r["type_header"] == r["event"]["type"] for r in received)
    # The recorder (PLUGIN_ERROR named explicitly) got the errors and the rejections: what the component's
    # repository is told.
    recorded = [json.loads(line) for line in day.recorded.read_text().splitlines()]
    assert {r["type"] for r in recorded} == {"PLUGIN_ERROR", "REQUEST_REJECTED"}
    rejected = {r["request_id"]: r["data"] for r in recorded if r["type"] == "REQUEST_REJECTED"}
    assert rejected[day.ids["hardware"]]["failures"][0]["targets"][0]["label"] == "//integration:flash_and_drive_test"
    # The log has every event but PLUGIN_ERROR (which a plugin gets only by naming it), in order.
    logged = [json.loads(line) for line in (it.checkout / ".convoy" / "events.jsonl").read_text().splitlines()]
    assert [e["id"] for e in logged] == [e.id for e in it.events() if e.type != models.PLUGIN_ERROR]
    # None of it changed an outcome.
    assert {day.request(n).state for n in ("good", "planner", "archive")} == {models.RequestState.MERGED}


def test_status_and_timings(day):
    it = day.integration
    run = it.convoy("status", "--json")
    rows = {r["id"]: r for r in json.loads(run.out)}
    assert {name: rows[i]["state"] for name, i in day.ids.items()} == {
        "good": "merged", "hardware": "rejected", "planner_old": "superseded", "planner": "merged",
        "configuration": "rejected", "integration": "rejected", "build": "rejected", "archive": "merged",
    }
    assert rows[day.ids["hardware"]]["stage"] == "hardware"
    assert rows[day.ids["good"]]["note"] == f"tag {tag(1)}"
    table = it.convoy("status").out.splitlines()
    assert table[0].split() == ["ID", "COMPONENT", "VERSION", "STATE", "STAGE", "AGE", "NOTE"]
    timings = it.show(day.ids["good"])["timings"]
    assert timings["bazel_seconds"] > 1 and timings["git_seconds"] > 0
    assert timings["total_seconds"] >= timings["bazel_seconds"] + timings["git_seconds"] - 0.01
    assert timings["driver_seconds"] == pytest.approx(
        timings["total_seconds"] - timings["bazel_seconds"] - timings["git_seconds"], abs=0.01)


def test_retry_puts_a_rejected_request_back_and_cancel_takes_it_out(day):
    it = day.integration
    request_id = day.ids["hardware"]
    run = it.convoy("retry", str(request_id))
    assert run.code == 0, run
    assert run.out == f"request #{request_id} (controller v1.3.0) is queued again; run: convoy process\n"
    request = it.request(request_id)
    assert (request.state, request.attempts, request.detail) == (models.RequestState.QUEUED, 0, None)
    run = it.convoy("cancel", str(request_id))
    assert run.code == 0, run
    assert it.request(request_id).state == models.RequestState.CANCELLED
    assert [e.type for e in it.events(request_id)][-2:] == [models.REQUEST_QUEUED, models.REQUEST_CANCELLED]
