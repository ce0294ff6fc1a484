"""benchmarks/scaleout.py still runs: 4 requests with 1 and 2 workers on a
shared SQLite store (seconds; the figures themselves are for docs/status.md,
not asserted). With two workers the spare claims tasks (its claims are
measured) and every request merges."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def test_the_scaleout_benchmark_runs_and_the_spare_claims_tasks():
    run = subprocess.run([sys.executable, str(REPO / "benchmarks" / "scaleout.py"), "--requests=4", "--workers=1,2",
                          "--stores=sqlite"], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, (run.stdout[-3000:], run.stderr[-3000:])
    one = re.search(r"^sqlite +1 +4 +[\d.]+ +[\d.]+ +- +- +0 +0$", run.stdout, re.MULTILINE)
    two = re.search(r"^sqlite +2 +4 +[\d.]+ +[\d.]+ +(\d+) ms +\d+ ms +(\d+) +\d+$", run.stdout, re.MULTILINE)
    assert one and two, run.stdout
    assert int(two.group(2)) > 0  # the spare ran tasks
