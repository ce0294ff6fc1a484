"""`convoy workers`: the `convoy process` workers of the queue's store, what
each holds and its last heartbeat (or --json). Read-only.

    WORKER    PID   ROLE        HOLDS  HEARTBEAT  LEASE
    worker-a  4121  scheduling  queue  2s ago     expires in 28s
    worker-b  977   standby     -      1s ago     expires in 29s

One worker schedules the queue at a time (it holds the lease "queue");
the others wait on standby and take it over when it stops renewing it for
queue.lease_ttl seconds (convoy.queue.lock). "gone": a worker whose lease
expired without its saying so (killed, or cut off from the store).
"""

from __future__ import annotations

import argparse
import json

from convoy.actions.workers import workers
from convoy.commands import common
from convoy.untrusted import printable


def add_flags(parser: common.Parser) -> None:
    common.add_repo(parser)
    common.add_json(parser)


def run(opts: argparse.Namespace, args: list[str]) -> int:
    common.no_arguments("workers", args)
    found = workers(common.checkout(opts.repo))
    if opts.json:
        print(json.dumps(found, indent=2))
        return 0
    if not found["workers"]:
        print("no worker runs this queue; start one: convoy process --forever")
        return 0
    table = [("WORKER", "PID", "ROLE", "HOLDS", "HEARTBEAT", "LEASE")]
    for w in found["workers"]:
        expires = w["expires_in_seconds"]
        lease = f"expires in {common.age(expires)}" if expires > 0 else f"expired {common.age(-expires)} ago"
        table.append((printable(w["worker"]), str(w["pid"] or "?"), w["role"], ",".join(w["holds"]) or "-",
                      f"{common.age(w['heartbeat_seconds_ago'])} ago", lease))
    common.print_table(table)
    return 0
