"""`convoy resume`: a paused or draining queue takes new work again.

    convoy resume [--by=bob]      # --by: default the user running convoy

The next `convoy process` (a running `--forever` one within its poll
interval) takes the queued requests again, highest priority first. The
QUEUE_RESUMED event names who, and what it ended. Resuming a queue that is
not paused changes nothing and says so (exit 0).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from convoy import control
from convoy.commands import common


def run(args: list[str]) -> int:
    by, repo = common.FLAGS.by, common.FLAGS.repo
    common.no_arguments("resume", args)
    print(resume(common.checkout(repo), by=by))
    return 0


def resume(root: Path, *, by: Optional[str] = None) -> str:
    """Resumes the queue of the checkout `root` (`by`: default the OS user);
    returns what happened, in one line. ConvoyError for a bad --by."""
    control.check_text("by", by)
    if not common.has_store(root):
        return "the queue is not paused; nothing to resume"
    with common.store(root) as store, store.transaction() as tx:
        was = control.state(tx)
        _, changed = control.resume(tx, by=control.actor(by))
    if not changed:
        return "the queue is not paused; nothing to resume"
    return f"the queue is running again (it was {was.word} by {was.by or 'unknown'}); run: convoy process"
