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

import argparse
import contextlib
import json

from convoy.actions.events import check_request_id, events, watch  # noqa: F401 (the plain functions it calls)
from convoy.commands import common
from convoy.events import describe
from convoy.models import Event


def add_flags(parser: common.Parser) -> None:
    common.add_repo(parser)
    common.add_json(parser)
    parser.boolean("follow", False, "Keep printing new events as they come (Ctrl-C to stop).")
    parser.integer("request", None, "Only the events of this request.")




def run(opts: argparse.Namespace, args: list[str]) -> int:
    request_id, follow, as_json, repo = opts.request, opts.follow, opts.json, opts.repo
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


def line(event: Event, *, as_json: bool = False) -> str:
    """One event on one line: text (id, time, what happened, every control
    character escaped by events.describe) or JSON (as plugins get it)."""
    if as_json:
        return json.dumps(event.to_dict(), sort_keys=True, ensure_ascii=True)
    return f"{event.id:>5} {event.ts} {describe(event)}"


