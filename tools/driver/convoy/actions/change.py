"""What is done to one request, recorded as its event (`by`): `cancel`,
`retry` (a rejected or failed request queued again) and `promote` (to the
front of the queue). Each returns the line the command prints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from convoy import control
from convoy import requests
from convoy.actions import checkout
from convoy.models import RequestState
from convoy.requests import CancelOutcome


def cancel(root: Path, request_id: int, *, by: Optional[str] = None) -> str:
    """Cancels request `request_id` of the checkout `root` (`by`: default the
    OS user); returns what happened, in one line. ConvoyError if it cannot be cancelled."""
    control.check_text("by", by)
    with checkout.store(root) as store, store.transaction() as tx:
        request = tx.request(request_id)
        if request is None:
            raise checkout.not_found(request_id)
        if requests.cancel(tx, request, by=control.actor(by)) == CancelOutcome.CANCELLED:
            return f"request #{request_id} ({request.title}) cancelled"
    return (f"request #{request_id} ({request.title}) is being tested: cancel requested; convoy process "
            "stops its build within seconds")


def retry(root: Path, request_id: int, *, by: Optional[str] = None) -> str:
    """Queues request `request_id` of the checkout `root` again (`by`:
    default the OS user); returns what happened, in one line. ConvoyError if it cannot be retried."""
    control.check_text("by", by)
    with checkout.store(root) as store, store.transaction() as tx:
        request = tx.request(request_id)
        if request is None:
            raise checkout.not_found(request_id)
        requests.retry(tx, request, by=control.actor(by))
    return f"request #{request_id} ({request.title}) is queued again; run: convoy process"


def promote(root: Path, request_id: int, *, by: Optional[str] = None) -> str:
    """Promotes request `request_id` of the checkout `root` (`by`: default
    the OS user); returns what happened, in one line. ConvoyError if there
    is no such request or it is not queued or testing."""
    control.check_text("by", by)
    if not checkout.has_store(root):
        raise checkout.not_found(request_id)
    with checkout.store(root) as store, store.transaction() as tx:
        request = tx.request(request_id)
        if request is None:
            raise checkout.not_found(request_id)
        changed = requests.promote(tx, request, by=control.actor(by))
    if not changed:
        return f"request #{request_id} ({request.title}) is high priority already; nothing changed"
    if request.state == RequestState.TESTING:
        return f"request #{request_id} ({request.title}) is high priority; it is being tested and stays where it is"
    return f"request #{request_id} ({request.title}) is high priority: it goes first; run: convoy process"
