"""`convoy events`: the event log, in order.

    convoy events                   # every event: id, time, request, what happened
    convoy events --request=4       # one request's
    convoy events --follow          # and keep printing new ones (Ctrl-C to stop)
    convoy events --json            # one JSON object per line, as plugins get them

Stored event data is untrusted text: a line shows every control character
in it escaped (events.describe), and JSON escapes them (and every
non-ASCII character) as \\u escapes, so no value can forge a line or
reach the terminal as an escape sequence.
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import Iterator, Optional

from absl import flags

from convoy.commands import common
from convoy.errors import ConvoyError
from convoy.events import describe
from convoy.models import Event

FLAGS = flags.FLAGS
flags.DEFINE_bool("follow", False, "Keep printing new events as they come (Ctrl-C to stop).")
flags.DEFINE_integer("request", None, "Only the events of this request.")

FOLLOW_POLL = 0.5


def run(args: list[str]) -> int:
    request_id, follow, as_json, repo = FLAGS.request, FLAGS.follow, FLAGS.json, FLAGS.repo
    common.no_arguments("events", args)
    check_request_id(request_id)
    stream = watch(common.checkout(repo), request_id=request_id, follow=follow)
    with contextlib.closing(stream):
        try:
            for event in stream:
                print(line(event, as_json=as_json), flush=True)
        except (KeyboardInterrupt, BrokenPipeError):
            return 0
    return 0


def check_request_id(request_id: Optional[int]) -> None:
    if request_id is not None and request_id <= 0:
        raise ConvoyError(f"--request={request_id} is not a request id (a positive number); see: convoy status")


def events(root: Path, *, request_id: Optional[int] = None, after: int = 0,
           limit: Optional[int] = None) -> list[Event]:
    """The events of the checkout `root` (of request `request_id`) with ids
    above `after`, oldest first, at most `limit`. ConvoyError if there is no
    such request."""
    check_request_id(request_id)
    with common.store(root, create=True) as store:
        _check_exists(store, request_id)
        with store.read() as tx:
            return tx.events(after=after, request_id=request_id, limit=limit)


def watch(root: Path, *, request_id: Optional[int] = None, after: int = 0,
          follow: bool = False) -> Iterator[Event]:
    """The events as `events` gives them, then (`follow`) each new one as it
    comes, forever (every FOLLOW_POLL seconds); the store stays open while
    it is iterated (close it with contextlib.closing)."""
    check_request_id(request_id)
    with common.store(root, create=True) as store:
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


def line(event: Event, *, as_json: bool = False) -> str:
    """One event on one line: text (id, time, what happened, every control
    character escaped by events.describe) or JSON (as plugins get it)."""
    if as_json:
        return json.dumps(event.to_dict(), sort_keys=True, ensure_ascii=True)
    return f"{event.id:>5} {event.ts} {describe(event)}"


def _check_exists(store, request_id: Optional[int]) -> None:
    if request_id is not None:
        with store.read() as tx:
            if tx.request(request_id) is None:
                raise common.not_found(request_id)
