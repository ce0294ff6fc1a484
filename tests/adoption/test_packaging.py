"""The driver as a Python package, and the rules as a release anyone can pin.

- the wheel and the sdist hold every subpackage; installed into a fresh
  virtual environment (dependencies only from the exact pins), the wheel
  runs every command's module, `convoy --version` and `python -m convoy`;
- pyproject.toml states ranges that admit requirements.txt's exact pins,
  and its version is MODULE.bazel's;
- scripts/release-rules makes the same archive every time, with the rules
  and nothing of the tests or the sample, and prints what to paste.
"""

from __future__ import annotations

import base64
import hashlib
import re
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from convoy import main as convoy_main

from tests.support import REPO
from tests.support.adoption import installed_env, pins, run, shown

try:  # Python >= 3.11
    import tomllib
except ImportError:  # pragma: no cover
    tomllib = None

SUBPACKAGES = ("convoy", "convoy/actions", "convoy/commands", "convoy/lab")


def _pyproject() -> dict:
    if tomllib is None:
        pytest.skip("tomllib needs Python >= 3.11")
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def test_wheel_and_sdist_hold_every_subpackage(dist):
    names = zipfile.ZipFile(dist.wheel).namelist()
    modules = {n for n in names if n.endswith(".py")}
    for package in SUBPACKAGES:
        assert f"{package}/__init__.py" in modules, f"{package} missing from {dist.wheel.name}"
    source = REPO / "tools" / "driver"
    expected = {p.relative_to(source).as_posix() for p in (source / "convoy").rglob("*.py")}
    assert modules == expected
    entry_points = zipfile.ZipFile(dist.wheel).read(f"convoy-{_version()}.dist-info/entry_points.txt").decode()
    assert "convoy = convoy.main:run" in entry_points

    with tarfile.open(dist.sdist) as sdist:
        in_sdist = {n.split("/", 1)[1] for n in sdist.getnames() if n.endswith(".py")}
    assert {f"tools/driver/{m}" for m in expected} <= in_sdist


def test_the_installed_wheel_runs(installed, dist):
    env = installed_env()
    version = run([installed.convoy, "--version"], env=env)
    assert (version.returncode, version.stdout) == (0, f"convoy {_version()}\n"), shown(version)
    as_module = run([installed.python, "-m", "convoy", "--version"], env=env)
    assert (as_module.returncode, as_module.stdout) == (0, f"convoy {_version()}\n"), shown(as_module)

    # Every command's module imports from the installed package (not the checkout).
    commands = sorted(set(convoy_main.COMMANDS.values()))
    probe = ("import importlib, convoy; "
             f"[importlib.import_module('convoy.commands.' + c) for c in {commands!r}]; "
             "print(convoy.__file__)")
    imported = run([installed.python, "-c", probe], env=env, cwd=installed.venv)
    assert imported.returncode == 0, shown(imported)
    assert imported.stdout.strip().startswith(str(installed.venv)), imported.stdout
    usage = run([installed.convoy, "help"], env=env)
    assert usage.returncode == 0 and "init" in usage.stdout and "bazel4" in usage.stdout, shown(usage)

    # Only the driver's dependencies, at the exact pins; nothing of the lab.
    frozen = run([installed.python, "-m", "pip", "freeze", "--all"], env=env)
    got = dict(line.lower().split("==", 1) for line in frozen.stdout.split() if "==" in line)
    wanted = pins()
    for name in ("ruamel.yaml", "ruamel.yaml.clib"):
        assert got.get(name) == wanted[name], frozen.stdout
    assert not {"grpcio", "buildgrid", "protobuf", "pytest"} & set(got), frozen.stdout


def test_pyproject_ranges_admit_the_tested_pins():
    from packaging.requirements import Requirement

    project = _pyproject()["project"]
    wanted = pins()
    for text in project["dependencies"]:
        requirement = Requirement(text)
        assert str(requirement.specifier), f"{text}: state a compatible range"
        assert requirement.specifier.contains(wanted[requirement.name.lower()]), (text, wanted)
    module = (REPO / "MODULE.bazel").read_text()
    assert f'version = "{project["version"]}"' in module, "MODULE.bazel and pyproject.toml disagree on the version"


def test_lab_dependencies_stay_out_of_the_base_install():
    project = _pyproject()["project"]
    lab = set(pins(REPO / "requirements-lab.txt"))
    base = {re.split(r"[<>=!~\[ ]", d, 1)[0].lower() for d in project["dependencies"]}
    assert not base & lab


def _version() -> str:
    return _pyproject()["project"]["version"] if tomllib else "0.2.0"


# --- the rules release ------------------------------------------------------------


def test_release_archive_holds_the_rules_only(rules_release):
    with tarfile.open(rules_release.path) as tar:
        names = sorted(tar.getnames())
        members = tar.getmembers()
    prefix = rules_release.strip_prefix
    assert prefix == f"convoy-{_version()}"
    files = {n[len(prefix) + 1:] for n, m in zip(names, members) if m.isfile()}
    rules = {p.relative_to(REPO).as_posix() for p in (REPO / "rules").rglob("*") if p.is_file()
             and "__pycache__" not in p.parts}
    assert files == rules | {"MODULE.bazel", "WORKSPACE.bazel", "BUILD.bazel", "README.md", "docs/adoption.md",
                             "third_party/bazel4/BUILD.bazel"}
    assert all(n == prefix or n.startswith(prefix + "/") for n in names)
    assert all(m.uid == 0 and m.mtime == 315532800 for m in members)


def test_release_is_reproducible_and_prints_what_to_paste(rules_release, tmp_path):
    again = run([sys.executable, REPO / "scripts" / "release-rules", f"--out={tmp_path}",
                 "--url=https://example.com/convoy.tar.gz"])
    assert again.returncode == 0, shown(again)
    data = rules_release.path.read_bytes()
    assert (tmp_path / rules_release.path.name).read_bytes() == data
    sha256 = hashlib.sha256(data).hexdigest()
    integrity = "sha256-" + base64.b64encode(hashlib.sha256(data).digest()).decode()
    assert (rules_release.sha256, rules_release.integrity) == (sha256, integrity)
    assert rules_release.url == rules_release.path.as_uri()
    out = again.stdout
    assert f"sha256:    {sha256}\n" in out and f"integrity: {integrity}\n" in out
    assert (f'bazel_dep(name = "convoy", version = "{_version()}")\narchive_override(\n    module_name = "convoy",\n'
            f'    integrity = "{integrity}",\n    strip_prefix = "convoy-{_version()}",\n'
            '    urls = ["https://example.com/convoy.tar.gz"],\n)\n') in out
    assert (f'http_archive(\n    name = "convoy",\n    sha256 = "{sha256}",\n    strip_prefix = "convoy-{_version()}",\n'
            '    urls = ["https://example.com/convoy.tar.gz"],\n)\n') in out


def test_release_module_file_keeps_the_sample_a_dev_dependency():
    module = (REPO / "MODULE.bazel").read_text()
    regular, _, dev = module.partition("--- development only")
    # What a module depending on convoy sees: the rules' own needs and the hub only.
    assert re.findall(r'bazel_dep\(name = "(\w+)"', regular) == ["platforms", "rules_python"]
    assert 'use_repo(manifest, "convoy_manifest")' in regular
    assert not re.search(r"^\w+\.lock\(", regular, re.M)  # no tag outside the dev part
    assert re.search(r'use_extension\("//rules:extensions.bzl", "manifest", dev_dependency = True\)', dev)
    assert all("dev_dependency = True" in line for line in dev.splitlines() if line.startswith(("bazel_dep",
                                                                                                 "sample = ")))
