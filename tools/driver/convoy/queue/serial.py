"""The serial mode: one candidate at a time, highest priority then oldest request first, on the branch tip.

Each request is tested as the branch's current tip plus its one bump, in
the one candidate worktree (lane 0); the next request starts only once this
one is merged, rejected or back in the queue. The next is the first of
`requests.in_queue_order`: a high-priority request (`convoy submit
--priority=high`, `convoy promote`) goes before every normal one; the one
being tested is never interrupted for it. What passed is exactly what
the branch gets: if the branch moves during the build, the candidate is
made again on the new tip (`Steps.merge`).
"""

from __future__ import annotations

from typing import Optional

from convoy import candidate as cand
from convoy import requests
from convoy.models import Request
from convoy.queue.base import QueueManager
from convoy.store import Transaction


class SerialQueue(QueueManager):
    mode = "serial"

    def next_request(self, tx: Transaction) -> Optional[Request]:
        queued = requests.in_queue_order(tx)
        return queued[0] if queued else None

    def base_for(self, request: Request) -> str:
        config = self.ctx.config
        return cand.fetch_branch(self.ctx.checkout, config.remote, config.branch)
