"""The sample's hardware stage: locally, and through the lab with 1 and 2 rigs.

    .venv/bin/python benchmarks/hardware_stage.py [--runs=12]

The hardware stage is `bazel test --test_tag_filters=convoy-hardware
//integration/...` in the rover configuration, with --runs_per_test=<runs>
so that it has several hardware test actions (the sample has one hardware
test per configuration) and --nocache_test_results so that each one runs:

- local: no remote executor; every test starts its own simulated rig and
  hardware tests are tagged `cpu:1024`, so they run one after the other;
- lab, 1 rig / 2 rigs: --config=hil against a lab of this script's own
  (`convoy lab up` in a temporary directory, on free ports), first with one
  rover rig, then with a second one added (`lab up` again).

Each figure is the median of three runs after an unmeasured one with the
same flags (Bazel's analysis is warm). The remote execution overhead per action is the lab's
wall time per action with one rig (actions then run one at a time) less the
time the test's own command ran on the rig (from the worker's records); the
worker's share of it (fetching inputs, uploading outputs) is shown apart.
Only figures are printed; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import List

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools" / "driver"))

from convoy.lab.lab import Lab, parse_rigs  # noqa: E402

OUTPUT_ROOT = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "convoy" / "bench-bazel"
STAGE = ["--test_tag_filters=convoy-hardware", "//integration/..."]
REPEAT = 3


def bazel(*args: str) -> float:
    """Runs `bazel test <args>` in this checkout; returns its wall time in seconds (fails loudly)."""
    argv = ["bazel", f"--output_user_root={OUTPUT_ROOT}", "--max_idle_secs=120", "test", "--symlink_prefix=/", *args]
    start = time.monotonic()
    proc = subprocess.run(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=1800)
    elapsed = time.monotonic() - start
    if proc.returncode != 0:
        sys.exit(f"bazel {' '.join(args)} failed:\n{proc.stdout[-4000:]}")
    return elapsed


def measure(*args: str) -> float:
    """The median wall time of REPEAT runs, after one unmeasured run (analysis, runfiles, worker caches)."""
    bazel(*args)
    return statistics.median(bazel(*args) for _ in range(REPEAT))


def records(lab: Lab) -> List[dict]:
    path = lab.dir / "records.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=12, help="hardware test actions in the stage (--runs_per_test)")
    args = parser.parse_args()
    common = [f"--runs_per_test={args.runs}", "--nocache_test_results", *STAGE]

    local = measure(*common)

    directory = Path(tempfile.mkdtemp(prefix="convoy-bench-lab-"))
    os.chmod(directory, 0o755)  # PostgreSQL's user must reach it when we are root
    lab = Lab(directory / "lab")
    try:
        lab.up(parse_rigs("rover-rigs:1"), general=1, port=0)
        remote = [f"--remote_executor=grpc://{lab.state()['server']}", "--noremote_accept_cached"]
        mark = len(records(lab))
        one = measure("--config=hil", *remote, *common)
        measured = [r for r in records(lab)[mark:] if r["event"] == "end" and r["status"] == "OK"]
        lab.up(parse_rigs("rover-rigs:2"), general=1, port=None)
        two = measure("--config=hil", *remote, *common)
    finally:
        lab.down()
        shutil.rmtree(directory, ignore_errors=True)

    run_s = statistics.mean(r["run_s"] for r in measured)
    fetch_s = statistics.mean(r["fetch_s"] for r in measured)
    upload_s = statistics.mean(r["upload_s"] for r in measured)
    per_action = one / args.runs
    print(f"hardware stage of the sample: rover, {args.runs} hardware test actions "
          f"(//integration:flash_and_drive_test, --runs_per_test={args.runs})")
    print(f"  local (one at a time, a simulated rig each)  {local:6.1f} s   {local / args.runs:5.2f} s/action")
    print(f"  lab, 1 rover rig                              {one:6.1f} s   {per_action:5.2f} s/action")
    print(f"  lab, 2 rover rigs                             {two:6.1f} s   {two / args.runs:5.2f} s/action")
    print(f"remote execution overhead per action (1 rig): {per_action - run_s:.2f} s "
          f"= {per_action:.2f} s wall per action - {run_s:.2f} s the test ran on the rig")
    print(f"  on the worker: fetch inputs {fetch_s:.3f} s, upload outputs {upload_s:.3f} s; "
          f"the rest is Bazel and the scheduler (queueing, Execute/WaitExecution, results)")
    print(f"(medians of {REPEAT} runs after a warm-up; Bazel's wall time includes its client and analysis)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
