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

Asking the lab reads its files and asks its server through a process of
the lab's Python, which may take up to a minute when the server hangs
(convoy.lab.pools.TIMEOUT). No request waits for that: one background
thread per lab asks it (at most one ask at a time), and a request gets at
once the last answer, with `checked_at` (when it came, Unix seconds) and
`age_seconds`, and starts a new ask when that answer is older than TTL
seconds. While the lab has not answered yet, or an ask has run for more than
SLOW seconds, or the last answer took longer than that, `lab` is `not
answering`: the last answer's pools and problems (none before the first),
and a first problem that says for how long. `convoy serve` asks once when it
starts, so the first page usually has an answer.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from typing import Any, Optional

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from convoy.errors import ConvoyError
from convoy.serve.web import JSON, check_read
from convoy.store import STATE_DIR

TTL = 10.0  # seconds an answer is reused before the lab is asked again
SLOW = 5.0  # seconds after which an ask that has not ended (or an answer that took longer) is "not answering"
NONE = {"lab": "none", "server": None, "problems": [], "pools": []}


async def lab(request: Request) -> JSON:
    check_read(request)
    return JSON(await run_in_threadpool(lab_status, request.app.state.root))


def lab_status(root: Path) -> dict[str, Any]:
    """The lab of the checkout `root`, as last known (see the module docstring); never waits for the lab."""
    directory = root / STATE_DIR / "lab"
    if not (directory / "lab.json").is_file():
        return dict(NONE)
    return _watch(directory).answer()


def look(root: Path) -> None:
    """Starts asking the lab of `root`, if there is one (convoy serve, when it starts)."""
    lab_status(root)


_watches: dict[Path, "_Watch"] = {}
_watches_lock = threading.Lock()


def _watch(directory: Path) -> "_Watch":
    with _watches_lock:
        return _watches.setdefault(directory, _Watch(directory))


class _Watch:
    """One lab's last answer, and the background thread that asks for the next."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.lock = threading.Lock()
        self.last: Optional[dict[str, Any]] = None
        self.checked_at = 0.0  # time.time() when `last` came (shown)
        self.checked = 0.0  # time.monotonic() then (for its age)
        self.took = 0.0  # seconds the ask of `last` took
        self.asking_since: Optional[float] = None  # time.monotonic() when the running ask started

    def answer(self) -> dict[str, Any]:
        with self.lock:
            clock = time.monotonic()
            if self.asking_since is None and (self.last is None or clock - self.checked >= TTL):
                asker = threading.Thread(target=self._ask, name="convoy-serve-lab", daemon=True)
                asker.start()  # before the mark: a thread that cannot start leaves none
                self.asking_since = clock
            last, checked_at, took = self.last, self.checked_at, self.took
            age = None if last is None else round(clock - self.checked, 1)
            asking = None if self.asking_since is None else clock - self.asking_since
        if last is not None and last["lab"] == "none":
            return dict(NONE)
        if last is not None and took <= SLOW and (asking is None or asking <= SLOW):
            return dict(last, checked_at=checked_at, age_seconds=age)
        server = _server(self.directory) or (last or {}).get("server")
        lab = f"the lab at {server}" if server else "the lab"
        if last is None:
            why = f"{lab} has not answered yet (asked {asking or 0:.0f} s ago)"
        elif asking is not None and asking > SLOW:
            why = f"{lab} has not answered for {asking:.0f} s; its pools as of {age:.0f} s ago"
        else:
            why = f"{lab} took {took:.0f} s to answer (more than {SLOW:g} s), {age:.0f} s ago"
        return {"lab": "not answering", "server": server, "problems": [why, *(last or {}).get("problems", [])],
                "pools": (last or {}).get("pools", []), "checked_at": checked_at if last else None,
                "age_seconds": age}

    def _ask(self) -> None:
        started = time.monotonic()
        try:
            found = _ask(self.directory)
        except Exception as e:  # a bug: logged with its traceback, and shown as the lab's problem
            logging.getLogger("convoy.serve").exception("asking the lab in %s failed", self.directory)
            found = dict(NONE, lab="unreachable", problems=[f"asking the lab failed: {type(e).__name__}"])
        with self.lock:
            self.last, self.checked_at, self.checked = found, time.time(), time.monotonic()
            self.took, self.asking_since = self.checked - started, None


def _server(directory: Path) -> Optional[str]:
    """The lab server's address as lab.json names it (a local file: read at once)."""
    try:
        server = json.loads((directory / "lab.json").read_text(encoding="utf-8")).get("server")
    except (OSError, ValueError, AttributeError):
        return None
    return server if isinstance(server, str) else None


def _ask(directory: Path) -> dict[str, Any]:
    none = dict(NONE)
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
