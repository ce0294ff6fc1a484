"""`convoy resume`: a paused or draining queue takes new work again.

    convoy resume [--by=bob]      # --by: default the user running convoy

The next `convoy process` (a running `--forever` one within its poll
interval) takes the queued requests again, highest priority first. The
QUEUE_RESUMED event names who, and what it ended. Resuming a queue that is
not paused changes nothing and says so (exit 0).
"""

from __future__ import annotations

import argparse

from convoy.actions.steer import resume  # noqa: F401 (the plain functions it calls)
from convoy.commands import common


def add_flags(parser: common.Parser) -> None:
    common.add_repo(parser)
    common.add_by(parser)


def run(opts: argparse.Namespace, args: list[str]) -> int:
    by, repo = opts.by, opts.repo
    common.no_arguments("resume", args)
    print(resume(common.checkout(repo), by=by))
    return 0


