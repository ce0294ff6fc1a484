"""The isolation every test runs with (tests/conftest.py), for fixtures wider than one test."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

import pytest

GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Convoy Test",
    "GIT_AUTHOR_EMAIL": "convoy-test@example.com",
    "GIT_COMMITTER_NAME": "Convoy Test",
    "GIT_COMMITTER_EMAIL": "convoy-test@example.com",
}


@contextlib.contextmanager
def isolated_env(home: Path) -> Iterator[pytest.MonkeyPatch]:
    """tests/conftest.py's isolation, for fixtures wider than one test.

    Module- and session-scoped fixtures run before the per-test isolation of
    tests/conftest.py; this gives them the same environment (HOME, git identity).
    """
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOME", str(home))
        mp.setenv("XDG_CONFIG_HOME", str(home / ".config"))
        mp.setenv("GIT_CONFIG_NOSYSTEM", "1")
        for name, value in GIT_IDENTITY.items():
            mp.setenv(name, value)
        for name in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_CONFIG_GLOBAL", "CONVOY_FAILPOINT",
                     "CONVOY_STORE_URL"):
            mp.delenv(name, raising=False)
        yield mp
