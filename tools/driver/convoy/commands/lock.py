"""`convoy lock`: resolve the manifest into the lock file.

    convoy lock            # resolve every configuration; write manifests/manifest.lock.json
    convoy lock --check    # no network: is the lock up to date? exit 1 if stale
    convoy lock --manifest=../other/manifests/manifest.yaml --lock=/tmp/lock.json

Without --manifest, the integration repo root is the nearest directory at or
above the current one that has manifests/manifest.yaml; with it, the root is
the parent of the manifest's directory. On any error nothing is written.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from absl import flags

from convoy.errors import ConvoyError
from convoy.lock import FIX, LOCK_NAME, lock_manifest, read_lock, stale_lines, write_lock
from convoy.manifest import Manifest, load_manifest

DEFAULT_MANIFEST = os.path.join("manifests", "manifest.yaml")

FLAGS = flags.FLAGS
flags.DEFINE_string(
    "manifest", None,
    "The manifest (default: manifests/manifest.yaml in the nearest directory at or above the current one).",
)
flags.DEFINE_string("lock", None, f"The lock file (default: {LOCK_NAME} beside the manifest).")
flags.DEFINE_bool("check", False, "Only check, without the network, that the lock matches the manifest; exit 1 if not.")


@dataclass(frozen=True)
class _Paths:
    """Where things are; `manifest` and `lock` are as given or relative to
    the current directory, so that messages show them as the user knows them."""

    root: Path
    manifest: str
    manifest_name: str  # relative to root, as recorded in the lock
    lock: str


def run(args: list[str]) -> int:
    """Writes the lock (exit 0), or with --check compares it (exit 0 or 1)."""
    if args:
        raise ConvoyError(f"convoy lock takes no arguments, got: {' '.join(args)}; run: convoy help")
    paths = _find_paths(FLAGS.manifest, FLAGS.lock)
    manifest = load_manifest(paths.manifest)
    if FLAGS.check:
        return _check(paths, manifest)
    lock = lock_manifest(manifest, paths.root, paths.manifest_name)
    for name, pins in sorted(lock.configurations.items()):
        versions = ", ".join(f"{component} {pin['version']}" for component, pin in sorted(pins.items()))
        print(f"{name}: {len(pins)} components ({versions})")
    write_lock(paths.lock, lock)
    print(f"wrote {paths.lock}")
    return 0


def _check(paths: _Paths, manifest: Manifest) -> int:
    lock = read_lock(paths.lock)
    if lock.manifest_sha256 == manifest.sha256:
        print(f"{paths.lock} is up to date")
        return 0
    for line in stale_lines(manifest, lock):
        print(line)
    print(f"{paths.lock} is stale; run: {FIX}")
    return 1


def _find_paths(manifest_flag: Optional[str], lock_flag: Optional[str]) -> _Paths:
    if manifest_flag:
        manifest = manifest_flag
        resolved = Path(manifest_flag).resolve()
        root = resolved.parent.parent
    else:
        cwd = Path.cwd()
        root = next((d for d in (cwd, *cwd.parents) if (d / DEFAULT_MANIFEST).is_file()), None)
        if root is None:
            raise ConvoyError(
                f"{DEFAULT_MANIFEST} not found in {cwd} or any directory above it; "
                "run convoy from the integration repository or pass --manifest"
            )
        resolved = root / DEFAULT_MANIFEST
        manifest = os.path.relpath(resolved)
    lock = lock_flag or os.path.join(os.path.dirname(manifest), LOCK_NAME)
    return _Paths(root=root, manifest=manifest, manifest_name=resolved.relative_to(root).as_posix(), lock=lock)
