"""The Bazel layer end to end: the real Bazel on this checkout and on copies of it.

- this checkout (local sources): the Starlark unit tests, the components'
  own unit tests, `bazel test //integration/...` in every configuration;
- a copy whose manifest uses git sources (real repositories made from
  examples/components), locked with `convoy lock`: the same tests pass, the
  pinned commits are the tags' commits, switching CONVOY_CONFIGURATION
  changes the code a test sees, and a stale lock, a missing lock or an
  unknown configuration fail with the command that fixes them.

(buildifier's lint of every Starlark file: test_buildifier.py.)
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from convoy import sample
from convoy.main import main as convoy_main

from tests.support import REPO
from tests.support.bazel import Bazel, make_workspace

CONFIGURATIONS = ["rover", "drone"]
COMPONENTS = ["controller", "firmware", "messages", "planner"]


def _test_results(output: str) -> dict[str, str]:
    """//target -> PASSED/FAILED/SKIPPED/... from Bazel's test summary."""
    found = re.findall(r"^(//\S+|@\S+)\s+(?:\(cached\) )?(PASSED|FAILED|SKIPPED|NO STATUS|TIMEOUT|FLAKY)", output, re.M)
    return dict(found)


@pytest.mark.bazel
@pytest.mark.slow
def test_starlark_unit_tests_pass(bazel: Bazel):
    result = bazel("test", "//tests/starlark/...")
    assert result.returncode == 0, result
    results = _test_results(result.output)
    assert len(results) >= 13, result
    assert set(results.values()) == {"PASSED"}, result


@pytest.mark.bazel
@pytest.mark.slow
@pytest.mark.parametrize("configuration", CONFIGURATIONS)
def test_integration_passes_in_every_configuration(bazel: Bazel, configuration: str):
    result = bazel("test", f"--repo_env=CONVOY_CONFIGURATION={configuration}", "//integration/...")
    assert result.returncode == 0, result
    results = _test_results(result.output)
    stages = {"convoy-integration", "convoy-configuration", "convoy-hardware"}
    query = bazel("query", "attr(tags, 'convoy-', tests(//integration/...))", "--output=label_kind")
    assert query.returncode == 0, query
    assert len(results) >= len(stages), result
    assert "PASSED" in results.values()
    if configuration == "drone":
        # The planner is rover-only: its tests are skipped, not failed.
        assert "SKIPPED" in results.values(), result
    assert "FAILED" not in results.values(), result


@pytest.mark.bazel
@pytest.mark.slow
@pytest.mark.parametrize("stage", ["integration", "configuration", "hardware"])
def test_each_stage_selects_by_tag(bazel: Bazel, stage: str):
    result = bazel("query", f"attr(tags, 'convoy-{stage}', tests(//integration/...))")
    assert result.returncode == 0, result
    assert re.search(r"^//integration:", result.output, re.M), f"no {stage} test:\n{result}"


@pytest.mark.bazel
@pytest.mark.slow
@pytest.mark.parametrize("configuration, pool", [("rover", "rover-rigs"), ("drone", "drone-rigs")])
def test_hardware_tests_route_to_their_pool(bazel: Bazel, configuration: str, pool: str):
    result = bazel(
        "query", f"--repo_env=CONVOY_CONFIGURATION={configuration}",
        "attr(tags, 'convoy-hardware', tests(//integration/...))", "--output=build",
    )
    assert result.returncode == 0, result
    assert f'"test.Pool": "{pool}"' in result.output, result
    assert f'"convoy-pool={pool}"' in result.output, result
    assert '"cpu:1024"' in result.output and '"no-remote-exec"' in result.output, result  # local rig: one at a time
    assert '"exclusive"' not in result.output, result  # Bazel 4.2 would never take it from a cache


@pytest.mark.bazel
@pytest.mark.slow
def test_component_unit_tests_pass(bazel: Bazel):
    result = bazel("test", *(f"@{c}//..." for c in COMPONENTS))
    assert result.returncode == 0, result
    assert len(_test_results(result.output)) >= len(COMPONENTS), result


# --- a git-sourced integration repository -----------------------------------

SEEN_BUILD = """
load("//rules:defs.bzl", "integration_test")

integration_test(
    name = "seen_test",
    srcs = ["seen_test.py"],
    data = ["@convoy_manifest//:configuration.json"],
    deps = ["@firmware//:firmware"],
)
"""

SEEN_TEST = """
import json, os, firmware
with open(os.path.join(os.environ["TEST_SRCDIR"], "convoy_manifest", "configuration.json")) as f:
    hub = json.load(f)
print("SEEN " + json.dumps({
    "configuration": os.environ["CONVOY_CONFIGURATION"],
    "hub": hub["components"]["firmware"],
    "protocols": sorted(firmware.SUPPORTED_PROTOCOLS),
}))
"""


@pytest.fixture(scope="module")
def git_workspace(tmp_path_factory) -> tuple[Path, dict[str, Path]]:
    """An integration repository whose manifest pins real git repositories."""
    base = tmp_path_factory.mktemp("git-sourced")
    repos = sample.make_component_repos(REPO / "examples", base / "components")
    ws = make_workspace(base / "integration")
    remotes = {name: path.as_uri() for name, path in repos.items()}
    text = sample.git_sourced_manifest((REPO / "manifests" / "manifest.yaml").read_text(), remotes)
    (ws / "manifests" / "manifest.yaml").write_text(text)
    (ws / "seen").mkdir()
    (ws / "seen" / "BUILD.bazel").write_text(SEEN_BUILD)
    (ws / "seen" / "seen_test.py").write_text(SEEN_TEST)
    assert convoy_main(["convoy", "lock", f"--manifest={ws / 'manifests' / 'manifest.yaml'}"]) == 0
    return ws, repos


def _tag_commit(repo: Path, tag: str) -> str:
    return subprocess.run(
        ["git", "rev-parse", f"{tag}^{{commit}}"], cwd=repo, check=True, stdout=subprocess.PIPE, text=True,
    ).stdout.strip()


def test_git_lock_pins_the_tags_commits(git_workspace):
    ws, repos = git_workspace
    data = json.loads((ws / "manifests" / "manifest.lock.json").read_text())
    assert data["configurations"]["drone"]["components"]["firmware"]["commit"] == _tag_commit(repos["firmware"], "v2.9.4")
    assert data["configurations"]["rover"]["components"]["firmware"]["commit"] == _tag_commit(repos["firmware"], "v3.0.1")
    assert "planner" not in data["configurations"]["drone"]["components"]
    for pins in data["configurations"].values():
        for pin in pins["components"].values():
            assert pin["source"] == "git" and re.fullmatch(r"[0-9a-f]{40}", pin["commit"])


@pytest.mark.bazel
@pytest.mark.slow
@pytest.mark.parametrize("configuration", CONFIGURATIONS)
def test_git_sourced_integration_passes(git_workspace, configuration: str):
    ws, _ = git_workspace
    result = Bazel(ws)("test", f"--repo_env=CONVOY_CONFIGURATION={configuration}", "//integration/...")
    assert result.returncode == 0, result
    assert "FAILED" not in _test_results(result.output).values(), result


def _seen(ws: Path, configuration: str) -> dict:
    bazel = Bazel(ws)
    result = bazel(
        "test", f"--repo_env=CONVOY_CONFIGURATION={configuration}", "//seen:seen_test", "--test_output=all",
        "--nocache_test_results",
    )
    assert result.returncode == 0, result
    lines = [line for line in result.output.splitlines() if line.startswith("SEEN ")]
    assert lines, result
    return json.loads(lines[-1][len("SEEN "):])


@pytest.mark.bazel
@pytest.mark.slow
def test_switching_configuration_changes_the_code_a_test_sees(git_workspace):
    ws, repos = git_workspace
    rover, drone = _seen(ws, "rover"), _seen(ws, "drone")
    assert rover["configuration"] == "rover" and drone["configuration"] == "drone"
    assert rover["hub"] == {"pin": _tag_commit(repos["firmware"], "v3.0.1"), "source": "git", "version": "v3.0.1"}
    assert drone["hub"] == {"pin": _tag_commit(repos["firmware"], "v2.9.4"), "source": "git", "version": "v2.9.4"}
    # The firmware code itself differs: 2.9.4 speaks protocols 1-2, 3.0.1 speaks 2-3.
    assert drone["protocols"] != rover["protocols"]
    assert 1 in drone["protocols"] and 1 not in rover["protocols"]


def _failure_line(result) -> str:
    lines = [line for line in result.output.splitlines() if "Error in fail:" in line]
    assert result.returncode != 0 and lines, result
    return lines[-1].split("Error in fail: ", 1)[1]


@pytest.mark.bazel
@pytest.mark.slow
def test_unknown_configuration_lists_the_known_ones(git_workspace):
    ws, _ = git_workspace
    result = Bazel(ws)("build", "--repo_env=CONVOY_CONFIGURATION=boat", "//integration/...")
    assert _failure_line(result) == (
        "CONVOY_CONFIGURATION=boat names no configuration of the manifest; known: drone, rover. "
        "Use --repo_env=CONVOY_CONFIGURATION=<one of them>"
    )


@pytest.mark.bazel
@pytest.mark.slow
def test_stale_or_missing_lock_fails_with_the_fix(tmp_path, git_workspace):
    src, _ = git_workspace
    ws = tmp_path / "ws"
    shutil.copytree(src, ws)
    manifest = ws / "manifests" / "manifest.yaml"
    manifest.write_text(manifest.read_text().replace("version: v1.2.0", "version: v1.3.0"))
    bazel = Bazel(ws)
    line = _failure_line(bazel("build", "//integration/..."))
    assert re.fullmatch(
        r"manifests/manifest\.lock\.json is stale \(manifest sha256 [0-9a-f]{8}\.\. != [0-9a-f]{8}\.\.\): "
        r"the manifest changed since it was locked\. Run: convoy lock",
        line,
    ), line
    (ws / "manifests" / "manifest.lock.json").unlink()
    assert _failure_line(bazel("build", "//integration/...")) == (
        "manifests/manifest.lock.json not found: the manifest has not been locked. Run: convoy lock"
    )
    # Locking again repairs it, and the bumped controller is what Bazel fetches.
    assert convoy_main(["convoy", "lock", f"--manifest={manifest}"]) == 0
    result = bazel("build", "//integration/...")
    assert result.returncode == 0, result
    bazel("shutdown")
