"""Fixtures of the rules' end-to-end tests: the real Bazel in this checkout."""

from __future__ import annotations

import shutil

import pytest

from tests.support import REPO
from tests.support.bazel import OUTPUT_USER_ROOT, Bazel


@pytest.fixture(scope="session")
def bazel() -> Bazel:
    """Bazel in this checkout."""
    if shutil.which("bazel") is None:
        pytest.fail("no bazel on PATH; run scripts/setup")
    OUTPUT_USER_ROOT.mkdir(parents=True, exist_ok=True)
    return Bazel(REPO)
