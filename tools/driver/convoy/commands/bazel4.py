"""`convoy bazel4`: Debian's offline Bazel 4.2 in this integration checkout.

    convoy bazel4             # where the Bazel on PATH is 4.x: write .convoy/bazel4/ and .bazelrc.local
    convoy bazel4 --repo=DIR

The `bazel4` config of .bazelrc (made by `convoy init`) overrides the
repositories Debian's bazel-bootstrap asks for and cannot download. Three of
them are stand-ins that Bazel 4.2 takes only by absolute path, so they are
per checkout and machine: this command writes them under .convoy/bazel4/ and
turns the config on in the git-ignored .bazelrc.local. `convoy init` does the
same; run this in a fresh clone, or after moving the checkout. With another
Bazel it does nothing (and says so).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from convoy import bazel4
from convoy.commands import common


def add_flags(parser: common.Parser) -> None:
    common.add_repo(parser)


def run(opts: argparse.Namespace, args: list[str]) -> int:
    """Writes the local part of the bazel4 config where Bazel is 4.x; exit 0."""
    repo = opts.repo
    common.no_arguments("bazel4", args)
    for line in configure(common.checkout(repo)):
        print(line)
    return 0


def configure(root: Path) -> list[str]:
    """Where the Bazel on PATH is 4.x, writes the bazel4 config's local part
    into the checkout `root`; returns what was done, a line each."""
    version = bazel4.bazel_version()
    if not bazel4.is_bazel4(version):
        return [f"Bazel {version or '(none on PATH)'}: the bazel4 config is for Bazel 4.x only; nothing to do"]
    lines = [f"wrote {bazel4.shown(path, root)}" for path in bazel4.write_local_config(root, version)]
    return [*lines, f"Bazel {version}: the bazel4 config is on (.bazelrc.local)"]
