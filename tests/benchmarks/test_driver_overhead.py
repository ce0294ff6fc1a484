"""benchmarks/driver_overhead.py still runs and still attributes: at a
small size (10 and 40 components, 2 requests: seconds), every request
merges and the breakdown's rows for the lock, the candidate and submit's
read of the manifest are measured, not 0.0. It is not in CI's figures; this
keeps it from rotting when the code it wraps moves (as it did when serial
moved into the window's job threads and submit into convoy.actions)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _row(out: str, label: str) -> list[float]:
    line = next((line for line in out.splitlines() if line.startswith(label)), None)
    assert line is not None, f"no row {label!r} in:\n{out}"
    return [float(x) for x in re.findall(r"(?<![\w.])(\d+\.\d+)(?![\d.]*x)", line[len(label):])]


def test_the_driver_benchmark_runs_and_attributes_its_time():
    run = subprocess.run([sys.executable, str(REPO / "benchmarks" / "driver_overhead.py"), "--components=10,40",
                          "--requests=2"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "warning: request" not in run.stderr, run.stderr  # every request merged
    assert re.search(r"^driver-own +\d+\.\d+ / \d+\.\d+ +\d+\.\d+ / \d+\.\d+ +\d+\.\d+x", run.stdout, re.MULTILINE)
    assert re.search(r"^peak RSS, process --all +\d+ MB +\d+ MB", run.stdout, re.MULTILINE), run.stdout
    for label in ("lock: re-resolve + write", "candidate & worktree (python part)",
                  "the component's part of the manifest (read_component)"):
        figures = _row(run.stdout, label)
        assert len(figures) >= 2 and all(f > 0 for f in figures[:2]), (label, figures, run.stdout)
