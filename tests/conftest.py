"""Fixtures shared by every test suite.

- Every test runs with HOME in a temporary directory, a fixed git identity and
  no system git config, so that nothing on the machine leaks in or out.
- `git_repo` makes real git repositories in tmp_path (commits, annotated and
  lightweight tags, branches), usable as file:// remotes.
- `convoy` runs the command line in-process, the way `convoy` itself does.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Callable, Mapping, Optional

import pytest
from absl import flags

from convoy import main

GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Convoy Test",
    "GIT_AUTHOR_EMAIL": "convoy-test@example.com",
    "GIT_COMMITTER_NAME": "Convoy Test",
    "GIT_COMMITTER_EMAIL": "convoy-test@example.com",
}
# Variables that would point git somewhere else than the test asks.
_GIT_LEAKS = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_CONFIG_GLOBAL", "GIT_CONFIG", "GIT_OBJECT_DIRECTORY")


@pytest.fixture(autouse=True)
def _isolated(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Keeps tests out of $HOME and the machine's git config; resets flags."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for name, value in GIT_IDENTITY.items():
        monkeypatch.setenv(name, value)
    for name in _GIT_LEAKS:
        monkeypatch.delenv(name, raising=False)
    yield
    flags.FLAGS.unparse_flags()


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
