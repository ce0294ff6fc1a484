"""`convoy drain`: finish what runs, then stop (before an upgrade of convoy, Bazel or the machine).

    convoy drain [--reason="upgrading the host"] [--by=alice]
    convoy process --forever       # finishes what is in flight, then exits 0: "convoy: drained: ..."
    convoy resume                  # after the upgrade

A draining queue is paused (reason "draining for an upgrade" unless
--reason is given; a paused queue keeps its reason): nothing new starts,
and `convoy process` (--forever or --all) exits 0 once nothing is in
flight, saying so in one line. It stays paused until `convoy resume`. The
QUEUE_DRAINING event names who. Draining a draining queue changes nothing
and says so (exit 0).
"""

from __future__ import annotations

import argparse

from convoy.actions.steer import drain  # noqa: F401 (the plain functions it calls)
from convoy.commands import common


def add_flags(parser: common.Parser) -> None:
    common.add_repo(parser)
    common.add_by(parser)
    common.add_reason(parser)


def run(opts: argparse.Namespace, args: list[str]) -> int:
    by, reason, repo = opts.by, opts.reason, opts.repo
    common.no_arguments("drain", args)
    print(drain(common.checkout(repo), by=by, reason=reason))
    return 0


