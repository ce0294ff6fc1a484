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

from pathlib import Path
from typing import Optional

from convoy import control
from convoy import requests
from convoy.commands import common
from convoy.models import RequestState


def run(args: list[str]) -> int:
    by, repo = common.FLAGS.by, common.FLAGS.repo
    request_id = common.request_id("promote", args)
    print(promote(common.checkout(repo), request_id, by=by))
    return 0


def promote(root: Path, request_id: int, *, by: Optional[str] = None) -> str:
    """Promotes request `request_id` of the checkout `root` (`by`: default
    the OS user); returns what happened, in one line. ConvoyError if there
    is no such request or it is not queued or testing."""
    control.check_text("by", by)
    if not common.has_store(root):
        raise common.not_found(request_id)
    with common.store(root) as store, store.transaction() as tx:
        request = tx.request(request_id)
        if request is None:
            raise common.not_found(request_id)
        changed = requests.promote(tx, request, by=control.actor(by))
    if not changed:
        return f"request #{request_id} ({request.title}) is high priority already; nothing changed"
    if request.state == RequestState.TESTING:
        return f"request #{request_id} ({request.title}) is high priority; it is being tested and stays where it is"
    return f"request #{request_id} ({request.title}) is high priority: it goes first; run: convoy process"
