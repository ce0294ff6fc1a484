"""A request in a store, as `convoy submit` leaves it (tests/store, tests/events)."""

from __future__ import annotations

from convoy import models


def queue(store, component="messages", version="v1.5.0"):
    """Inserts a queued request and its REQUEST_QUEUED event in one transaction; returns the request."""
    with store.transaction() as tx:
        request = tx.insert_request(component=component, version=version, commit="a" * 40, requested_by="t")
        tx.add_event(models.REQUEST_QUEUED, request_id=request.id, data={"component": component})
    return request
