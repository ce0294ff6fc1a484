"""The forges' webhooks on a real `convoy serve` (one per module, tests in
order): GitHub's signed tag push and published release, GitLab's tag push,
each submitting once per delivery (after a restart too); a bad signature or
token refused; what is not a component's tag acknowledged and ignored with
its reason. The payloads are the fields GitHub and GitLab send, trimmed;
neither forge runs here, so the tests post them as the forge would.
"""

from __future__ import annotations

import hashlib
import hmac
import json

from tests.serve.conftest import FORGE, SECRETS, make_checkout, server_env, start_server, stop_server

GITHUB_SECRET = SECRETS["CONVOY_GITHUB_SECRET"].encode()
GITLAB_TOKEN = SECRETS["CONVOY_GITLAB_TOKEN"]


def github_push(name: str, tag: str, *, pusher: str = "alice", ref: str = "", **repository: str) -> dict:
    urls = repository or {"clone_url": f"{FORGE}/{name}.git", "ssh_url": f"git@forge.test:acme/{name}.git",
                          "html_url": f"{FORGE}/{name}"}
    return {"ref": ref or f"refs/tags/{tag}", "before": "0" * 40, "after": "1" * 40, "created": True,
            "deleted": False, "repository": {"full_name": f"acme/{name}", **urls},
            "pusher": {"name": pusher, "email": f"{pusher}@example.com"}, "sender": {"login": pusher}}


def post_github(server, event: str, payload: dict, delivery: str, *, secret: bytes = GITHUB_SECRET,
                signature: str = ""):
    body = json.dumps(payload).encode()
    sign = signature or "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
    headers = {"Content-Type": "application/json", "X-GitHub-Event": event, "X-GitHub-Delivery": delivery}
    if sign != "-":
        headers["X-Hub-Signature-256"] = sign
    return server.call("POST", "/webhooks/github", raw=body, headers=headers)


def post_gitlab(server, payload: dict, delivery: str, *, token: str = GITLAB_TOKEN):
    headers = {"X-Gitlab-Event": "Tag Push Hook", "X-Gitlab-Token": token, "X-Gitlab-Event-UUID": delivery}
    return server.call("POST", "/webhooks/gitlab", payload, headers=headers)


def gitlab_push(name: str, tag: str, *, user: str = "bob") -> dict:
    return {"object_kind": "tag_push", "ref": f"refs/tags/{tag}", "before": "0" * 40, "after": "2" * 40,
            "checkout_sha": "3" * 40, "user_username": user, "user_name": "Bob",
            "project": {"git_http_url": f"{FORGE}/{name}.git", "git_ssh_url": f"git@forge.test:acme/{name}.git",
                        "web_url": f"{FORGE}/{name}"}}


def requests_of(server, component: str, version: str) -> list[dict]:
    return [r for r in server.cli_json("status") if (r["component"], r["version"]) == (component, version)]


def test_a_signed_github_tag_push_submits_the_version(server, forge):
    commit = forge.tag("messages", "v1.3.0")
    reply = post_github(server, "push", github_push("messages", "v1.3.0"), "gh-1")
    assert reply.status == 201, reply.text
    assert (reply.json["component"], reply.json["version"], reply.json["existing"]) == ("messages", "v1.3.0", False)
    (row,) = requests_of(server, "messages", "v1.3.0")
    assert (row["id"], row["commit"], row["requested_by"]) == (reply.json["id"], commit, "github:alice")
    assert "github delivery gh-1: request #" in server.log_text()


def test_the_same_delivery_again_submits_nothing(server):
    again = post_github(server, "push", github_push("messages", "v1.3.0"), "gh-1")
    assert again.status == 200, again.text
    (row,) = requests_of(server, "messages", "v1.3.0")
    assert again.json == {"duplicate": True, "outcome": "submitted", "request_id": row["id"]}


def test_the_release_of_the_same_tag_finds_the_request(server):
    release = {"action": "published", "release": {"tag_name": "v1.3.0", "target_commitish": "main"},
               "repository": {"clone_url": f"{FORGE}/messages.git"}, "sender": {"login": "carol"}}
    reply = post_github(server, "release", release, "gh-2")
    assert reply.status == 200 and reply.json["existing"] is True, reply.text
    assert len(requests_of(server, "messages", "v1.3.0")) == 1
    drafted = post_github(server, "release", {**release, "action": "created"}, "gh-3")
    assert drafted.status == 202 and "only published releases submit" in drafted.json["reason"]


def test_a_bad_or_missing_signature_is_401_and_does_nothing(server, forge):
    forge.tag("planner", "v1.3.0")
    payload = github_push("planner", "v1.3.0")
    for reply in (post_github(server, "push", payload, "gh-4", secret=b"not the secret"),
                  post_github(server, "push", payload, "gh-4", signature="-"),
                  post_github(server, "push", payload, "gh-4", signature="sha1=abc")):
        assert reply.status == 401, reply.text
        assert "X-Hub-Signature-256" in reply.json["error"]
    assert requests_of(server, "planner", "v1.3.0") == []
    assert "github delivery -: refused: missing or wrong X-Hub-Signature-256" in server.log_text()
    # the delivery was not recorded: signed right, it submits
    assert post_github(server, "push", payload, "gh-4").status == 201


def test_any_url_of_the_repository_finds_its_component(server):
    payload = github_push("planner", "v1.2.0", html_url="https://FORGE.test/acme/planner/")  # case, trailing slash
    reply = post_github(server, "push", payload, "gh-5")
    assert reply.status == 201 and reply.json["component"] == "planner", reply.text


def test_what_is_not_a_components_version_is_acknowledged_and_ignored(server):
    before = len(server.cli_json("status"))
    cases = [
        (github_push("other", "v1.0.0"), "is not the remote of any component in manifests/manifest.yaml"),
        (github_push("messages", "nightly"), "tag nightly is not a version"),
        (github_push("messages", "", ref="refs/heads/main"), "not a tag push (ref refs/heads/main)"),
        ({**github_push("messages", "v1.2.0"), "deleted": True}, "tag v1.2.0 was deleted"),
    ]
    for number, (payload, reason) in enumerate(cases):
        reply = post_github(server, "push", payload, f"gh-ignored-{number}")
        assert reply.status == 202, reply.text
        assert reply.json["ignored"] is True and reason in reply.json["reason"]
        assert reason in server.log_text()
    other = post_github(server, "issues", {"action": "opened"}, "gh-issue")
    assert other.status == 202 and "not a tag push or a release" in other.json["reason"]
    assert post_github(server, "ping", {"zen": "hi"}, "gh-ping").json == {"pong": True}
    assert len(server.cli_json("status")) == before


def test_a_tag_the_cli_refuses_is_422_and_may_come_again(server, forge):
    payload = github_push("messages", "v1.4.0")
    refused = post_github(server, "push", payload, "gh-6")  # the tag is not on the remote yet
    assert refused.status == 422, refused.text
    done = server.cli("submit", "--component=messages", "--version=v1.4.0")
    assert refused.json["error"] == done.stderr.strip().removeprefix("convoy: error: ")
    forge.tag("messages", "v1.4.0")
    assert post_github(server, "push", payload, "gh-6").status == 201  # the redelivery submits


def test_a_gitlab_tag_push_submits_once(server, forge):
    commit = forge.tag("planner", "v1.4.0")
    reply = post_gitlab(server, gitlab_push("planner", "v1.4.0"), "gl-1")
    assert reply.status == 201, reply.text
    (row,) = requests_of(server, "planner", "v1.4.0")
    assert (row["commit"], row["requested_by"]) == (commit, "gitlab:bob")
    assert post_gitlab(server, gitlab_push("planner", "v1.4.0"), "gl-1").json["duplicate"] is True
    wrong = post_gitlab(server, gitlab_push("planner", "v1.4.0"), "gl-2", token="not-the-token")
    assert wrong.status == 401 and "X-Gitlab-Token" in wrong.json["error"]
    ignored = post_gitlab(server, gitlab_push("elsewhere", "v1.0.0"), "gl-3")
    assert ignored.status == 202 and "not the remote of any component" in ignored.json["reason"]
    assert len(requests_of(server, "planner", "v1.4.0")) == 1


def test_a_restarted_server_still_knows_the_deliveries(server, forge, tmp_path):
    second = start_server(server.root, server_env(forge), tmp_path / "second.log")
    try:
        replay = post_github(second, "push", github_push("messages", "v1.3.0"), "gh-1")
        assert replay.status == 200 and replay.json["duplicate"] is True, replay.text
        server.replies.extend(second.replies)
    finally:
        stop_server(second.proc)
    assert len(requests_of(server, "messages", "v1.3.0")) == 1


TOKEN_READS = """\
queue: {mode: serial}
serve:
  reads: token
  tokens: [{name: ops, env: CONVOY_TOKEN_ADMIN, admin: true}]
"""


def test_webhooks_that_are_not_configured_are_404_and_reads_may_need_a_token(forge, tmp_path):
    root = make_checkout(forge, tmp_path, config=TOKEN_READS)
    other = start_server(root, server_env(forge), tmp_path / "plain.log")
    try:
        reply = post_github(other, "push", github_push("messages", "v1.2.0"), "gh-x")
        assert reply.status == 404 and "serve.github.secret_env" in reply.json["error"]
        assert other.call("POST", "/webhooks/gitlab", {}).status == 404
        submit = other.call("POST", "/api/requests", {"component": "messages", "version": "v1.2.0"},
                            token=SECRETS["CONVOY_TOKEN_MESSAGES"])
        assert submit.status == 401  # not a token of this server
        for path in ("/api/status", "/api/events", "/api/releases", "/api/requests/1", "/api/events/stream"):
            assert other.call("GET", path).status == 401, path
        assert other.call("GET", "/api/status", token=SECRETS["CONVOY_TOKEN_ADMIN"]).status == 200
        assert other.call("GET", "/api/requests/1", token=SECRETS["CONVOY_TOKEN_ADMIN"]).status == 404
    finally:
        stop_server(other.proc)


def test_no_secret_in_the_log_the_store_or_a_response(server):
    log, store = server.log_text(), server.store_bytes()
    for secret in SECRETS.values():
        assert secret not in log and secret.encode() not in store
        for reply in server.replies:
            assert secret not in reply.text and secret not in json.dumps(reply.headers)
