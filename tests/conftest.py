"""Fixtures shared by more than one test folder.

How the suite runs (scripts/test's two lanes, the `bazel` and `slow`
markers, the per-test time limit, the shared Bazel output root) and every
stand-in the tests use: docs/testing.md.

- Every test runs with HOME in a temporary directory, a fixed git identity and
  no system git config, so that nothing on the machine leaks in or out.
- `git_repo` makes real git repositories in tmp_path (commits, annotated and
  lightweight tags, branches), usable as file:// remotes.
- `convoy` runs the command line in-process, the way `convoy` itself does.
- `store`: a fresh SQLite store in tmp_path (tests/store, tests/events,
  tests/plugins, tests/queue).
- `pg_server` (session): one private PostgreSQL cluster, Debian's binaries
  (tests/support/postgres.py); `pg_url`: a fresh database of it for one
  test, its URL; `any_store`: a fresh store of each backend in turn (the
  test runs twice, [sqlite] and [postgresql]: tests/store/test_contract.py).
- `state_checkout`: an integration checkout with state (tests/store,
  tests/commands, tests/yamlcheck; see tests/support/state.py).
- `bazel_ws` (session): a small Bazel workspace of our own (tests/bazel,
  tests/bep; see tests/support/bazel_workspace.py).
- The example repositories, made once per test run (tests/queue,
  tests/commands, tests/lab, tests/sample):
  - `examples_dir` (session): a copy of examples/components plus two versions
    made to fail, so that every stage can reject a candidate:
      firmware v3.1.0   speaks wire protocol 3 only: configuration stage
                        (protocol_compat_test) fails in rover (drone pins 2.9.4);
      planner v2.4.0    its BUILD depends on a target that does not exist:
                        build stage fails (rover only: the planner is rover's).
    The sample's own versions cover the rest: messages v1.6.0 breaks rover's
    integration test, controller v1.3.0 only drone's hardware test.
  - `component_repos` (session): those as git repositories (sample.make_component_repos).
  - `make_integration(name, config)` (session): an integration repository
    (tests/support/integration.py's Integration) with a convoy.yaml for
    tests (config_text()). Its Bazel servers are shut down at the session's
    end.

Module- and session-scoped fixtures run before the per-test isolation below;
tests.support.env.isolated_env() gives them the same environment.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Callable, Iterator, Mapping, Optional

import pytest

from convoy import main, sample
from convoy.store import SQLiteStore, Store, checkout_url, open_store

from tests.support import REPO
from tests.support.bazel_workspace import BazelWorkspace, make_bazel_workspace
from tests.support.bazel_workspace import shutdown as shutdown_bazel_workspace
from tests.support.env import GIT_IDENTITY, isolated_env
from tests.support import postgres
from tests.support.integration import Integration, config_text
from tests.support.postgres import PgServer
from tests.support.state import make_state_checkout

# Variables that would point git somewhere else than the test asks.
_GIT_LEAKS = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_CONFIG_GLOBAL", "GIT_CONFIG", "GIT_OBJECT_DIRECTORY")


@pytest.fixture(autouse=True)
def _isolated(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Keeps tests out of $HOME and the machine's git config."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for name, value in GIT_IDENTITY.items():
        monkeypatch.setenv(name, value)
    for name in _GIT_LEAKS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("CONVOY_STORE_URL", raising=False)  # the machine's store is never a test's
    yield


class GitRepo:
    """A real git repository (branch `main`) in a temporary directory."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def url(self) -> str:
        """The file:// URL to use it as a remote."""
        return self.path.as_uri()

    def git(self, *args: str) -> str:
        """Runs git here; returns its stripped stdout; fails the test on error."""
        proc = subprocess.run(
            ["git", *args], cwd=self.path, capture_output=True, text=True, timeout=60, check=False
        )
        assert proc.returncode == 0, f"git {' '.join(args)} failed:\n{proc.stderr}"
        return proc.stdout.strip()

    def commit(self, files: Mapping[str, str], message: str = "change") -> str:
        """Writes `files` (path -> text), commits them; returns the commit id."""
        for name, text in files.items():
            (self.path / name).parent.mkdir(parents=True, exist_ok=True)
            (self.path / name).write_text(text)
        self.git("add", "--all")
        self.git("commit", "--quiet", "--allow-empty", "-m", message)
        return self.rev_parse("HEAD")

    def tag(self, name: str, ref: str = "HEAD", *, annotated: bool = True) -> None:
        """Tags `ref`: an annotated tag (a tag object) or a lightweight one."""
        if annotated:
            self.git("tag", "--annotate", "-m", f"release {name}", name, ref)
        else:
            self.git("tag", name, ref)

    def branch(self, name: str, ref: str = "HEAD") -> None:
        """Creates (or moves) branch `name` to `ref`."""
        self.git("branch", "--force", name, ref)

    def rev_parse(self, ref: str) -> str:
        """The commit `ref` points at (annotated tags peeled)."""
        return self.git("rev-parse", f"{ref}^{{commit}}")


@pytest.fixture
def git_repo(tmp_path: Path) -> Callable[..., GitRepo]:
    """Factory: git_repo("name", files={...}) -> a GitRepo with one commit
    of `files` (or an empty commit) on branch main."""

    def make(name: str = "repo", files: Optional[Mapping[str, str]] = None) -> GitRepo:
        path = tmp_path / "repos" / name
        path.mkdir(parents=True)
        repo = GitRepo(path)
        repo.git("init", "--quiet", "--initial-branch=main")
        repo.commit(files or {}, "initial")
        return repo

    return make


@pytest.fixture
def convoy() -> Callable[..., int]:
    """convoy("lock", "--check") runs `convoy lock --check` in-process
    (convoy.main.main, which parses the flags from their defaults); returns
    the exit code."""

    def run(*args: str) -> int:
        return main.main(["convoy", *args])

    return run


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    """A new SQLite store at tmp_path/.convoy/state.db, closed after the test."""
    s = SQLiteStore(tmp_path / ".convoy" / "state.db")
    yield s
    s.close()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """The session's private PostgreSQL cluster (started on first use, stopped at the end)."""
    with postgres.pg_server() as server:
        yield server


@pytest.fixture
def pg_url(pg_server: PgServer) -> Iterator[str]:
    """A new, empty database of the session's cluster, for this test; its URL (dropped afterwards)."""
    url = pg_server.new_database()
    yield url
    pg_server.drop_database(url)


@pytest.fixture(params=["sqlite", "postgresql"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A new store of each backend in turn: SQLite in tmp_path, PostgreSQL in a new database."""
    if request.param == "sqlite":
        s = open_store(checkout_url(tmp_path))
    else:
        s = open_store(request.getfixturevalue("pg_url"))
    yield s
    s.close()


@pytest.fixture
def state_checkout(git_repo, tmp_path: Path) -> Path:
    """An integration checkout (a clone of `origin`) whose state has request
    1 queued and request 2 rejected, checkpointed into state.db (no -wal)."""
    return make_state_checkout(git_repo, tmp_path)


@pytest.fixture(scope="session")
def bazel_ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BazelWorkspace]:
    """The session's small Bazel workspace (tests/support/bazel_workspace.py)."""
    if shutil.which("bazel") is None:
        pytest.fail("no bazel on PATH; run scripts/setup")
    ws = make_bazel_workspace(tmp_path_factory.mktemp("bazel-ws"))
    yield ws
    shutdown_bazel_workspace(ws)


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
    for patch in range(1, 10):  # versions that change nothing but their number: bumps that pass
        _add_version(root / "components", "messages", "v1.5.0", f"v1.5.{patch}", {
            "messages/__init__.py": ('__version__ = "1.5.0"', f'__version__ = "1.5.{patch}"')})
        _add_version(root / "components", "planner", "v2.2.0", f"v2.2.{patch}", {
            "planner/__init__.py": ('__version__ = "2.2.0"', f'__version__ = "2.2.{patch}"')})
        _add_version(root / "components", "controller", "v1.2.0", f"v1.2.{patch}", {
            "controller/__init__.py": ('__version__ = "1.2.0"', f'__version__ = "1.2.{patch}"')})
    _add_version(root / "components", "firmware", "v3.0.1", "v3.0.2", {
        "firmware/__init__.py": ('__version__ = "3.0.1"', '__version__ = "3.0.2"'),
        "firmware/image.py": ("FIRMWARE_VERSION = (3, 0, 1)", "FIRMWARE_VERSION = (3, 0, 2)")})
    return root


@pytest.fixture(scope="session")
def component_repos(examples_dir, tmp_path_factory) -> dict[str, Path]:
    home = tmp_path_factory.mktemp("home-components")
    with isolated_env(home):
        return sample.make_component_repos(examples_dir, tmp_path_factory.mktemp("components"))


# --- integration repositories -----------------------------------------------------


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
