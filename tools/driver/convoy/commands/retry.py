"""`convoy retry N`: put a rejected or errored request back into the queue.

Its attempt count starts again from zero. Refused when a newer request for
the same component is queued (that one would supersede it anyway). Its
REQUEST_QUEUED event names who (--by; default the user running convoy).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from convoy import control
from convoy import requests
from convoy.commands import common


def run(args: list[str]) -> int:
    repo, by = common.FLAGS.repo, common.FLAGS.by
    request_id = common.request_id("retry", args)
    print(retry(common.checkout(repo), request_id, by=by))
    return 0


def retry(root: Path, request_id: int, *, by: Optional[str] = None) -> str:
    """Queues request `request_id` of the checkout `root` again (`by`:
    default the OS user); returns what happened, in one line. ConvoyError if it cannot be retried."""
    control.check_text("by", by)
    with common.store(root) as store, store.transaction() as tx:
        request = tx.request(request_id)
        if request is None:
            raise common.not_found(request_id)
        requests.retry(tx, request, by=control.actor(by))
    return f"request #{request_id} ({request.title}) is queued again; run: convoy process"
