"""Fixtures of the `convoy serve` tests: a real server on 127.0.0.1 over a real checkout.

- `forge` (module): two component repositories, `messages` and `planner`,
  real git repositories with tags v1.0.0 .. v1.2.0, that the manifest names
  by forge URLs (https://forge.test/acme/<name>.git). A git config in the
  test's HOME (`url.<file URL>.insteadOf`) makes those URLs fetch from the
  local repositories, so git resolves a tag exactly as it would on a forge,
  and the webhooks' payloads can carry the URLs a forge sends.
- `server` (module): an integration checkout of that manifest with a
  convoy.yaml `serve:` section, and `convoy serve --listen=127.0.0.1:0`
  started once per module as a subprocess of this venv's Python; its log
  goes to a file (`server.log_text()`), its store is the checkout's
  .convoy/state.db. Its tokens and secrets come from the environment and a
  tokens file, as in production (SECRETS lists every value, for the tests
  that check none leaks).

`server.call(method, path, body=..., token=...)` talks HTTP to it with
http.client and returns a `Reply` (status, headers, JSON or text).

- `browser` (session): Debian's chromium, headless, driven by Selenium
  through Debian's chromedriver (scripts/setup installs both), for the
  status page's tests (test_page.py).
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import pytest

from tests.support.env import GIT_IDENTITY, isolated_env

COMPONENTS = ("messages", "planner")
VERSIONS = ("v1.0.0", "v1.1.0", "v1.2.0")
FORGE = "https://forge.test/acme"

SECRETS = {
    "CONVOY_TOKEN_MESSAGES": "tok-messages-6a1f0c9e3b7d2a58",
    "CONVOY_TOKEN_ADMIN": "tok-admin-d41d8cd98f00b204e98",
    "CONVOY_GITHUB_SECRET": "gh-secret-0f1e2d3c4b5a69788",
    "CONVOY_GITLAB_TOKEN": "gl-token-9a8b7c6d5e4f3a2b1c",
}
PLANNER_TOKEN = "tok-planner-5e884898da280471"  # in the tokens file

MANIFEST = """\
schema_version: 1
default_configuration: main
components:
  messages:
    source: git
    remote: {forge}/messages.git
    version: v1.0.0
  planner:
    source: git
    remote: {forge}/planner.git
    version: v1.0.0
configurations:
  main:
    components: [messages, planner]
"""

CONFIG = """\
queue: {mode: serial, poll_interval: 1}
serve:
  reads: open
  max_body_kib: 64
  tokens_file: serve-tokens
  tokens:
    - {name: ci-messages, env: CONVOY_TOKEN_MESSAGES, components: [messages]}
    - {name: ops, env: CONVOY_TOKEN_ADMIN, admin: true}
  github: {secret_env: CONVOY_GITHUB_SECRET}
  gitlab: {token_env: CONVOY_GITLAB_TOKEN}
"""


def git(cwd: Path, *args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"git {' '.join(args)}: {proc.stderr}"
    return proc.stdout.strip()


@dataclass(frozen=True)
class Forge:
    home: Path
    repos: dict[str, Path]
    env: dict[str, str]

    def url(self, name: str) -> str:
        return f"{FORGE}/{name}.git"

    def tag(self, name: str, version: str) -> str:
        """A new commit tagged `version` in component `name`; returns the commit."""
        repo = self.repos[name]
        (repo / "VERSION").write_text(version + "\n")
        git(repo, "add", "VERSION")
        git(repo, "commit", "--quiet", "-m", version)
        git(repo, "tag", "--annotate", "-m", f"release {version}", version)
        return git(repo, "rev-parse", "HEAD")


@pytest.fixture(scope="module")
def forge(tmp_path_factory) -> Forge:
    base = tmp_path_factory.mktemp("forge")
    home = base / "home"
    home.mkdir()
    with isolated_env(home):
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONVOY_")}
        repos = {}
        for name in COMPONENTS:
            repo = base / "repos" / name
            repo.mkdir(parents=True)
            git(repo, "init", "--quiet", "--initial-branch=main")
            repos[name] = repo
            git(home, "config", "--global", f"url.{repo.as_uri()}.insteadOf", f"{FORGE}/{name}.git")
        made = Forge(home, repos, env)
        for name in COMPONENTS:
            for version in VERSIONS:
                made.tag(name, version)
        return made


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    text: str

    @property
    def json(self) -> Any:
        return json.loads(self.text)


class Server:
    """A running `convoy serve` (see the module docstring)."""

    def __init__(self, root: Path, log: Path, proc: subprocess.Popen, port: int, env: dict[str, str]) -> None:
        self.env = env
        self.root, self.log, self.proc, self.port = root, log, proc, port
        self.replies: list[Reply] = []  # every reply, for the tests that check no secret leaks

    def call(self, method: str, path: str, body: Any = None, *, token: Optional[str] = None,
             headers: Optional[dict[str, str]] = None, raw: Optional[bytes] = None, timeout: float = 30) -> Reply:
        sent = dict(headers or {})
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            sent.setdefault("Content-Type", "application/json")
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=data, headers=sent)
            response = conn.getresponse()
            reply = Reply(response.status, {k.lower(): v for k, v in response.getheaders()},
                          response.read().decode())
            self.replies.append(reply)
            return reply
        finally:
            conn.close()

    def connection(self, timeout: float = 10) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def log_text(self) -> str:
        return self.log.read_text()

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        """The real `convoy` in the checkout, with the server's environment."""
        return subprocess.run([sys.executable, "-m", "convoy", *args, f"--repo={self.root}"], cwd=self.root,
                              env=self.env, capture_output=True, text=True, timeout=60)

    def cli_json(self, *args: str) -> Any:
        done = self.cli(*args, "--json")
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def store_bytes(self) -> bytes:
        state = self.root / ".convoy"
        return b"".join(p.read_bytes() for p in sorted(state.glob("state.db*")))


def start_server(root: Path, env: dict[str, str], log: Path) -> Server:
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "convoy", "serve", "--listen=127.0.0.1:0", f"--repo={root}"],
                                stdout=out, stderr=subprocess.STDOUT, env=env, cwd=root)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = re.search(r"listening on http://127\.0\.0\.1:(\d+)", log.read_text())
        if found:
            return Server(root, log, proc, int(found.group(1)), env)
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    stop_server(proc)
    pytest.fail(f"convoy serve did not start:\n{log.read_text()}")


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


def make_checkout(forge: Forge, base: Path, config: str = CONFIG) -> Path:
    root = base / "integration"
    (root / "manifests").mkdir(parents=True)
    (root / "manifests" / "manifest.yaml").write_text(MANIFEST.format(forge=FORGE))
    (root / "convoy.yaml").write_text(config)
    tokens = root / "serve-tokens"
    tokens.write_text(f"# name  scope  token\nci-planner  components=planner  {PLANNER_TOKEN}\n")
    tokens.chmod(0o600)
    git(root, "init", "--quiet", "--initial-branch=main")
    git(root, "add", "--all")
    git(root, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "--quiet", "-m", "integration")
    return root


def server_env(forge: Forge, **extra: str) -> dict[str, str]:
    env = dict(forge.env, HOME=str(forge.home), XDG_CONFIG_HOME=str(forge.home / ".config"), GIT_CONFIG_NOSYSTEM="1",
               **GIT_IDENTITY, **SECRETS, **extra)
    env.pop("PYTHONPATH", None)
    return env


@pytest.fixture(scope="module")
def server(forge, tmp_path_factory):
    base = tmp_path_factory.mktemp("served")
    root = make_checkout(forge, base)
    running = start_server(root, server_env(forge), base / "serve.log")
    yield running
    stop_server(running.proc)


# -- the page tests' browser (tests/serve/test_page.py) --------------------------------------

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


@pytest.fixture(scope="session")
def browser(tmp_path_factory):
    """Debian's headless Chromium, driven by Selenium through Debian's chromedriver: one per session.
    --no-sandbox because the tests may run as root; its profile is in a temporary directory."""
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not os.access(path, os.X_OK):
            pytest.fail(f"{path} is missing; the page tests need Debian's {package}. Run: bash scripts/setup")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1400,1000", "--no-first-run", "--disable-extensions",
                     f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()
