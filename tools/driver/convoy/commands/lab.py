"""`convoy lab`: a hardware lab on this machine for `bazel test --config=hil`.

    convoy lab up [--rigs=rover-rigs:2,drone-rigs:1] [--general_workers=2] [--lab_port=50051]
    convoy lab status
    convoy lab cancel [--invocation_id=<id> | --cancel_pool=<pool>]   # unfinished operations
    convoy lab down

`up` starts (or completes) the lab: a PostgreSQL cluster, the BuildGrid
server on 127.0.0.1:<lab_port>, one simulated rig and one rig worker per rig
of each pool, and general workers for the default pool. Running it again
keeps what runs and restarts what died. `down` cancels what is still queued
and stops everything. Everything lives in .convoy/lab of the integration
repository (or --lab_dir): logs, worker records, the database.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

from absl import flags

from convoy.commands import common
from convoy.errors import ConvoyError
from convoy.lab import pools
from convoy.lab.lab import DEFAULT_PORT, Lab
from convoy.lab.rigs import DEFAULT_RIGS, parse_rigs
from convoy.lab.status import Status

FLAGS = flags.FLAGS
flags.DEFINE_string(
    "rigs", None,
    f"lab up: rig pools as pool:count[:board],... (default: the running lab's, else {DEFAULT_RIGS}); "
    "the board of a simulated rig defaults to the pool's name without -rigs.",
)
flags.DEFINE_integer(
    "general_workers", None, "lab up: workers of the default pool, for non-hardware actions (default 2)."
)
flags.DEFINE_integer(
    "lab_port", None, f"lab up: the server's port on 127.0.0.1 (default {DEFAULT_PORT}; 0 picks a free one)."
)
flags.DEFINE_string("lab_dir", None, "The lab's directory (default: .convoy/lab of the integration repository).")
flags.DEFINE_string("invocation_id", None, "lab cancel: cancel what this Bazel invocation left unfinished.")
flags.DEFINE_string("cancel_pool", None, "lab cancel: cancel what is unfinished in this pool.")

ACTIONS = ("up", "down", "status", "cancel")
# The lab ignores --repo: it is found from the current directory, or given by --lab_dir.
NO_CHECKOUT = "no integration repository ({manifest}) in {cwd} or above; run convoy there or pass --lab_dir"


def run(args: list[str]) -> int:
    lab_dir, rigs, general_workers, port = FLAGS.lab_dir, FLAGS.rigs, FLAGS.general_workers, FLAGS.lab_port
    invocation_id, pool = FLAGS.invocation_id, FLAGS.cancel_pool
    if len(args) != 1 or args[0] not in ACTIONS:
        raise ConvoyError(f"usage: convoy lab {'|'.join(ACTIONS)} [flags]; got: {' '.join(args) or 'nothing'}")
    lab = Lab(lab_directory(lab_dir))
    action = args[0]
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
        raise ConvoyError("lab cancel takes --invocation_id or --cancel_pool, not both")
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
    for problem in status.problems:
        print(f"problem: {problem}")
    return 0 if status.up else 1
