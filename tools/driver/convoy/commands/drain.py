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

from pathlib import Path
from typing import Optional

from convoy import control
from convoy.commands import common
from convoy.commands.pause import hold


def run(args: list[str]) -> int:
    by, reason, repo = common.FLAGS.by, common.FLAGS.reason, common.FLAGS.repo
    common.no_arguments("drain", args)
    print(drain(common.checkout(repo), by=by, reason=reason))
    return 0


def drain(root: Path, *, by: Optional[str] = None, reason: Optional[str] = None) -> str:
    """Drains the queue of the checkout `root` (`by`: default the OS user);
    returns what happened, in one line. ConvoyError for a bad --by or --reason."""
    held, changed = hold(root, control.drain, by=by, reason=reason)
    if not changed:
        return f"{held.line()} already; nothing changed"
    return (f"{held.line()}; convoy process finishes what is in flight, then exits; nothing new starts until: "
            "convoy resume")
