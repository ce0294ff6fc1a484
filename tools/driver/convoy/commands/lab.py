"""`convoy lab`: a hardware lab on this machine for `bazel test --config=hil`.

    convoy lab up [--rigs=rover-rigs:2,drone-rigs:1] [--general_workers=2] [--port=50051]
    convoy lab status
    convoy lab cancel [--invocation_id=<id> | --pool=<pool>]   # unfinished operations
    convoy lab rig RIG --maintenance | --good [--reason=...] [--by=...]  # take a rig out, put it back
    convoy lab down

`up` starts (or completes) the lab: a PostgreSQL cluster, the BuildGrid
server on 127.0.0.1:<port>, one simulated rig and one rig worker per rig
of each pool, and general workers for the default pool. Running it again
keeps what runs and restarts what died. `down` cancels what is still queued
and stops everything. `rig` records a person's change of a rig's health
(convoy.lab.rig_health: maintenance drains it, good puts it back, also after
the driver found it bad), with who and why, and stores RIG_HEALTH_CHANGED
in the integration repository's store when there is one (--repo, or the
current directory), so that its plugins hear of it. Everything lives in
.convoy/lab of the integration repository (or --lab_dir): logs, worker
records, rig health, the database.
"""

from __future__ import annotations

import argparse
import getpass
import time
from pathlib import Path
from typing import Optional

from convoy import models
from convoy.commands import common
from convoy.errors import ConvoyError
from convoy.lab import pools
from convoy.lab.rig_health import GOOD, MAINTENANCE, HealthBook
from convoy.lab.lab import DEFAULT_PORT, Lab
from convoy.lab.rigs import DEFAULT_RIGS, parse_rigs
from convoy.lab.status import Status


def add_flags(parser: common.Parser) -> None:
    common.add_repo(parser)
    parser.string(
        "rigs", None,
        f"lab up: rig pools as pool:count[:board],... (default: the running lab's, else {DEFAULT_RIGS}); "
        "the board of a simulated rig defaults to the pool's name without -rigs.",
    )
    parser.integer(
        "general_workers", None, "lab up: workers of the default pool, for non-hardware actions (default 2)."
    )
    parser.integer(
        "port", None, f"lab up: the server's port on 127.0.0.1 (default {DEFAULT_PORT}; 0 picks a free one)."
    )
    parser.string("lab_dir", None, "The lab's directory (default: .convoy/lab of the integration repository).",
                  metavar="DIR")
    parser.string("invocation_id", None, "lab cancel: cancel what this Bazel invocation left unfinished.",
                  metavar="ID")
    parser.string("pool", None, "lab cancel: cancel what is unfinished in this pool.")
    parser.boolean("maintenance", False, "lab rig: take the rig out for maintenance (its worker takes no new work).")
    parser.boolean("good", False, "lab rig: put the rig back (good), after maintenance or after convoy found it bad.")
    parser.string("reason", None, "lab rig: why, recorded with the change.")
    parser.string("by", None, "lab rig: who, recorded with the change (default: the user running convoy).")
    # The names they had while flags were global (absl), for one release. (--lab_dir stays: the stage's
    # lab_dir in convoy.yaml, and a bare --dir beside --repo would be unclear.)
    parser.deprecated("lab_port", "port")
    parser.deprecated("cancel_pool", "pool")


ACTIONS = ("up", "down", "status", "cancel", "rig")
# The lab ignores --repo: it is found from the current directory, or given by --lab_dir.
NO_CHECKOUT = "no integration repository ({manifest}) in {cwd} or above; run convoy there or pass --lab_dir"


def run(opts: argparse.Namespace, args: list[str]) -> int:
    lab_dir, rigs, general_workers, port = opts.lab_dir, opts.rigs, opts.general_workers, opts.port
    invocation_id, pool = opts.invocation_id, opts.pool
    if not args or args[0] not in ACTIONS or len(args) != (2 if args[0] == "rig" else 1):
        raise ConvoyError(f"usage: convoy lab {'|'.join(ACTIONS)} [flags] (lab rig RIG --maintenance|--good); "
                          f"got: {' '.join(args) or 'nothing'}")
    lab = Lab(lab_directory(lab_dir))
    action = args[0]
    if action == "rig":
        if opts.maintenance == opts.good:
            raise ConvoyError(f"lab rig {args[1]} takes --maintenance or --good (one of them)")
        return rig(lab, args[1], MAINTENANCE if opts.maintenance else GOOD, reason=opts.reason,
                   by=opts.by or getpass.getuser(), repo=opts.repo)
    if action == "up":
        return up(lab, rigs=rigs, general_workers=general_workers, port=port)
    if action == "down":
        stopped = lab.down()
        print(f"lab {lab.dir}: " + (f"stopped {', '.join(stopped)}" if stopped else "nothing was running"))
        return 0
    if action == "cancel":
        return cancel(lab, invocation_id=invocation_id, pool=pool)
    return print_status(lab.status())


def lab_directory(lab_dir: Optional[str]) -> Path:
    """`lab_dir` (--lab_dir), else .convoy/lab of the integration checkout at
    or above the current directory."""
    if lab_dir:
        return Path(lab_dir)
    return common.checkout(None, not_found=NO_CHECKOUT) / ".convoy" / "lab"


def up(lab: Lab, *, rigs: Optional[str] = None, general_workers: Optional[int] = None,
       port: Optional[int] = None) -> int:
    """Starts (or completes) the lab: `rigs` as pool:count[:board],... (None:
    the running lab's, else the default); prints where everything is."""
    start = time.monotonic()
    parsed = parse_rigs(rigs) if rigs is not None else None
    state = lab.up(parsed, general_workers, port)
    print(f"lab up in {time.monotonic() - start:.1f} s ({lab.dir})")
    print(f"  server    grpc://{state['server']}  instance {pools.DEFAULT_INSTANCE}")
    print(f"  postgres  {state['database']}")
    for key, entry in sorted(state["processes"].items()):
        if key.startswith("rig:"):
            print(f"  rig       {key[4:]:<16} {entry['board']:<6} {entry['address']}  pool {entry['pool']}")
    print(f"  workers   {sum(1 for k in state['processes'] if k.startswith('worker:'))} (logs in {lab.logs})")
    remote = f"grpc://{state['server']}"
    extra = "" if state["server"].endswith(f":{DEFAULT_PORT}") else f" --remote_executor={remote}"
    print(f"run: bazel test --config=hil{extra} //integration/...")
    return 0


def cancel(lab: Lab, *, invocation_id: Optional[str] = None, pool: Optional[str] = None) -> int:
    """Cancels what Bazel invocation `invocation_id` left unfinished, or what
    is unfinished in `pool`, or (neither) everything unfinished."""
    address = lab.address()
    if invocation_id and pool:
        raise ConvoyError("lab cancel takes --invocation_id or --pool, not both")
    if invocation_id:
        names = pools.cancel_invocation(address, invocation_id)
    elif pool:
        names = pools.cancel_pool(address, pool)
    else:
        names = pools.ask(address, "cancel", "--all")
    print(f"cancelled {len(names)} unfinished operation(s)")
    for name in names:
        print(f"  {name}")
    return 0


def rig(lab: Lab, name: str, state: str, *, reason: Optional[str], by: str, repo: Optional[str] = None) -> int:
    """Moves rig `name` of `lab` to `state` (maintenance or good), recorded with `reason` and `by`;
    stores RIG_HEALTH_CHANGED in the integration repository's store, if there is one."""
    processes = lab.state().get("processes", {})
    worker = processes.get(f"worker:{name}")
    if worker is None or not worker.get("rig"):
        rigs = sorted(k[len("rig:"):] for k in processes if k.startswith("rig:"))
        raise ConvoyError(f"lab {lab.dir} has no rig {name}; its rigs: {', '.join(rigs) or 'none'}. "
                          "See: convoy lab status")
    why = reason or ("taken out by hand" if state == MAINTENANCE else "put back by hand")
    change = HealthBook(lab.dir).set_state(name, worker["pool"], state, reason=why, by=by)
    if change is None:
        print(f"rig {name} is already {state}")
        return 0
    try:
        checkout: Optional[Path] = common.checkout(repo)
    except ConvoyError:
        checkout = None  # no integration repository here: health.json has the record
    if checkout is not None and common.has_store(checkout):
        with common.store(checkout).transaction() as tx:
            tx.add_event(models.RIG_HEALTH_CHANGED, data=change.event_data())
    print(f"rig {name} ({worker['pool']}): {change.old} -> {change.new} by {by}: {why}")
    if state == MAINTENANCE:
        print("  its worker takes no new work from its next poll (a few seconds); a test it runs now finishes")
    return 0


def print_status(status: Status) -> int:
    if not status.server and not status.workers:
        print("lab: not started (run: convoy lab up)")
        return 1
    print(f"lab: {'up' if status.up else 'DEGRADED' if status.server_running else 'down'}")
    print(f"  server    {status.server:<22} {'running' if status.server_running else 'STOPPED'}")
    print(f"  postgres  {status.postgres:<22} {'running' if status.postgres_running else 'STOPPED'}")
    by_pool: dict = {}
    for worker in status.workers:
        by_pool.setdefault(worker.pool, []).append(worker)
    now = time.time()
    for pool, workers in sorted(by_pool.items()):
        healthy = sum(1 for w in workers if w.running and w.server_status == "OK")
        print(f"pool {pool}: {len(workers)} worker(s), {healthy} healthy")
        for w in workers:
            s = w.state
            if not w.running:
                doing = "STOPPED"
            elif s.get("running"):
                r = s["running"]
                doing = f"running {r.get('target') or r.get('action', '?')[:16]} ({now - r.get('since', now):.0f} s)"
            else:
                doing = "idle"
            if w.rig:
                health = "healthy" if s.get("healthy") else "UNHEALTHY: " + s.get("health", "?")
                rig = f"rig {w.rig} ({w.board}) {health}"
            else:
                rig = "no rig"
            print(f"  {w.name:<16} server: {w.server_status:<14} {rig:<48} {doing}")
            if w.rig:
                print_rig_health(w.name, status.health.get(w.name, {}))
    for problem in status.problems:
        print(f"problem: {problem}")
    return 0 if status.up else 1


def print_rig_health(name: str, record: dict) -> None:
    """A rig's health under its line: state (and the last change: why, by whom), its last failures."""
    state = record.get("state", GOOD)
    line = f"    health {state}"
    if record.get("streak"):
        line += f", {record['streak']} failure(s) in a row"
    if record.get("changes"):
        last = record["changes"][-1]
        line += f" (since {_when(last.get('at'))}, by {last.get('by', '?')}: {last.get('reason', '')})"
    print(line)
    for failure in record.get("failures", [])[-3:]:
        counted = "" if failure.get("counted") else " (not counted: failed on every rig)"
        print(f"    failed {_when(failure.get('at'))} {failure.get('target', '?')}: {failure.get('reason', '')}{counted}")


def _when(at) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at)) if isinstance(at, (int, float)) else "?"
