"""`convoy pause`: nothing new starts; what runs finishes.

    convoy pause --reason="upgrading Bazel" [--by=alice]    # --by: default the user running convoy
    convoy resume [--by=bob]                                  # the queue takes new work again

While paused, `convoy process` takes no queued request into testing (nor
into a speculative or batch window) and starts no try; a request already in
testing runs to its merge or rejection. `convoy status`, the status page and
/api/status say the queue is paused, why, by whom and since when; the
QUEUE_PAUSED event names who. Pausing a paused queue changes nothing and
says so (exit 0). See also `convoy drain`.
"""

from __future__ import annotations

import argparse

from convoy.actions.steer import hold, pause  # noqa: F401 (the plain functions it calls)
from convoy.commands import common


def add_flags(parser: common.Parser) -> None:
    common.add_repo(parser)
    common.add_by(parser)
    common.add_reason(parser)


def run(opts: argparse.Namespace, args: list[str]) -> int:
    by, reason, repo = opts.by, opts.reason, opts.repo
    common.no_arguments("pause", args)
    print(pause(common.checkout(repo), by=by, reason=reason))
    return 0


