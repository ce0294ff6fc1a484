"""Who works on the queue of a checkout's store (`convoy workers`, `convoy
status`): the store's lease rows (convoy.queue.lock). The worker that
schedules the queue holds the row "queue"; every `convoy process` holds
its own presence row ("worker <name>:<pid>"), renewed with the lease, a
standby worker's too. A row's heartbeat is its last renewal: its expiry
less queue.lease_ttl. A row past its expiry is a worker that stopped
without saying so (killed, or cut off from the store): "gone".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Optional

from convoy.actions import checkout
from convoy.models import QUEUE_LEASE, WORKER_PREFIX, LeaseRow
from convoy.store import now


def workers(root: Path) -> dict[str, Any]:
    """{"scheduler": "<name>:<pid>" or None, "lease_ttl": seconds, "workers": [row, ...]}: each
    row's worker, pid, role (scheduling, standby, gone), what it holds, heartbeat seconds ago."""
    ttl = checkout.config(root).lease_ttl
    if not checkout.has_store(root):
        return {"scheduler": None, "lease_ttl": ttl, "workers": []}
    with checkout.store(root, readonly=True) as store, store.read() as tx:
        rows = tx.leases()
    t = now()
    queue = next((r for r in rows if r.name == QUEUE_LEASE), None)
    scheduler = scheduling_worker(rows)
    owners = {r.owner: r for r in rows if r.name.startswith(WORKER_PREFIX)}
    if queue is not None and queue.owner not in owners:  # a driver that keeps no presence row
        owners[queue.owner] = queue
    result = []
    for owner, r in sorted(owners.items()):
        name, _, pid = owner.rpartition(":")
        alive = r.expires_at > t
        role = "scheduling" if owner == scheduler else "standby" if alive else "gone"
        result.append({"worker": name, "pid": int(pid) if pid.isdigit() else None, "role": role,
                       "holds": [QUEUE_LEASE] if owner == scheduler else [],
                       "heartbeat_seconds_ago": round(max(0.0, t - (r.expires_at - ttl)), 1),
                       "expires_in_seconds": round(r.expires_at - t, 1)})
    return {"scheduler": scheduler, "lease_ttl": ttl, "workers": result}


def scheduling_worker(leases: Iterable[LeaseRow]) -> Optional[str]:
    """The worker ("<name>:<pid>") whose lease schedules the queue now, from the store's lease rows; None: none."""
    row = next((lease for lease in leases if lease.name == QUEUE_LEASE), None)
    return row.owner if row is not None and row.expires_at > now() else None


def scheduler_line(root: Path) -> Optional[str]:
    """`convoy status`'s line on who schedules the queue (None: no worker does now)."""
    found = workers(root)
    row = next((w for w in found["workers"] if w["role"] == "scheduling"), None)
    if row is None:
        return None
    return (f"scheduled by {row['worker']} (pid {row['pid']}, heartbeat {row['heartbeat_seconds_ago']:g}s ago); "
            f"standby: {sum(1 for w in found['workers'] if w['role'] == 'standby')}; see: convoy workers")
