"""`convoy init DIR`: a new integration repository that works at once.

    convoy init robot --rules=dist/convoy-0.2.0.tar.gz \\
        --component=codec=https://git.example.com/robot/codec.git@v1.0.0 \\
        --component=telemetry=https://git.example.com/robot/telemetry.git@v2.0.0
    cd robot && bazel test //integration/...

Writes MODULE.bazel and WORKSPACE.bazel (both pointing at convoy's rules:
--rules is a convoy-<version>.tar.gz, as a path or a URL, or a convoy
directory; default: the convoy checkout this driver runs from), WORKSPACE.bzlmod,
.bazelrc, .bazelignore, .gitignore, convoy.yaml, manifests/manifest.yaml and
manifests/BUILD.bazel, integration/BUILD.bazel (a test of the pins, and a
commented example of each macro) and integration/pins_test.py. Each
`--component NAME=REMOTE@VERSION` (repeatable) goes into the manifest, which
is then locked (manifests/manifest.lock.json, manifests/configurations.bazelrc).
Where the Bazel on PATH is 4.x, it also writes the offline `bazel4` config's
local part (`convoy bazel4`). A directory that is not in a git repository
gets `git init` (branch main); nothing is committed.

A file that exists is never overwritten: init names every one and writes
nothing.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Optional, Sequence

import convoy
from convoy import bazel4, bazelrc, fsutil, gitutil, scaffold
from convoy.commands import common
from convoy.errors import ConvoyError
from convoy.lock import lock_manifest, write_lock
from convoy.manifest import parse_manifest


def add_flags(parser: common.Parser) -> None:
    parser.string(
        "rules", None,
        "init: where the new repository gets convoy's rules: convoy-<version>.tar.gz (a path or an http(s)/file URL) "
        "or a convoy directory (default: the convoy checkout this driver runs from).",
    )
    parser.string("rules_sha256", None, "init: the sha256 of the --rules archive (default: computed from it).")
    parser.multi_string("component", [], "init: a component of the new manifest, NAME=REMOTE@VERSION (repeat it).",
                        metavar="NAME=REMOTE@VERSION")


MANIFEST = "manifests/manifest.yaml"
LOCK = "manifests/manifest.lock.json"

def run(opts: argparse.Namespace, args: list[str]) -> int:
    """Makes the integration repository in DIR; exit 0, or 2 with what is wrong."""
    components, rules, rules_sha256 = list(opts.component), opts.rules, opts.rules_sha256
    if len(args) != 1:
        got = f"got: {' '.join(args)}" if args else "got none"
        raise ConvoyError(f"convoy init takes one directory ({got}); for example: convoy init robot-integration")
    init(args[0], components=components, rules=rules, rules_sha256=rules_sha256)
    return 0


def init(target: str, *, components: Sequence[str] = (), rules: Optional[str] = None,
         rules_sha256: Optional[str] = None) -> None:
    """Makes the integration repository in the directory `target` (as the
    user wrote it: messages show it so), printing what it does.
    `components` are NAME=REMOTE@VERSION; `rules` and `rules_sha256` are
    --rules and --rules_sha256 (None: the convoy checkout this runs from).
    ConvoyError (nothing written) if anything is wrong."""
    directory = Path(target).absolute()
    specs = [scaffold.ComponentSpec.parse(text) for text in components]
    duplicates = sorted({c.name for c in specs if [d.name for d in specs].count(c.name) > 1})
    if duplicates:
        raise ConvoyError(f"--component names {', '.join(duplicates)} more than once; give each component once")
    source = scaffold.RulesSource.of(*_rules_source(rules, rules_sha256))
    name = scaffold.module_name(directory)
    files = scaffold.scaffold_files(name, source, specs)

    if directory.exists() and not directory.is_dir():
        raise ConvoyError(f"{target} exists and is not a directory; choose another place")
    existing = sorted(p for p in [*files, LOCK, f"manifests/{bazelrc.NAME}"] if (directory / p).exists()
                      or (directory / p).is_symlink())
    if existing:
        raise ConvoyError(f"{target} already has {', '.join(existing)}; convoy init never overwrites a file. "
                          "Remove them, or choose another directory")

    directory.mkdir(parents=True, exist_ok=True)
    lock = None
    if specs:
        # Resolved before anything is written: a remote that cannot be reached
        # leaves no half-made repository behind.
        manifest = parse_manifest(files[MANIFEST], shown=os.path.join(target, MANIFEST))
        lock = lock_manifest(manifest, directory, MANIFEST)
    for relative, text in files.items():
        path = directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        fsutil.atomic_write(path, text)
    print(f"wrote {len(files)} files in {target}: {', '.join(sorted(files))}")
    if lock is not None:
        write_lock(directory / LOCK, lock)
        bazelrc.write_configurations(directory / LOCK, lock)
        for configuration, pins in sorted(lock.configurations.items()):
            versions = ", ".join(f"{c} {pin['version']}" for c, pin in sorted(pins.items()))
            print(f"locked {configuration}: {versions}")

    version = bazel4.bazel_version()
    if bazel4.is_bazel4(version):
        bazel4.write_local_config(directory, version)
        print(f"Bazel {version}: wrote the bazel4 config's local part (.bazelrc.local, .convoy/bazel4/)")
    if not _in_git_work_tree(directory):
        gitutil.run(["init", "--quiet", "--initial-branch=main", "--", str(directory)], cwd=directory)
        print(f"git init {target} (branch main; nothing committed)")
    _next_steps(target, bool(specs))


def _rules_source(rules: Optional[str], rules_sha256: Optional[str]) -> tuple[str, Optional[str]]:
    if rules:
        return rules, rules_sha256
    checkout = convoy.source_checkout()
    if checkout is not None:
        return str(checkout), None
    raise ConvoyError("pass --rules=<convoy-<version>.tar.gz, its URL, or a convoy directory>: this convoy is "
                      "installed, not run from a checkout, so it cannot point at its own rules "
                      "(scripts/release-rules in a convoy checkout makes the archive)")


def _in_git_work_tree(directory: Path) -> bool:
    result = gitutil.run(["rev-parse", "--is-inside-work-tree"], cwd=directory, check=False)
    return result.returncode == 0 and result.stdout.strip() == "true"


def _next_steps(shown: str, locked: bool) -> None:
    print("next:")
    print(f"  cd {shown}")
    if not locked:
        print(f"  edit {MANIFEST} (add your components), then: convoy lock")
    print("  bazel test //integration/...")
    print("  git add -A && git commit -m 'Integration repository' && git remote add origin <url> && "
          "git push -u origin main")
    print("  convoy submit --component=<name> --version=<tag> && convoy process --once")
