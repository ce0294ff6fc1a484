"""Debian's offline Bazel 4.2 in an integration repository: the `bazel4` config's local part.

Debian's `bazel-bootstrap` (4.2.3) reaches no download site, and its built-in
WORKSPACE still asks for rules_cc, rules_python and remote_coverage_tools.
The `bazel4` config of the repository's .bazelrc overrides the repositories
that Debian packages (platforms, bazel_skylib, rules_java) by their fixed
paths; these three need stand-ins, and Bazel 4.2 takes only absolute paths
in --override_repository. So, per checkout and machine:

    version = bazel_version()                       # "4.2.3+ds-9", or None
    if is_bazel4(version):
        written = write_local_config(repo, version)   # .convoy/bazel4/* and .bazelrc.local

`convoy init` does this where it finds Bazel 4.x; `convoy bazel4` does it
again (in a fresh clone, or after moving the checkout). The stand-ins are the
same files as third_party/bazel4/ of convoy's own checkout (a test checks).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Dict, List, Optional

from convoy import fsutil
from convoy.errors import ConvoyError

# Where the stand-ins go, under the integration repository (git-ignored, and
# in .bazelignore: they are repositories of their own, not packages).
SHIM_DIR = Path(".convoy") / "bazel4"
LOCAL_RC = ".bazelrc.local"
MARKER = "# Written by convoy for Bazel"
COMMANDS = ("build", "query", "fetch", "sync")

# The repositories Debian packages, by their fixed paths (the committed part of the config).
DEBIAN_OVERRIDES = {
    "platforms": "/usr/share/bazel/tools/platforms",
    "bazel_skylib": "/usr/share/bazel/tools/skylib",
    "rules_java": "/usr/share/bazel/rules/java",
}

_RULES_CC_DEFS = '''"""rules_cc stand-in for Debian's Bazel 4.2.3: the native C++ rules under rules_cc's names."""

cc_binary = native.cc_binary
cc_import = native.cc_import
cc_library = native.cc_library
cc_proto_library = native.cc_proto_library
cc_test = native.cc_test
cc_toolchain = native.cc_toolchain
cc_toolchain_suite = native.cc_toolchain_suite
objc_import = native.objc_import
objc_library = native.objc_library
'''

_RULES_PYTHON_DEFS = '''"""rules_python stand-in for Debian's Bazel 4.2.3: the native Python rules under rules_python's names.

BUILD files load `@rules_python//python:defs.bzl` so that they also work with
Bazel 9, where the native Python rules are gone.
"""

py_binary = native.py_binary
py_library = native.py_library
py_runtime = native.py_runtime
py_test = native.py_test
'''

_RULES_PYTHON_REPOSITORIES = '''"""rules_python stand-in for Debian's Bazel 4.2.3: its WORKSPACE setup, which the native rules need none of.

A WORKSPACE written for Bazel 5/6 calls py_repositories() after
convoy_dependencies(); with this stand-in the same WORKSPACE works offline.
"""

def py_repositories():
    """Nothing to declare: the native Python rules need no repositories."""
    pass
'''

_REMOTE_COVERAGE_TOOLS_BUILD = '''# remote_coverage_tools stand-in for Debian's Bazel 4.2.3: the targets that
# Bazel's test rules reference. Coverage collection is not supported offline.
package(default_visibility = ["//visibility:public"])

filegroup(name = "coverage_report_generator")

filegroup(name = "coverage_output_generator")

filegroup(name = "lcov_merger")
'''

# repository -> {path inside it: content}
SHIMS: Dict[str, Dict[str, str]] = {
    "remote_coverage_tools": {
        "BUILD": _REMOTE_COVERAGE_TOOLS_BUILD,
        "WORKSPACE": "",
    },
    "rules_cc": {
        "BUILD": "# rules_cc stand-in for Debian Bazel 4.2.3; see third_party/bazel4/README.md.\n",
        "WORKSPACE": "",
        "cc/BUILD": ('package(default_visibility = ["//visibility:public"])\n\nalias(\n    name = "toolchain_type",\n'
                     '    actual = "@bazel_tools//tools/cpp:toolchain_type",\n)\n'),
        "cc/defs.bzl": _RULES_CC_DEFS,
    },
    "rules_python": {
        "BUILD": "# rules_python stand-in for Debian Bazel 4.2.3; see third_party/bazel4/README.md.\n",
        "WORKSPACE": "",
        "python/BUILD": 'package(default_visibility = ["//visibility:public"])\n\nexports_files(["defs.bzl"])\n',
        "python/defs.bzl": _RULES_PYTHON_DEFS,
        "python/repositories.bzl": _RULES_PYTHON_REPOSITORIES,
    },
}


def bazel_version(bazel: str = "bazel", timeout: float = 60.0) -> Optional[str]:
    """The version of the Bazel on PATH, or None when there is none.

    Debian's bazel-bootstrap answers `bazel --version` with "bazel
    no_version"; its package version tells which Bazel it is.
    """
    if shutil.which(bazel) is None:
        return None
    try:
        out = subprocess.run([bazel, "--version"], capture_output=True, text=True, timeout=timeout).stdout.split()
    except (OSError, subprocess.TimeoutExpired):
        return None
    version = out[1] if len(out) >= 2 else ""
    if version in ("", "no_version") and shutil.which("dpkg-query"):
        try:
            dpkg = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "bazel-bootstrap"], capture_output=True,
                                  text=True, timeout=timeout)
            version = dpkg.stdout.strip() if dpkg.returncode == 0 else ""
        except (OSError, subprocess.TimeoutExpired):
            version = ""
    return version or None


def is_bazel4(version: Optional[str]) -> bool:
    """Whether `version` is a Bazel 4.x (which needs the bazel4 config)."""
    return bool(version) and version.startswith("4.")


def committed_config() -> str:
    """The `bazel4` config's lines for the repository's .bazelrc (no machine paths)."""
    lines = []
    for command in COMMANDS:
        for name, path in DEBIAN_OVERRIDES.items():
            lines.append(f"{command}:bazel4 --override_repository={name}={path}")
    # 4.2's Python stub starts tests with `#!/usr/bin/env python`; Debian has only python3.
    lines.append("build:bazel4 --extra_toolchains=@convoy//third_party/bazel4:python3_toolchain")
    return "\n".join(lines) + "\n"


def local_config_text(repo: Path, version: str) -> str:
    """The text of .bazelrc.local: the stand-ins' overrides, and the bazel4 config turned on."""
    shims = Path(repo).absolute() / SHIM_DIR
    lines = [f"{MARKER} {version}; do not edit. Run `convoy bazel4` again (e.g. after moving the checkout)."]
    for command in COMMANDS:
        for name in sorted(SHIMS):
            lines.append(f"{command}:bazel4 --override_repository={name}={shims / name}")
        lines.append(f"{command} --config=bazel4")
    return "\n".join(lines) + "\n"


def write_local_config(repo: Path, version: str) -> List[Path]:
    """Writes the stand-ins under .convoy/bazel4/ and .bazelrc.local; returns what it wrote.

    Raises ConvoyError when .bazelrc.local exists and was not written by
    convoy (it would be someone's own settings).
    """
    repo = Path(repo).absolute()
    rc = repo / LOCAL_RC
    if rc.exists():
        first = rc.read_text(encoding="utf-8", errors="replace").splitlines()[:1]
        if not first or not (first[0].startswith(MARKER) or first[0].startswith("# Written by scripts/setup")):
            raise ConvoyError(f"{rc} exists and was not written by convoy; move your settings to user.bazelrc "
                              "(also imported by .bazelrc), remove it, and run: convoy bazel4")
    written = []
    for name, files in sorted(SHIMS.items()):
        for relative, content in sorted(files.items()):
            path = repo / SHIM_DIR / name / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            fsutil.atomic_write(path, content)
            written.append(path)
    fsutil.atomic_write(rc, local_config_text(repo, version))
    written.append(rc)
    return written


def shown(path: Path, root: Path) -> str:
    """`path` relative to `root` when it is inside it."""
    try:
        return os.path.relpath(path, root) if Path(root) in Path(path).parents else str(path)
    except ValueError:
        return str(path)
