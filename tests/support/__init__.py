"""What the tests import: helpers, constants and classes shared by several
test modules (fixtures are in tests/conftest.py and the folders' conftest.py).

- env: the per-test isolation (HOME, git identity) for wider fixtures;
- bazel: the real Bazel with the session's output user root;
- bazel_workspace: the small Bazel workspace of tests/bazel and tests/bep;
- integration: integration repositories and driving convoy in them;
- queue: requests that pass in rover, and checking that one merged once;
- lab: the session's hardware lab (tests/lab);
- state: an integration checkout with state, and a hostile world for it;
- store: a request in a store;
- adoption: running the installed convoy.
"""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]  # this checkout
