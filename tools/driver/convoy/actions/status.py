"""What the queue holds, as rows: `status(root)` (one dict per request,
newest first, what `convoy status --json` prints and GET /api/status
returns), `row(tx, request)`, `current_stage` and `queue_control`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from convoy import control
from convoy import flaky
from convoy import requests
from convoy.actions import checkout
from convoy.actions.workers import scheduling_worker
from convoy.models import Phase, Request, RequestState, StageState
from convoy.store import Transaction, now


def queue_control(root: Path) -> control.QueueControl:
    """Whether the queue of the checkout `root` is paused or draining, why, by whom, since when (read-only)."""
    if not checkout.has_store(root):
        return control.QueueControl()
    with checkout.store(root, readonly=True) as store, store.read() as tx:
        return control.state(tx)


def status(root: Path) -> list[dict[str, Any]]:
    """The queue of the checkout `root`: a row (see `row`) per request, oldest
    first; none before anything was submitted. Read-only: works while
    `convoy process` writes, creates nothing."""
    if not checkout.has_store(root):
        return []
    with checkout.store(root, readonly=True) as store, store.read() as tx:
        held = control.state(tx)
        rows = [row(tx, r) for r in tx.requests()]
        tx_leases = tx.leases()
    scheduler = scheduling_worker(tx_leases)
    for r in rows:
        if held.paused and r["state"] == RequestState.QUEUED.value:
            r["held"] = held.to_dict()  # what keeps it waiting: convoy resume
        r["worker"] = scheduler if r["state"] == RequestState.TESTING.value else None
    return rows



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
