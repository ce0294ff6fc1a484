"""Where a benchmark's CPU went: per kind of process, between two snapshots of /proc.

    meter = CpuMeter()           # first snapshot
    ...                          # the timed run
    print(meter.report(wall))    # CPU seconds per kind, and the machine's busy share

A process's CPU is its own user and system time plus that of the children it
waited for (utime, stime, cutime, cstime of /proc/PID/stat), so the tests a
rig worker runs count as the worker's and the git and Bazel clients a driver
runs as the driver's. A process that ended between the snapshots and was not
waited for by a process alive at the second one is lost; the last line
compares the sum with the machine's busy time (/proc/stat) to say how much.
Linux only; elsewhere the report says it has nothing.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Dict, List, Tuple

TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_LANE = re.compile(r"--output_base=\S*?/bazel/(?:lane-(\d+)/)?slot-\d+")
KINDS = (  # (kind, pattern in the command line), first match wins
    ("lab: BuildGrid", re.compile(r"\bbgd\b.*\bserver\b")),
    ("lab: PostgreSQL", re.compile(r"\bpostgres\b")),
    ("lab: rig workers", re.compile(r"convoy\.lab\.worker\b.*--rig=")),
    ("lab: general workers", re.compile(r"convoy\.lab\.worker\b")),
    ("convoy process", re.compile(r"-m convoy process\b")),
)


def _processes() -> Dict[int, Tuple[str, float]]:
    """pid -> (command line, CPU seconds with waited-for children)."""
    found: Dict[int, Tuple[str, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            argv = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        ticks = sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
        found[int(entry.name)] = (argv, ticks / TICK)
    return found


def _busy() -> float:
    """Seconds of CPU the machine spent busy (every core), from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return (sum(values[:8]) - idle) / TICK


def kind(argv: str) -> str:
    lane = _LANE.search(argv)
    if lane:
        return f"Bazel server, lane {lane.group(1) or 0}"
    for name, pattern in KINDS:
        if pattern.search(argv):
            return name
    return "other"


class CpuMeter:
    def __init__(self) -> None:
        self.available = Path("/proc/stat").exists()
        self.before = _processes() if self.available else {}
        self.busy_before = _busy() if self.available else 0.0

    def spent(self) -> Dict[str, float]:
        """CPU seconds since the first snapshot, per kind of process."""
        totals: Dict[str, float] = {}
        for pid, (argv, seconds) in _processes().items():
            old = self.before.get(pid)
            delta = seconds - (old[1] if old and old[0] == argv else 0.0)
            if delta > 0:
                name = kind(argv)
                totals[name] = totals.get(name, 0.0) + delta
        return totals

    def report(self, wall: float) -> List[str]:
        if not self.available:
            return ["cpu: no /proc here; not measured"]
        totals = self.spent()
        busy = _busy() - self.busy_before
        cores = os.cpu_count() or 1
        lines = [f"cpu seconds over {wall:.1f} s wall ({cores} cores: {cores * wall:.0f} cpu-s; busy {busy:.0f}):"]
        for name, seconds in sorted(totals.items(), key=lambda kv: -kv[1]):
            lines.append(f"  {name:<24} {seconds:7.1f}")
        lines.append(f"  {'(not accounted)':<24} {max(0.0, busy - sum(totals.values())):7.1f}")
        return lines
