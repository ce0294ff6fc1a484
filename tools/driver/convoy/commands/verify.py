"""`convoy verify TAG`: check a release: signatures, lock, artifacts, stages and rigs.

    convoy verify v2026.12.1
    ok   signatures: tag v2026.12.1 and its provenance are signed by release@example.com; ...
    ok   lock: manifests/manifest.lock.json and manifests/manifest.yaml at 3f2a9c1b7d04 are the provenance's (7 pins)
    FAIL artifacts: rover/product.tar does not match SHA256SUMS: its sha256 is ..., SHA256SUMS says ...
    ok   stages: 9 tasks of 4 stages passed; 3 unchanged (skipped: their pins did not move)
    ok   rigs: 2 hardware tests ran on rigs of their pools
    convoy verify: v2026.12.1: artifacts: rover/product.tar does not match SHA256SUMS: ...

    convoy verify v2026.12.1 --json     # {"tag", "ok", "first_problem", "checks": [{"name", "ok", "line"}]}

The tag is read from the remote of convoy.yaml's git: section, the release
from release.store; without release.signing only digests are checked.
Exit status: 0 when every check passed, 1 when one failed, 2 when TAG is
not a release of this repository (convoy.verify has the checks).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from convoy import verify
from convoy.commands import common
from convoy.errors import ConvoyError
from convoy.untrusted import printable


def add_flags(parser: common.Parser) -> None:
    common.add_repo(parser)
    common.add_json(parser)


def run(opts: argparse.Namespace, args: list[str]) -> int:
    as_json, repo = opts.json, opts.repo
    if len(args) != 1:
        got = f"got: {printable(' '.join(args))}" if args else "got none"
        raise ConvoyError(f"convoy verify takes one release tag ({got}); for example: convoy verify v2026.12.1")
    root = common.checkout(repo)
    report = verify_tag(root, args[0])
    if as_json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        for check in report.checks:
            print(f"{'ok' if check.ok else 'FAIL':<4} {check.name}: {check.line}")
        if not report.ok:
            print(f"convoy verify: {printable(report.tag)}: {report.first_problem}", file=sys.stderr)
    return 0 if report.ok else 1


def verify_tag(root: Path, tag: str) -> verify.Report:
    """The checks of release `tag` of the checkout `root` (convoy.verify.verify_release)."""
    return verify.verify_release(root, common.config(root), tag)
