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

import json
import time

from absl import flags

from convoy.commands import common
from convoy.errors import ConvoyError
from convoy.events import describe

FLAGS = flags.FLAGS
flags.DEFINE_bool("follow", False, "Keep printing new events as they come (Ctrl-C to stop).")
flags.DEFINE_integer("request", None, "Only the events of this request.")

FOLLOW_POLL = 0.5


def run(args: list[str]) -> int:
    common.no_arguments("events", args)
    if FLAGS.request is not None and FLAGS.request <= 0:
        raise ConvoyError(f"--request={FLAGS.request} is not a request id (a positive number); see: convoy status")
    root = common.checkout()
    with common.store(root, create=True) as store:
        if FLAGS.request is not None:
            with store.read() as tx:
                if tx.request(FLAGS.request) is None:
                    raise common.not_found(FLAGS.request)
        last = 0
        try:
            while True:
                with store.read() as tx:
                    events = tx.events(after=last, request_id=FLAGS.request)
                for event in events:
                    if FLAGS.json:
                        print(json.dumps(event.to_dict(), sort_keys=True, ensure_ascii=True), flush=True)
                    else:
                        print(f"{event.id:>5} {event.ts} {describe(event)}", flush=True)  # describe escapes
                    last = event.id
                if not FLAGS.follow:
                    return 0
                time.sleep(FOLLOW_POLL)
        except (KeyboardInterrupt, BrokenPipeError):
            return 0
