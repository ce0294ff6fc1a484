"""convoy.plugins: the log, command and webhook plugins deliver what they
should, and fail (never hang) with a one-line reason: against a real local
HTTP server that checks the signature, and real commands."""

from __future__ import annotations

import http.server
import json
import os
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import pytest

from convoy.plugins import (
    CommandPlugin,
    CommandSpec,
    LogPlugin,
    LogSpec,
    Plugin,
    PluginError,
    WebhookPlugin,
    WebhookSpec,
    make_plugins,
    sign,
    verify,
)

SECRET = "s3cret-for-tests"
EVENT = {
    "id": 42, "ts": 1795358342.5, "type": "BUILD_FAIL", "request_id": 7, "build_id": 3, "stage_id": 9,
    "task_id": None, "data": {"stage": "integration", "failing": ["//integration:a_test"], "note": "é"},
}


# -- a real HTTP server ---------------------------------------------------------------


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Hook:
    """A local webhook receiver: answers with `statuses` in turn (then 200),
    or holds the connection until `release` is set when `hang` is true."""

    url: str = ""
    statuses: list[int] = field(default_factory=list)
    hang: bool = False
    release: threading.Event = field(default_factory=threading.Event)
    received: list[Received] = field(default_factory=list)
    times: list[float] = field(default_factory=list)


@pytest.fixture
def hook() -> Iterator[Hook]:
    state = Hook()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            state.times.append(time.monotonic())
            state.received.append(Received("POST", self.path, dict(self.headers.items()), body))
            if state.hang:
                state.release.wait(30)
                return
            status = state.statuses.pop(0) if state.statuses else 200
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/convoy/hook"
    yield state
    state.release.set()
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture(autouse=True)
def _no_proxy_and_a_secret(monkeypatch):
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CONVOY_TEST_SECRET", SECRET)


def _webhook(url: str, **kwargs) -> WebhookPlugin:
    return WebhookPlugin("hook", ["*"], url, "CONVOY_TEST_SECRET", **kwargs)


def _unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- webhook --------------------------------------------------------------------------


def test_webhook_posts_signed_compact_json(hook):
    _webhook(hook.url).deliver(EVENT)

    (request,) = hook.received
    assert (request.method, request.path) == ("POST", "/convoy/hook")
    assert request.body == json.dumps(EVENT, sort_keys=True, separators=(",", ":")).encode()
    assert json.loads(request.body) == EVENT
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["X-Convoy-Event"] == "BUILD_FAIL"
    assert request.headers["X-Convoy-Delivery"] == "42"
    signature = request.headers["X-Convoy-Signature"]
    assert signature.startswith("sha256=") and len(signature) == len("sha256=") + 64
    assert verify(SECRET.encode(), request.body, signature)
    assert not verify(b"another secret", request.body, signature)
    assert not verify(SECRET.encode(), request.body + b" ", signature)


def test_webhook_retries_with_backoff_until_delivered(hook):
    hook.statuses = [500, 500]

    _webhook(hook.url, timeout=10, retries=3).deliver(EVENT)

    assert len(hook.received) == 3
    assert len({r.body for r in hook.received}) == 1
    gaps = [b - a for a, b in zip(hook.times, hook.times[1:])]
    assert 0.45 <= gaps[0] < 1.5 and 0.95 <= gaps[1] < 2.5  # 0.5 s, then 1 s (bounds for a loaded machine)


def test_webhook_gives_up_after_its_retries(hook):
    hook.statuses = [503] * 10

    with pytest.raises(PluginError) as info:
        _webhook(hook.url, timeout=10, retries=2).deliver(EVENT)

    assert str(info.value) == f"POST {hook.url}: HTTP 503 Service Unavailable (3 attempts in 10 s)"
    assert len(hook.received) == 3


def test_webhook_that_hangs_fails_within_its_budget(hook):
    hook.hang = True
    started = time.monotonic()

    with pytest.raises(PluginError) as info:
        _webhook(hook.url, timeout=2, retries=3).deliver(EVENT)

    elapsed = time.monotonic() - started
    assert elapsed < 2 + 3
    assert str(info.value).startswith(f"POST {hook.url}: timed out after ")
    assert str(info.value).endswith("(1 attempt in 2 s)")
    assert len(hook.received) == 1


def test_webhook_to_a_closed_port_fails_after_retries():
    url = f"http://127.0.0.1:{_unused_port()}/hook"
    started = time.monotonic()

    with pytest.raises(PluginError) as info:
        _webhook(url, timeout=1.2, retries=5).deliver(EVENT)

    assert time.monotonic() - started < 1.2 + 3
    # attempts at 0 s, 0.5 s; the next would wait until 1.5 s, past the budget
    assert str(info.value) == f"POST {url}: Connection refused (2 attempts in 1.2 s)"


def test_webhook_without_its_secret_names_the_variable(hook, monkeypatch):
    monkeypatch.delenv("CONVOY_TEST_SECRET")
    with pytest.raises(PluginError) as info:
        _webhook(hook.url).deliver(EVENT)
    assert str(info.value) == "environment variable CONVOY_TEST_SECRET (the webhook's HMAC secret) is not set"
    assert hook.received == []


def test_webhook_does_not_follow_redirects(hook):
    hook.statuses = [302]
    with pytest.raises(PluginError) as info:
        _webhook(hook.url, timeout=1, retries=0).deliver(EVENT)
    assert str(info.value) == f"POST {hook.url}: HTTP 302 Found (1 attempt in 1 s)"


def test_sign_is_hmac_sha256():
    # A well-known HMAC-SHA256 example (key "key", the pangram).
    assert sign(b"key", b"The quick brown fox jumps over the lazy dog") == (
        "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
    )


# -- command --------------------------------------------------------------------------


def _script(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / name
    path.write_text(f"#!{sys.executable}\n{body}")
    path.chmod(0o755)
    return path


def test_command_gets_the_event_on_stdin_and_its_type_in_the_environment(tmp_path):
    script = _script(tmp_path, "notify", (
        "import os, sys, pathlib\n"
        "pathlib.Path(sys.argv[1]).write_bytes(sys.stdin.buffer.read())\n"
        "pathlib.Path(sys.argv[2]).write_text(os.environ['CONVOY_EVENT'] + ' ' + os.getcwd())\n"
    ))
    plugin = CommandPlugin("notify", ["BUILD_FAIL"], [str(script), "event.json", "env.txt"], cwd=tmp_path)

    plugin.deliver(EVENT)

    assert json.loads((tmp_path / "event.json").read_text()) == EVENT
    assert (tmp_path / "env.txt").read_text() == f"BUILD_FAIL {tmp_path}"


def test_a_failing_command_says_its_exit_and_first_error_line(tmp_path):
    script = _script(tmp_path, "fail", (
        "import sys\n"
        "sys.stderr.write('\\nno such channel: ci\\nmore\\n')\n"
        "sys.exit(3)\n"
    ))
    with pytest.raises(PluginError) as info:
        CommandPlugin("notify", ["*"], [str(script)]).deliver(EVENT)
    assert str(info.value) == "exit 3: no such channel: ci"


def test_a_silent_failing_command(tmp_path):
    with pytest.raises(PluginError) as info:
        CommandPlugin("notify", ["*"], ["false"]).deliver(EVENT)
    assert str(info.value) == "exit 1"


def test_a_hanging_command_is_killed_with_what_it_started(tmp_path):
    script = _script(tmp_path, "hang", (
        "import subprocess, sys, time\n"
        "child = subprocess.Popen(['sleep', '300'])\n"
        "open(sys.argv[1], 'w').write(str(child.pid))\n"
        "time.sleep(300)\n"
    ))
    started = time.monotonic()
    with pytest.raises(PluginError) as info:
        CommandPlugin("notify", ["*"], [str(script), "child.pid"], timeout=1, cwd=tmp_path).deliver(EVENT)

    assert str(info.value) == "timed out after 1 s"
    assert time.monotonic() - started < 1 + 3
    child = int((tmp_path / "child.pid").read_text())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _alive(child):
        time.sleep(0.05)
    assert not _alive(child)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (killed, not yet reaped by init) counts as gone.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def test_a_command_that_does_not_exist(tmp_path):
    with pytest.raises(PluginError) as info:
        CommandPlugin("notify", ["*"], [str(tmp_path / "nope")]).deliver(EVENT)
    assert str(info.value) == f"cannot run {tmp_path / 'nope'}: No such file or directory"


# -- log --------------------------------------------------------------------------------


def test_log_appends_one_sorted_json_line_per_event(tmp_path):
    path = tmp_path / ".convoy" / "logs" / "events.jsonl"
    plugin = LogPlugin("log", ["*"], path)

    plugin.deliver(EVENT)
    plugin.deliver(dict(EVENT, id=43, type="BUILD_COMPLETE"))

    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines == [json.dumps(EVENT, sort_keys=True), json.dumps(dict(EVENT, id=43, type="BUILD_COMPLETE"),
                                                                   sort_keys=True)]
    assert lines[0].startswith('{"build_id": 3, "data": {')


def test_log_that_cannot_be_written(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(PluginError) as info:
        LogPlugin("log", ["*"], tmp_path / "file" / "events.jsonl").deliver(EVENT)
    assert str(info.value).startswith(f"cannot write {tmp_path / 'file' / 'events.jsonl'}: ")


# -- subscriptions and construction ------------------------------------------------------


def test_wants():
    assert Plugin("all").wants("BUILD_FAIL")
    some = Plugin("some", ["BUILD_FAIL", "RELEASE_TAGGED"])
    assert some.wants("RELEASE_TAGGED") and not some.wants("BUILD_START")
    assert some.events == frozenset({"BUILD_FAIL", "RELEASE_TAGGED"})
    with pytest.raises(NotImplementedError):
        some.deliver(EVENT)


def test_make_plugins(tmp_path):
    specs = [
        LogSpec(name="log", path=".convoy/events.jsonl"),
        LogSpec(name="abs", path=str(tmp_path / "abs.jsonl"), events=("BUILD_FAIL",)),
        CommandSpec(name="cmd", command=("scripts/notify", "--x"), timeout=3),
        WebhookSpec(name="hook", url="https://x/h", secret_env="S", timeout=4, retries=1),
    ]

    log, absolute, cmd, hook = make_plugins(specs, tmp_path / "repo")

    assert isinstance(log, LogPlugin) and log.path == tmp_path / "repo" / ".convoy" / "events.jsonl"
    assert absolute.path == tmp_path / "abs.jsonl" and absolute.events == frozenset({"BUILD_FAIL"})
    assert isinstance(cmd, CommandPlugin)
    assert (cmd.argv, cmd.timeout, cmd.cwd) == (("scripts/notify", "--x"), 3, tmp_path / "repo")
    assert isinstance(hook, WebhookPlugin)
    assert (hook.url, hook.secret_env, hook.timeout, hook.retries) == ("https://x/h", "S", 4, 1)
    assert [p.name for p in (log, absolute, cmd, hook)] == ["log", "abs", "cmd", "hook"]


def test_a_relative_command_runs_from_the_repository_root(tmp_path):
    _script(tmp_path, "notify", "import sys, pathlib\npathlib.Path('got.json').write_bytes(sys.stdin.buffer.read())\n")
    (plugin,) = make_plugins([CommandSpec(name="cmd", command=("./notify",))], tmp_path)
    plugin.deliver(EVENT)
    assert json.loads((tmp_path / "got.json").read_text()) == EVENT


def test_webhook_to_a_server_that_answers_garbage():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()

    def answer() -> None:
        for _ in range(2):
            connection, _ = server.accept()
            connection.recv(65536)
            connection.sendall(b"NOT HTTP AT ALL\r\n\r\n")
            connection.close()

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.getsockname()[1]}/hook"
    try:
        with pytest.raises(PluginError) as info:
            _webhook(url, timeout=1.2, retries=1).deliver(EVENT)
    finally:
        server.close()
    assert str(info.value) == f"POST {url}: NOT HTTP AT ALL (2 attempts in 1.2 s)"  # http.client's BadStatusLine
