"""Hardening of plugins (GitHub issue "Hardening", items 1, 4, 6):

- a webhook server that trickles its answer cannot hold a plugin past its timeout;
- no URL password reaches a PLUGIN_ERROR; webhook URLs are checked when convoy.yaml loads;
- a command plugin gets no other plugin's secret; a log plugin's file is private.

Real things: a local socket server on 127.0.0.1 that stops by itself, a real
SQLite store (the `store` fixture of tests/conftest.py), real commands.
(Bazel's environment: tests/bazel/test_bazel.py; a new plugin's start and
event output: tests/events/test_new_plugins_and_output.py.)
"""

from __future__ import annotations

import base64
import json
import socket
import stat
import sys
import threading
import time
from typing import Iterator

import pytest

from convoy import models
from convoy.config import parse_config
from convoy.errors import ConvoyError
from convoy.events import Dispatcher, describe
from convoy.plugins import CommandPlugin, CommandSpec, LogPlugin, PluginError, WebhookPlugin, WebhookSpec, make_plugins

SECRET = "hook-secret-for-tests"
EVENT = {"id": 7, "ts": "t", "type": "BUILD_FAIL", "request_id": 1, "build_id": None, "stage_id": None,
         "task_id": None, "data": {}}


@pytest.fixture(autouse=True)
def _no_proxy_and_a_secret(monkeypatch):
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CONVOY_TEST_SECRET", SECRET)


# -- a server that trickles ------------------------------------------------------------


class Trickler:
    """Accepts connections on 127.0.0.1, reads each request, then answers a
    valid `200 OK` one byte every `interval` seconds. Each answer ends by
    itself (about `interval` * 90 s) or when the client goes away."""

    ANSWER = b"HTTP/1.1 200 OK\r\nX-Slow: " + b"." * 40 + b"\r\nContent-Length: 2\r\n\r\nok"

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}/hook"
        self.stop = threading.Event()
        self.requests = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                connection, _ = self.server.accept()
            except (socket.timeout, OSError):
                continue
            threading.Thread(target=self._answer, args=(connection,), daemon=True).start()

    def _answer(self, connection: socket.socket) -> None:
        with connection:
            connection.settimeout(5)
            try:
                connection.recv(65536)
                self.requests += 1
                for byte in self.ANSWER:
                    if self.stop.wait(self.interval):
                        return
                    connection.sendall(bytes([byte]))
            except OSError:  # the client gave up: done
                return

    def close(self) -> None:
        self.stop.set()
        self.server.close()
        self.thread.join(5)


@pytest.fixture
def trickler(request) -> Iterator[Trickler]:
    server = Trickler(request.param)
    yield server
    server.close()


@pytest.mark.parametrize("trickler", [0.2, 1.0], indirect=True, ids=["5-bytes-a-second", "1-byte-a-second"])
def test_a_trickling_webhook_fails_within_its_timeout(trickler):
    plugin = WebhookPlugin("hook", ["*"], trickler.url, "CONVOY_TEST_SECRET", timeout=2.5, retries=3)
    started = time.monotonic()

    with pytest.raises(PluginError) as info:
        plugin.deliver(EVENT)

    assert time.monotonic() - started < 2.5 + 1.5
    assert str(info.value) == f"POST {trickler.url}: timed out after 2.5 s (1 attempt in 2.5 s)"
    assert trickler.requests == 1


@pytest.mark.parametrize("trickler", [0.2], indirect=True)
def test_a_trickling_webhook_is_a_plugin_error_and_does_not_block_the_others(trickler, store, tmp_path):
    hook = WebhookPlugin("slow-hook", ["*"], trickler.url, "CONVOY_TEST_SECRET", timeout=1.5, retries=1)
    log = LogPlugin("log", ["*"], tmp_path / "events.jsonl")
    dispatcher = Dispatcher(store, [hook, log]).start()
    store.on_commit(dispatcher.notify)
    with store.transaction() as tx:
        tx.add_event(models.REQUEST_QUEUED, request_id=None, data={"component": "planner"})
    started = time.monotonic()

    assert dispatcher.flush(10)
    dispatcher.stop()

    assert time.monotonic() - started < 1.5 + 2
    with store.read() as tx:
        events = tx.events()
    assert [e.type for e in events] == [models.REQUEST_QUEUED, models.PLUGIN_ERROR]
    assert dict(events[1].data) == {
        "plugin": "slow-hook", "event_id": 1, "event_type": "REQUEST_QUEUED",
        "error": f"POST {trickler.url}: timed out after 1.5 s (1 attempt in 1.5 s)",
    }
    assert [json.loads(line)["id"] for line in (tmp_path / "events.jsonl").read_text().splitlines()] == [1]


# -- webhook URLs: checked when convoy.yaml loads, never shown with a password ---------------


@pytest.mark.parametrize("url, problem", [
    ("ftp://ci.example.com/hook", "'ftp://ci.example.com/hook' must start with https://, http://"),
    ("https:///hook", "'https:///hook' has no host"),
    ("https://ci.example.com/a hook",
     "'https://ci.example.com/a hook' contains white space (percent-encode it as %20)"),
    ("https://ci.example.com/\\u001b[2Jhook",
     "'https://ci.example.com/\\x1b[2Jhook' contains control characters (\\x1b)"),
    ("-https://ci.example.com/hook", "'-https://ci.example.com/hook' must start with https://, http://"),
])
def test_webhook_urls_are_checked_when_convoy_yaml_loads(url, problem):
    text = f'plugins:\n  - {{name: hook, type: webhook, url: "{url}", secret_env: CONVOY_HOOK_SECRET}}\n'
    with pytest.raises(ConvoyError) as info:
        parse_config(text, "convoy.yaml")
    assert str(info.value) == (f"convoy.yaml:2: plugins.hook.url: {problem}; "
                               "write it like url: https://ci.example.com/convoy-hook")


def test_a_refused_webhook_url_does_not_show_its_password():
    text = 'plugins:\n  - {name: hook, type: webhook, url: "ftp://bob:hunter2@host/x", secret_env: S}\n'
    with pytest.raises(ConvoyError) as info:
        parse_config(text, "convoy.yaml")
    assert "hunter2" not in str(info.value)
    assert "'ftp://bob:***@host/x' must start with https://, http://" in str(info.value)
    # Userinfo itself is allowed (sent as Basic authorization).
    url = "https://bob:hunter2@ci.example.com/hook"
    (spec,) = parse_config(text.replace("ftp://bob:hunter2@host/x", url), "convoy.yaml").plugins
    assert spec.url == url


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("userinfo, shown", [
    ("bob:hunter2@", "bob:***@"),
    ("hunter2@", "***@"),  # a lone token
    ("bob:hunter2%40x@", "bob:***@"),
])
def test_a_webhook_error_never_shows_the_urls_password(store, userinfo, shown):
    port = _closed_port()
    plugin = WebhookPlugin("hook", ["*"], f"http://{userinfo}127.0.0.1:{port}/hook", "CONVOY_TEST_SECRET",
                           timeout=0.3, retries=0)
    dispatcher = Dispatcher(store, [plugin]).start()
    store.on_commit(dispatcher.notify)
    with store.transaction() as tx:
        tx.add_event(models.REQUEST_QUEUED, request_id=None, data={})
    assert dispatcher.flush(5)
    dispatcher.stop()

    with store.read() as tx:
        error = tx.events()[-1]
    assert error.type == models.PLUGIN_ERROR
    assert error.data["error"] == f"POST http://{shown}127.0.0.1:{port}/hook: Connection refused (1 attempt in 0.3 s)"
    assert "hunter2" not in describe(error)


def test_a_urls_userinfo_is_sent_as_basic_authorization():
    server = socket.create_server(("127.0.0.1", 0))
    got: list[bytes] = []

    def answer() -> None:
        connection, _ = server.accept()
        with connection:
            got.append(connection.recv(65536))
            connection.sendall(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    try:
        port = server.getsockname()[1]
        WebhookPlugin("hook", ["*"], f"http://bob:hunter%322@127.0.0.1:{port}/hook", "CONVOY_TEST_SECRET",
                      timeout=5, retries=0).deliver(EVENT)
        thread.join(5)
    finally:
        server.close()
    head = got[0].split(b"\r\n\r\n")[0].decode()
    assert head.startswith("POST /hook HTTP/1.1\r\n")
    assert f"Authorization: Basic {base64.b64encode(b'bob:hunter22').decode()}" in head.split("\r\n")


@pytest.mark.parametrize("error, shown", [
    ("cannot reach https://bob:hunter2@ci.example.com/x: refused",
     "cannot reach https://bob:***@ci.example.com/x: refused"),
    ("GET 'http://tok@h/x'\nand more", "GET 'http://***@h/x' and more"),
])
def test_any_plugins_error_is_recorded_without_a_password_on_one_line(store, error, shown):
    class Broken:
        name, events = "broken", frozenset({"*"})

        def wants(self, event_type):
            return True

        def deliver(self, event):
            raise RuntimeError(error)

    dispatcher = Dispatcher(store, [Broken()]).start()
    store.on_commit(dispatcher.notify)
    with store.transaction() as tx:
        tx.add_event(models.REQUEST_QUEUED, request_id=None, data={})
    assert dispatcher.flush(5)
    dispatcher.stop()
    with store.read() as tx:
        assert tx.events()[-1].data["error"] == shown


# -- secrets and files of plugins ---------------------------------------------------------


def test_a_command_plugin_gets_no_other_plugins_secret(tmp_path, monkeypatch):
    monkeypatch.setenv("CONVOY_HOOK_SECRET", "the-hook-secret")
    monkeypatch.setenv("CONVOY_NOTIFY_TOKEN", "the-commands-own-token")
    script = tmp_path / "env"
    script.write_text(f"#!{sys.executable}\nimport json, os\nprint(json.dumps(dict(os.environ)))\n"
                      "open('env.json', 'w').write(json.dumps(dict(os.environ)))\n")
    script.chmod(0o755)
    specs = [
        WebhookSpec(name="hook", url="https://ci.example.com/h", secret_env="CONVOY_HOOK_SECRET"),
        CommandSpec(name="notify", command=(str(script),)),
    ]
    command = make_plugins(specs, tmp_path)[1]
    assert isinstance(command, CommandPlugin)

    command.deliver(EVENT)

    env = json.loads((tmp_path / "env.json").read_text())
    assert "CONVOY_HOOK_SECRET" not in env and "the-hook-secret" not in json.dumps(env)
    assert env["CONVOY_NOTIFY_TOKEN"] == "the-commands-own-token"  # its own settings are its business
    assert env["CONVOY_EVENT"] == "BUILD_FAIL"


def test_a_log_plugins_file_and_new_directory_are_private(tmp_path):
    path = tmp_path / "new" / "logs" / "events.jsonl"
    LogPlugin("log", ["*"], path).deliver(EVENT)
    wide = tmp_path / "wide.jsonl"
    wide.write_text("")
    wide.chmod(0o644)
    LogPlugin("log", ["*"], wide).deliver(EVENT)

    modes = {p: stat.S_IMODE(p.stat().st_mode) for p in (path, path.parent, path.parent.parent, wide)}
    assert modes == {path: 0o600, path.parent: 0o700, path.parent.parent: 0o700, wide: 0o600}
    assert json.loads(wide.read_text()) == EVENT
