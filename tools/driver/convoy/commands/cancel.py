"""`convoy cancel N`: take a request out of the queue.

A queued request is cancelled at once. A request being tested is cancelled
cooperatively: the running `convoy process` stops its Bazel commands within
seconds and ends it as cancelled (if no process runs, the next one does).
Once a request's build has passed (it is being merged or tagged) it can no
longer be cancelled.
"""

from __future__ import annotations

from convoy import models
from convoy.commands import common
from convoy.errors import ConvoyError
from convoy.models import Phase, RequestState
from convoy.store import now


def run(args: list[str]) -> int:
    request_id = common.request_id("cancel", args)
    root = common.checkout()
    with common.store(root) as store, store.transaction() as tx:
        request = tx.request(request_id)
        if request is None:
            raise common.not_found(request_id)
        if request.state == RequestState.QUEUED:
            tx.update_request(request_id, state=RequestState.CANCELLED, finished_at=now(), detail="cancelled")
            tx.add_event(models.REQUEST_CANCELLED, request_id=request_id, data={"reason": "cancelled while queued"})
            print(f"request #{request_id} ({request.title}) cancelled")
            return 0
        if request.state == RequestState.TESTING:
            if request.phase in (None, Phase.CANDIDATE, Phase.BUILDING):
                if not request.cancel_requested:
                    tx.update_request(request_id, cancel_requested=True)
                print(f"request #{request_id} ({request.title}) is being tested: cancel requested; convoy process "
                      "stops its build within seconds")
                return 0
            raise ConvoyError(
                f"request #{request_id} ({request.title}) passed its build and is being merged "
                f"({request.phase.value}); it cannot be cancelled now. To undo it, submit the previous version"
            )
        raise ConvoyError(
            f"request #{request_id} ({request.title}) is already {request.state.value}; only a queued or testing "
            "request can be cancelled"
        )
