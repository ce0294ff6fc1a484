"""`convoy promote N`: a queued request becomes high priority and goes first.

    convoy promote 7 [--by=alice]      # --by: default the user running convoy
    convoy submit ... --priority=high  # the same, at submit time

The queue takes the highest priority first, then the oldest. In the serial
mode the promoted request is the next one tested (the one being tested
finishes first). In the speculative and batch modes it goes ahead of every
lower-priority candidate in the window that has not passed its build, as
Zuul's `promote` does: their builds are cancelled and they are built again
on top of it. A request already being tested stays where it is. The
REQUEST_PROMOTED event names who. Promoting a high-priority request changes
nothing and says so (exit 0); a request that is not queued or testing is
refused (exit 2).
"""

from __future__ import annotations

import argparse

from convoy.actions.change import promote  # noqa: F401 (the plain functions it calls)
from convoy.commands import common


def add_flags(parser: common.Parser) -> None:
    common.add_repo(parser)
    common.add_by(parser)


def run(opts: argparse.Namespace, args: list[str]) -> int:
    by, repo = opts.by, opts.repo
    request_id = common.request_id("promote", args)
    print(promote(common.checkout(repo), request_id, by=by))
    return 0


