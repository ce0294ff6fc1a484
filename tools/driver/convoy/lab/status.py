"""What `convoy lab status` shows: each worker as the lab, the worker and the server see it.

    status = Lab(Path(".convoy/lab")).status()     # Status: server, postgres, workers, problems
    status.up                                      # the server, PostgreSQL and every worker run
    Lab(...).worker_state("rover-rigs-1")          # workers/<name>.json, as the worker wrote it

`LabStatus` is the collaborator of convoy.lab.lab's `Lab` that reads: lab.json (what
the lab started), each worker's workers/<name>.json (its health and what it
runs, see convoy.lab.worker_state), health.json (each rig's health: good,
suspect, bad, maintenance, its last failures and changes; see
convoy.lab.rig_health) and the server's list of bots (convoy.lab.pools). It
starts and stops nothing.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Callable, Dict, List

from convoy.errors import ConvoyError
from convoy.lab import pools, postgres, procs
from convoy.lab.rig_health import HealthBook


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
    health: Dict[str, Dict[str, Any]] = dataclasses.field(default_factory=dict)  # rig -> health.json's record


class LabStatus:
    """The status of the lab in `directory`; `state()` (lab.json) and
    `address(state)` are the Lab's."""

    def __init__(self, directory: Path, state: Callable[[], Dict[str, Any]],
                 address: Callable[[Dict[str, Any]], pools.LabAddress]) -> None:
        self.dir = directory
        self.state = state
        self.address = address

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
            health=HealthBook(self.dir).read(),
        )
