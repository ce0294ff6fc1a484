"""The queue's events: `events(root, request_id=, after=)` (what `convoy
events --json` prints and GET /api/events returns), `watch` (new ones as
they come, `convoy events --follow`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Iterator, Optional

from convoy.actions import checkout
from convoy.errors import ConvoyError
from convoy.models import Event

FOLLOW_POLL = 0.5


def check_request_id(request_id: Optional[int]) -> None:
    if request_id is not None and request_id <= 0:
        raise ConvoyError(f"--request={request_id} is not a request id (a positive number); see: convoy status")


def events(root: Path, *, request_id: Optional[int] = None, after: int = 0,
           limit: Optional[int] = None) -> list[Event]:
    """The events of the checkout `root` (of request `request_id`) with ids
    above `after`, oldest first, at most `limit`. ConvoyError if there is no
    such request."""
    check_request_id(request_id)
    with checkout.store(root, create=True) as store:
        _check_exists(store, request_id)
        with store.read() as tx:
            return tx.events(after=after, request_id=request_id, limit=limit)


def watch(root: Path, *, request_id: Optional[int] = None, after: int = 0,
          follow: bool = False) -> Iterator[Event]:
    """The events as `events` gives them, then (`follow`) each new one as it
    comes, forever (every FOLLOW_POLL seconds); the store stays open while
    it is iterated (close it with contextlib.closing)."""
    check_request_id(request_id)
    with checkout.store(root, create=True) as store:
        _check_exists(store, request_id)
        last = after
        while True:
            with store.read() as tx:
                new = tx.events(after=last, request_id=request_id)
            for event in new:
                yield event
                last = event.id
            if not follow:
                return
            time.sleep(FOLLOW_POLL)


def _check_exists(store, request_id: Optional[int]) -> None:
    if request_id is not None:
        with store.read() as tx:
            if tx.request(request_id) is None:
                raise checkout.not_found(request_id)
