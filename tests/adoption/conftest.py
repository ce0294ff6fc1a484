"""Fixtures of the adoption tests: convoy as a new user gets it.

- `dist` (session): the driver's wheel and sdist, built from a copy of the
  sources (pyproject.toml, README.md, tools/driver) with the main .venv's
  pinned setuptools and no network (`pip wheel --no-deps --no-build-isolation`).
- `installed` (session): a fresh virtual environment with that wheel
  installed from a local wheel directory only (`pip install --no-index`):
  the dependencies come from the exact pins of requirements.txt, downloaded
  once into ~/.cache/convoy/wheels (beside the shared Bazel output root) and
  reused by every later run. A subpackage or a dependency missing from the
  wheel fails here or in the commands run with it.
- `rules_release` (session): `scripts/release-rules` into a temporary
  directory: the archive, its sha256, integrity and file:// URL.

What the tests import (run, shown, pins, installed_env): tests/support/adoption.py.
"""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import REPO
from tests.support.adoption import VENV_PYTHON, WHEELHOUSE, pins, run, shown

# What a driver build needs from the checkout.
SOURCES = ("pyproject.toml", "README.md", "tools/driver/convoy")


@dataclass(frozen=True)
class Dist:
    wheel: Path
    sdist: Path


@pytest.fixture(scope="session")
def dist(tmp_path_factory) -> Dist:
    base = tmp_path_factory.mktemp("dist")
    src = base / "src"
    for name in SOURCES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
        else:
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, src / name)
    out = base / "out"
    wheel = run([VENV_PYTHON, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
                 "-w", out, src])
    assert wheel.returncode == 0, shown(wheel)
    sdist = run([VENV_PYTHON, "-c", f"from setuptools import build_meta; build_meta.build_sdist({str(out)!r})"],
                cwd=src)
    assert sdist.returncode == 0, shown(sdist)
    (wheel_path,) = out.glob("convoy-*.whl")
    (sdist_path,) = out.glob("convoy-*.tar.gz")
    return Dist(wheel_path, sdist_path)


def _wheelhouse() -> Path:
    """~/.cache/convoy/wheels with a wheel of every pin of requirements.txt (downloaded once)."""
    WHEELHOUSE.mkdir(parents=True, exist_ok=True)
    have = {(_normal(p.name.split("-")[0]), p.name.split("-")[1]) for p in WHEELHOUSE.glob("*.whl")}
    missing = [f"{name}=={version}" for name, version in pins().items() if (_normal(name), version) not in have]
    if missing:
        got = run([VENV_PYTHON, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "-d", WHEELHOUSE,
                   *missing], timeout=600)
        assert got.returncode == 0, shown(got)
    return WHEELHOUSE


def _normal(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


@dataclass(frozen=True)
class Installed:
    """A fresh virtual environment with convoy's wheel installed."""

    venv: Path

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def convoy(self) -> Path:
        return self.venv / "bin" / "convoy"


@pytest.fixture(scope="session")
def installed(dist: Dist, tmp_path_factory) -> Installed:
    venv = tmp_path_factory.mktemp("fresh") / "venv"
    base = getattr(sys, "_base_executable", sys.executable)
    made = run([base, "-m", "venv", venv])
    assert made.returncode == 0, shown(made)
    python = venv / "bin" / "python"
    install = run([python, "-m", "pip", "install", "-q", "--no-index", "--find-links", _wheelhouse(),
                   "--find-links", dist.wheel.parent, f"convoy=={_version(dist.wheel)}"], timeout=600)
    assert install.returncode == 0, shown(install)
    return Installed(venv)


def _version(wheel: Path) -> str:
    return wheel.name.split("-")[1]


@dataclass(frozen=True)
class Release:
    path: Path
    sha256: str
    integrity: str
    url: str
    strip_prefix: str
    output: str


@pytest.fixture(scope="session")
def rules_release(tmp_path_factory) -> Release:
    out = tmp_path_factory.mktemp("rules-release")
    made = run([sys.executable, REPO / "scripts" / "release-rules", f"--out={out}", "--json"])
    assert made.returncode == 0, shown(made)
    info = json.loads(made.stdout)
    return Release(Path(info["path"]), info["sha256"], info["integrity"], info["url"], info["strip_prefix"],
                   made.stdout)
