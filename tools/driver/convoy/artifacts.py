"""The release artifacts of a build: what its release stage built, kept until it is released.

    kept = keep(checkout, build_id, "rover", bep_path, ("//product:distribution",))   # after the release task built
    kept.problem            # None, or one line: the task is an infrastructure error
    staged(checkout, build_id)  # {"rover/distribution.tar": Path, ...}: every configuration's kept files

The release stage (`release.artifacts` in convoy.yaml; convoy.config_release)
is the last stage of a request's build. Its task in a configuration runs
`bazel build <that configuration's release targets>` in the slot (output
base) that tested the candidate, with the same flags, so the artifacts are
what was tested, built from the same inputs. Right after Bazel succeeds, the
files of each target's default output group (from its build event file) are
copied to `.convoy/artifacts/build-<build id>/<configuration>/`, before the
slot builds anything else. At the merge, `convoy.publish` assembles the
release from them.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from convoy import bep
from convoy.store import STATE_DIR

ARTIFACTS_DIR = f"{STATE_DIR}/artifacts"
MAX_FILES = 1000  # files one configuration's release targets may make


@dataclass(frozen=True)
class Kept:
    """What `keep` copied ({name: path}) or, in `problem`, why it could not."""

    files: tuple[str, ...] = ()
    problem: Optional[str] = None


def build_dir(checkout: Path, build_id: int) -> Path:
    return checkout / ARTIFACTS_DIR / f"build-{build_id}"


def keep(checkout: Path, build_id: int, configuration: str, bep_path: Path, targets: Sequence[str]) -> Kept:
    """Copies the default outputs of `targets` (as the build event file at
    `bep_path` names them) to build_dir/<configuration>/, replacing what an
    earlier run of the task kept. Two outputs with one file name, a target
    with no output, a file that is not a regular local file: a problem."""
    outputs = bep.output_files(bep_path)
    files: dict[str, str] = {}
    for target in targets:
        found = outputs.get(target)
        if found is None and ":" not in target.rsplit("/", 1)[-1]:
            found = outputs.get(f"{target}:{target.rsplit('/', 1)[-1]}")
        if not found:
            return Kept(problem=f"release target {target} built no output file in {configuration} "
                                f"(its build event file: {bep_path}); make it a rule with outputs")
        for path in found:
            if "://" in path:
                return Kept(problem=f"release target {target}'s output {path} is not on this machine: build the "
                                    "release stage without --remote_download_minimal")
            name = os.path.basename(path)
            if name in files and files[name] != path:
                return Kept(problem=f"two release outputs in {configuration} are named {name} ({files[name]} and "
                                    f"{path}); give them distinct file names")
            files[name] = path
    if len(files) > MAX_FILES:
        return Kept(problem=f"the release targets of {configuration} make {len(files)} files (at most {MAX_FILES}); "
                            "package them into an archive")
    dest = build_dir(checkout, build_id) / configuration
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{configuration}.", dir=dest.parent))
    try:
        for name, path in sorted(files.items()):
            if not os.path.isfile(path):
                raise OSError(f"{path} is not a file")
            shutil.copyfile(path, partial / name)  # follows symlinks: the file's content, not a link into the slot
        shutil.rmtree(dest, ignore_errors=True)
        os.replace(partial, dest)
    except OSError as e:
        shutil.rmtree(partial, ignore_errors=True)
        return Kept(problem=f"cannot keep the release artifacts of {configuration}: {e}")
    return Kept(files=tuple(f"{configuration}/{name}" for name in sorted(files)))


def staged(checkout: Path, build_id: int) -> dict[str, Path]:
    """{"<configuration>/<file>": path} of every artifact the build kept."""
    root = build_dir(checkout, build_id)
    if not root.is_dir():
        return {}
    return {f"{configuration.name}/{f.name}": f
            for configuration in sorted(root.iterdir()) if configuration.is_dir() and not configuration.name.startswith(".")
            for f in sorted(configuration.iterdir()) if f.is_file()}


def discard(checkout: Path, build_id: int) -> None:
    """Removes what the build kept (once its release is published, or it will never be)."""
    shutil.rmtree(build_dir(checkout, build_id), ignore_errors=True)
