"""Fixtures of the hardware lab tests: one real lab for the whole session.

- `lab`: `convoy lab up` (the command function) in a private directory, on
  free ports: PostgreSQL, BuildGrid, two rover rigs, one drone rig, their
  workers and one general worker; `convoy lab down` at the end of the
  session, whatever happened.
- `hil_workspace`: a copy of this integration repository plus a `labtests`
  package of hardware tests made for these tests (each says which rig it is
  on, writes an undeclared output, and can wait at a barrier or a gate).
- `hil`: runs the real Bazel there with --config=hil against the lab.
- the workers' records of what they ran: `lab.records()`.

A test that breaks the lab (stops a rig, kills a worker or the server)
repairs it before it ends (`lab.up()`, which restarts what died), so that the
next test finds the lab whole. What the tests import about the lab
(LabHandle, wait_for, ends, stop_rig, resume_rig): tests/support/lab.py.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from pathlib import Path
from typing import Callable, Iterator

import pytest

from convoy.lab.lab import Lab

from tests.support import REPO
from tests.support.bazel import OUTPUT_USER_ROOT, Bazel, Result, make_workspace
from tests.support.lab import LabHandle, run_convoy

RIGS = "rover-rigs:2,drone-rigs:1"
BAZEL_TIMEOUT = 300  # s: a run that hangs fails the test instead of the session

LABTESTS_BUILD = '''\
load("//rules:defs.bzl", "hardware_test", "integration_test")

# Hardware tests of the lab's own test suite; rig_probe_test.py says what it does.
[hardware_test(
    name = name,
    size = "medium",
    srcs = ["rig_probe_test.py"],
    main = "rig_probe_test.py",
    pool = pool,
    deps = ["//examples/rig:rig_client"],
) for name, pool in [
    ("rover_a_test", "rover-rigs"),
    ("rover_b_test", "rover-rigs"),
    ("drone_test", "drone-rigs"),
]]

integration_test(
    name = "plain_test",
    size = "small",
    srcs = ["plain_test.py"],
)
'''

RIG_PROBE_TEST = '''\
"""On a rig worker: reach the rig, leave proof of it, optionally wait.

LAB_BARRIER=<dir>:<n>  write <dir>/<test>.started, then wait until n tests have
                       (fails after 120 s: the tests did not run at the same time)
LAB_HOLD=<dir>         write <dir>/<test>.started, then wait for <dir>/release
LAB_FAIL=1             fail, naming the rig
"""

import json
import os
import time
import unittest
from pathlib import Path

from examples.rig import rig_client


def _started(directory):
    name = os.environ["TEST_TARGET"].rpartition(":")[2]
    Path(directory, name + ".started").write_text(os.environ.get("CONVOY_RIG_ADDRESS", ""))


class RigProbeTest(unittest.TestCase):
    def test_on_a_rig(self):
        address = os.environ.get("CONVOY_RIG_ADDRESS")
        self.assertTrue(address, "CONVOY_RIG_ADDRESS is not set: this did not run on a rig worker")
        with rig_client.connect() as rig:
            hello = rig.hello()
        out = Path(os.environ["TEST_UNDECLARED_OUTPUTS_DIR"], "rig.json")
        out.write_text(json.dumps({"address": address, "board": hello["board"]}))
        if os.environ.get("LAB_FAIL"):
            self.fail(f"failing on purpose on the {hello['board']} rig at {address}")
        barrier, hold = os.environ.get("LAB_BARRIER"), os.environ.get("LAB_HOLD")
        deadline = time.monotonic() + 120
        if barrier:
            directory, count = barrier.rsplit(":", 1)
            _started(directory)
            while len(list(Path(directory).glob("*.started"))) < int(count):
                self.assertLess(time.monotonic(), deadline, "the other test never started alongside this one")
                time.sleep(0.05)
        if hold:
            _started(hold)
            while not Path(hold, "release").exists():
                time.sleep(0.05)


if __name__ == "__main__":
    unittest.main()
'''

PLAIN_TEST = '''\
import os
import unittest


class PlainTest(unittest.TestCase):
    def test_not_on_a_rig(self):
        self.assertNotIn("CONVOY_RIG_ADDRESS", os.environ)


if __name__ == "__main__":
    unittest.main()
'''


@pytest.fixture(scope="session")
def lab() -> Iterator[LabHandle]:
    """A lab for the session, stopped (and its directory removed) at the end."""
    if not (REPO / ".venv-lab" / "bin" / "bgd").exists():
        pytest.fail("no .venv-lab with BuildGrid; run scripts/setup")
    # PostgreSQL runs as the postgres user when we are root: the directory
    # must be reachable for it (pytest's own temporary root is private).
    directory = Path(tempfile.mkdtemp(prefix="convoy-lab-"))
    os.chmod(directory, 0o755)
    handle = LabHandle(Lab(directory / "lab"), port=0)
    try:
        code = run_convoy("lab", "up", f"--lab_dir={handle.lab.dir}", "--port=0", f"--rigs={RIGS}",
                          "--general_workers=1")
        assert code == 0, "convoy lab up failed"
        handle.port = int(handle.lab.state()["server"].rpartition(":")[2])
        yield handle
    finally:
        for key, entry in handle.lab.state().get("processes", {}).items():
            if key.startswith("rig:"):  # a test may have left a rig stopped
                try:
                    os.kill(entry["pid"], signal.SIGCONT)
                except OSError:
                    pass
        try:
            run_convoy("lab", "down", f"--lab_dir={handle.lab.dir}")
        finally:
            shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def hil_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This integration repository plus the labtests package, in a temporary directory."""
    dest = tmp_path_factory.mktemp("hil") / "ws"
    dest.mkdir()
    make_workspace(dest)
    shutil.copytree(REPO / "manifests", dest / "manifests", dirs_exist_ok=True)
    (dest / "examples" / "components").symlink_to(REPO / "examples" / "components")
    package = dest / "labtests"
    package.mkdir()
    (package / "BUILD.bazel").write_text(LABTESTS_BUILD)
    (package / "rig_probe_test.py").write_text(RIG_PROBE_TEST)
    (package / "plain_test.py").write_text(PLAIN_TEST)
    return dest


@pytest.fixture(scope="session")
def hil(lab: LabHandle, hil_workspace: Path) -> Callable[..., Result]:
    """hil("//labtests:drone_test", "--test_env=X=1") runs `bazel test --config=hil` against the lab.

    Every run executes its tests (no test result or remote cache hits).
    """
    OUTPUT_USER_ROOT.mkdir(parents=True, exist_ok=True)
    bazel = Bazel(hil_workspace)

    def run(*args: str, timeout: float = BAZEL_TIMEOUT) -> Result:
        return bazel(
            "test",
            "--config=hil",
            f"--remote_executor=grpc://127.0.0.1:{lab.port}",
            "--nocache_test_results",
            "--noremote_accept_cached",
            *args,
            timeout=timeout,
        )

    run.bazel = bazel  # type: ignore[attr-defined]
    run.bazel_root = OUTPUT_USER_ROOT  # type: ignore[attr-defined]
    run.env = {  # type: ignore[attr-defined]
        **{k: os.environ[k] for k in ("PATH", "LANG", "USER", "TMPDIR") if k in os.environ},
        "HOME": str(OUTPUT_USER_ROOT.parent),
    }
    return run
