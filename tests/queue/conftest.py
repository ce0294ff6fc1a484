"""Fixtures of the queue's end-to-end tests (test_hardening_queue, test_crash_campaign,
test_speculative, test_batch).

- `hard` (module): an integration repository whose stages are build and
  integration only (fast), and a Mover that pushes someone else's commit to
  its origin's main from another clone. Its Bazel servers are shut down at
  the end of the module.
"""

from __future__ import annotations

import pytest

from tests.support.env import isolated_env
from tests.support.integration import config_text
from tests.support.queue import Mover
from tests.support.window import window_config

FAST_STAGES = """\
stages:
  - {name: build, command: build, timeout: 300}
  - {name: integration, command: test, tag_filter: convoy-integration, timeout: 300}
"""


@pytest.fixture(scope="module")
def hard(make_integration, tmp_path_factory):
    base = tmp_path_factory.mktemp("hardening")
    it = make_integration("hardening", config_text(stages=FAST_STAGES))
    clone = base / "other-clone"
    with isolated_env(base / "home"):
        it.git("clone", "-q", str(it.bare), str(clone))
    yield it, Mover(it, clone)
    it.shutdown_bazel()


@pytest.fixture(scope="session")
def window_it(make_integration):
    return make_integration("window-modes", window_config("speculative"))
