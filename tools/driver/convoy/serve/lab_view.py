"""`GET /api/lab`: the hardware lab's rig pools, busy or idle, and their health, as `convoy lab status` sees them.

    curl -sS "$CONVOY/api/lab"
    {"lab": "up", "server": "127.0.0.1:50051", "problems": [],
     "pools": [{"name": "rover-rigs", "workers": 2, "healthy": 2, "busy": 1,
                "members": [{"name": "rover-rigs-1", "rig": "127.0.0.1:40123", "board": "rover", "running": true,
                             "server_status": "OK", "healthy": true, "health": "ok", "busy": true,
                             "doing": "//integration:drive_test", "since": 1718000000.0}, ...]}]}

The lab is the one `convoy lab up` starts in the checkout's `.convoy/lab`
(convoy.lab.lab's `Lab(...).status()`: lab.json, each worker's state file,
and the server's list of bots, asked through the lab's Python). `lab` is
`none` when no lab was ever started there, `up`, `degraded` (the server runs
but a part does not) or `down`; a lab that cannot be asked is `unreachable`
with the reason in `problems`. Never an error: a page without a lab shows
"no lab".

Asking the server starts a process, so the answer is kept for TTL seconds
and one thread asks at a time; every page and client shares it.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from convoy.errors import ConvoyError
from convoy.serve.web import JSON, check_read
from convoy.store import STATE_DIR

TTL = 10.0  # seconds an answer is reused
_lock = threading.Lock()
_cache: dict[Path, tuple[float, dict[str, Any]]] = {}


async def lab(request: Request) -> JSON:
    check_read(request)
    return JSON(await run_in_threadpool(lab_status, request.app.state.root))


def lab_status(root: Path) -> dict[str, Any]:
    """The lab of the checkout `root`, at most TTL seconds old (see the module docstring)."""
    directory = root / STATE_DIR / "lab"
    with _lock:
        cached = _cache.get(directory)
        if cached is not None and time.monotonic() - cached[0] < TTL:
            return cached[1]
        answer = _ask(directory)
        _cache[directory] = (time.monotonic(), answer)
        return answer


def _ask(directory: Path) -> dict[str, Any]:
    none = {"lab": "none", "server": None, "problems": [], "pools": []}
    if not (directory / "lab.json").is_file():
        return none
    from convoy.lab.lab import Lab  # here: the lab's modules are needed only where a lab was started

    try:
        status = Lab(directory).status()
    except (ConvoyError, OSError, ValueError, KeyError) as e:
        return dict(none, lab="unreachable", problems=[f"cannot read the lab in {directory}: {e}"])
    if not status.server and not status.workers:
        return none
    pools: dict[str, dict[str, Any]] = {}
    for worker in status.workers:
        pool = pools.setdefault(worker.pool, {"name": worker.pool, "workers": 0, "healthy": 0, "busy": 0,
                                              "members": []})
        member = _member(worker)
        pool["workers"] += 1
        pool["healthy"] += member["healthy"]
        pool["busy"] += member["busy"]
        pool["members"].append(member)
    state = "up" if status.up else "degraded" if status.server_running else "down"
    return {"lab": state, "server": status.server or None, "problems": list(status.problems),
            "pools": [pools[name] for name in sorted(pools)]}


def _member(worker) -> dict[str, Any]:
    state = worker.state if isinstance(worker.state, dict) else {}
    running = state.get("running") if worker.running else None
    running = running if isinstance(running, dict) else None
    rig_ok = bool(state.get("healthy")) if worker.rig else True
    healthy = bool(worker.running and worker.server_status == "OK" and rig_ok)
    return {
        "name": worker.name, "rig": worker.rig or None, "board": worker.board or None, "running": worker.running,
        "server_status": worker.server_status, "healthy": healthy,
        "health": "ok" if healthy else ("stopped" if not worker.running else str(state.get("health") or
                                                                                worker.server_status)),
        "busy": running is not None,
        "doing": None if running is None else str(running.get("target") or running.get("action") or "?")[:200],
        "since": running.get("since") if running is not None and isinstance(running.get("since"), (int, float))
        else None,
    }
