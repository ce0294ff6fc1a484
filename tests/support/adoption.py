"""Running commands as a new user of convoy does (tests/adoption): captured
output, the pins of requirements.txt, the environment for the installed convoy."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support import REPO
from tests.support.bazel import OUTPUT_USER_ROOT  # the Bazel output user root every e2e test shares

VENV_PYTHON = Path(sys.executable)
WHEELHOUSE = OUTPUT_USER_ROOT.parent / "wheels"  # ~/.cache/convoy/wheels


def run(cmd, *, cwd=None, env=None, timeout=300) -> subprocess.CompletedProcess:
    """Runs `cmd`, output captured as text; the caller asserts on returncode."""
    return subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


def shown(proc: subprocess.CompletedProcess) -> str:
    return f"$ {' '.join(proc.args)}\n(exit {proc.returncode})\n{proc.stdout[-6000:]}\n{proc.stderr[-6000:]}"


def pins(path: Path = REPO / "requirements.txt") -> dict[str, str]:
    """name (lowercase) -> exact version, from a requirements file."""
    found = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            found[name.strip().lower()] = version.strip()
    return found


def installed_env(**extra: str) -> dict[str, str]:
    """The environment for the installed convoy: this one, without the checkout's venv on PATH."""
    env = dict(os.environ, **extra)
    venv_bin = str(VENV_PYTHON.parent)
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p != venv_bin)
    env.pop("PYTHONPATH", None)
    return env
