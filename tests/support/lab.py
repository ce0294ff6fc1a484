"""The session's hardware lab (the `lab` fixture of tests/lab/conftest.py) as
the lab's tests see it: its state and address, its workers' records, and
rigs stopped and resumed."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import time
from typing import Callable, Dict, List, Optional


from convoy import main as convoy_main
from convoy.lab import pools
from convoy.lab.lab import Lab


def run_convoy(*args: str) -> int:
    """`convoy <args>` in this process (each run parses its own flags)."""
    return convoy_main.main(["convoy", *args])


@dataclasses.dataclass
class LabHandle:
    """The session's lab: its directory, state and address."""

    lab: Lab
    port: int

    @property
    def address(self) -> pools.LabAddress:
        return self.lab.address()

    def pid(self, key: str) -> int:
        return self.lab.state()["processes"][key]["pid"]

    def up(self) -> None:
        """convoy lab up again: restarts whatever died (as an operator would)."""
        assert run_convoy("lab", "up", f"--lab_dir={self.lab.dir}") == 0

    def bots(self) -> Dict[str, pools.Bot]:
        return {b.name: b for b in pools.bots(self.address)}

    def wait_bot(self, name: str, healthy: bool, timeout: float = 60) -> None:
        """Waits until the server sees worker `name` healthy (or not)."""
        deadline = time.monotonic() + timeout
        while True:
            bot = self.bots().get(name)
            if bot is not None and bot.healthy == healthy:
                return
            assert time.monotonic() < deadline, f"worker {name} never became {'healthy' if healthy else 'unhealthy'}: {bot}"
            time.sleep(0.2)

    def records(self) -> List[dict]:
        path = self.lab.dir / "records.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def records_since(self, mark: int) -> List[dict]:
        return self.records()[mark:]


def stop_rig(lab: LabHandle, name: str) -> None:
    """Freezes a rig: it stops answering, as a hung bench does."""
    os.kill(lab.pid(f"rig:{name}"), signal.SIGSTOP)
    lab.wait_bot(name, healthy=False)


def resume_rig(lab: LabHandle, name: str) -> None:
    os.kill(lab.pid(f"rig:{name}"), signal.SIGCONT)
    lab.wait_bot(name, healthy=True)


def rig_fault(lab: LabHandle, name: str, fault: Optional[str]) -> None:
    """Breaks simulated rig `name` ("flash": every flash fails; "silent": it answers nothing) or
    repairs it (None): examples/rig/rig_sim.py's `fault` op, a stand-in for broken hardware."""
    host, _, port = lab.lab.state()["processes"][f"rig:{name}"]["address"].rpartition(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        stream = s.makefile("rwb")
        stream.write(json.dumps({"op": "fault", "fault": fault}).encode() + b"\n")
        stream.flush()
        assert json.loads(stream.readline())["ok"]


def wait_for(predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.1) -> object:
    """Polls `predicate` until it returns something true; fails the test after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(interval)


def ends(records: List[dict], target: Optional[str] = None) -> List[dict]:
    return [r for r in records if r["event"] == "end" and (target is None or r["target"] == target)]
