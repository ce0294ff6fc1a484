"""`convoy bump`: the manifest edit and the re-lock alone, in this checkout, for people.

    convoy bump --component=messages --version=v1.5.0
    convoy bump --component=firmware --version=v2.9.5 --configuration=drone    # a per-configuration pin

Edits manifests/manifest.yaml (comments, quoting and key order kept) and
re-locks: only the bumped component is resolved, the other pins are kept.
Nothing is committed. On any error neither file changes.
"""

from __future__ import annotations

from convoy import fsutil
from convoy.commands import common
from convoy.commands.submit import check_bump_flags
from convoy.errors import ConvoyError
from convoy.lock import LOCK_NAME, lock_manifest, read_lock, write_lock
from convoy.manifest import load_manifest


def run(args: list[str]) -> int:
    from convoy.manifest_edit import Bump, bump_manifest

    common.no_arguments("bump", args)
    check_bump_flags()
    root = common.checkout()
    path = common.manifest_path(root)
    shown = common.shown_manifest(root)
    manifest = load_manifest(shown)
    if common.FLAGS.component not in manifest.components:
        raise ConvoyError(f"--component={common.FLAGS.component}: no such component in {shown} (known: "
                          f"{', '.join(sorted(manifest.components))}); fix the name")
    text = path.read_text(encoding="utf-8")
    bump = Bump(component=common.FLAGS.component, version=common.FLAGS.version, commit=common.FLAGS.commit,
                configuration=common.FLAGS.configuration, archive_url=common.FLAGS.archive_url,
                strip_prefix=common.FLAGS.strip_prefix)
    edited, bumped = bump_manifest(text, bump, shown=shown)
    if edited == text:
        print(f"{shown} already pins {bump.component} {bump.version}; nothing to do")
        return 0
    lock_path = path.parent / LOCK_NAME
    try:
        previous = read_lock(lock_path)
    except ConvoyError:
        previous = None
    lock = lock_manifest(bumped, root, "manifests/manifest.yaml", previous=previous)
    fsutil.atomic_write(path, edited)
    write_lock(lock_path, lock)
    scope = f" in {bump.configuration}" if bump.configuration else ""
    print(f"bumped {bump.component} to {bump.version}{scope}: wrote {shown} and {LOCK_NAME} (not committed)")
    return 0
