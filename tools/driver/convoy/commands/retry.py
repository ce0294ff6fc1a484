"""`convoy retry N`: put a rejected or errored request back into the queue.

Its attempt count starts again from zero. Refused when a newer request for
the same component is queued (that one would supersede it anyway).
"""

from __future__ import annotations

from convoy import models
from convoy import untrusted
from convoy.commands import common
from convoy.errors import ConvoyError
from convoy.models import RequestState


def run(args: list[str]) -> int:
    request_id = common.request_id("retry", args)
    root = common.checkout()
    with common.store(root) as store, store.transaction() as tx:
        request = tx.request(request_id)
        if request is None:
            raise common.not_found(request_id)
        if request.state not in (RequestState.REJECTED, RequestState.ERROR):
            raise ConvoyError(
                f"request #{request_id} ({request.title}) is {request.state.value}; only a rejected or errored "
                "request can be retried"
            )
        newer = [q for q in tx.requests([RequestState.QUEUED], component=request.component) if q.id > request_id]
        if newer:
            raise ConvoyError(
                f"request #{newer[-1].id} ({newer[-1].title}) is queued and newer; retrying #{request_id} would be "
                "superseded by it at once"
            )
        tx.update_request(request_id, state=RequestState.QUEUED, phase=None, attempts=0, detail=None,
                          finished_at=None, cancel_requested=False)
        tx.add_event(
            models.REQUEST_QUEUED, request_id=request_id,
            data={"component": request.component, "version": request.version, "commit": request.commit,
                  "configuration": request.configuration, "requested_by": request.requested_by,
                  "archive_url": untrusted.redact_userinfo(request.archive_url) if request.archive_url else None,
                  "retry_of": request.state.value},
        )
    print(f"request #{request_id} ({request.title}) is queued again; run: convoy process")
    return 0
