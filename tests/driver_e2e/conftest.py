"""Fixtures of the driver's end-to-end tests: real git repositories, the real Bazel.

- `examples_dir` (session): a copy of examples/components plus two versions
  made to fail, so that every stage can reject a candidate:
    firmware v3.1.0   speaks wire protocol 3 only: configuration stage
                      (protocol_compat_test) fails in rover (drone pins 2.9.4);
    planner v2.4.0    its BUILD depends on a target that does not exist:
                      build stage fails (rover only: the planner is rover's).
  The sample's own versions cover the rest: messages v1.6.0 breaks rover's
  integration test, controller v1.3.0 only drone's hardware test.
- `component_repos` (session): those as git repositories (sample.make_component_repos).
- `make_integration(name, **config)`: an integration repository (bare origin +
  checkout, sample.make_integration_repo) with a convoy.yaml for tests: the
  session's shared Bazel output user root, short timeouts, a short poll
  interval, one infrastructure retry. Its Bazel servers are shut down when
  the fixture's scope ends.

Module-scoped fixtures run before the per-test isolation of tests/conftest.py;
`isolated_env()` gives them the same environment (HOME, git identity).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

import pytest

from convoy import sample
from convoy.main import main as convoy_main
from convoy.manifest import load_manifest
from convoy.models import Event, Request
from convoy.store import checkout_store

from e2e.conftest import OUTPUT_USER_ROOT  # the Bazel output user root every e2e test shares

REPO = Path(__file__).resolve().parents[2]
CONVOY = Path(sys.executable).parent / "convoy"
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Convoy Test",
    "GIT_AUTHOR_EMAIL": "convoy-test@example.com",
    "GIT_COMMITTER_NAME": "Convoy Test",
    "GIT_COMMITTER_EMAIL": "convoy-test@example.com",
}

pytestmark = pytest.mark.bazel


@contextlib.contextmanager
def isolated_env(home: Path) -> Iterator[pytest.MonkeyPatch]:
    """tests/conftest.py's isolation, for fixtures wider than one test."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOME", str(home))
        mp.setenv("XDG_CONFIG_HOME", str(home / ".config"))
        mp.setenv("GIT_CONFIG_NOSYSTEM", "1")
        for name, value in GIT_IDENTITY.items():
            mp.setenv(name, value)
        for name in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_CONFIG_GLOBAL", "CONVOY_FAILPOINT"):
            mp.delenv(name, raising=False)
        yield mp


# --- the sample, with versions made to fail ----------------------------------------


def _add_version(components: Path, name: str, source: str, version: str, edits: dict[str, tuple[str, str]]) -> None:
    """components/<name>/<version>: a copy of <source> with each file's `old` replaced by `new`."""
    dest = components / name / version
    shutil.copytree(components / name / source, dest)
    for path, (old, new) in edits.items():
        text = (dest / path).read_text()
        assert old in text, (name, version, path, old)
        (dest / path).write_text(text.replace(old, new))


@pytest.fixture(scope="session")
def examples_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("examples")
    shutil.copytree(REPO / "examples" / "components", root / "components",
                    ignore=shutil.ignore_patterns("__pycache__", "bazel-*"))
    _add_version(root / "components", "firmware", "v3.0.1", "v3.1.0", {
        "firmware/__init__.py": ('__version__ = "3.0.1"', '__version__ = "3.1.0"'),
        "firmware/image.py": ("SUPPORTED_PROTOCOLS = (2, 3)", "SUPPORTED_PROTOCOLS = (3,)"),
    })
    _add_version(root / "components", "planner", "v2.3.0", "v2.4.0", {
        "planner/__init__.py": ('__version__ = "2.3.0"', '__version__ = "2.4.0"'),
        "BUILD.bazel": ('deps = ["@messages"],', 'deps = ["@messages", ":route_tables"],'),
    })
    return root


@pytest.fixture(scope="session")
def component_repos(examples_dir, tmp_path_factory) -> dict[str, Path]:
    home = tmp_path_factory.mktemp("home-components")
    with isolated_env(home):
        return sample.make_component_repos(examples_dir, tmp_path_factory.mktemp("components"))


# --- integration repositories -----------------------------------------------------

STAGES = """\
stages:
  - {name: build, command: build, timeout: 300}
  - {name: integration, command: test, tag_filter: convoy-integration, timeout: 300}
  - {name: configuration, command: test, tag_filter: convoy-configuration, timeout: 300}
  - {name: hardware, command: test, tag_filter: convoy-hardware, timeout: 300}
"""


def config_text(*, plugins: str = "", bazel_flags: tuple[str, ...] = (), retries: int = 1,
                stages: str = STAGES) -> str:
    """convoy.yaml for tests; `plugins` is YAML list items (indented 2)."""
    startup = [f"--output_user_root={OUTPUT_USER_ROOT}", "--max_idle_secs=180"]
    return (
        "queue: {mode: serial, poll_interval: 0.1}\n"
        "parallelism: 2\n"
        f"retries: {{infrastructure: {retries}}}\n"
        "bazel:\n"
        f"  startup_flags: {json.dumps(startup)}\n"
        f"  flags: {json.dumps(list(bazel_flags))}\n"
        + stages
        + "plugins:\n  - {name: event-log, type: log, path: .convoy/events.jsonl, replay: true}\n"
        + plugins
    )


@dataclass
class Run:
    code: int
    out: str
    err: str

    def __str__(self) -> str:
        return f"exit {self.code}\n--- stdout\n{self.out[-8000:]}\n--- stderr\n{self.err[-8000:]}"


class Integration:
    """An integration repository made for one test module, and ways to drive convoy in it."""

    def __init__(self, repo: sample.IntegrationRepo, remotes: dict[str, str]) -> None:
        self.checkout = repo.checkout
        self.bare = repo.bare
        self.remotes = remotes

    # convoy in this process (the command functions) or as a real process
    def convoy(self, *args: str) -> Run:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = convoy_main(["convoy", args[0], f"--repo={self.checkout}", *args[1:]])
        return Run(code, out.getvalue(), err.getvalue())

    def process(self, *args: str, failpoint: Optional[str] = None, timeout: float = 600) -> Run:
        env = dict(os.environ)
        env.pop("CONVOY_FAILPOINT", None)
        if failpoint:
            env["CONVOY_FAILPOINT"] = failpoint
        proc = subprocess.run([str(CONVOY), "process", *args], cwd=self.checkout, env=env, capture_output=True,
                              text=True, timeout=timeout)
        return Run(proc.returncode, proc.stdout, proc.stderr)

    def submit(self, *args: str) -> int:
        run = self.convoy("submit", "--json", *args)
        assert run.code == 0, run
        return json.loads(run.out)["id"]

    # state
    def request(self, request_id: int) -> Request:
        with checkout_store(self.checkout) as store, store.read() as tx:
            return tx.request(request_id)

    def events(self, request_id: Optional[int] = None) -> list[Event]:
        with checkout_store(self.checkout) as store, store.read() as tx:
            return tx.events(request_id=request_id)

    def show(self, request_id: int) -> dict:
        run = self.convoy("show", str(request_id), "--json")
        assert run.code == 0, run
        return json.loads(run.out)

    # git
    def git(self, *args: str, cwd: Optional[Path] = None) -> str:
        proc = subprocess.run(["git", *args], cwd=cwd or self.checkout, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, f"git {' '.join(args)}: {proc.stderr}"
        return proc.stdout.strip()

    def origin(self, *args: str) -> str:
        return self.git(*args, cwd=self.bare)

    def origin_tags(self) -> dict[str, str]:
        """Tag -> commit on origin."""
        out = self.origin("for-each-ref", "--format=%(refname:short) %(objectname) %(*objectname)", "refs/tags")
        tags = {}
        for line in out.splitlines():
            name, obj, peeled = (line.split() + [""])[:3]
            tags[name] = peeled or obj
        return tags

    def origin_file(self, path: str, ref: str = "main") -> str:
        return self.origin("show", f"{ref}:{path}")

    def origin_pin(self, configuration: str, component: str) -> str:
        """The version `component` has in `configuration` on origin's main."""
        scratch = self.checkout.parent / "scratch-manifest"
        scratch.mkdir(exist_ok=True)
        (scratch / "manifest.yaml").write_text(self.origin_file("manifests/manifest.yaml"))
        return load_manifest(scratch / "manifest.yaml").resolved(configuration)[component].version

    def tag_commit(self, component: str, version: str) -> str:
        return self.git("rev-parse", f"{version}^{{commit}}", cwd=Path(self.remotes[component].removeprefix("file://")))

    def shutdown_bazel(self) -> None:
        for slot in sorted((self.checkout / ".convoy" / "bazel").glob("slot-*")):
            subprocess.run(["bazel", f"--output_user_root={OUTPUT_USER_ROOT}", f"--output_base={slot}", "shutdown"],
                           cwd=self.checkout, capture_output=True, timeout=120)


@pytest.fixture(scope="session")
def make_integration(component_repos, tmp_path_factory):
    """make_integration(name, config=...) -> Integration (Bazel servers shut down at the session's end)."""
    made: list[Integration] = []

    def make(name: str, config: Optional[str] = None) -> Integration:
        remotes = {n: p.as_uri() for n, p in component_repos.items()}
        base = tmp_path_factory.mktemp(name)
        with isolated_env(base / "home"):
            repo = sample.make_integration_repo(REPO, base / "integration", remotes,
                                                config_text=config if config is not None else config_text())
        integration = Integration(repo, remotes)
        made.append(integration)
        return integration

    yield make
    for integration in made:
        integration.shutdown_bazel()


def write_script(path: Path, body: str) -> Path:
    """A Python script for a command plugin (run with this interpreter)."""
    path.write_text(textwrap.dedent(body))
    return path
