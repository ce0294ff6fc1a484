"""The real Bazel for the tests.

Every Bazel run of the session shares one output user root (so the install
base is unpacked once and each workspace's server is reused), writes no
convenience symlinks, and has its output kept for the assertion messages.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
from pathlib import Path

from convoy import sample

from tests.support import REPO

# Captured at import, before any fixture points HOME at a temporary place.
_CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
OUTPUT_USER_ROOT = Path(os.environ.get("CONVOY_TEST_BAZEL_ROOT") or _CACHE / "convoy" / "bazel-tests")
_ENV = {k: os.environ[k] for k in ("PATH", "LANG", "USER", "TMPDIR") if k in os.environ}


@dataclasses.dataclass
class Result:
    args: list[str]
    returncode: int
    output: str

    def __str__(self) -> str:
        return f"$ bazel {' '.join(self.args)}\n(exit {self.returncode})\n{self.output[-6000:]}"


class Bazel:
    """Runs the real Bazel in one workspace with the session's output root."""

    def __init__(self, workspace: Path) -> None:
        self.workspace = workspace

    def __call__(self, *args: str, timeout: float = 900) -> Result:
        command, rest = args[0], list(args[1:])
        if command in ("build", "test", "run"):
            rest.insert(0, "--symlink_prefix=/")
        cmd = [
            "bazel",
            f"--output_user_root={OUTPUT_USER_ROOT}",
            "--max_idle_secs=300",
            command,
            *rest,
        ]
        env = dict(_ENV, HOME=str(OUTPUT_USER_ROOT.parent))
        proc = subprocess.run(
            cmd,
            cwd=self.workspace,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
        )
        return Result(list(args), proc.returncode, proc.stdout)

    def output_path(self, key: str) -> Path:
        result = self("info", key)
        assert result.returncode == 0, result
        return Path(result.output.strip().splitlines()[-1])


def make_workspace(dest: Path) -> Path:
    """A copy of this integration repository (without its manifest and lock) at dest."""
    sample.copy_integration_files(REPO, dest)
    return dest
