"""convoy.plugins.forge: commit statuses on GitHub and GitLab.

Neither forge can run here (no network, and neither GitHub nor GitLab is a
program one can start in a test), so a real HTTP server on 127.0.0.1, in a
thread, stands in for both: it records each request exactly as it arrives
(method, raw path and query, headers, body) and answers what the test tells
it, the way GitHub's statuses API and GitLab's commit status API answer
(201 and the status; 401 {"message": "Bad credentials"}; GitLab's 400
"Cannot transition status ..."). The plugin is pointed at it through
`api_url`, and at the forge's real host name (github.com, gitlab.example.com)
through `host`, which is what the components' remotes name. The requests
themselves are real rows of a real store, and the remotes those of a real
manifest file, read the way `convoy process` reads them.
"""

from __future__ import annotations

import http.server
import json
import logging
import threading
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import pytest

from convoy import models
from convoy.bazel import bazel_environment
from convoy.config import parse_config
from convoy.errors import ConvoyError
from convoy.events import Dispatcher
from convoy.models import RequestBump
from convoy.plugins import PluginError, make_plugins
from convoy.plugins.forge import STATUS_EVENTS, ForgeStatusPlugin, checkout_remotes, store_requests
from convoy.store import checkout_store

TOKEN = "ghp_forge-token-for-tests-0123456789"
SHA = "0123456789abcdef0123456789abcdef01234567"
SHA2 = "89abcdef0123456789abcdef0123456789abcdef"
LINK = "https://convoy.example.com"

MANIFEST = """\
schema_version: 1
default_configuration: rover
components:
  messages:
    source: git
    remote: git@github.com:acme/messages.git
    version: v1.4.0
  planner:
    source: archive
    url: https://pkg.example.com/planner-{version}.tar.gz
    version: v2.1.0
  controller:
    source: git
    remote: https://git.example.org/acme/controller.git
    version: v1.2.0
  firmware:
    source: git
    remote: ssh://git@gitlab.example.com/robots/firmware-team/firmware.git
    version: v3.0.1
configurations:
  rover:
    components: [messages, planner, controller, firmware]
"""


# -- the stand-in forge -------------------------------------------------------------------


@dataclass
class Received:
    method: str
    path: str  # with the query, as sent
    headers: dict[str, str]  # names in lower case: HTTP's are case-insensitive (urllib sends Private-token)
    body: bytes

    @property
    def route(self) -> str:
        return self.path.partition("?")[0]

    @property
    def query(self) -> dict[str, str]:
        return {k: v for k, (v,) in urllib.parse.parse_qs(self.path.partition("?")[2], strict_parsing=True).items()}

    @property
    def json(self) -> dict:
        return json.loads(self.body)


@dataclass
class Forge:
    """Answers `answers` ((status, JSON body)) in turn, then 201 {"id": n}."""

    base: str = ""
    answers: list[tuple[int, dict]] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)


@pytest.fixture
def forge() -> Iterator[Forge]:
    state = Forge()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            state.received.append(Received("POST", self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            status, answer = state.answers.pop(0) if state.answers else (201, {"id": len(state.received)})
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.base = f"http://127.0.0.1:{server.server_address[1]}"
    yield state
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture(autouse=True)
def _no_proxy_and_a_token(monkeypatch):
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CONVOY_FORGE_TOKEN", TOKEN)


@pytest.fixture
def checkout(tmp_path: Path, store) -> Path:
    """tmp_path as an integration checkout: the manifest above, and the
    `store` fixture's database (tmp_path/.convoy/state.db)."""
    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests" / "manifest.yaml").write_text(MANIFEST)
    return tmp_path


def _request(store, component="messages", commit=SHA, **fields) -> models.Request:
    with store.transaction() as tx:
        return tx.insert_request(component=component, version="v1.5.0", commit=commit, requested_by="ci",
                                 **fields)


def _opener(checkout: Path):
    """What convoy process gives make_plugins: the checkout's store, opened read-only."""
    return lambda: checkout_store(checkout, create=False, readonly=True)


def _plugin(checkout: Path, forge: Forge, kind: str = "github", **kwargs) -> ForgeStatusPlugin:
    api = f"{forge.base}/api/v4" if kind == "gitlab" else forge.base
    settings = dict(forge=kind, api_url=api, host="gitlab.example.com" if kind == "gitlab" else "github.com",
                    token_env="CONVOY_FORGE_TOKEN", link_base=LINK, timeout=5, retries=2,
                    requests=store_requests(_opener(checkout)), remotes=checkout_remotes(checkout))
    settings.update(kwargs)
    return ForgeStatusPlugin("status", ["*"], **settings)


def _event(kind: str, request_id: int, **data) -> dict:
    return {"id": 1, "ts": "2026-05-01T10:00:00Z", "type": kind, "request_id": request_id, "build_id": None,
            "stage_id": None, "task_id": None, "data": data}


def _run(store, dispatcher: Dispatcher, *events: tuple[str, int, dict]) -> list[models.Event]:
    for kind, request_id, data in events:
        with store.transaction() as tx:
            tx.add_event(kind, request_id=request_id, data=data)
    assert dispatcher.flush(15)
    with store.read() as tx:
        return tx.events()


# -- GitHub -------------------------------------------------------------------------------


def test_github_pending_then_success_through_convoys_dispatch(checkout, store, forge):
    text = ("plugins:\n  - {name: status, type: forge-status, forge: github, api_url: '%s', host: github.com,\n"
            "     token_env: CONVOY_FORGE_TOKEN, link_base: '%s/', context: convoy/integration}\n"
            % (forge.base, LINK))
    (plugin,) = make_plugins(parse_config(text, "convoy.yaml").plugins, checkout, open_store=_opener(checkout))
    request = _request(store)
    dispatcher = Dispatcher(store, [plugin]).start()
    store.on_commit(dispatcher.notify)
    try:
        events = _run(store, dispatcher,
                      (models.REQUEST_QUEUED, request.id, {"component": "messages", "commit": SHA}),
                      (models.BUILD_START, request.id, {"number": 1}),
                      (models.STAGE_START, request.id, {"stage": "build"}),  # sets no status
                      (models.MANIFEST_UPDATED, request.id, {"branch": "main", "commit": "fedcba9876" * 4}),
                      (models.RELEASE_TAGGED, request.id, {"tag": "v2026.5.1"}))
    finally:
        dispatcher.stop()

    assert models.PLUGIN_ERROR not in [e.type for e in events]
    assert [(r.method, r.path) for r in forge.received] == [("POST", f"/repos/acme/messages/statuses/{SHA}")] * 4
    for received in forge.received:
        assert received.headers["authorization"] == f"Bearer {TOKEN}"
        assert received.headers["accept"] == "application/vnd.github+json"
        assert received.headers["content-type"] == "application/json"
        assert "private-token" not in received.headers
    link = f"{LINK}/requests/{request.id}"
    assert [r.json for r in forge.received] == [
        {"state": "pending", "target_url": link, "description": f"queued for integration as #{request.id}",
         "context": "convoy/integration"},
        {"state": "pending", "target_url": link, "description": "integration build 1 running",
         "context": "convoy/integration"},
        {"state": "success", "target_url": link, "description": "merged into main (fedcba9876)",
         "context": "convoy/integration"},
        {"state": "success", "target_url": link, "description": "merged and released as v2026.5.1",
         "context": "convoy/integration"},
    ]


def test_github_pending_then_failure(checkout, store, forge):
    request = _request(store)
    plugin = _plugin(checkout, forge, context="ci/convoy")

    plugin.deliver(_event(models.REQUEST_QUEUED, request.id))
    plugin.deliver(_event(models.REQUEST_REJECTED, request.id,
                          summary="integration failed in rover: //integration:wire_test FAILED\n\x1b[2J"))

    assert [r.json["state"] for r in forge.received] == ["pending", "failure"]
    assert forge.received[1].json == {
        "state": "failure", "target_url": f"{LINK}/requests/{request.id}", "context": "ci/convoy",
        "description": "rejected: integration failed in rover: //integration:wire_test FAILED \\x1b[2J",
    }


def test_a_long_description_is_cut_and_no_link_base_means_no_link(checkout, store, forge):
    request = _request(store)
    _plugin(checkout, forge, link_base=None).deliver(_event(models.REQUEST_ERROR, request.id, attempts=3,
                                                           reason="x" * 500))
    (received,) = forge.received
    assert "target_url" not in received.json
    assert len(received.json["description"]) == 140 and received.json["description"].endswith("xx...")
    assert received.json["state"] == "error"


def test_a_group_sets_a_status_on_each_bumps_commit(checkout, store, forge):
    request = _request(store, bumps=(RequestBump(component="planner", version="v2.2.0"),
                                     RequestBump(component="messages", version="v1.5.1", commit=SHA2)))
    _plugin(checkout, forge).deliver(_event(models.REQUEST_CANCELLED, request.id, reason="cancelled while queued"))
    assert [r.route for r in forge.received] == [f"/repos/acme/messages/statuses/{SHA}",
                                                 f"/repos/acme/messages/statuses/{SHA2}"]
    assert {r.json["state"] for r in forge.received} == {"error"}
    assert forge.received[0].json["description"] == "cancelled: cancelled while queued"


# -- GitLab -------------------------------------------------------------------------------


def test_gitlab_pending_running_success_with_an_encoded_project_path(checkout, store, forge):
    request = _request(store, component="firmware")
    plugin = _plugin(checkout, forge, "gitlab")

    for kind, data in [(models.REQUEST_QUEUED, {}), (models.BUILD_START, {"number": 2}),
                       (models.MANIFEST_UPDATED, {"branch": "main", "commit": "abcdef0123" * 4})]:
        plugin.deliver(_event(kind, request.id, **data))

    route = f"/api/v4/projects/robots%2Ffirmware-team%2Ffirmware/statuses/{SHA}"
    assert [(r.method, r.route) for r in forge.received] == [("POST", route)] * 3
    link = f"{LINK}/requests/{request.id}"
    assert [r.query for r in forge.received] == [
        {"state": "pending", "description": f"queued for integration as #{request.id}",
         "name": "convoy/integration", "target_url": link},
        {"state": "running", "description": "integration build 2 running", "name": "convoy/integration",
         "target_url": link},
        {"state": "success", "description": "merged into main (abcdef0123)", "name": "convoy/integration",
         "target_url": link},
    ]
    # Every value percent-encoded in the query (a space as %20, a slash and a colon too).
    assert "description=queued%20for%20integration%20as%20%23" in forge.received[0].path
    assert f"target_url=https%3A%2F%2Fconvoy.example.com%2Frequests%2F{request.id}" in forge.received[0].path
    for received in forge.received:
        assert received.headers["private-token"] == TOKEN
        assert "authorization" not in received.headers
        assert received.body == b""


def test_gitlab_pending_then_failed_and_a_status_it_already_has(checkout, store, forge):
    request = _request(store, component="firmware")
    plugin = _plugin(checkout, forge, "gitlab")
    forge.answers = [(201, {}), (400, {"message": "Cannot transition status via :enqueue from :pending"})]

    plugin.deliver(_event(models.REQUEST_QUEUED, request.id))
    plugin.deliver(_event(models.REQUEST_REQUEUED, request.id, reason="the lab went away"))  # pending again: fine
    plugin.deliver(_event(models.REQUEST_REJECTED, request.id, summary="build failed"))

    assert [r.query["state"] for r in forge.received] == ["pending", "pending", "failed"]
    assert forge.received[2].query["description"] == "rejected: build failed"


# -- failures: PLUGIN_ERROR, never the token, never a stopped queue ----------------------------


def test_a_401_is_a_plugin_error_without_the_token_and_the_queue_goes_on(checkout, store, forge):
    request = _request(store)
    # A forge that quotes the token back (none should) is still never shown.
    forge.answers = [(401, {"message": f"Bad credentials: {TOKEN}",
                            "documentation_url": "https://docs.github.com/rest"})]
    dispatcher = Dispatcher(store, [_plugin(checkout, forge, retries=3)]).start()
    store.on_commit(dispatcher.notify)
    try:
        events = _run(store, dispatcher, (models.REQUEST_QUEUED, request.id, {}),
                      (models.BUILD_START, request.id, {"number": 1}))
    finally:
        dispatcher.stop()

    assert [e.type for e in events] == [models.REQUEST_QUEUED, models.BUILD_START, models.PLUGIN_ERROR]
    error = events[2].data
    assert (error["plugin"], error["event_type"], error["event_id"]) == ("status", models.REQUEST_QUEUED, 1)
    assert error["error"] == (f"POST {forge.base}/repos/acme/messages/statuses/{SHA}: HTTP 401 Unauthorized: "
                              "Bad credentials: *** (1 attempt in 5 s)")  # a 401 is not retried
    assert TOKEN not in json.dumps([e.to_dict() for e in events])
    assert [r.json["state"] for r in forge.received] == ["pending", "pending"]  # the next event still went out


def test_a_500_is_retried_then_a_plugin_error(checkout, store, forge):
    request = _request(store, component="firmware")
    forge.answers = [(500, {"message": "500 Internal Server Error"})] * 3
    with pytest.raises(PluginError) as info:
        _plugin(checkout, forge, "gitlab", retries=2).deliver(_event(models.REQUEST_QUEUED, request.id))
    assert str(info.value) == (f"POST {forge.base}/api/v4/projects/robots%2Ffirmware-team%2Ffirmware/statuses/"
                               f"{SHA}: HTTP 500 Internal Server Error: 500 Internal Server Error (3 attempts in 5 s)")
    assert TOKEN not in str(info.value) and len(forge.received) == 3


def test_a_missing_token_names_the_variable_and_sends_nothing(checkout, store, forge, monkeypatch):
    monkeypatch.delenv("CONVOY_FORGE_TOKEN")
    request = _request(store)
    with pytest.raises(PluginError) as info:
        _plugin(checkout, forge).deliver(_event(models.REQUEST_QUEUED, request.id))
    assert str(info.value) == "environment variable CONVOY_FORGE_TOKEN (the github token) is not set"
    assert forge.received == []


def test_components_not_on_the_forge_are_skipped_with_one_log_line(checkout, store, forge, caplog):
    plugin = _plugin(checkout, forge)
    archive, elsewhere, gitlab = (_request(store, component=c) for c in ("planner", "controller", "firmware"))
    caplog.set_level(logging.INFO, logger="convoy.plugins.forge")

    for request in (archive, elsewhere, gitlab, archive):
        plugin.deliver(_event(models.REQUEST_QUEUED, request.id))
        plugin.deliver(_event(models.BUILD_START, request.id, number=1))

    assert forge.received == []
    assert [r.getMessage() for r in caplog.records] == [
        "plugin status: no commit status for planner: it has no git remote (an archive or local source)",
        "plugin status: no commit status for controller: its remote is not on github.com",
        "plugin status: no commit status for firmware: its remote is not on github.com",
    ]


# -- convoy.yaml --------------------------------------------------------------------------


def test_config_defaults_and_the_token_is_withheld_from_bazel():
    config = parse_config("plugins:\n  - {name: status, type: forge-status, forge: gitlab, "
                          "token_env: CONVOY_FORGE_TOKEN}\n", "convoy.yaml")
    (spec,) = config.plugins
    assert (spec.kind, spec.forge, spec.api_url, spec.host, spec.token_env, spec.context, spec.link_base) == (
        "forge-status", "gitlab", "https://gitlab.com/api/v4", "gitlab.com", "CONVOY_FORGE_TOKEN",
        "convoy/integration", None)
    assert spec.events == STATUS_EVENTS
    assert "CONVOY_FORGE_TOKEN" in config.secret_env
    environment = bazel_environment({"CONVOY_FORGE_TOKEN": TOKEN, "CONVOY_FORGE": "x", "PATH": "/bin"},
                                    secret_env=config.secret_env)
    assert "CONVOY_FORGE_TOKEN" not in environment and environment["PATH"] == "/bin"
    github = parse_config("plugins:\n  - {name: s, type: forge-status, forge: github, token_env: T, "
                          "api_url: 'https://ghe.example.com/api/v3/'}\n", "convoy.yaml").plugins[0]
    assert (github.api_url, github.host) == ("https://ghe.example.com/api/v3", "ghe.example.com")
    assert parse_config("plugins:\n  - {name: s, type: forge-status, forge: github, token_env: T}\n",
                        "convoy.yaml").plugins[0].host == "github.com"


@pytest.mark.parametrize("settings, problem", [
    ("forge: bitbucket, token_env: T",
     "plugins.s.forge: unknown forge 'bitbucket' (expected: github, gitlab); write forge: github or forge: gitlab"),
    ("token_env: T", "plugins.s: missing required key 'forge'; add it, e.g. forge: github"),
    ("forge: github", "plugins.s: missing required key 'token_env'; add it, e.g. token_env: CONVOY_FORGE_TOKEN"),
    ("forge: github, token_env: 'my token'",
     "plugins.s.token_env: 'my token' is not an environment variable name; write a name like "
     "token_env: CONVOY_FORGE_TOKEN (the variable, not the token)"),
    ("forge: github, token_env: T, api_url: 'ftp://api.github.com'",
     "plugins.s.api_url: 'ftp://api.github.com' must start with https://, http://; "
     "write it like api_url: https://api.github.com"),
    ("forge: gitlab, token_env: T, api_url: 'https://bob:hunter2@gitlab.example.com/api/v4'",
     "plugins.s.api_url: 'https://bob:***@gitlab.example.com/api/v4' holds credentials (the token comes from "
     "token_env); write it like api_url: https://gitlab.com/api/v4"),
    ("forge: github, token_env: T, link_base: 'javascript:alert(1)'",
     "plugins.s.link_base: 'javascript:alert(1)' must start with https://, http://; "
     "write it like link_base: https://convoy.example.com"),
    ("forge: github, token_env: T, host: 'github.com/acme'",
     "plugins.s.host: 'github.com/acme' is not a host name; write the host of the component remotes, like "
     "host: github.com"),
    ("forge: github, token_env: T, events: [REQUEST_QUEUED, TASK_FAIL]",
     f"plugins.s.events: 'TASK_FAIL' sets no commit status (forge-status reports: {', '.join(STATUS_EVENTS)}); "
     "remove it, or leave events: out for all of them"),
    ("forge: github, token_env: T, secret_env: T",
     "plugins.s: unknown key 'secret_env' (expected: name, type, events, forge, api_url, host, token_env, "
     "link_base, context, timeout, retries, replay); fix or remove it"),
])
def test_bad_forge_status_settings_are_one_line_each(settings, problem):
    with pytest.raises(ConvoyError) as info:
        parse_config(f"plugins:\n  - {{name: s, type: forge-status, {settings}}}\n", "convoy.yaml")
    assert str(info.value) == f"convoy.yaml:2: {problem}"
    assert "hunter2" not in str(info.value)
