"""`convoy cancel N`: take a request out of the queue.

A queued request is cancelled at once. A request being tested is cancelled
cooperatively: the running `convoy process` stops its Bazel commands within
seconds and ends it as cancelled (if no process runs, the next one does).
Once a request's build has passed (it is being merged or tagged) it can no
longer be cancelled. REQUEST_CANCELLED names who (--by; default the user
running convoy).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from convoy import control
from convoy import requests
from convoy.commands import common
from convoy.requests import CancelOutcome


def run(args: list[str]) -> int:
    repo, by = common.FLAGS.repo, common.FLAGS.by
    request_id = common.request_id("cancel", args)
    print(cancel(common.checkout(repo), request_id, by=by))
    return 0


def cancel(root: Path, request_id: int, *, by: Optional[str] = None) -> str:
    """Cancels request `request_id` of the checkout `root` (`by`: default the
    OS user); returns what happened, in one line. ConvoyError if it cannot be cancelled."""
    control.check_text("by", by)
    with common.store(root) as store, store.transaction() as tx:
        request = tx.request(request_id)
        if request is None:
            raise common.not_found(request_id)
        if requests.cancel(tx, request, by=control.actor(by)) == CancelOutcome.CANCELLED:
            return f"request #{request_id} ({request.title}) cancelled"
    return (f"request #{request_id} ({request.title}) is being tested: cancel requested; convoy process "
            "stops its build within seconds")
