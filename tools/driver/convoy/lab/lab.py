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
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

from convoy.bazel import bazel_environment
from convoy.errors import ConvoyError
from convoy.fsutil import atomic_write
from convoy.lab import buildgrid, pools, postgres, procs

INSTANCE = "convoy"
GENERAL_POOL = "default"
DEFAULT_PORT = 50051
DEFAULT_RIGS = "rover-rigs:1,drone-rigs:1"
BOARD_SUFFIX = "-rigs"
START_TIMEOUT = 90.0


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


@dataclasses.dataclass
class WorkerView:
    """One worker in `lab status`: what the lab started, what the worker says, what the server says."""

    name: str
    pool: str
    rig: str
    board: str
    running: bool
    state: Dict[str, Any]
    server_status: str


@dataclasses.dataclass
class Status:
    up: bool
    server: str
    server_running: bool
    postgres: str
    postgres_running: bool
    workers: List[WorkerView]
    problems: List[str]


class Lab:
    """The lab whose state lives in `directory`."""

    def __init__(self, directory: Path, python: Optional[Path] = None, code_root: Path = pools.CODE_ROOT) -> None:
        self.dir = directory.resolve()
        self.code_root = code_root
        self.python = python or code_root / ".venv-lab" / "bin" / "python"
        self.state_file = self.dir / "lab.json"
        self.logs = self.dir / "logs"
        self.config_file = self.dir / "buildgrid.yml"

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

    # --- markers: what /proc/<pid>/cmdline of each process contains -------------

    def _server_marker(self) -> str:
        return str(self.config_file)

    def _rig_marker(self, name: str) -> str:
        return f"--name={name} --state_dir={self.dir}"

    def _worker_marker(self, name: str) -> str:
        return f"--worker={name} --state_dir={self.dir}"

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
            wanted = self._rigs(state, rigs)
            wanted |= self._workers(state, rigs, general)
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
        if procs.port_open("127.0.0.1", port):
            raise ConvoyError(
                f"127.0.0.1:{port} is in use by another program; start the lab elsewhere with --lab_port=<port> "
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

    def _rigs(self, state: Dict[str, Any], rigs: List[RigSpec]) -> set:
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

    def _worker_env(self) -> Dict[str, str]:
        # A worker runs other people's test actions: it gets no secret of the driver's environment.
        env = {k: v for k, v in bazel_environment(os.environ).items() if not k.startswith("PYTHON")}
        env["PYTHONPATH"] = str(self.code_root / "tools" / "driver")
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def _workers(self, state: Dict[str, Any], rigs: List[RigSpec], general: int) -> set:
        wanted = set()
        plan = []
        for spec in rigs:
            for name in spec.names():
                plan.append((name, spec.pool, state["processes"][f"rig:{name}"]["address"]))
        for i in range(1, general + 1):
            plan.append((f"general-{i}", GENERAL_POOL, ""))
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
                f"--server={state['server']}", f"--instance={INSTANCE}", f"--pool={pool}",
                f"--general_pool={GENERAL_POOL}",
            ]
            if rig:
                argv.append(f"--rig={rig}")
            pid = procs.start(argv, self.logs / f"{name}.log", env=self._worker_env(), cwd=self.dir)
            state["processes"][key] = {
                "pid": pid, "marker": self._worker_marker(name), "pool": pool, "rig": rig, "server": state["server"],
            }
        return wanted

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

    # --- status -------------------------------------------------------------------

    def worker_state(self, name: str) -> Dict[str, Any]:
        try:
            return json.loads((self.dir / "workers" / f"{name}.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    def status(self) -> Status:
        state = self.state()
        processes = state.get("processes", {})
        problems: List[str] = []
        server = processes.get("server")
        server_running = bool(server) and procs.alive(server["pid"], server["marker"])
        port = state.get("postgres_port")
        pg_running = bool(port) and postgres.Cluster(self.dir / "pg", port).running()
        registered: Dict[str, pools.Bot] = {}
        if server_running:
            try:
                registered = {f"{b.pool}/{b.name}": b for b in pools.bots(self.address(state))}
            except ConvoyError as e:
                problems.append(str(e))
        workers = []
        for key, entry in sorted(processes.items()):
            if not key.startswith("worker:"):
                continue
            name = key[len("worker:"):]
            rig = next((e for k, e in processes.items() if k == f"rig:{name}"), None)
            bot = registered.get(f"{entry['pool']}/{name}")
            if bot is None:
                server_status = "not registered"
            elif bot.status == "OK" and not bot.healthy:
                server_status = "EXPIRED"  # OK, but the session has not been renewed in time
            else:
                server_status = bot.status
            workers.append(
                WorkerView(
                    name=name,
                    pool=entry["pool"],
                    rig=entry.get("rig", ""),
                    board=rig["board"] if rig else "",
                    running=procs.alive(entry["pid"], entry["marker"]),
                    state=self.worker_state(name),
                    server_status=server_status,
                )
            )
        return Status(
            up=server_running and pg_running and all(w.running for w in workers),
            server=state.get("server", ""),
            server_running=server_running,
            postgres=f"127.0.0.1:{port}" if port else "",
            postgres_running=pg_running,
            workers=workers,
            problems=problems,
        )

    def _log_tail(self, name: str, lines: int = 3) -> str:
        try:
            text = (self.logs / name).read_text(encoding="utf-8", errors="replace").strip().splitlines()
        except OSError:
            return f"no log {self.logs / name}"
        return " | ".join(text[-lines:]) + f" (see {self.logs / name})"


# Runs rig_sim.py as __main__ with the arguments it knows; the lab's own
# --name/--state_dir only mark the process so that `down` finds it again.
_RIG_LAUNCHER = (
    "import runpy, sys; sim = sys.argv[1]; "
    "sys.argv = [sim] + [a for a in sys.argv[2:] if not a.startswith(('--name=', '--state_dir='))]; "
    "runpy.run_path(sim, run_name='__main__')"
)
