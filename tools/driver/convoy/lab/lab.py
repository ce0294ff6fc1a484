"""A hardware lab on one machine: PostgreSQL, BuildGrid, rigs and their workers.

    lab = Lab(Path(".convoy/lab"))
    lab.up(parse_rigs("rover-rigs:2,drone-rigs:1"), general=2, port=50051)
    lab.status()
    lab.down()

Layout of the lab directory:

    lab.json            what runs (pids, ports, rigs); written atomically
    buildgrid.yml       the server's configuration
    pg/                 the PostgreSQL cluster (scheduler database)
    cas/                the server's CAS
    logs/               one log per process: buildgrid, <rig>.rig, <worker>
    workers/<name>.json each worker's state (health, what it runs)
    records.jsonl       every action a worker ran
    work/, cache/       the workers' input roots and file caches

`up` starts what is missing and keeps what runs, so running it again is
harmless and brings back a part that died (a killed server comes back on the
same port and database, and Bazel's retries reach it). `down` cancels the
operations still queued, stops the workers (they kill what they run), the
rigs, the server and PostgreSQL.

This module is the `Lab`: its state file, PostgreSQL and the server, `up`
(which waits until the server knows every worker) and `down`. Two
collaborators do the rest: `lab.rigs` starts the rigs and workers
(convoy.lab.rigs' `RigsAndWorkers`, which also reads `--rigs`), and
`lab.view` reads what `status()` and `worker_state()` return
(convoy.lab.status' `LabStatus`).
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

from convoy.errors import ConvoyError
from convoy.fsutil import atomic_write
from convoy.lab import buildgrid, pools, postgres, procs
from convoy.lab.rigs import DEFAULT_RIGS, GENERAL_POOL, RigSpec, RigsAndWorkers, format_rigs, parse_rigs
from convoy.lab.status import LabStatus, Status, WorkerView

__all__ = [
    "DEFAULT_PORT", "DEFAULT_RIGS", "GENERAL_POOL", "INSTANCE", "START_TIMEOUT", "Lab", "RigSpec", "Status",
    "WorkerView", "format_rigs", "parse_rigs",
]

INSTANCE = "convoy"
DEFAULT_PORT = 50051
START_TIMEOUT = 90.0
SERVER_EXIT_SECONDS = 10.0  # how long a killed server may take to let go of its port


class Lab:
    """The lab whose state lives in `directory`."""

    def __init__(self, directory: Path, python: Optional[Path] = None, code_root: Path = pools.CODE_ROOT) -> None:
        self.dir = directory.resolve()
        self.code_root = code_root
        self.python = python or code_root / ".venv-lab" / "bin" / "python"
        self.state_file = self.dir / "lab.json"
        self.logs = self.dir / "logs"
        self.config_file = self.dir / "buildgrid.yml"
        self.rigs = RigsAndWorkers(self.dir, self.python, code_root, INSTANCE, self._stop_process, self._log_tail)
        self.view = LabStatus(self.dir, self.state, self.address)

    # --- state ------------------------------------------------------------------

    def state(self) -> Dict[str, Any]:
        try:
            return json.loads(self.state_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except ValueError:
            raise ConvoyError(f"{self.state_file} is not valid JSON; stop what runs by hand and delete it") from None

    def _save(self, state: Dict[str, Any]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        atomic_write(self.state_file, json.dumps(state, indent=1, sort_keys=True) + "\n")

    def address(self, state: Optional[Dict[str, Any]] = None) -> pools.LabAddress:
        state = state if state is not None else self.state()
        server = state.get("server", f"127.0.0.1:{DEFAULT_PORT}")
        return pools.LabAddress(server=server, instance=INSTANCE, python=self.python)

    def status(self) -> Status:
        """What runs and how each worker is (convoy.lab.status)."""
        return self.view.status()

    def worker_state(self, name: str) -> Dict[str, Any]:
        """workers/<name>.json, as the worker wrote it ({} if there is none)."""
        return self.view.worker_state(name)

    # --- markers: what /proc/<pid>/cmdline of each process contains -------------
    # (the rigs' and the workers' are convoy.lab.rigs')

    def _server_marker(self) -> str:
        return str(self.config_file)

    # --- up ---------------------------------------------------------------------

    def up(self, rigs: Optional[List[RigSpec]], general: Optional[int], port: Optional[int]) -> Dict[str, Any]:
        """Starts what is missing; returns the lab's state. None keeps the running lab's setting."""
        self._check_installed()
        state = self.state()
        if rigs is None:
            rigs = parse_rigs(state.get("rigs", DEFAULT_RIGS))
        if general is None:
            general = state.get("general", 2)
        if general < 0:
            raise ConvoyError(f"--general_workers={general}: expected 0 or more")
        self.dir.mkdir(parents=True, exist_ok=True)
        state["rigs"] = format_rigs(rigs)
        state["general"] = general
        state.setdefault("processes", {})
        try:
            self._postgres(state)
            self._server(state, port)
            wanted = self.rigs.start_rigs(state, rigs)
            wanted |= self.rigs.start_workers(state, rigs, general)
            for name in sorted(set(state["processes"]) - wanted - {"server"}):
                self._stop_process(state, name)
        finally:
            # Whatever was started is on record, so that `down` stops it even
            # after a failed `up`.
            self._save(state)
        self._wait_registered(state, rigs, general)
        return state

    def _check_installed(self) -> None:
        if not self.python.exists():
            raise ConvoyError(f"the lab's Python environment is missing ({self.python}). Run: bash scripts/setup")

    def _postgres(self, state: Dict[str, Any]) -> None:
        port = state.get("postgres_port") or procs.free_port()
        cluster = postgres.Cluster(self.dir / "pg", port)
        if not cluster.running() and procs.port_open("127.0.0.1", port):
            port = procs.free_port()
            cluster = postgres.Cluster(self.dir / "pg", port)
        cluster.start()
        state["postgres_port"] = port
        state["database"] = cluster.url

    def _server(self, state: Dict[str, Any], port: Optional[int]) -> None:
        entry = state["processes"].get("server")
        if entry and procs.alive(entry["pid"], self._server_marker()):
            if port and f"127.0.0.1:{port}" != state["server"]:
                raise ConvoyError(
                    f"the lab's server runs on {state['server']}; run convoy lab down first to move it to port {port}"
                )
            return
        if port is None:
            port = int(state["server"].rpartition(":")[2]) if state.get("server") else DEFAULT_PORT
        if port == 0:
            port = procs.free_port()
        if entry and procs.port_open("127.0.0.1", port):
            # A server killed a moment ago holds its port until its last thread
            # has exited, after its main thread already reads as gone: wait for it.
            procs.wait_for(lambda: not procs.port_open("127.0.0.1", port) or not procs.exists(entry["pid"]),
                           timeout=SERVER_EXIT_SECONDS)
        if procs.port_open("127.0.0.1", port):
            raise ConvoyError(
                f"127.0.0.1:{port} is in use by another program; start the lab elsewhere with --port=<port> "
                f"and point Bazel at it: --remote_executor=grpc://127.0.0.1:<port> (e.g. in user.bazelrc)"
            )
        bgd = self.python.parent / "bgd"
        migrate = subprocess.run(
            [str(bgd), "migrate", "apply", state["database"]],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if migrate.returncode != 0:
            raise ConvoyError(f"bgd migrate apply failed: {(migrate.stderr.strip().splitlines() or ['?'])[-1]}")
        atomic_write(self.config_file, buildgrid.config(port, INSTANCE, state["database"], self.dir / "cas"))
        log = self.logs / "buildgrid.log"
        pid = procs.start([str(bgd), "server", "start", str(self.config_file)], log, cwd=self.dir)
        state["server"] = f"127.0.0.1:{port}"
        state["processes"]["server"] = {"pid": pid, "marker": self._server_marker()}
        address = self.address(state)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if not procs.alive(pid, self._server_marker()):
                raise ConvoyError(f"BuildGrid exited while starting: {self._log_tail('buildgrid.log')}")
            if procs.port_open("127.0.0.1", port):
                try:
                    pools.ask(address, "ping")
                    return
                except ConvoyError:
                    pass
            if time.monotonic() > deadline:
                raise ConvoyError(f"BuildGrid did not answer on {state['server']} within {START_TIMEOUT:g} s; see {log}")
            time.sleep(0.3)

    def _wait_registered(self, state: Dict[str, Any], rigs: List[RigSpec], general: int) -> None:
        """Waits until the server knows every worker (rig workers healthy: their rig answered)."""
        expected = {f"{s.pool}/{n}" for s in rigs for n in s.names()}
        expected |= {f"{GENERAL_POOL}/general-{i}" for i in range(1, general + 1)}
        address = self.address(state)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            healthy = {f"{b.pool}/{b.name}" for b in pools.bots(address) if b.healthy}
            if expected <= healthy:
                return
            for key, entry in state["processes"].items():
                if key.startswith("worker:") and not procs.alive(entry["pid"], entry["marker"]):
                    raise ConvoyError(f"worker {key[7:]} exited: {self._log_tail(key[7:] + '.log')}")
            if time.monotonic() > deadline:
                raise ConvoyError(
                    f"workers not registered with the server after {START_TIMEOUT:g} s: "
                    f"{', '.join(sorted(expected - healthy))}; see {self.logs}"
                )
            time.sleep(0.3)

    # --- down -------------------------------------------------------------------

    def down(self) -> List[str]:
        """Stops everything; returns what was stopped, in order."""
        state = self.state()
        stopped: List[str] = []
        processes = state.get("processes", {})
        server = processes.get("server")
        if server and procs.alive(server["pid"], server["marker"]):
            try:
                cancelled = pools.ask(self.address(state), "cancel", "--all")
            except ConvoyError:
                cancelled = []
            if cancelled:
                stopped.append(f"{len(cancelled)} unfinished operations (cancelled)")
        order = sorted(processes, key=lambda k: (not k.startswith("worker:"), not k.startswith("rig:"), k))
        for key in order:
            if self._stop_process(state, key):
                stopped.append(key)
        port = state.get("postgres_port")
        if port and postgres.Cluster(self.dir / "pg", port).stop():
            stopped.append("postgres")
        self._save(state)
        return stopped

    def _stop_process(self, state: Dict[str, Any], key: str) -> bool:
        entry = state["processes"].pop(key, None)
        if not entry:
            return False
        was_running = procs.stop(entry["pid"], entry["marker"])
        if key.startswith("worker:"):
            # A worker that died hard may have left its command's process group.
            status = self.worker_state(key[len("worker:"):])
            procs.kill_group(status.get("pgid"))
        return was_running

    def _log_tail(self, name: str, lines: int = 3) -> str:
        try:
            text = (self.logs / name).read_text(encoding="utf-8", errors="replace").strip().splitlines()
        except OSError:
            return f"no log {self.logs / name}"
        return " | ".join(text[-lines:]) + f" (see {self.logs / name})"
