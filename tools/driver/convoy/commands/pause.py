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

from pathlib import Path
from typing import Callable, Optional

from convoy import control
from convoy.commands import common


def run(args: list[str]) -> int:
    by, reason, repo = common.FLAGS.by, common.FLAGS.reason, common.FLAGS.repo
    common.no_arguments("pause", args)
    print(pause(common.checkout(repo), by=by, reason=reason))
    return 0


def pause(root: Path, *, by: Optional[str] = None, reason: Optional[str] = None) -> str:
    """Pauses the queue of the checkout `root` (`by`: default the OS user);
    returns what happened, in one line. ConvoyError for a bad --by or --reason."""
    held, changed = hold(root, control.pause, by=by, reason=reason)
    if not changed:
        return f"{held.line()} already; nothing changed (to go on: convoy resume)"
    return f"{held.line()}; what is in flight finishes, nothing new starts until: convoy resume"


def hold(root: Path, change: Callable[..., tuple[control.QueueControl, bool]], *, by: Optional[str],
         reason: Optional[str]) -> tuple[control.QueueControl, bool]:
    """`change` (control.pause or control.drain) of the queue of `root`, by
    `by` (default the OS user), for `reason`, in one transaction: the state
    and whether it changed. ConvoyError for a bad --by or --reason."""
    control.check_text("by", by)
    control.check_text("reason", reason)
    with common.store(root, create=True) as store, store.transaction() as tx:
        return change(tx, by=control.actor(by), reason=reason)
