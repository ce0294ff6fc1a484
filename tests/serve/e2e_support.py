"""What tests/serve/test_end_to_end.py needs beyond tests/serve/conftest.py: a `convoy serve` over
a real integration repository (the sample's components, built by the real Bazel).

- `e2e_config()`: convoy.yaml for it: tests.support.integration.config_text
  with the stages build and integration only (fast), and a `serve:` section
  whose tokens and GitHub secret are in environment variables (SECRETS);
- `serve_env()`: the environment `convoy serve` starts with: the test's,
  with SECRETS;
- `github_tag_push`, `signed`: a GitHub `push` of a tag as GitHub sends it,
  and its headers with X-Hub-Signature-256; `gitlab_tag_push`,
  `gitlab_headers`: GitLab's tag push and its headers with X-Gitlab-Token;
- `EventStream`: a client of `GET /api/events/stream` that reads SSE
  messages one by one (each: id, event type, the event as data);
- `start_process`: `convoy process` as a real process, in the background.

The server itself is tests/serve/conftest.py's (`start_server`, `stop_server`).
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import os
import subprocess
import time
from dataclasses import dataclass
from typing import Any, Callable

from tests.support.integration import CONVOY, Integration, config_text

FAST_STAGES = """\
stages:
  - {name: build, command: build, timeout: 300}
  - {name: integration, command: test, tag_filter: convoy-integration, timeout: 300}
"""

SECRETS = {
    "CONVOY_E2E_TOKEN_PLANNER": "e2e-planner-0c4f7a29d6b3e815",
    "CONVOY_E2E_TOKEN_MESSAGES": "e2e-messages-93d2b6a0f17c4e58",
    "CONVOY_E2E_TOKEN_ADMIN": "e2e-admin-5b7e1f08c2a94d36",
    "CONVOY_E2E_GITHUB_SECRET": "e2e-github-a86f3d1c0b2e9457",
    "CONVOY_E2E_GITLAB_TOKEN": "e2e-gitlab-7d1e40b9a3c5f268",
}
PLANNER = SECRETS["CONVOY_E2E_TOKEN_PLANNER"]
MESSAGES = SECRETS["CONVOY_E2E_TOKEN_MESSAGES"]
ADMIN = SECRETS["CONVOY_E2E_TOKEN_ADMIN"]
GITHUB_SECRET = SECRETS["CONVOY_E2E_GITHUB_SECRET"].encode()
GITLAB_TOKEN = SECRETS["CONVOY_E2E_GITLAB_TOKEN"]

SERVE = """\
serve:
  reads: open
  tokens:
    - {name: ci-planner, env: CONVOY_E2E_TOKEN_PLANNER, components: [planner]}
    - {name: ci-messages, env: CONVOY_E2E_TOKEN_MESSAGES, components: [messages]}
    - {name: ops, env: CONVOY_E2E_TOKEN_ADMIN, admin: true}
  github: {secret_env: CONVOY_E2E_GITHUB_SECRET}
  gitlab: {token_env: CONVOY_E2E_GITLAB_TOKEN}
"""


def e2e_config() -> str:
    """convoy.yaml: the tests' (config_text), stages build and integration, and SERVE."""
    return config_text(stages=FAST_STAGES) + SERVE


def serve_env() -> dict[str, str]:
    """The environment of this test (its HOME, git identity) with SECRETS, without PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVOY_")}
    env.pop("PYTHONPATH", None)
    return {**env, **SECRETS}


def github_tag_push(clone_url: str, tag: str, *, pusher: str = "alice") -> dict[str, Any]:
    """A GitHub `push` event of tag `tag` to the repository at `clone_url` (the fields convoy reads, and a few more)."""
    return {"ref": f"refs/tags/{tag}", "before": "0" * 40, "after": "1" * 40, "created": True, "deleted": False,
            "repository": {"full_name": "acme/component", "clone_url": clone_url},
            "pusher": {"name": pusher, "email": f"{pusher}@example.com"}, "sender": {"login": pusher}}


def gitlab_tag_push(http_url: str, tag: str, *, user: str = "bob") -> dict[str, Any]:
    """A GitLab `Tag Push Hook` of tag `tag` to the project at `http_url` (the fields convoy reads, and a few more)."""
    return {"object_kind": "tag_push", "ref": f"refs/tags/{tag}", "before": "0" * 40, "after": "2" * 40,
            "checkout_sha": "3" * 40, "user_username": user, "user_name": user.title(),
            "project": {"git_http_url": http_url}}


def gitlab_headers(delivery: str, *, token: str = GITLAB_TOKEN) -> dict[str, str]:
    return {"Content-Type": "application/json", "X-Gitlab-Event": "Tag Push Hook", "X-Gitlab-Token": token,
            "X-Gitlab-Event-UUID": delivery}


def signed(body: bytes, delivery: str, *, secret: bytes = GITHUB_SECRET, event: str = "push") -> dict[str, str]:
    """GitHub's headers for `body`: its event, its delivery id and its X-Hub-Signature-256 with `secret`."""
    return {"Content-Type": "application/json", "X-GitHub-Event": event, "X-GitHub-Delivery": delivery,
            "X-Hub-Signature-256": "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()}


@dataclass(frozen=True)
class Message:
    """One SSE message: its id, its event type and the event."""

    id: int
    type: str
    event: dict[str, Any]
    at: float  # time.monotonic() when it arrived


class EventStream:
    """`GET /api/events/stream` after event `after`, read one message at a time."""

    def __init__(self, port: int, after: int, *, timeout: float = 40) -> None:
        # the socket's timeout outlasts the server's 15 s keep-alive comment
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        self.conn.request("GET", "/api/events/stream", headers={"Last-Event-ID": str(after)})
        self.response = self.conn.getresponse()
        assert self.response.status == 200, self.response.read()
        assert self.response.getheader("content-type", "").startswith("text/event-stream")

    def next(self, deadline: float) -> Message:
        fields: dict[str, str] = {}
        while True:
            assert time.monotonic() < deadline, f"no event before the deadline (so far: {fields})"
            line = self.response.fp.readline().decode()
            assert line, "the stream ended"
            line = line.rstrip("\n")
            if not line:
                if "id" in fields:
                    return Message(int(fields["id"]), fields["event"], json.loads(fields["data"]), time.monotonic())
                fields = {}
            elif not line.startswith(":"):
                key, _, value = line.partition(": ")
                fields[key] = value

    def until(self, last: Callable[[Message], bool], timeout: float) -> list[Message]:
        """Every message up to and including the first for which `last` is true."""
        deadline, found = time.monotonic() + timeout, []
        while not found or not last(found[-1]):
            found.append(self.next(deadline))
        return found

    def close(self) -> None:
        self.conn.close()


def start_process(it: Integration, *args: str) -> subprocess.Popen:
    """`convoy process <args>` in the checkout, in the background (output: stdout, text)."""
    env = {k: v for k, v in os.environ.items() if k != "CONVOY_FAILPOINT"}
    return subprocess.Popen([str(CONVOY), "process", *args], cwd=it.checkout, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def finish(proc: subprocess.Popen, timeout: float = 600) -> str:
    """Waits for `proc` (killed if it outlasts `timeout`); its output. Fails the test if it failed."""
    try:
        out, _ = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=30)
    assert proc.returncode == 0, f"convoy process: exit {proc.returncode}\n{out[-6000:]}"
    return out


def requests_for(server, component: str, version: str) -> list[dict[str, Any]]:
    """The requests `convoy status --json` lists for component at version."""
    return [r for r in server.cli_json("status") if (r["component"], r["version"]) == (component, version)]


def store_events(server, request_id: int) -> list[dict[str, Any]]:
    reply = server.call("GET", f"/api/events?request={request_id}")
    assert reply.status == 200, reply.text
    return reply.json["events"]
