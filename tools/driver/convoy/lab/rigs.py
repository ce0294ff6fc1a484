"""The lab's rigs and workers: what `--rigs` asks for, and starting them.

    specs = parse_rigs("rover-rigs:2,drone-rigs:1")   # [RigSpec(pool="rover-rigs", count=2, board="rover"), ...]
    format_rigs(specs)                                # "rover-rigs:2:rover,drone-rigs:1:drone" (in lab.json)

Each rig of a pool is a simulated rig (examples/rig/rig_sim.py) with its own
rig worker (convoy.lab.worker --rig=...), both named <pool>-<i>; the general
workers (general-<i>) serve GENERAL_POOL, the pool of the build and
non-hardware test actions. `RigsAndWorkers` is the collaborator of
convoy.lab.lab's `Lab` that starts them (and replaces one that died or
changed); the Lab records each process in lab.json with the marker its
command line carries.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path
from typing import Any, Callable, Dict, List

from convoy.bazel import bazel_environment
from convoy.errors import ConvoyError
from convoy.lab import procs

GENERAL_POOL = "default"
DEFAULT_RIGS = "rover-rigs:1,drone-rigs:1"
BOARD_SUFFIX = "-rigs"


@dataclasses.dataclass(frozen=True)
class RigSpec:
    """`count` simulated rigs of `board` in `pool`."""

    pool: str
    count: int
    board: str

    def names(self) -> List[str]:
        return [f"{self.pool}-{i}" for i in range(1, self.count + 1)]


def parse_rigs(text: str) -> List[RigSpec]:
    """Parses pool:count[:board],... (board defaults to the pool's name without -rigs)."""
    specs: List[RigSpec] = []
    problems: List[str] = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        parts = item.split(":")
        pool = parts[0]
        board = parts[2] if len(parts) > 2 else (pool[: -len(BOARD_SUFFIX)] if pool.endswith(BOARD_SUFFIX) else pool)
        if len(parts) not in (2, 3) or not parts[1].isdigit() or not pool or not board:
            problems.append(f"--rigs: {item!r} is not pool:count[:board], e.g. rover-rigs:2 or lab-a:1:drone")
            continue
        if pool == GENERAL_POOL:
            problems.append(f"--rigs: pool {GENERAL_POOL!r} is the general workers' pool; name the rig pool otherwise")
            continue
        if any(s.pool == pool for s in specs):
            problems.append(f"--rigs: pool {pool} is given twice")
            continue
        if not all(c.isalnum() or c in "-_." for c in pool):
            problems.append(f"--rigs: pool {pool!r} may have letters, digits, '-', '_' and '.' only")
            continue
        specs.append(RigSpec(pool=pool, count=int(parts[1]), board=board))
    if problems:
        raise ConvoyError(*problems)
    return specs


def format_rigs(specs: List[RigSpec]) -> str:
    return ",".join(f"{s.pool}:{s.count}:{s.board}" for s in specs)


class RigsAndWorkers:
    """Starts the simulated rigs and the workers of the lab in `directory`
    (its lab.json is the Lab's): `python` runs the workers, `code_root` has
    examples/rig, `instance` is the server's; `stop_process(state, key)` and
    `log_tail(name)` are the Lab's."""

    def __init__(self, directory: Path, python: Path, code_root: Path, instance: str,
                 stop_process: Callable[[Dict[str, Any], str], bool], log_tail: Callable[[str], str]) -> None:
        self.dir = directory
        self.logs = directory / "logs"
        self.python = python
        self.code_root = code_root
        self.instance = instance
        self._stop_process = stop_process
        self._log_tail = log_tail

    # --- markers: what /proc/<pid>/cmdline of each process contains -------------

    def _rig_marker(self, name: str) -> str:
        return f"--name={name} --state_dir={self.dir}"

    def _worker_marker(self, name: str) -> str:
        return f"--worker={name} --state_dir={self.dir}"

    # --- rigs -------------------------------------------------------------------

    def start_rigs(self, state: Dict[str, Any], rigs: List[RigSpec]) -> set:
        """Starts each rig that does not run (or runs another board); returns the keys of every wanted rig."""
        wanted = set()
        sim = self.code_root / "examples" / "rig" / "rig_sim.py"
        ports = state.setdefault("rig_ports", {})
        for spec in rigs:
            for name in spec.names():
                key = f"rig:{name}"
                wanted.add(key)
                entry = state["processes"].get(key)
                if entry and procs.alive(entry["pid"], self._rig_marker(name)) and entry.get("board") == spec.board:
                    continue
                if entry:
                    self._stop_process(state, key)
                port = ports.get(name)
                if not port or procs.port_open("127.0.0.1", port):
                    port = procs.free_port()
                argv = [
                    sys.executable, "-c", _RIG_LAUNCHER, str(sim), "--board", spec.board, "--port", str(port),
                    f"--name={name}", f"--state_dir={self.dir}",
                ]
                pid = procs.start(argv, self.logs / f"{name}.rig.log")
                ports[name] = port
                state["processes"][key] = {
                    "pid": pid, "marker": self._rig_marker(name), "pool": spec.pool, "board": spec.board,
                    "address": f"127.0.0.1:{port}",
                }
                marker = self._rig_marker(name)
                if not procs.wait_for(lambda: procs.port_open("127.0.0.1", port) or not procs.alive(pid, marker), 20):
                    raise ConvoyError(f"simulated rig {name} did not start: {self._log_tail(f'{name}.rig.log')}")
                if not procs.alive(pid, marker):
                    raise ConvoyError(f"simulated rig {name} ({spec.board}) exited: {self._log_tail(f'{name}.rig.log')}")
        return wanted

    # --- workers ----------------------------------------------------------------

    def _worker_env(self) -> Dict[str, str]:
        # A worker runs other people's test actions: it gets no secret of the driver's environment.
        env = {k: v for k, v in bazel_environment(os.environ).items() if not k.startswith("PYTHON")}
        env["PYTHONPATH"] = str(self.code_root / "tools" / "driver")
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def start_workers(self, state: Dict[str, Any], rigs: List[RigSpec], general: int) -> set:
        """Starts each worker that does not run (or serves another server or rig); returns the keys of every wanted one."""
        wanted = set()
        plan = []
        for spec in rigs:
            for name in spec.names():
                plan.append((name, spec.pool, state["processes"][f"rig:{name}"]["address"]))
        for i in range(1, general + 1):
            plan.append((f"general-{i}", GENERAL_POOL, ""))
        instance = self.instance
        for name, pool, rig in plan:
            key = f"worker:{name}"
            wanted.add(key)
            entry = state["processes"].get(key)
            same = entry and entry.get("server") == state["server"] and entry.get("rig") == rig
            if same and procs.alive(entry["pid"], self._worker_marker(name)):
                continue
            if entry:
                self._stop_process(state, key)
            argv = [
                str(self.python), "-m", "convoy.lab.worker", f"--worker={name}", f"--state_dir={self.dir}",
                f"--server={state['server']}", f"--instance={instance}", f"--pool={pool}",
                f"--general_pool={GENERAL_POOL}",
            ]
            if rig:
                argv.append(f"--rig={rig}")
            pid = procs.start(argv, self.logs / f"{name}.log", env=self._worker_env(), cwd=self.dir)
            state["processes"][key] = {
                "pid": pid, "marker": self._worker_marker(name), "pool": pool, "rig": rig, "server": state["server"],
            }
        return wanted


# Runs rig_sim.py as __main__ with the arguments it knows; the lab's own
# --name/--state_dir only mark the process so that `down` finds it again.
_RIG_LAUNCHER = (
    "import runpy, sys; sim = sys.argv[1]; "
    "sys.argv = [sim] + [a for a in sys.argv[2:] if not a.startswith(('--name=', '--state_dir='))]; "
    "runpy.run_path(sim, run_name='__main__')"
)
