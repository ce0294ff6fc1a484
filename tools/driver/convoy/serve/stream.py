"""`GET /api/events/stream`: the event log as Server-Sent Events, as `convoy events --follow` prints it.

    curl -N http://127.0.0.1:8080/api/events/stream               # every event, then each new one
    curl -N -H 'Last-Event-ID: 57' http://127.0.0.1:8080/api/events/stream   # those after 57

Each event is one SSE message: `id:` its id (so a client that reconnects
sends it back as Last-Event-ID and misses nothing), `event:` its type and
`data:` the event as plugins get it, one line of ASCII JSON. The stream
polls the store's events table every POLL seconds in a read-only snapshot
(the writers are `convoy process` and the API, maybe in other processes:
the table is the one place that sees them all), sends a comment every
HEARTBEAT seconds when nothing happens (proxies keep the connection), and
ends when the client goes away. `?after=ID` does what Last-Event-ID does;
the header wins.
"""

from __future__ import annotations

import json
from typing import AsyncIterator

import anyio
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import StreamingResponse

from convoy.actions import checkout as common
from convoy.models import Event
from convoy.serve.web import ApiError, check_read

POLL = 0.5  # seconds between looks at the events table
HEARTBEAT = 15.0  # seconds of silence before a keep-alive comment
BATCH = 500  # events read at once


async def stream(request: Request) -> StreamingResponse:
    check_read(request)
    after = _after(request)
    return StreamingResponse(_events(request, after), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _after(request: Request) -> int:
    text = request.headers.get("last-event-id") or request.query_params.get("after") or "0"
    if not (text.isascii() and text.isdigit()) or len(text) > 19 or int(text) > common.MAX_ID:
        raise ApiError(400, "Last-Event-ID (or after) must be an event id, a number from 0")
    return int(text)


def message(event: Event) -> str:
    """One SSE message: id, event type, the event as one line of JSON."""
    data = json.dumps(event.to_dict(), sort_keys=True, ensure_ascii=True, separators=(",", ":"))
    return f"id: {event.id}\nevent: {event.type}\ndata: {data}\n\n"


async def _events(request: Request, after: int) -> AsyncIterator[str]:
    root, last, quiet = request.app.state.root, after, 0.0
    yield f"retry: {int(POLL * 4000)}\n: convoy events after {after}\n\n"
    while True:
        found = await run_in_threadpool(_read, root, last)
        for event in found:
            yield message(event)
            last = event.id
        if found:
            quiet = 0.0
            continue
        if await request.is_disconnected():
            return
        await anyio.sleep(POLL)
        quiet += POLL
        if quiet >= HEARTBEAT:
            quiet = 0.0
            yield ": keep-alive\n\n"


def _read(root, after: int) -> list[Event]:
    """The events after `after`, in a read-only snapshot (none while there is no state)."""
    if not common.has_store(root):
        return []
    with common.store(root, readonly=True) as store, store.read() as tx:
        return tx.events(after=after, limit=BATCH)
