"""What the benchmarks share: one line that says what machine their figures come from,
and the git identity of the commits they make."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

# The author and committer of every commit a benchmark makes.
IDENTITY = {
    "GIT_AUTHOR_NAME": "Convoy Bench",
    "GIT_AUTHOR_EMAIL": "bench@convoy.invalid",
    "GIT_COMMITTER_NAME": "Convoy Bench",
    "GIT_COMMITTER_EMAIL": "bench@convoy.invalid",
}


def machine() -> str:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = ", " + line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    git_version = subprocess.run(["git", "--version"], capture_output=True, text=True).stdout.strip()
    return (f"machine: nproc {cpus}{model}; {platform.system()} {platform.release()}; "
            f"Python {platform.python_version()} ({sys.executable}); {git_version}")
