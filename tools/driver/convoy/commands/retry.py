"""`convoy retry N`: put a rejected or errored request back into the queue.

Its attempt count starts again from zero. Refused when a newer request for
the same component is queued (that one would supersede it anyway).
"""

from __future__ import annotations

from pathlib import Path

from convoy import requests
from convoy.commands import common


def run(args: list[str]) -> int:
    repo = common.FLAGS.repo
    request_id = common.request_id("retry", args)
    print(retry(common.checkout(repo), request_id))
    return 0


def retry(root: Path, request_id: int) -> str:
    """Queues request `request_id` of the checkout `root` again; returns
    what happened, in one line. ConvoyError if it cannot be retried."""
    with common.store(root) as store, store.transaction() as tx:
        request = tx.request(request_id)
        if request is None:
            raise common.not_found(request_id)
        requests.retry(tx, request)
    return f"request #{request_id} ({request.title}) is queued again; run: convoy process"
