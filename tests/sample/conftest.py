"""Fixtures of the sample-repos tests: example trees in tmp_path, and reading git.

`widget_examples` is a small examples/ of its own in tmp_path (not the
session's `examples_dir` of tests/conftest.py, a copy of this checkout's)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Callable, Dict

import pytest

from tests.support import REPO

# A component whose versions sort differently as strings (v1.10.0 < v1.2.0)
# and whose trees differ by an edit, a deletion and an addition in a subdirectory.
_WORKSPACE = 'workspace(name = "widget")\n'
WIDGET_VERSIONS: Dict[str, Dict[str, str]] = {
    "v1.2.0": {"WORKSPACE": _WORKSPACE, "widget/__init__.py": "VERSION = '1.2.0'\n", "old.txt": "gone in 1.10\n"},
    "v1.9.0": {"WORKSPACE": _WORKSPACE, "widget/__init__.py": "VERSION = '1.9.0'\n", "old.txt": "gone in 1.10\n"},
    "v1.10.0": {"WORKSPACE": _WORKSPACE, "widget/__init__.py": "VERSION = '1.10.0'\n", "widget/new.py": "X = 1\n"},
}


def _write_tree(root: Path, files: Dict[str, str]) -> None:
    """Writes `files` (relative path -> text) under `root`."""
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


def _read_tree(root: Path) -> Dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


@pytest.fixture
def read_tree() -> Callable[[Path], Dict[str, bytes]]:
    """read_tree(root) is every file under `root` (relative path -> bytes), leaving out bytecode caches."""
    return _read_tree


@pytest.fixture
def widget_versions() -> Dict[str, Dict[str, str]]:
    """The versions of the `widget` component in widget_examples: version -> files."""
    return WIDGET_VERSIONS


@pytest.fixture
def widget_examples(tmp_path: Path) -> Path:
    """tmp_path/examples with components/widget/ in three versions (see WIDGET_VERSIONS)."""
    examples = tmp_path / "examples"
    for version, files in WIDGET_VERSIONS.items():
        _write_tree(examples / "components" / "widget" / version, files)
    return examples


@pytest.fixture
def real_examples() -> Path:
    """This checkout's examples/ directory (the sample system)."""
    return REPO / "examples"


@pytest.fixture
def git() -> Callable[..., str]:
    """git(repo, *args) runs git in `repo` and returns its stripped stdout; a failure fails the test."""

    def run(repo: Path, *args: str) -> str:
        proc = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, timeout=60, check=False)
        assert proc.returncode == 0, f"git {' '.join(args)} in {repo} failed:\n{proc.stderr}"
        return proc.stdout.strip()

    return run


@pytest.fixture
def tree_at(git) -> Callable[[Path, str], Dict[str, bytes]]:
    """tree_at(repo, ref) is every file of `ref` in `repo` (relative path -> bytes)."""

    def read(repo: Path, ref: str) -> Dict[str, bytes]:
        names = git(repo, "ls-tree", "-r", "--name-only", ref).splitlines()
        show = ["git", "show"]
        return {
            name: subprocess.run([*show, f"{ref}:{name}"], cwd=repo, capture_output=True, timeout=60, check=True).stdout
            for name in names
        }

    return read
