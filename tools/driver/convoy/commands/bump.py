"""`convoy bump`: the manifest edit and the re-lock alone, in this checkout, for people.

    convoy bump --component=messages --version=v1.5.0
    convoy bump --component=firmware --version=v2.9.5 --configuration=drone    # a per-configuration pin

Edits manifests/manifest.yaml (comments, quoting and key order kept) and
re-locks: only the bumped component is resolved, the other pins are kept.
Nothing is committed. On any error neither file changes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from convoy import fsutil
from convoy.commands import common
from convoy.commands.submit import BumpArgs, check_bump_args
from convoy.errors import ConvoyError
from convoy.lock import LOCK_NAME, lock_manifest, read_lock, write_lock
from convoy.manifest import load_manifest


def add_flags(parser: common.Parser) -> None:
    common.add_repo(parser)
    common.add_bump_flags(parser)


def run(opts: argparse.Namespace, args: list[str]) -> int:
    bump_args, repo = BumpArgs.from_flags(opts), opts.repo
    common.no_arguments("bump", args)
    check_bump_args(bump_args)  # before looking for the checkout, as submit's checks
    print(bump(common.checkout(repo), bump_args))
    return 0


def bump(root: Path, args: BumpArgs) -> str:
    """Bumps the manifest of the checkout `root` as `args` asks and re-locks
    it (nothing committed); returns what was done, in one line. ConvoyError
    (one line) if it cannot be done; then neither file changes."""
    from convoy.manifest_edit import Bump, bump_manifest

    check_bump_args(args)
    path = common.manifest_path(root)
    shown = common.shown_manifest(root)
    manifest = load_manifest(shown)
    if args.component not in manifest.components:
        raise ConvoyError(f"--component={args.component}: no such component in {shown} (known: "
                          f"{', '.join(sorted(manifest.components))}); fix the name")
    text = path.read_text(encoding="utf-8")
    edit = Bump(component=args.component, version=args.version, commit=args.commit,
                configuration=args.configuration, archive_url=args.archive_url, strip_prefix=args.strip_prefix)
    edited, bumped = bump_manifest(text, edit, shown=shown)
    if edited == text:
        return f"{shown} already pins {edit.component} {edit.version}; nothing to do"
    lock_path = path.parent / LOCK_NAME
    try:
        previous = read_lock(lock_path)
    except ConvoyError:
        previous = None
    lock = lock_manifest(bumped, root, "manifests/manifest.yaml", previous=previous)
    fsutil.atomic_write(path, edited)
    write_lock(lock_path, lock)
    scope = f" in {edit.configuration}" if edit.configuration else ""
    return f"bumped {edit.component} to {edit.version}{scope}: wrote {shown} and {LOCK_NAME} (not committed)"
