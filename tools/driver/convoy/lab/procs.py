"""Long-running processes of the lab: started detached, found again by pid, stopped for sure.

    pid = procs.start(["python3", "rig_sim.py", ...], log=Path(".convoy/lab/logs/rig.log"))
    procs.alive(pid, marker="rig_sim.py")     # the pid is still that process
    procs.stop(pid, marker="rig_sim.py")      # SIGTERM, then SIGKILL after a grace period

Each process leads its own session (it survives the `convoy lab up` that
started it, and a Ctrl-C in that terminal); its output goes to its log. A pid
is only trusted while /proc/<pid>/cmdline still contains the marker the lab
recorded, so a recycled pid is never signalled.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Mapping, Optional, Sequence


def start(argv: Sequence[str], log: Path, env: Optional[Mapping[str, str]] = None, cwd: Optional[Path] = None) -> int:
    """Starts `argv` detached (own session, stdin from /dev/null, output appended to `log`); returns its pid."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        process = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
        )
    return process.pid


def cmdline(pid: int) -> str:
    """The command line of `pid` ('' if there is no such process or it is a zombie)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode("utf-8", "replace").strip()


def _stat(pid: int) -> list[str]:
    """The fields of /proc/<pid>/stat after the command name, from the state letter on ([] if no such process)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return []
    return stat.rpartition(")")[2].split()


def _state(pid: int) -> str:
    """The process state letter from /proc/<pid>/stat ('' if there is no such process)."""
    return (_stat(pid) or [""])[0]


def started(pid: int) -> Optional[int]:
    """When `pid` started (clock ticks after boot, /proc/<pid>/stat), None if there is no such process:
    with the pid, it names one process even after the pid is recycled."""
    fields = _stat(pid)
    return int(fields[19]) if len(fields) > 19 and fields[0] not in ("Z", "X") else None


def alive(pid: Optional[int], marker: str) -> bool:
    """Whether `pid` runs and is the process whose command line contains `marker`."""
    if not pid:
        return False
    # While a process is between fork and exec (or inside exec) its
    # command line reads empty for a moment (measured): look again.
    for _ in range(50):
        line = cmdline(pid)
        if line:
            return marker in line
        if _state(pid) in ("", "Z", "X"):
            return False
        time.sleep(0.01)
    return False


def stop(pid: Optional[int], marker: str, grace: float = 15.0) -> bool:
    """Stops the process (SIGTERM, SIGKILL after `grace` s); returns whether it was running."""
    if not alive(pid, marker):
        return False
    assert pid is not None
    _signal(pid, signal.SIGTERM)
    if not _wait_gone(pid, marker, grace):
        _signal(pid, signal.SIGKILL)
        _wait_gone(pid, marker, 5.0)
    _reap(pid)
    return True


def kill_group(pgid: Optional[int]) -> None:
    """SIGKILLs the process group `pgid` if it exists (a command a dead worker left behind)."""
    if not pgid:
        return
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _wait_gone(pid: int, marker: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap(pid)
        if not alive(pid, marker):
            return True
        time.sleep(0.05)
    return not alive(pid, marker)


def _reap(pid: int) -> None:
    """Collects the exit status if `pid` is our child (a test's lab); harmless otherwise."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on `host` that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def exists(pid: int) -> bool:
    """Whether any trace of process `pid` is left (running, exiting or a zombie)."""
    return os.path.exists(f"/proc/{pid}")


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for(predicate, timeout: float, interval: float = 0.1) -> bool:
    """Polls `predicate()` until it is true or `timeout` s have passed; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
