"""A small Bazel workspace of our own, for tests/bazel and tests/bep.

The `bazel_ws` fixture (tests/conftest.py) makes one for the session
(`make_bazel_workspace`; tests/bazel and tests/bep each use their own
packages), run with the output user root of the end-to-end tests (so that
Bazel's install base is shared) and an output base of its own in a
temporary directory; its server is shut down at the end (`shutdown`). It
has packages that pass, fail, do not parse, sleep, are flaky, are
incompatible, and need repositories that cannot be fetched.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

from convoy import bazel as bazel_runner

from tests.support import REPO
from tests.support.bazel import OUTPUT_USER_ROOT

# What Debian's offline Bazel 4.2 needs from this checkout (the bazel4
# config, and the Python toolchain it registers).
_FROM_CHECKOUT = (".bazelrc", ".bazelrc.local", "third_party")

_WORKSPACE = """\
workspace(name = "pipeline_test")

load("//repo:defs.bzl", "env_repository", "failing_repository")

# A local repository whose directory does not exist: fetching it fails.
local_repository(
    name = "nowhere",
    path = "{nowhere}",
)

# A repository rule whose download fails (an unreachable archive).
failing_repository(name = "unreachable")

# Writes the value of CONVOY_CONFIGURATION (--repo_env) into value.txt.
env_repository(name = "convoy_env")
"""

_REPO_DEFS = '''\
"""Repository rules of the pipeline tests."""

def _failing_repository_impl(rctx):
    rctx.download(url = "file:///nonexistent/convoy-test/archive.tar.gz", output = "archive.tar.gz")

failing_repository = repository_rule(implementation = _failing_repository_impl)

def _env_repository_impl(rctx):
    rctx.file("value.txt", rctx.os.environ.get("CONVOY_CONFIGURATION", "unset") + "\\n")
    rctx.file("BUILD.bazel", 'exports_files(["value.txt"])\\n')

env_repository = repository_rule(
    implementation = _env_repository_impl,
    environ = ["CONVOY_CONFIGURATION"],
)
'''

_SCRIPTS = {
    "pass.sh": "#!/bin/sh\necho 'passing on purpose'\nexit 0\n",
    "fail.sh": "#!/bin/sh\necho 'failing on purpose'\nexit 1\n",
    # Sleeps; $1 is a marker that lets a test find the process.
    "sleep.sh": "#!/bin/sh\nsleep ${2:-600}\n",
    # Fails the first time (no marker file yet), passes the second.
    "flaky.sh": '#!/bin/sh\nif [ -e "$1" ]; then echo second; exit 0; fi\ntouch "$1"\necho first; exit 1\n',
    # Passes when the file $1 holds the text $2.
    "equals.sh": '#!/bin/sh\ntest "$(cat "$1")" = "$2" || { echo "got $(cat "$1"), want $2"; exit 1; }\n',
}


@dataclass
class BazelWorkspace:
    """A workspace, the Bazel flags that make it share the session's
    install base, and a counter for distinct log and event files."""

    path: Path
    output_base: Path
    logs: Path
    markers: Path
    startup_flags: tuple[str, ...] = (f"--output_user_root={OUTPUT_USER_ROOT}", "--max_idle_secs=300")
    env: Mapping[str, str] = field(default_factory=lambda: {"HOME": str(OUTPUT_USER_ROOT.parent)})
    runs: int = 0

    def run(self, command: str, targets: Sequence[str], name: str = "", **kwargs) -> bazel_runner.BazelResult:
        """run_bazel here, with a fresh log and event file."""
        self.runs += 1
        stem = f"{self.runs:02d}-{name or command}"
        kwargs.setdefault("startup_flags", self.startup_flags)
        kwargs.setdefault("output_base", self.output_base)
        kwargs.setdefault("env", self.env)
        kwargs.setdefault("timeout", 600)
        return bazel_runner.run_bazel(
            self.path, command, targets, log_path=self.logs / f"{stem}.log", bep_path=self.logs / f"{stem}.json",
            **kwargs,
        )


def _write(root: Path, files: Mapping[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
        if name.endswith(".sh"):
            path.chmod(0o755)


def _packages(markers: Path) -> dict[str, str]:
    files = {f"scripts/{name}": text for name, text in _SCRIPTS.items()}
    files["scripts/BUILD.bazel"] = 'exports_files(glob(["*.sh"]))\n'
    files["repo/BUILD.bazel"] = ""
    files["repo/defs.bzl"] = _REPO_DEFS
    # -- tests/bazel/test_bazel.py -------------------------------------------
    files["run/ok/BUILD.bazel"] = """\
        sh_test(name = "pass_test", srcs = ["//scripts:pass.sh"], tags = ["convoy-integration"])
        """
    files["run/fail/BUILD.bazel"] = """\
        sh_test(name = "a_test", srcs = ["//scripts:fail.sh"])
        sh_test(name = "b_test", srcs = ["//scripts:fail.sh"])
        sh_test(name = "c_test", srcs = ["//scripts:pass.sh"])
        """
    files["run/broken/BUILD.bazel"] = """\
        sh_test(name = "x_test", srcs = ["//scripts:pass.sh"]
        """
    files["run/slow/BUILD.bazel"] = """\
        sh_test(name = "timeout_marker_test", srcs = ["//scripts:sleep.sh"], args = ["convoy-timeout-marker"])
        sh_test(name = "cancel_marker_test", srcs = ["//scripts:sleep.sh"], args = ["convoy-cancel-marker"])
        """
    files["run/fetch/BUILD.bazel"] = """\
        sh_test(name = "nowhere_test", srcs = ["//scripts:pass.sh"], data = ["@nowhere//:file"])
        sh_test(name = "unreachable_test", srcs = ["//scripts:pass.sh"], data = ["@unreachable//:file"])
        sh_test(name = "undeclared_test", srcs = ["//scripts:pass.sh"], data = ["@undeclared//:file"])
        """
    files["run/env/BUILD.bazel"] = """\
        sh_test(
            name = "repo_env_test",
            srcs = ["//scripts:equals.sh"],
            args = ["$(location @convoy_env//:value.txt)", "rover"],
            data = ["@convoy_env//:value.txt"],
        )
        """
    # -- tests/bep/test_bep.py -----------------------------------------------
    files["bep/BUILD.bazel"] = f"""\
        sh_test(name = "pass_test", srcs = ["//scripts:pass.sh"])
        sh_test(name = "fail_test", srcs = ["//scripts:fail.sh"])
        sh_test(name = "flaky_test", srcs = ["//scripts:flaky.sh"], args = ["{markers}/flaky"], tags = ["external"])
        sh_test(name = "timeout_test", srcs = ["//scripts:sleep.sh"], args = ["bep-timeout", "60"])
        sh_test(
            name = "skipped_test",
            srcs = ["//scripts:pass.sh"],
            target_compatible_with = ["@platforms//:incompatible"],
        )
        genrule(name = "failing_gen", outs = ["gen.txt"], cmd = "echo generating; exit 1")
        sh_test(name = "needs_gen_test", srcs = ["//scripts:pass.sh"], data = [":failing_gen"])
        """
    files["bep/stopped/BUILD.bazel"] = """\
        genrule(name = "failing_gen", outs = ["gen.txt"], cmd = "exit 1")
        sh_test(name = "needs_gen_test", srcs = ["//scripts:pass.sh"], data = [":failing_gen"])
        sh_test(name = "other_test", srcs = ["//scripts:pass.sh"])
        """
    return files


def make_bazel_workspace(top: Path) -> BazelWorkspace:
    """The workspace (see the module docstring) in the empty directory `top`."""
    OUTPUT_USER_ROOT.mkdir(parents=True, exist_ok=True)
    workspace, markers, logs = top / "ws", top / "markers", top / "logs"
    for directory in (workspace, markers, logs):
        directory.mkdir()
    for name in _FROM_CHECKOUT:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, workspace / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif source.exists():
            shutil.copy2(source, workspace / name)
    files = _packages(markers)
    files["WORKSPACE"] = _WORKSPACE.format(nowhere=top / "does-not-exist")
    files["BUILD.bazel"] = ""
    _write(workspace, files)
    return BazelWorkspace(path=workspace, output_base=top / "output-base", logs=logs, markers=markers)


def shutdown(ws: BazelWorkspace) -> None:
    """Stops the workspace's Bazel server."""
    subprocess.run(
        ["bazel", *ws.startup_flags, f"--output_base={ws.output_base}", "shutdown"],
        cwd=ws.path, env={**os.environ, **ws.env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        timeout=120, check=False,
    )
