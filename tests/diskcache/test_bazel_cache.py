"""What the real Bazel does with the flags convoy.diskcache gives a task, on a
copy of this integration repository (its local sources):

- two output bases sharing one disk cache: every test that ran in the first
  is taken from the cache in the second, the local hardware test included
  (tagged `cpu:1024` and `no-remote-exec`, not `exclusive`, which Bazel 4.2
  never takes from a disk or remote cache);
- one output base running drone, rover, drone: with the platform suffix the
  second drone run has every test cached, the hardware test included;
- a prune on the cache Bazel wrote (its real layout) leaves no action result
  naming a removed blob, and the cache fills again: the next output base
  runs what is missing, the one after finds everything cached again.

Every run goes through convoy.bazel.run_bazel, as a task's does; results come
from the build event file.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from convoy.bazel import run_bazel
from convoy.bep import read_bep
from convoy.config import parse_config
from convoy.diskcache import cache_flags, prune

from tests.support import REPO
from tests.support.bazel import OUTPUT_USER_ROOT, make_workspace

pytestmark = [pytest.mark.bazel, pytest.mark.slow]

STARTUP = (f"--output_user_root={OUTPUT_USER_ROOT}", "--max_idle_secs=120")
HARDWARE = "//integration:flash_and_drive_test"
EMPTY_BLOB = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"  # Bazel never stores it


class Sample:
    """The copy of the sample and the output bases its tests made."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.workspace = root / "ws"
        self.cache = root / "disk-cache"
        self.config = parse_config(f"bazel: {{disk_cache: {self.cache}}}", str(self.workspace / "convoy.yaml"))
        self.runs = 0

    def output_base(self, name: str) -> Path:
        return self.root / "bases" / name

    def test(self, base: str, configuration: str) -> dict:
        """`bazel test //integration/...` as a task of `configuration` runs it
        in output base `base`: label -> (status, cached) of each test."""
        self.runs += 1
        flags = ("--symlink_prefix=/",)
        flags += cache_flags(self.config, self.workspace, configuration, flags)
        log, bep = self.root / "logs" / f"{self.runs}.log", self.root / "logs" / f"{self.runs}.bep.json"
        result = run_bazel(self.workspace, "test", ("//integration/...",), log_path=log, bep_path=bep, flags=flags,
                           startup_flags=STARTUP, output_base=self.output_base(base),
                           repo_env={"CONVOY_CONFIGURATION": configuration}, timeout=600)
        assert result.outcome.is_success, log.read_text()[-6000:]
        tests = {t.label: (t.status, t.cached) for t in read_bep(bep).targets if t.label.endswith("_test")}
        assert HARDWARE in tests and all(status in ("passed", "skipped") for status, _ in tests.values()), tests
        return tests


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Sample:
    root = tmp_path_factory.mktemp("diskcache")
    s = Sample(root)
    s.workspace.mkdir()
    make_workspace(s.workspace)
    shutil.copytree(REPO / "manifests", s.workspace / "manifests", dirs_exist_ok=True)
    (s.workspace / "examples" / "components").symlink_to(REPO / "examples" / "components")
    yield s
    servers = [subprocess.Popen(["bazel", *STARTUP, f"--output_base={base}", "shutdown"], cwd=s.workspace,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
               for base in sorted((root / "bases").glob("*"))]
    for server in servers:
        server.wait(timeout=120)


def ran(tests: dict) -> set[str]:
    return {label for label, (status, cached) in tests.items() if status == "passed" and not cached}


def test_another_output_base_takes_every_test_from_the_disk_cache_the_hardware_one_included(sample):
    first = sample.test("a", "rover")
    assert ran(first) == set(first), first
    second = sample.test("b", "rover")
    assert ran(second) == set(), second
    assert len(second) >= 4 and all(cached for _, cached in second.values()) and HARDWARE in second


def test_drone_rover_drone_in_one_output_base_has_the_second_drone_run_all_cached(sample):
    first = sample.test("cycle", "drone")
    assert HARDWARE in ran(first), first
    sample.test("cycle", "rover")
    again = sample.test("cycle", "drone")
    assert ran(again) == set(), again
    assert again[HARDWARE] == ("passed", True)
    assert any(status == "skipped" for status, _ in again.values())  # the planner's test: rover only


def actions_of(cache: Path, label: str) -> tuple[list[Path], list[Path]]:
    """The action results of test `label` in the disk cache (one per configuration that ran it: their keys
    differ by --platform_suffix), and the blobs they name (their test.log, their stderr)."""
    actions, outputs = [], []
    for action in (cache / "ac").glob("*/*"):
        named = [cache / "cas" / d[:2] / d for d in re.findall(r"[0-9a-f]{64}", action.read_bytes().decode("latin-1"))]
        blobs = [b for b in named if b.exists()]
        if any(f"Executing tests from {label}\n".encode() in b.read_bytes()[:4096] for b in blobs):
            actions.append(action)
            outputs += blobs
    assert actions, f"no action result of {label} in {cache}"
    return actions, outputs


def test_a_prune_of_what_bazel_wrote_never_leaves_a_test_uncacheable(sample):
    sample.test("a", "rover")  # the cache holds rover's results (it does after the first test too)
    files = [str(p.relative_to(sample.cache)) for p in sample.cache.rglob("*") if p.is_file()]
    layout = {re.sub(r"/([0-9a-f]{2})/\1[0-9a-f]{62}$", "/<2 hex>/<sha256>", f) for f in files}
    assert layout == {"ac/<2 hex>/<sha256>", "cas/<2 hex>/<sha256>"}, layout  # what prune reads and removes
    # The test's outputs are the least recently used: they go first, its action result (read lately) stays
    # unless prune removes it with them. Its stderr differs in every run (linux-sandbox's timestamped
    # lines), and Bazel 4.2 never replaces an action result: left alone, it would be a miss for good.
    found, outputs = actions_of(sample.cache, "//integration:telemetry_roundtrip_test")  # rover's, drone's
    for blob in outputs:
        os.utime(blob, (time.time() - 30 * 86400,) * 2)
    size = sum(p.stat().st_size for p in sample.cache.rglob("*") if p.is_file())
    blobs = {p.name for p in (sample.cache / "cas").glob("*/*")}
    limit = size - sum(blob.stat().st_size for blob in set(outputs))  # the aged blobs must all go
    result = prune(sample.cache, limit)
    assert result.bytes_before == size and size - result.bytes_removed <= 0.9 * limit
    assert not any(blob.exists() for blob in outputs) and not any(action.exists() for action in found)
    removed = blobs - {p.name for p in (sample.cache / "cas").glob("*/*")}
    for action in (sample.cache / "ac").glob("*/*"):
        named = set(re.findall(r"[0-9a-f]{64}", action.read_bytes().decode("latin-1"))) - {EMPTY_BLOB}
        assert not named & removed, f"{action.name} names a removed blob"
    after = sample.test("after-prune", "rover")  # a miss runs the test again, never a failure
    assert "//integration:telemetry_roundtrip_test" in ran(after), after
    refilled = sample.test("refilled", "rover")
    assert ran(refilled) == set(), refilled
