"""Runs one action's command so that nothing of it outlives its worker.

    python3 -I guard.py <worker pid> -- <command> [args...]

The worker starts this script as the leader of a new process group, with the
action's exact environment (hence -I and no import of convoy: the action must
not see the worker's PYTHONPATH). It asks the kernel for SIGTERM when its
parent dies (prctl PR_SET_PDEATHSIG), runs the command in its own group, and
on SIGTERM/SIGINT/SIGHUP, or when the worker is gone, kills the whole group.
So a worker that is stopped, or killed with SIGKILL, leaves no test running
on its rig. Its exit status is the command's (128 + signal if it was killed).
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys

PR_SET_PDEATHSIG = 1


def _kill_group(*_: object) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    os.killpg(0, signal.SIGKILL)


def _die_with_parent(parent: int) -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # the worker died before prctl took effect
        _kill_group()


def main(argv: list[str]) -> int:
    if len(argv) < 4 or argv[2] != "--":
        print("usage: guard.py <worker pid> -- <command> [args...]", file=sys.stderr)
        return 2
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, _kill_group)
    _die_with_parent(int(argv[1]))
    try:
        process = subprocess.Popen(argv[3:])
    except OSError as e:
        print(f"convoy worker: cannot run {argv[3]}: {e}", file=sys.stderr)
        return 127
    code = process.wait()
    return 128 - code if code < 0 else code


if __name__ == "__main__":
    sys.exit(main(sys.argv))
