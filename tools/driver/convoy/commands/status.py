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

A paused or draining queue (convoy.control) is said on a line above the
table, and in --json each queued row it holds has `held` (state, reason,
by, since). Every row has `priority` (high or normal); a high one says so
in its STATE.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

from convoy import control
from convoy import flaky
from convoy import requests
from convoy.commands import common
from convoy.models import Phase, Request, RequestState, StageState
from convoy.store import Transaction, now
from convoy.untrusted import printable

NOTE_WIDTH = 70


def run(args: list[str]) -> int:
    as_json, repo = common.FLAGS.json, common.FLAGS.repo
    common.no_arguments("status", args)
    root = common.checkout(repo)
    rows = status(root)
    if as_json:
        print(json.dumps(rows, indent=2))
    else:
        held = queue_control(root)
        if held.paused:
            print(f"{held.line()}; nothing new starts until: convoy resume")
        print_table(rows)
    return 0


def queue_control(root: Path) -> control.QueueControl:
    """Whether the queue of the checkout `root` is paused or draining, why, by whom, since when (read-only)."""
    if not common.has_store(root):
        return control.QueueControl()
    with common.store(root, readonly=True) as store, store.read() as tx:
        return control.state(tx)


def status(root: Path) -> list[dict[str, Any]]:
    """The queue of the checkout `root`: a row (see `row`) per request, oldest
    first; none before anything was submitted. Read-only: works while
    `convoy process` writes, creates nothing."""
    if not common.has_store(root):
        return []
    with common.store(root, readonly=True) as store, store.read() as tx:
        held = control.state(tx)
        rows = [row(tx, r) for r in tx.requests()]
    for r in rows:
        if held.paused and r["state"] == RequestState.QUEUED.value:
            r["held"] = held.to_dict()  # what keeps it waiting: convoy resume
    return rows


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
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]) - 1)]
    for line in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths)) + "  " + line[-1])


def current_stage(tx: Transaction, request: Request) -> Optional[str]:
    """The stage a request is at (testing), or ended in (rejected), or its phase."""
    builds = tx.builds(request.id)
    if request.state == RequestState.TESTING:
        if request.phase in (Phase.MERGING, Phase.PUSHED, Phase.TAGGED):
            return request.phase.value
        if request.phase == Phase.BUILDING and builds:
            for stage in tx.stages(builds[-1].id):
                if stage.state in (StageState.BUILDING, StageState.WAITING):
                    return stage.name
        return request.phase.value if request.phase else None
    if request.state in (RequestState.REJECTED, RequestState.CANCELLED, RequestState.ERROR):
        failed = [s.name for s in tx.stages(builds[-1].id) if s.state == StageState.FAILED] if builds else []
        if failed:
            return failed[0]
        if request.state == RequestState.REJECTED:
            return "candidate"  # the bump did not apply, or changed nothing
    return None


def row(tx: Transaction, r: Request) -> dict[str, Any]:
    note = r.detail
    if r.state == RequestState.MERGED:
        note = f"tag {r.tag}" if r.tag else r.detail
    elif r.state == RequestState.SUPERSEDED:
        note = f"superseded by #{r.superseded_by}" if r.superseded_by else r.detail
    elif r.state == RequestState.QUEUED and r.attempts:
        note = f"attempt {r.attempts + 1}; last: {r.detail}"
    elif r.state == RequestState.TESTING and r.cancel_requested:
        note = "cancel requested"
    builds = tx.builds(r.id)
    held = flaky.held_tests(tx, builds[-1].id) if builds else []
    quarantined = [t.to_dict() for t in held if t.status == flaky.QUARANTINED]
    flakes = [t.to_dict() for t in held if t.status != flaky.QUARANTINED]
    if held:
        counts = ", ".join(f"{len(tests)} {name}" for name, tests in (("quarantined", quarantined),
                                                                     ("flaky", flakes)) if tests)
        note = f"{note + '; ' if note else ''}{counts}: convoy show {r.id}"
    return {
        "id": r.id, "component": r.component, "version": r.version, "commit": r.commit,
        "configuration": r.configuration, "requested_by": r.requested_by, "state": r.state.value,
        "phase": r.phase.value if r.phase else None, "stage": current_stage(tx, r), "attempts": r.attempts,
        "tag": r.tag, "note": note, "created_at": r.created_at, "age_seconds": round(now() - r.created_at, 1),
        "quarantined": quarantined, "flaky": flakes, "priority": requests.priority_name(r.priority),
        **({"bumps": [b.to_dict() for b in r.bumps]} if r.bumps else {}),  # a group's other bumps
    }
