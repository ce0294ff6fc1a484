"""`convoy status`: the queue as a table (or --json). It opens the state
read-only (no write lock: it works while `convoy process` writes; nothing is
created), and escapes every value from it for the terminal.

    ID  COMPONENT  VERSION  STATE     STAGE        AGE  NOTE
    4   messages   v1.6.0   rejected  integration  3m   stage integration failed in rover: ...
    5   planner    v2.3.0   testing   hardware     12s
    7   messages   v1.7.0   queued (high)  -       5s
    6   controller v1.3.0   merged    -            1m   tag v2026.12.2; 1 quarantined, 1 flaky: convoy show 6

A request's tests that failed and did not reject (convoy.flaky: quarantined,
or flaky: passed when run again) are counted in its note, and listed in
--json (`quarantined`, `flaky`: label, stage, configuration, runs, notes).

Which worker schedules the queue (`convoy workers`) is said on a line
above the table while a request is testing; in --json each testing row
has `worker` (its scheduling worker, "<name>:<pid>"). A paused or draining queue
(convoy.control) is said on a line above the table, and in --json each queued row it holds has `held` (state, reason,
by, since). Every row has `priority` (high or normal); a high one says so
in its STATE.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from convoy.actions.status import current_stage, queue_control, row, status  # noqa: F401 (the plain functions it calls)
from convoy.actions.workers import scheduler_line
from convoy.commands import common
from convoy.untrusted import printable

NOTE_WIDTH = 70


def add_flags(parser: common.Parser) -> None:
    common.add_repo(parser)
    common.add_json(parser)


def run(opts: argparse.Namespace, args: list[str]) -> int:
    as_json, repo = opts.json, opts.repo
    common.no_arguments("status", args)
    root = common.checkout(repo)
    rows = status(root)
    if as_json:
        print(json.dumps(rows, indent=2))
    else:
        held = queue_control(root)
        if held.paused:
            print(f"{held.line()}; nothing new starts until: convoy resume")
        line = scheduler_line(root)
        if line is not None and any(r["state"] == "testing" for r in rows):
            print(line)
        print_table(rows)
    return 0


def print_table(rows: list[dict[str, Any]]) -> None:
    """The rows of `status` as the text table."""
    if not rows:
        print("no requests yet; add one with: convoy submit --component=<name> --version=<version>")
        return
    table = [("ID", "COMPONENT", "VERSION", "STATE", "STAGE", "AGE", "NOTE")]
    for r in rows:  # every value from the state is escaped: a newline or escape in it cannot forge a line
        version = printable(r["version"]) + (f" [{printable(r['configuration'])}]" if r["configuration"] else "")
        component = printable(r["component"])
        for bump in r.get("bumps") or ():  # a group: every bump, joined by " + "
            component += f" + {printable(bump['component'])}"
            version += f" + {printable(bump['version'])}" + (
                f" [{printable(bump['configuration'])}]" if bump["configuration"] else "")
        note = printable(r["note"] or "")
        if len(note) > NOTE_WIDTH:
            note = note[: NOTE_WIDTH - 3] + "..."
        state = printable(r["state"]) + (" (high)" if r.get("priority") == "high" else "")
        table.append((str(r["id"]), component, version, state,
                      printable(r["stage"] or "-"), common.age(r["age_seconds"]), note))
    common.print_table(table)


