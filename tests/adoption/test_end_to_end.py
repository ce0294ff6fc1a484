"""A new user's integration repository, end to end, with the installed convoy.

In an empty temporary directory, as the README's "Use convoy in your
integration repository" says: the driver's wheel in a fresh virtual
environment; the rules release made by scripts/release-rules and consumed
through http_archive with its file:// URL and sha256; three components that
are git repositories made here (not examples/); `convoy init` with them;
integration tests written as a user would; a second configuration added to
the manifest and locked (its --config appears with no hand edit); `bazel
test //integration/...` in both configurations with the real Bazel; then
one request submitted and processed to a merge and a release tag on the
repository's origin.

Bazel runs share the session's output user root and a disk cache under it;
the candidate's Bazel servers (the driver's slots) get the same root and
exit soon after the test.
"""

from __future__ import annotations

import json
import re
import subprocess
import textwrap
from pathlib import Path

import pytest

from tests.support.adoption import installed_env, run, shown
from tests.support.bazel import OUTPUT_USER_ROOT, Bazel

pytestmark = [pytest.mark.bazel, pytest.mark.slow]

DISK_CACHE = OUTPUT_USER_ROOT.parent / "disk-cache"

_LIBRARY = """\
load("@rules_python//python:defs.bzl", "py_library")

py_library(
    name = "{name}",
    srcs = glob(["{name}/*.py"]),
    imports = ["."],
    visibility = ["//visibility:public"],{deps}
)
"""

# name -> version -> the component's package (besides BUILD.bazel and WORKSPACE)
COMPONENTS = {
    "codec": {
        "v1.0.0": 'VERSION = "1.0.0"\n\n\ndef encode(values):\n    return ",".join(str(v) for v in values)\n\n\n'
                  'def decode(text):\n    return [int(v) for v in text.split(",")] if text else []\n',
        "v1.1.0": 'VERSION = "1.1.0"\n\n\ndef encode(values):\n    return ",".join("%d" % v for v in values)\n\n\n'
                  'def decode(text):\n    return [int(v) for v in text.split(",") if v]\n',
    },
    "telemetry": {
        "v2.0.0": 'import codec\n\nVERSION = "2.0.0"\n\n\ndef frame(values):\n    return "T:" + codec.encode(values)\n\n\n'
                  'def unframe(text):\n    assert text.startswith("T:"), text\n    return codec.decode(text[2:])\n',
    },
    "bootloader": {
        "v0.3.0": 'VERSION = "0.3.0"\nFLASH_BYTES = 4096\n\n\ndef flash(image):\n'
                  '    return len(image) <= FLASH_BYTES\n',
    },
}
DEPS = {"telemetry": '\n    deps = ["@codec"],'}

INTEGRATION_BUILD = """
load("@convoy//rules:defs.bzl", "hardware_test", "integration_test")

integration_test(
    name = "frame_roundtrip_test",
    size = "small",
    srcs = ["frame_roundtrip_test.py"],
    deps = ["@codec", "@telemetry"],
)

hardware_test(
    name = "flash_test",
    size = "small",
    srcs = ["flash_test.py"],
    pool = {"main": "bench-rigs"},  # lite has no bootloader: skipped there
    deps = ["@bootloader", "@telemetry"],
)
"""
FRAME_TEST = """\
import telemetry
assert telemetry.unframe(telemetry.frame([1, 2, 3])) == [1, 2, 3]
print("frame round trip ok with codec", telemetry.codec.VERSION)
"""
FLASH_TEST = """\
import bootloader, telemetry
assert bootloader.flash(telemetry.frame(list(range(100))).encode())
print("flashed")
"""
LITE = """\
  lite:                 # a variant without the bootloader, on the older codec
    components: [codec, telemetry]
    pins:
      codec: v1.0.0
"""


def _git(cwd: Path, *args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"git {' '.join(args)}: {proc.stderr}"
    return proc.stdout.strip()


def _component(root: Path, name: str) -> str:
    """A git repository for `name`, a commit and an annotated tag per version; returns its file:// URL."""
    repo = root / name
    repo.mkdir(parents=True)
    _git(repo, "init", "-q", "--initial-branch=main")
    for version, code in COMPONENTS[name].items():
        (repo / name).mkdir(exist_ok=True)
        (repo / name / "__init__.py").write_text(code)
        (repo / "BUILD.bazel").write_text(_LIBRARY.format(name=name, deps=DEPS.get(name, "")))
        (repo / "WORKSPACE").write_text(f'workspace(name = "{name}")\n')
        _git(repo, "add", "-A")
        _git(repo, "commit", "-q", "-m", f"{name} {version}")
        _git(repo, "tag", "-a", version, "-m", f"{name} {version}")
    return repo.as_uri()


def _results(output: str) -> dict[str, str]:
    found = re.findall(r"^(//\S+)\s+(?:\(cached\) )?(PASSED|FAILED|SKIPPED|NO STATUS|TIMEOUT|FLAKY)", output, re.M)
    return dict(found)


def test_a_new_integration_repository_end_to_end(installed, rules_release, tmp_path):
    env = installed_env()

    def convoy(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
        return run([installed.convoy, *args], cwd=cwd, env=env, timeout=timeout)

    remotes = {name: _component(tmp_path / "remotes", name) for name in COMPONENTS}

    # convoy init: the three components, the rules through http_archive at the release's file:// URL.
    made = convoy("init", "product", f"--rules={rules_release.url}", f"--rules_sha256={rules_release.sha256}",
                  f"--component=codec={remotes['codec']}@v1.0.0",
                  f"--component=telemetry={remotes['telemetry']}@v2.0.0",
                  f"--component=bootloader={remotes['bootloader']}@v0.3.0", cwd=tmp_path)
    assert made.returncode == 0, shown(made)
    assert "locked main: bootloader v0.3.0, codec v1.0.0, telemetry v2.0.0" in made.stdout
    repo = tmp_path / "product"
    workspace = (repo / "WORKSPACE.bazel").read_text()
    assert f'sha256 = "{rules_release.sha256}"' in workspace and f'urls = ["{rules_release.url}"]' in workspace

    # The user's own tests, and a second configuration; the lock makes its --config.
    (repo / "integration" / "BUILD.bazel").write_text(
        (repo / "integration" / "BUILD.bazel").read_text().replace(
            'load("@convoy//rules:defs.bzl", "configuration_test")',
            'load("@convoy//rules:defs.bzl", "configuration_test", "hardware_test", "integration_test")')
        + INTEGRATION_BUILD.replace('load("@convoy//rules:defs.bzl", "hardware_test", "integration_test")\n', ""))
    (repo / "integration" / "frame_roundtrip_test.py").write_text(FRAME_TEST)
    (repo / "integration" / "flash_test.py").write_text(FLASH_TEST)
    manifest = repo / "manifests" / "manifest.yaml"
    manifest.write_text(manifest.read_text().replace("  # lite:", LITE + "  # lite:", 1))
    locked = convoy("lock", cwd=repo)
    assert locked.returncode == 0, shown(locked)
    assert locked.stdout.splitlines()[-1] == "wrote manifests/configurations.bazelrc", shown(locked)
    assert "build:lite --repo_env=CONVOY_CONFIGURATION=lite" in (repo / "manifests" / "configurations.bazelrc").read_text()

    # Machine-local Bazel settings (git-ignored, copied into the candidate worktree): a shared disk cache.
    DISK_CACHE.mkdir(parents=True, exist_ok=True)
    (repo / "user.bazelrc").write_text(f"build --disk_cache={DISK_CACHE}\n")

    bazel = Bazel(repo)
    try:
        main = bazel("test", "//integration/...")
        assert main.returncode == 0, main
        assert _results(main.output) == {
            "//integration:flash_test": "PASSED",
            "//integration:frame_roundtrip_test": "PASSED",
            "//integration:pins_test": "PASSED",
        }, main
        lite = bazel("test", "--config=lite", "//integration/...")
        assert lite.returncode == 0, lite
        assert _results(lite.output) == {
            "//integration:flash_test": "SKIPPED",
            "//integration:frame_roundtrip_test": "PASSED",
            "//integration:pins_test": "PASSED",
        }, lite
    finally:
        bazel("shutdown")

    # The queue: commit, push to an origin, one request to a merge and a tag.
    config = repo / "convoy.yaml"
    text, n = re.subn(r"^  startup_flags: \[\].*$",
                      f"  startup_flags: [--output_user_root={OUTPUT_USER_ROOT}, --max_idle_secs=30]",
                      config.read_text(), count=1, flags=re.M)
    assert n == 1, "convoy.yaml has no `startup_flags: []` line to fill"
    config.write_text(text)
    origin = tmp_path / "origin.git"
    _git(tmp_path, "init", "-q", "--bare", "--initial-branch=main", str(origin))
    _git(repo, "add", "-A")
    assert "user.bazelrc" not in _git(repo, "status", "--short", "--untracked-files=all", "--ignored=no")
    _git(repo, "commit", "-q", "-m", "Integration repository of the product")
    _git(repo, "remote", "add", "origin", str(origin))
    _git(repo, "push", "-q", "-u", "origin", "main")

    submitted = convoy("submit", "--component=codec", "--version=v1.1.0", "--requested_by=ci@codec", cwd=repo)
    assert submitted.returncode == 0, shown(submitted)
    processed = convoy("process", "--once", cwd=repo, timeout=900)
    assert processed.returncode == 0, shown(processed)
    status = convoy("status", "--json", cwd=repo)
    assert status.returncode == 0, shown(status)
    (request,) = json.loads(status.stdout)
    assert request["state"] == "merged", shown(processed)

    head = _git(origin, "rev-parse", "main")
    assert _git(origin, "log", "-1", "--format=%s", "main") == "Bump codec to v1.1.0 (request 1)"
    tags = _git(origin, "tag", "--points-at", head).split()
    assert len(tags) == 1 and re.fullmatch(r"v\d{4}\.\d{1,2}\.1", tags[0]), tags
    merged = _git(origin, "show", "main:manifests/manifest.lock.json")
    codec = json.loads(merged)["configurations"]["main"]["components"]["codec"]
    assert codec["version"] == "v1.1.0"
    assert codec["commit"] == _git(Path(remotes["codec"][len("file://"):]), "rev-parse", "v1.1.0^{commit}")
    # The stages ran in the candidate with the real Bazel: build, then the tests of each tag.
    events = convoy("events", "--json", cwd=repo)
    assert events.returncode == 0, shown(events)
    kinds = [json.loads(line)["type"] for line in events.stdout.splitlines() if line.strip()]
    assert kinds.count("STAGE_COMPLETE") == 4 and "RELEASE_TAGGED" in kinds, kinds
