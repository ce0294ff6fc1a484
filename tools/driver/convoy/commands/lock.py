"""`convoy lock`: resolve the manifest into the lock file.

    convoy lock            # resolve every configuration; write manifests/manifest.lock.json
    convoy lock --check    # no network: is the lock up to date? exit 1 if stale
    convoy lock --manifest=../other/manifests/manifest.yaml --lock=/tmp/lock.json

Without --manifest, the integration repo root is the nearest directory at or
above the current one that has manifests/manifest.yaml; with it, the root is
the parent of the manifest's directory. On any error nothing is written.

Where the repository's .bazelrc imports it (as `convoy init` makes it), the
lock also writes manifests/configurations.bazelrc: a `--config=<name>` per
configuration. A local component that git does not track gets a warning: the
candidate worktree of `convoy process` holds only what is committed.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from convoy import bazelrc, localpaths
from convoy.commands import common
from convoy.errors import ConvoyError
from convoy.lock import FIX, LOCK_NAME, lock_manifest, read_lock, stale_lines, write_lock
from convoy.manifest import Manifest, load_manifest


def add_flags(parser: common.Parser) -> None:
    common.add_repo(parser)
    parser.string(
        "manifest", None,
        "The manifest (default: manifests/manifest.yaml in the nearest directory at or above the current one).",
    )
    parser.string("lock", None, f"The lock file (default: {LOCK_NAME} beside the manifest).")
    parser.boolean("check", False,
                   "Only check, without the network, that the lock matches the manifest; exit 1 if not.")


@dataclass(frozen=True)
class Paths:
    """Where things are; `manifest` and `lock` are as given or relative to
    the current directory, so that messages show them as the user knows them."""

    root: Path
    manifest: str
    manifest_name: str  # relative to root, as recorded in the lock
    lock: str


def run(opts: argparse.Namespace, args: list[str]) -> int:
    """Writes the lock (exit 0), or with --check compares it (exit 0 or 1)."""
    repo, manifest, lock_file, check = opts.repo, opts.manifest, opts.lock, opts.check
    if args:
        raise ConvoyError(f"convoy lock takes no arguments, got: {' '.join(args)}; run: convoy help")
    return resolve(find_paths(repo, manifest, lock_file), check=check)


def resolve(paths: Paths, *, check: bool = False) -> int:
    """Resolves the manifest at `paths` and writes the lock (and, where
    .bazelrc imports it, manifests/configurations.bazelrc), printing what it
    did; returns 0. With `check`, only compares them: 0 if the lock is up
    to date, else 1."""
    manifest = load_manifest(paths.manifest)
    if check:
        return _check(paths, manifest)
    lock = lock_manifest(manifest, paths.root, paths.manifest_name)
    for name, pins in sorted(lock.configurations.items()):
        versions = ", ".join(f"{component} {pin['version']}" for component, pin in sorted(pins.items()))
        print(f"{name}: {len(pins)} components ({versions})")
    write_lock(paths.lock, lock)
    print(f"wrote {paths.lock}")
    if _imports_configurations(paths.root):  # a .bazelrc made by `convoy init` does
        print(f"wrote {os.path.relpath(bazelrc.write_configurations(paths.lock, lock))}")
    for line in localpaths.warnings(paths.root, lock):
        print(f"convoy: warning: {line}", file=sys.stderr)
    return 0


def _imports_configurations(root: Path) -> bool:
    """Whether the repository's .bazelrc imports manifests/configurations.bazelrc."""
    try:
        return bazelrc.NAME in (root / ".bazelrc").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False


def _check(paths: Paths, manifest: Manifest) -> int:
    """Compares the lock with the manifest entry by entry (not only by the
    manifest's digest, which a lock edited by hand keeps)."""
    lock = read_lock(paths.lock)
    lines = stale_lines(manifest, lock)
    if not lines:
        print(f"{paths.lock} is up to date")
        return 0
    for line in lines:
        print(line)
    print(f"{paths.lock} is stale; run: {FIX}")
    return 1


def find_paths(repo: Optional[str], manifest: Optional[str], lock: Optional[str]) -> Paths:
    """The paths of `convoy lock --repo --manifest --lock` (None: not given):
    the checkout is the one --manifest is in, else --repo, else the nearest
    (common.checkout)."""
    root = common.checkout(repo, manifest=manifest)
    if manifest:
        resolved = Path(manifest).resolve()
    else:
        resolved = common.manifest_path(root)
        manifest = os.path.relpath(resolved)
    lock = lock or os.path.join(os.path.dirname(manifest), LOCK_NAME)
    return Paths(root=root, manifest=manifest, manifest_name=resolved.relative_to(root).as_posix(), lock=lock)
