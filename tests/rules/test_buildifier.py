"""buildifier's lint of every Starlark file of this checkout (no Bazel)."""

from __future__ import annotations

import re
import subprocess

from tests.support import REPO

BUILDIFIER = REPO / ".tools" / "node_modules" / ".bin" / "buildifier"


def _starlark_files() -> list[str]:
    tracked = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO, check=True, stdout=subprocess.PIPE, text=True,
    ).stdout.split()
    names = re.compile(r"(^|/)(BUILD|BUILD\.bazel|WORKSPACE|WORKSPACE\.bazel|MODULE\.bazel|[^/]+\.bzl)$")
    return sorted(f for f in tracked if names.search(f) and (REPO / f).exists())


def test_buildifier_lint_is_clean():
    files = _starlark_files()
    assert "MODULE.bazel" in files and "rules/extensions.bzl" in files
    proc = subprocess.run(
        [str(BUILDIFIER), "-mode=check", "-lint=warn", *files],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    assert proc.returncode == 0, f"buildifier found problems (fix with: buildifier -lint=fix <file>):\n{proc.stdout}"
